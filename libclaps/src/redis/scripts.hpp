// The Lua scripts of redis_store. Every script touches keys of one hash tag
// only ({article} or {user}), so each runs unchanged on Redis Cluster.
#pragma once

#include <string_view>

namespace claps::detail::scripts {

// Writes this node's absolute values of one article, never moving a field
// backwards: a field whose version is >= ours is left alone (a replay or a
// stale retry) and counted as stale.
// KEYS[1] t:{A}; KEYS[2..] u:{A}:<user>.
// ARGV[1] node, ARGV[2] version, ARGV[3] total or '' (tallies only),
// ARGV[4..] claps per KEYS[2..].
// Returns {stale_fields, others_1, ...}: per tally, the claps of that user
// on A through every other node (for the cross-node cap).
inline constexpr std::string_view write_article = R"lua(
local node, ver = ARGV[1], ARGV[2]
local nver = tonumber(ver)
local stale = 0
local function put(key, value)
  local cur = redis.call('HGET', key, node)
  if cur then
    local v = tonumber(string.match(cur, '^(%d+):'))
    if v and v >= nver then
      stale = stale + 1
      return
    end
  end
  redis.call('HSET', key, node, ver .. ':' .. value)
end
local function others(key)
  local all = redis.call('HGETALL', key)
  local sum = 0
  for i = 1, #all, 2 do
    if all[i] ~= node then
      sum = sum + (tonumber(string.match(all[i + 1], ':(-?%d+)$')) or 0)
    end
  end
  return sum
end
if ARGV[3] ~= '' then put(KEYS[1], ARGV[3]) end
local out = {0}
for i = 2, #KEYS do
  put(KEYS[i], ARGV[i + 2])
  out[i] = others(KEYS[i])
end
out[1] = stale
return out
)lua";

// Records an op id across nodes. KEYS[1] op:{user}:<op>.
// ARGV[1] "node|article|accepted|mine", ARGV[2] ttl ms, ARGV[3] node.
// Returns 1 when the id is ours (new, claimed by claim_op, or our own
// re-assert: the full record replaces the claim), 0 when another node used
// it first.
inline constexpr std::string_view record_op = R"lua(
local cur = redis.call('GET', KEYS[1])
if (not cur) or string.sub(cur, 1, #ARGV[3] + 1) == ARGV[3] .. '|' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
)lua";

// Claims an op id before it is applied, so two nodes never both apply it.
// KEYS[1] op:{user}:<op>; ARGV[1] node, ARGV[2] claim ttl ms.
// Returns '' when this call claimed it ("node|" until record_op writes the
// result), else the value there: "node|" (claimed, not yet recorded) or
// "node|article|accepted|mine".
inline constexpr std::string_view claim_op = R"lua(
local cur = redis.call('GET', KEYS[1])
if cur then return cur end
redis.call('SET', KEYS[1], ARGV[1] .. '|', 'PX', ARGV[2])
return ''
)lua";

// Reserves room under the per-user cap before claps are applied, so the cap
// is exact across nodes while Redis is reachable.
// KEYS[1] u:{A}:<user> (committed: node -> "version:claps"),
// KEYS[2] r:{A}:<user> (reserved: node -> "level:expires_ms", Redis TIME).
// ARGV[1] node, ARGV[2] this node's claps now (committed and pending),
// ARGV[3] claps wanted, ARGV[4] cap, ARGV[5] reservation ttl ms.
// Another node counts as the larger of its committed and unexpired reserved
// level. Grants what fits, records this node's level (own + grant), and
// returns {grant, others}.
inline constexpr std::string_view reserve_claps = R"lua(
local node = ARGV[1]
local own, want, cap, ttl = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local level = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= node then level[all[i]] = tonumber(string.match(all[i + 1], ':(-?%d+)$')) or 0 end
end
all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local l, e = string.match(all[i + 1], '^(-?%d+):(%d+)$')
  if l and tonumber(e) > now then
    local v = tonumber(l)
    if all[i] ~= node and (level[all[i]] == nil or v > level[all[i]]) then level[all[i]] = v end
  else
    redis.call('HDEL', KEYS[2], all[i])
  end
end
local others = 0
for _, v in pairs(level) do others = others + v end
local grant = math.max(0, math.min(want, cap - others - own))
redis.call('HSET', KEYS[2], node, string.format('%d:%d', own + grant, now + ttl))
redis.call('PEXPIRE', KEYS[2], ttl)
return {grant, others}
)lua";

// Claims a node id for one owner. KEYS[1] node:{N}; ARGV[1] owner.
// Returns 1 when the id is (now) this owner's, else the holder's owner id.
inline constexpr std::string_view claim_node = R"lua(
local cur = redis.call('GET', KEYS[1])
if not cur then
  redis.call('SET', KEYS[1], ARGV[1])
  return 1
end
if cur == ARGV[1] then return 1 end
return cur
)lua";

// This node's viewers of one article, expiring by Redis's own clock so node
// clocks never matter. KEYS[1] v:{A}; ARGV[1] node, ARGV[2] viewers, ARGV[3] ttl ms.
inline constexpr std::string_view write_viewers = R"lua(
if ARGV[2] == '0' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  return 0
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2] .. ':' .. string.format('%d', now + tonumber(ARGV[3])))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
)lua";

// The other nodes' parts of one article; drops expired viewer fields.
// KEYS[1] t:{A}, KEYS[2] v:{A}; ARGV[1] node.
// Returns {{node, version, total, ...}, {node, viewers, ...}}.
inline constexpr std::string_view read_article = R"lua(
local node = ARGV[1]
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local totals = {}
local all = redis.call('HGETALL', KEYS[1])
for i = 1, #all, 2 do
  if all[i] ~= node then
    local v, n = string.match(all[i + 1], '^(%d+):(-?%d+)$')
    if v then
      totals[#totals + 1] = all[i]
      totals[#totals + 1] = v
      totals[#totals + 1] = n
    end
  end
end
local viewers = {}
all = redis.call('HGETALL', KEYS[2])
for i = 1, #all, 2 do
  local c, e = string.match(all[i + 1], '^(%d+):(%d+)$')
  if c and tonumber(e) > now then
    if all[i] ~= node then
      viewers[#viewers + 1] = all[i]
      viewers[#viewers + 1] = c
    end
  else
    redis.call('HDEL', KEYS[2], all[i])
  end
end
return {totals, viewers}
)lua";

} // namespace claps::detail::scripts
