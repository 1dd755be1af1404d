// The Lua scripts of redis_store. Every script touches the keys of one hash
// tag only ({article} or {node}), so each runs unchanged on Redis Cluster.
//
// Values: t:{A} and u:{A}:U fields are "version:value" per node; op records
// o:{A}:U:OP are "version:deadline/node|P|accepted|mine" while pending
// (decided, not yet in the deciding node's journal: `version` is the one the
// decision wrote the node's fields with, `deadline` Redis TIME in ms) and
// "node|C|accepted|mine" once confirmed. A pending record without the
// "version:deadline/" prefix (written before takeovers existed) is honoured
// until it expires, as then.
#pragma once

#include <string_view>

namespace claps::detail::scripts {

// Decides one tick's ops across nodes, for one or more articles, and writes
// this node's new values. On Redis Cluster a call holds the articles of one
// hash slot; on one master, every article of the tick (a script's fixed cost
// then is paid once per tick, not once per article).
// ARGV[1] node, ARGV[2] version, ARGV[3] cap, ARGV[4] pending ttl ms,
// ARGV[5] number of articles, ARGV[6] op record ttl ms (the op id window);
// then per article: the KEYS index of its t:{A},
// this node's total of A before the ops (its journal's, with decided ops), nu,
// this node's claps of each of its nu users before the ops, the number of
// ops, and per op three values: user index (1..nu), KEYS index of its
// o:{A}:U:OP (0: no op id), claps wanted (0: undo).
// KEYS per article: t:{A}, u:{A}:<user i> for i = 1..nu, then its op keys.
// The node's own values come from its journal (ARGV), never from what Redis
// holds: a value Redis holds from a crash before the journal is overwritten.
// For each op, in order: a new op id is claimed with its pending record and
// SET NX GET (one command); an op id this node recorded earlier is ours again
// (the journal lacks it); another node's confirmed record is replayed; another
// node's pending record asks the caller to retry until its deadline, and past
// it is taken over: the holder never committed the op (it crashed, or its
// journal failed), yet its fields in Redis still count the op while they
// carry the version the decision wrote them with. The takeover subtracts the
// op from those fields (the holder's later writes, from its journal, would
// have replaced them) and decides the op afresh, so a client that resends an
// unacknowledged op to another node gets it counted once even when the node
// that decided it first never comes back. The cap counts every other
// node's claps of the user; an undo removes them too (this node goes below
// zero by their sum).
// Returns {maxver, {stale, {others_1, ...}, {t:{A} HGETALL}, {kind, accepted,
// mine, ...}}, ...} with one element per article: stale counts writes skipped
// because Redis held a version >= ours; maxver is the highest version of this
// node's fields seen (the caller moves its versions past it); kind 1 applied,
// 2 replay, 3 retry, 4 applied after taking over another node's pending op.
inline constexpr std::string_view arbitrate = R"lua(
local call = redis.call
local node, ver = ARGV[1], ARGV[2]
local nver = tonumber(ver)
local cap, pttl, rttl = tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[6]
local maxver = 0
local function version_of(v) return tonumber(string.match(v, '^(%d+):')) or 0 end
local clock
local function now()
  if not clock then
    local t = call('TIME')
    clock = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  end
  return clock
end
local function pending(accepted, mine)
  return ver .. ':' .. string.format('%d', now() + pttl) .. '/' .. node .. '|P|' .. accepted .. '|' .. mine
end
-- holder, state, accepted, mine[, version, deadline] of an op record
local function parse(rec)
  local pv, dl, rest = string.match(rec, '^(%d+):(%d+)/(.*)$')
  local pn, st, pa, pm = string.match(rest or rec, '^(.*)|(%a)|(-?%d+)|(-?%d+)$')
  return pn, st, pa, pm, pv, dl
end
-- Subtracts n from field `holder` of hash k if it still has version pv.
local function unwind(k, holder, pv, n)
  local v, value = string.match(call('HGET', k, holder) or '', '^(%d+):(-?%d+)$')
  if v ~= pv then return false end
  call('HSET', k, holder, v .. ':' .. (tonumber(value) - n))
  return true
end
local result = {0}
local a = 7
for art = 1, tonumber(ARGV[5]) do
  local tk = tonumber(ARGV[a])
  local total = tonumber(ARGV[a + 1])
  local nu = tonumber(ARGV[a + 2])
  a = a + 3
  local stale = 0
  local own, others, cur, changed = {}, {}, {}, {}
  for i = 1, nu do
    own[i] = tonumber(ARGV[a])
    a = a + 1
    local all = call('HGETALL', KEYS[tk + i])
    local sum = 0
    for j = 1, #all, 2 do
      if all[j] == node then
        cur[i] = version_of(all[j + 1])
        if cur[i] > maxver then maxver = cur[i] end
      else
        sum = sum + (tonumber(string.match(all[j + 1], ':(-?%d+)$')) or 0)
      end
    end
    others[i] = sum
  end
  local out, any = {}, false
  local nops = tonumber(ARGV[a])
  a = a + 1
  for k = 1, nops do
    local u, ok, want = tonumber(ARGV[a]), tonumber(ARGV[a + 1]), tonumber(ARGV[a + 2])
    a = a + 3
    local function decide()
      if want == 0 then return -(own[u] + others[u]) end
      return math.max(0, math.min(want, cap - own[u] - others[u]))
    end
    local accepted = decide()
    local mine = own[u] + accepted + others[u]
    local kind = 1
    if ok > 0 then
      local prev = call('SET', KEYS[ok], pending(accepted, mine), 'NX', 'GET', 'PX', rttl)
      if prev then
        local pn, st, pa, pm, pv, dl = parse(prev)
        if pn == nil or pn == node then
          call('SET', KEYS[ok], pending(accepted, mine), 'PX', rttl)
        elseif st == 'P' and dl and tonumber(dl) <= now() then
          unwind(KEYS[tk], pn, pv, tonumber(pa))
          if unwind(KEYS[tk + u], pn, pv, tonumber(pa)) then others[u] = others[u] - tonumber(pa) end
          accepted = decide()
          mine = own[u] + accepted + others[u]
          call('SET', KEYS[ok], pending(accepted, mine), 'PX', rttl)
          kind = 4
        elseif st == 'P' then
          kind, accepted, mine = 3, 0, 0
        else
          kind, accepted, mine = 2, tonumber(pa), tonumber(pm)
        end
      end
    end
    if (kind == 1 or kind == 4) and accepted ~= 0 then
      own[u] = own[u] + accepted
      total = total + accepted
      changed[u] = true
      any = true
    end
    out[#out + 1] = kind
    out[#out + 1] = accepted
    out[#out + 1] = mine
  end
  for i = 1, nu do
    if changed[i] then
      if cur[i] and cur[i] >= nver then
        stale = stale + 1
      else
        call('HSET', KEYS[tk + i], node, ver .. ':' .. own[i])
      end
    end
  end
  local parts = call('HGETALL', KEYS[tk])
  if any then
    local mine_v = 0
    for j = 1, #parts, 2 do
      if parts[j] == node then mine_v = version_of(parts[j + 1]) end
    end
    if mine_v > maxver then maxver = mine_v end
    if mine_v >= nver then
      stale = stale + 1
    else
      call('HSET', KEYS[tk], node, ver .. ':' .. total)
    end
  end
  result[#result + 1] = {stale, others, parts, out}
end
result[1] = maxver
return result
)lua";

// Writes this node's absolute values of one article (a re-assertion), never
// moving a field backwards: a field whose version is >= ours is left alone
// (a replay or a stale retry) and counted as stale.
// KEYS[1] t:{A}; KEYS[2..] u:{A}:<user>.
// ARGV[1] node, ARGV[2] version, ARGV[3] total or '' (tallies only),
// ARGV[4..] claps per KEYS[2..].
// Returns {stale, maxver, others_1, ...}: per tally, the claps of that user
// on A through every other node (for the cross-node cap); maxver as above.
inline constexpr std::string_view write_article = R"lua(
local node, ver = ARGV[1], ARGV[2]
local nver = tonumber(ver)
local stale, maxver = 0, 0
local function put(key, value)
  local cur = redis.call('HGET', key, node)
  if cur then
    local v = tonumber(string.match(cur, '^(%d+):'))
    if v and v > maxver then maxver = v end
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
local out = {0, 0}
for i = 2, #KEYS do
  put(KEYS[i], ARGV[i + 2])
  out[i + 1] = others(KEYS[i])
end
out[1] = stale
out[2] = maxver
return out
)lua";

// Records an op id's confirmed result from this node's journal (a
// re-assertion, or a confirmation too late for a plain SET XX).
// KEYS[1] o:{A}:U:OP; ARGV[1] "node|C|accepted|mine", ARGV[2] ttl ms, ARGV[3] node.
// Returns 1 when the id is ours (absent, or recorded by this node), 0 when
// another node holds it.
inline constexpr std::string_view record_op = R"lua(
local cur = redis.call('GET', KEYS[1])
local holder = cur and (string.match(cur, '^%d+:%d+/(.*)$') or cur)
if (not cur) or string.sub(holder, 1, #ARGV[3] + 1) == ARGV[3] .. '|' then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
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

// This node's heartbeat in the table of nodes, by Redis's clock, and every
// node's age in return; entries older than ARGV[2] ms are dropped. KEYS[1]
// hb:{nodes}; ARGV[1] node. Returns {node, age_ms, node, age_ms, ...}.
inline constexpr std::string_view node_heartbeat = R"lua(
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('HSET', KEYS[1], ARGV[1], string.format('%d', now))
local all = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #all, 2 do
  local at = tonumber(all[i + 1])
  if at == nil or now - at > tonumber(ARGV[2]) then
    redis.call('HDEL', KEYS[1], all[i])
  else
    out[#out + 1] = all[i]
    out[#out + 1] = math.max(0, now - at)
  end
end
return out
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

// The other nodes' parts of one article, and optionally one user's claps
// through them; drops expired viewer fields.
// KEYS[1] t:{A}, KEYS[2] v:{A}, KEYS[3] u:{A}:U (optional); ARGV[1] node.
// Returns {{node, version, total, ...}, {node, viewers, ...}, others}.
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
local user = 0
if KEYS[3] then
  all = redis.call('HGETALL', KEYS[3])
  for i = 1, #all, 2 do
    if all[i] ~= node then user = user + (tonumber(string.match(all[i + 1], ':(-?%d+)$')) or 0) end
  end
end
return {totals, viewers, user}
)lua";

}  // namespace claps::detail::scripts
