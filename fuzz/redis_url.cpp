// Fuzzes --redis URLs (parse_redis_url), --sentinel lists with a master
// name (parse_redis_sentinels) and --redis-cluster seed lists
// (parse_redis_cluster, fed the sentinel list line).
//
// Input: lines separated by '\n': URL / sentinel or seed list / master name.
//
// Properties:
// - an error changes nothing in the options; success changes only the fields
//   the function documents;
// - what parses is usable: a non-empty host, a port 1-65535, a database
//   0-2^20, no username without a password;
// - what parses renders back to text (redis://user:password@host:port/db,
//   host:port,...) that parses to the same values: nothing the parser
//   accepts is lost or read two ways.
#include "check.hpp"

#include <claps/redis.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {

using claps::redis_endpoint;
using claps::redis_options;

// Options with every field away from its default, to see what a parse touches.
redis_options marked() {
  redis_options o;
  o.address = {"marked-host", 1234};
  o.sentinels = {{"marked-sentinel", 4321}};
  o.cluster = {{"marked-seed", 5555}};
  o.master_name = "marked-master";
  o.sentinel_username = "marked-sentinel-user";
  o.sentinel_password = "marked-sentinel-password";
  o.username = "marked-user";
  o.password = "marked-password";
  o.database = 7;
  o.connect_timeout = claps::millis{11};
  o.request_timeout = claps::millis{12};
  o.reconnect_min = claps::millis{13};
  o.reconnect_max = claps::millis{14};
  return o;
}

bool same(const redis_endpoint& a, const redis_endpoint& b) { return a.host == b.host && a.port == b.port; }

bool same_sentinels(const redis_options& a, const redis_options& b) {
  if (a.sentinels.size() != b.sentinels.size()) return false;
  for (std::size_t i = 0; i < a.sentinels.size(); ++i)
    if (!same(a.sentinels[i], b.sentinels[i])) return false;
  return true;
}

bool same_url_fields(const redis_options& a, const redis_options& b) {
  return same(a.address, b.address) && a.username == b.username && a.password == b.password &&
         a.database == b.database;
}

// Everything neither parser sets.
bool same_rest(const redis_options& a, const redis_options& b) {
  return a.sentinel_username == b.sentinel_username && a.sentinel_password == b.sentinel_password &&
         a.connect_timeout == b.connect_timeout && a.request_timeout == b.request_timeout &&
         a.reconnect_min == b.reconnect_min && a.reconnect_max == b.reconnect_max;
}

void check_endpoint(const redis_endpoint& e) {
  CLAPS_FUZZ_CHECK(!e.host.empty());
  CLAPS_FUZZ_CHECK(e.port >= 1);
}

// HOST:PORT, bracketed only when the host would otherwise read as a bracket.
std::string render(const redis_endpoint& e) {
  const std::string host = e.host.front() == '[' ? "[" + e.host + "]" : e.host;
  return host + ":" + std::to_string(e.port);
}

void check_url(std::string_view url) {
  const redis_options before = marked();
  redis_options o = before;
  if (claps::parse_redis_url(url, o)) {
    CLAPS_FUZZ_CHECK(same_url_fields(o, before) && same_sentinels(o, before) && same_rest(o, before) &&
                     o.master_name == before.master_name);
    return;
  }
  CLAPS_FUZZ_CHECK(same_sentinels(o, before) && same_rest(o, before) && o.master_name == before.master_name);
  check_endpoint(o.address);
  CLAPS_FUZZ_CHECK(o.database >= 0 && o.database <= (1 << 20));
  CLAPS_FUZZ_CHECK(o.username.empty() || !o.password.empty());

  std::string again = "redis://";
  if (!o.password.empty()) again += o.username + ":" + o.password + "@";
  again += render(o.address) + "/" + std::to_string(o.database);
  redis_options reparsed = marked();
  CLAPS_FUZZ_CHECK(!claps::parse_redis_url(again, reparsed));
  CLAPS_FUZZ_CHECK(same_url_fields(reparsed, o));
}

bool same_seeds(const redis_options& a, const redis_options& b) {
  if (a.cluster.size() != b.cluster.size()) return false;
  for (std::size_t i = 0; i < a.cluster.size(); ++i)
    if (!same(a.cluster[i], b.cluster[i])) return false;
  return true;
}

void check_cluster(std::string_view list) {
  const redis_options before = marked();
  redis_options o = before;
  if (claps::parse_redis_cluster(list, o)) {
    CLAPS_FUZZ_CHECK(same_seeds(o, before));
    return;
  }
  CLAPS_FUZZ_CHECK(same_url_fields(o, before) && same_sentinels(o, before) && same_rest(o, before) &&
                   !o.cluster.empty());
  std::string again;
  for (const redis_endpoint& e : o.cluster) {
    check_endpoint(e);
    if (!again.empty()) again += ",";
    again += render(e);
  }
  redis_options reparsed = marked();
  CLAPS_FUZZ_CHECK(!claps::parse_redis_cluster(again, reparsed));
  CLAPS_FUZZ_CHECK(same_seeds(reparsed, o));
}

void check_sentinels(std::string_view list, std::string_view master) {
  const redis_options before = marked();
  redis_options o = before;
  if (claps::parse_redis_sentinels(list, master, o)) {
    CLAPS_FUZZ_CHECK(same_url_fields(o, before) && same_sentinels(o, before) && same_rest(o, before) &&
                     o.master_name == before.master_name);
    return;
  }
  CLAPS_FUZZ_CHECK(same_url_fields(o, before) && same_rest(o, before) && o.master_name == master &&
                   !o.sentinels.empty());
  std::string again;
  for (const redis_endpoint& e : o.sentinels) {
    check_endpoint(e);
    if (!again.empty()) again += ",";
    again += render(e);
  }
  redis_options reparsed = marked();
  CLAPS_FUZZ_CHECK(!claps::parse_redis_sentinels(again, master, reparsed));
  CLAPS_FUZZ_CHECK(same_sentinels(reparsed, o));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  std::string_view lines[3];
  for (auto& line : lines) {
    const auto nl = text.find('\n');
    line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view{} : text.substr(nl + 1);
  }
  check_url(lines[0]);
  check_sentinels(lines[1], lines[2]);
  check_cluster(lines[1]);
  return 0;
}
