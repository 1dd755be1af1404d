// Fuzzes how claps::redis reads what Redis answers: the input is raw RESP
// bytes, parsed by hiredis's own reader (as on a connection), and every reply
// goes through each of our decoders, whatever command it would answer:
// convert(), the subscriber connection's read_pubsub(), the bus's
// channel_article() (prefix{article}), redis_store's read_part_message(), the sentinel answer
// (read_master_address()), the parts of read_article and HGETALL replies
// (fold_parts(), sum_parts()) and the arbitrate script's reply
// (arbitration_reply_fits(), read_decision()), and for Redis Cluster the
// sharded subscriber's read_sharded(), the router's read_cluster_slots()
// (CLUSTER SLOTS) and read_redirect() (MOVED/ASK/TRYAGAIN errors).
//
// Properties:
// - convert() copies the reply exactly (types, strings, integers, arrays);
// - a pub/sub message's channel and payload are the reply's strings; a bus
//   channel is the prefix plus its article; a part message survives being
//   published again (part_message_payload) and read back;
// - a named master has a non-empty host and a port 1-65535 that is the
//   answer's number;
// - folding parts never stores this node's own part, never moves a part's
//   version backwards, and folding the same reply twice changes nothing;
//   their sum is exact, or saturated at +-(2^53 - 1) for absurd parts;
// - a sharded message or (un)subscribe confirmation is a 3-element array
//   whose channel (and payload) are its strings; an error is an error reply;
// - a slot map read from CLUSTER SLOTS has ranges within 0-16383, first <=
//   last, masters with a host and a port 1-65535; a refused one leaves the
//   map as it was;
// - a MOVED/ASK redirect names a slot 0-16383 and a host:port of the error text;
// - an arbitrate reply shaped for its groups yields a decision per op (never
//   "local"), and the same reply does not fit a call with one op more or one
//   user fewer.
//
// hiredis 0.14 allocates an array's element vector from the count it reads,
// before the elements arrive: inputs announcing arrays over 4096 elements are
// skipped, so the fuzzer does not spend its time in calloc.
#include "check.hpp"
#include "cluster_router.hpp"
#include "connection.hpp"
#include "shard_subscriber.hpp"
#include "store_impl.hpp"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace {

using claps::op_decision;
using claps::redis_reply;
namespace detail = claps::detail;

constexpr std::string_view own_node = "node-a";
constexpr std::string_view bus_prefix = "claps:ch:";

bool announces_huge_array(std::string_view bytes) {
  for (std::size_t at = bytes.find('*'); at != std::string_view::npos; at = bytes.find('*', at + 1)) {
    std::size_t i = at + 1, digits = 0;
    while (i < bytes.size() && bytes[i] >= '0' && bytes[i] <= '9' && digits < 8) ++i, ++digits;
    if (digits >= 5 || (digits > 0 && std::atoi(std::string(bytes.substr(at + 1, digits)).c_str()) > 4096))
      return true;
  }
  return false;
}

void check_convert(const redisReply& r, const redis_reply& c) {
  switch (r.type) {
  case REDIS_REPLY_STRING: CLAPS_FUZZ_CHECK(c.type == redis_reply::kind::string); break;
  case REDIS_REPLY_STATUS: CLAPS_FUZZ_CHECK(c.type == redis_reply::kind::status); break;
  case REDIS_REPLY_ERROR: CLAPS_FUZZ_CHECK(c.type == redis_reply::kind::error); break;
  case REDIS_REPLY_INTEGER: CLAPS_FUZZ_CHECK(c.type == redis_reply::kind::integer); break;
  case REDIS_REPLY_ARRAY: CLAPS_FUZZ_CHECK(c.type == redis_reply::kind::array); break;
  default: CLAPS_FUZZ_CHECK(c.type == redis_reply::kind::nil); break;
  }
  CLAPS_FUZZ_CHECK(c.integer == r.integer);
  CLAPS_FUZZ_CHECK(c.str ==
                   (r.str != nullptr ? std::string_view(r.str, static_cast<std::size_t>(r.len)) : ""));
  CLAPS_FUZZ_CHECK(c.elements.size() == (r.type == REDIS_REPLY_ARRAY ? r.elements : 0));
  for (std::size_t i = 0; i < c.elements.size(); ++i) check_convert(*r.element[i], c.elements[i]);
}

void check_part_message(std::string_view payload) {
  detail::part_message m;
  if (!detail::read_part_message(payload, m)) return;
  CLAPS_FUZZ_CHECK(m.node.find(' ') == std::string_view::npos);
  const std::string again = detail::part_message_payload(m.node, m.version, m.total, m.viewers);
  detail::part_message n;
  CLAPS_FUZZ_CHECK(detail::read_part_message(again, n));
  CLAPS_FUZZ_CHECK(n.node == m.node && n.version == m.version && n.total == m.total &&
                   n.viewers == m.viewers);
}

void check_pubsub(const redisReply& r) {
  std::string_view channel, payload;
  const detail::pubsub_reply what = detail::read_pubsub(r, channel, payload);
  const bool shaped =
      r.type == REDIS_REPLY_ARRAY && r.elements >= 3 && r.element[0]->type == REDIS_REPLY_STRING;
  CLAPS_FUZZ_CHECK((what == detail::pubsub_reply::malformed) == !shaped);
  if (what != detail::pubsub_reply::message) return;
  CLAPS_FUZZ_CHECK(channel ==
                   std::string_view(r.element[1]->str, static_cast<std::size_t>(r.element[1]->len)));
  CLAPS_FUZZ_CHECK(payload ==
                   std::string_view(r.element[2]->str, static_cast<std::size_t>(r.element[2]->len)));
  std::string_view article;
  if (detail::channel_article(bus_prefix, channel, article)) {
    CLAPS_FUZZ_CHECK(std::string(bus_prefix) + "{" + std::string(article) + "}" == channel &&
                     !article.empty());
  } else {
    CLAPS_FUZZ_CHECK(!channel.starts_with(std::string(bus_prefix) + "{") || !channel.ends_with("}") ||
                     channel.size() < bus_prefix.size() + 3);
  }
  check_part_message(payload);
}

std::string_view str_of(const redisReply* r) {
  return std::string_view(r->str, static_cast<std::size_t>(r->len));
}

void check_sharded(const redisReply& r) {
  std::string_view channel, payload;
  const detail::sharded_reply what = detail::read_sharded(r, channel, payload);
  switch (what) {
  case detail::sharded_reply::message:
    CLAPS_FUZZ_CHECK(r.type == REDIS_REPLY_ARRAY && r.elements == 3);
    CLAPS_FUZZ_CHECK(channel == str_of(r.element[1]) && payload == str_of(r.element[2]));
    check_part_message(payload);
    break;
  case detail::sharded_reply::subscribed:
  case detail::sharded_reply::unsubscribed:
    CLAPS_FUZZ_CHECK(r.type == REDIS_REPLY_ARRAY && r.elements == 3 &&
                     r.element[2]->type == REDIS_REPLY_INTEGER);
    CLAPS_FUZZ_CHECK(channel == str_of(r.element[1]));
    break;
  case detail::sharded_reply::error: CLAPS_FUZZ_CHECK(r.type == REDIS_REPLY_ERROR); break;
  case detail::sharded_reply::malformed: CLAPS_FUZZ_CHECK(r.type == REDIS_REPLY_ARRAY); break;
  default: break;
  }
}

void check_cluster_slots(const redis_reply& c) {
  std::vector<detail::slot_range> ranges(1);
  ranges[0].master = {"kept", 1};
  if (!detail::read_cluster_slots(c, {"asked", 7000}, ranges)) {
    CLAPS_FUZZ_CHECK(ranges.size() == 1 && ranges[0].master.host == "kept");
    return;
  }
  CLAPS_FUZZ_CHECK(ranges.size() == c.elements.size());
  for (const detail::slot_range& r : ranges) {
    CLAPS_FUZZ_CHECK(r.first <= r.last && r.last < detail::cluster_slot_count);
    CLAPS_FUZZ_CHECK(!r.master.host.empty() && r.master.port >= 1);
    for (const auto& replica : r.replicas) CLAPS_FUZZ_CHECK(!replica.host.empty() && replica.port >= 1);
  }
}

void check_redirect(const redis_reply& c) {
  if (!c.is_error()) return;
  std::uint16_t slot = 0;
  claps::redis_endpoint to;
  const detail::redirect what = detail::read_redirect(c.str, slot, to);
  if (what != detail::redirect::moved && what != detail::redirect::ask) return;
  CLAPS_FUZZ_CHECK(c.str.starts_with(what == detail::redirect::moved ? "MOVED " : "ASK "));
  CLAPS_FUZZ_CHECK(slot < detail::cluster_slot_count && to.port >= 1 && !to.host.empty());
  CLAPS_FUZZ_CHECK(c.str.find(" " + to.host + ":") != std::string::npos);
}

void check_master(const redisReply& r) {
  claps::redis_endpoint master;
  if (!detail::read_master_address(r, master)) return;
  CLAPS_FUZZ_CHECK(master.host == std::string_view(r.element[0]->str, r.element[0]->len) &&
                   !master.host.empty());
  const std::string_view port(r.element[1]->str, r.element[1]->len);
  std::uint64_t value = 0;
  for (char c : port) {
    CLAPS_FUZZ_CHECK(c >= '0' && c <= '9');
    value = std::min<std::uint64_t>(value * 10 + static_cast<std::uint64_t>(c - '0'), 1u << 20);
  }
  CLAPS_FUZZ_CHECK(!port.empty() && value >= 1 && value <= 65535 && master.port == value);
}

using parts_map = std::map<std::string, detail::node_part>;

bool same_parts(const parts_map& a, const parts_map& b) {
  if (a.size() != b.size()) return false;
  for (const auto& [node, part] : a) {
    const auto it = b.find(node);
    if (it == b.end() || it->second.version != part.version || it->second.total != part.total ||
        it->second.viewers != part.viewers)
      return false;
  }
  return true;
}

// Folds `totals` (and `viewers`) into `ra`, twice, checking both folds.
void fold(detail::remote_article& ra, const redis_reply& totals, const redis_reply* viewers) {
  const parts_map before(ra.parts.begin(), ra.parts.end());
  if (!detail::fold_parts(ra, totals, viewers, own_node)) {
    CLAPS_FUZZ_CHECK(totals.type != redis_reply::kind::array);
    CLAPS_FUZZ_CHECK(same_parts(parts_map(ra.parts.begin(), ra.parts.end()), before));
    return;
  }
  CLAPS_FUZZ_CHECK(ra.parts.count(std::string(own_node)) == 0);
  for (const auto& [node, part] : before) {
    const auto it = ra.parts.find(node);
    CLAPS_FUZZ_CHECK(it != ra.parts.end() && it->second.version >= part.version);
  }
  const parts_map once(ra.parts.begin(), ra.parts.end());
  detail::fold_parts(ra, totals, viewers, own_node);
  CLAPS_FUZZ_CHECK(same_parts(parts_map(ra.parts.begin(), ra.parts.end()), once));
  // The sum saturates where a JSON client stops reading exactly, and is exact below it.
  std::int64_t total = 0, exact = 0;
  std::uint32_t viewer_sum = 0;
  bool small = ra.parts.size() < 1024;
  for (const auto& [node, part] : ra.parts) {
    small = small && part.total > -(std::int64_t{1} << 40) && part.total < (std::int64_t{1} << 40);
    if (small) exact += part.total;
  }
  detail::sum_parts(ra, total, viewer_sum);
  constexpr std::int64_t limit = (std::int64_t{1} << 53) - 1;
  CLAPS_FUZZ_CHECK(total >= -limit && total <= limit);
  if (small) CLAPS_FUZZ_CHECK(total == exact);
}

void check_arbitration(const redis_reply& r) {
  if (r.type != redis_reply::kind::array || r.elements.empty()) return;
  // The call this reply would answer: each group's users and ops as the
  // reply's own arrays count them.
  std::vector<detail::group_owned> groups(r.elements.size() - 1);
  for (std::size_t n = 0; n < groups.size(); ++n) {
    const auto& e = r.elements[n + 1].elements;
    const std::size_t users = e.size() > 1 ? e[1].elements.size() : 0;
    const std::size_t ops = e.size() > 3 ? e[3].elements.size() / 3 : 0;
    groups[n].article = "a" + std::to_string(n);
    for (std::size_t u = 0; u < std::max<std::size_t>(users, 1); ++u)
      groups[n].users.push_back("u" + std::to_string(u));
    for (std::size_t k = 0; k < std::max<std::size_t>(ops, 1); ++k) {
      groups[n].ops.push_back(k);
      groups[n].op_keys.emplace_back();
    }
  }
  if (!detail::arbitration_reply_fits(r, groups)) return;
  detail::remote_article ra;
  for (std::size_t n = 0; n < groups.size(); ++n) {
    const redis_reply& g = r.elements[n + 1];
    (void)detail::reply_int(g.elements[0]);
    for (std::size_t u = 0; u < groups[n].users.size(); ++u)
      (void)detail::reply_int(g.elements[1].elements[u]);
    for (std::size_t k = 0; k < groups[n].ops.size(); ++k)
      CLAPS_FUZZ_CHECK(detail::read_decision(g, k).what != op_decision::kind::local);
    fold(ra, g.elements[2], nullptr);
  }
  if (groups.empty()) return;
  auto more = groups;
  more.front().ops.push_back(more.front().ops.size());
  CLAPS_FUZZ_CHECK(!detail::arbitration_reply_fits(r, more));
  auto fewer = groups;
  fewer.front().users.pop_back();
  CLAPS_FUZZ_CHECK(!detail::arbitration_reply_fits(r, fewer));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  if (announces_huge_array(bytes)) return 0;
  redisReader* reader = redisReaderCreate();
  CLAPS_FUZZ_CHECK(reader != nullptr);
  CLAPS_FUZZ_CHECK(redisReaderFeed(reader, bytes.data(), bytes.size()) == REDIS_OK);
  // One remote view across the pipelined replies: versions only move forward.
  detail::remote_article ra;
  for (int n = 0; n < 64; ++n) {
    void* raw = nullptr;
    if (redisReaderGetReply(reader, &raw) != REDIS_OK || raw == nullptr) break;
    const redisReply& r = *static_cast<redisReply*>(raw);
    const redis_reply c = detail::convert(r);
    check_convert(r, c);
    check_pubsub(r);
    check_sharded(r);
    check_master(r);
    check_cluster_slots(c);
    check_redirect(c);
    if (c.type == redis_reply::kind::array && c.elements.size() == 3) fold(ra, c.elements[0], &c.elements[1]);
    fold(ra, c, nullptr);
    check_arbitration(c);
    freeReplyObject(raw);
  }
  redisReaderFree(reader);
  return 0;
}
