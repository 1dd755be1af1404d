// claps::redis on a real Redis Cluster: 3 masters and 3 replicas started by
// the test (redis-cli --cluster create) on loopback. Routing of commands and
// scripts by slot, MOVED and ASK during a slot migration the test drives,
// sharded pub/sub between two buses, two redis_stores keeping the exact cap,
// and kill -9 of a master. The failover case runs last: it changes the cluster.
#include "redis_cluster.hpp"
#include "test_loop.hpp"
#include "test_node.hpp"

#include <claps/error.hpp>
#include <claps/redis.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using claps::test::loop_runner;
using claps::test::node;
using claps::test::redis_cluster;
using claps::test::redis_cluster_shards;

namespace {

redis_cluster_shards& shards() {
  static redis_cluster_shards instance;  // killed (only its own pids) at exit
  return instance;
}

claps::redis_options cluster_options() {
  claps::redis_options o;
  // A seed nobody listens on first: the client must move on to the next.
  REQUIRE(!claps::parse_redis_cluster("127.0.0.1:1," + shards().seeds(), o));
  o.request_timeout = 2000ms;
  o.connect_timeout = 1000ms;
  return o;
}

std::optional<claps::redis_reply> ask(loop_runner& loop, claps::redis_client& client, std::vector<std::string> args) {
  std::vector<std::string_view> views(args.begin(), args.end());
  std::optional<claps::redis_reply> out;
  const auto ec = client.command(views, [&](std::error_code e, const claps::redis_reply& r) {
    out = e ? claps::redis_reply{claps::redis_reply::kind::error, 0, e.message(), {}} : r;
  });
  if (ec) return std::nullopt;
  loop.run_until([&] { return out.has_value(); }, 10s);
  return out;
}

std::int64_t number(const std::string& text) { return std::atoll(text.c_str()); }

// PUBSUB SHARDNUMSUB on one node: "channel count".
std::int64_t shard_numsub(std::uint16_t port, const std::string& channel) {
  const std::string r = redis_cluster::query(port, {"PUBSUB", "SHARDNUMSUB", channel});
  const auto space = r.find(' ');
  return space == std::string::npos ? -1 : std::atoll(r.c_str() + space + 1);
}

struct bus_events {
  std::vector<std::pair<std::string, std::string>> messages;
  int resubscribed = 0;
  claps::redis_bus_callbacks callbacks() {
    claps::redis_bus_callbacks cb;
    cb.message = [this](std::string_view a, std::string_view p) { messages.emplace_back(a, p); };
    cb.resubscribed = [this] { ++resubscribed; };
    return cb;
  }
  bool got(const std::string& article, const std::string& payload) const {
    return std::find(messages.begin(), messages.end(), std::pair{article, payload}) != messages.end();
  }
};

} // namespace

TEST_CASE("cluster: commands and scripts go to the master owning their key's slot; keys land on every master") {
  loop_runner loop;
  claps::redis_client client(loop.get(), cluster_options());
  REQUIRE(loop.run_until([&] { return client.ready(); }, 15s));
  const auto masters = shards().master_ports();
  REQUIRE(masters.size() == 3);
  CHECK(client.masters().size() == 3);

  // 300 articles' keys through command(), 300 through eval().
  for (int i = 0; i < 300; ++i) {
    const std::string a = "route" + std::to_string(i);
    const auto set = ask(loop, client, {"SET", "claps:test:t:{" + a + "}", std::to_string(i)});
    REQUIRE(set);
    REQUIRE(set->str == "OK");
    const std::string keys_and_args[] = {"claps:test:e:{" + a + "}", std::to_string(i * 2)};
    std::optional<claps::redis_reply> out;
    REQUIRE(!client.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, keys_and_args,
                         [&](std::error_code ec, const claps::redis_reply& r) {
                           CHECK(!ec);
                           out = r;
                         }));
    REQUIRE(loop.run_until([&] { return out.has_value(); }, 10s));
    REQUIRE(out->str == "OK");
  }
  // Each key is where its slot is, and every master holds some.
  std::map<std::uint16_t, int> per_master;
  for (int i = 0; i < 300; i += 7) {
    const std::string a = "route" + std::to_string(i);
    const std::string key = "claps:test:e:{" + a + "}";
    const std::uint16_t owner = shards().master_of_slot(claps::redis_key_slot(key));
    REQUIRE(owner != 0);
    CHECK(redis_cluster::query(owner, {"GET", key}) == std::to_string(i * 2));
  }
  std::int64_t total = 0;
  for (std::uint16_t m : masters) {
    const std::int64_t n = number(redis_cluster::query(m, {"DBSIZE"}));
    per_master[m] = static_cast<int>(n);
    total += n;
    CHECK(n > 100);  // about 200 each; all on one master would leave others at 0
  }
  CHECK(total >= 600);
  // Keyless commands and keyless scripts cannot be routed.
  CHECK(client.command({"PING"}, [](std::error_code, const claps::redis_reply&) {}) == claps::errc::bad_request);
  CHECK(client.eval("return 1", 0, {}, [](std::error_code, const claps::redis_reply&) {}) ==
        claps::errc::bad_request);
  // CLUSTER KEYSLOT agrees with redis_key_slot.
  for (const char* key : {"foo", "{user1000}.following", "claps:t:{a1}", "claps:ch:{a1}", "x{}y"})
    CHECK(number(redis_cluster::query(masters[0], {"CLUSTER", "KEYSLOT", key})) == claps::redis_key_slot(key));
}

TEST_CASE("cluster: ASK during a slot migration, then MOVED once it is done; a bus follows its channel's slot") {
  loop_runner loop;
  claps::redis_client client(loop.get(), cluster_options());
  // A bus on a client of its own, watching an article of the slot that moves.
  claps::redis_client sub_client(loop.get(), cluster_options());
  bus_events seen;
  claps::redis_bus bus(loop.get(), sub_client, seen.callbacks());
  REQUIRE(loop.run_until([&] { return client.ready() && bus.healthy(); }, 15s));
  bus.watch("migrating");
  const std::string channel = "claps:ch:{migrating}";
  const std::string key = "claps:test:{migrating}";
  const std::string missing = "claps:test:{migrating}:absent";
  const std::uint16_t slot = claps::redis_key_slot(key);
  const std::uint16_t source = shards().master_of_slot(slot);
  std::uint16_t target = 0;
  for (std::uint16_t m : shards().master_ports())
    if (m != source) target = m;
  REQUIRE(source != 0);
  REQUIRE(target != 0);
  REQUIRE(loop.run_until([&] { return shard_numsub(source, channel) == 1; }, 10s));
  const int resubscribed = seen.resubscribed;
  REQUIRE(ask(loop, client, {"SET", key, "moving"})->str == "OK");
  const std::string source_id = redis_cluster_shards::node_id(source);
  const std::string target_id = redis_cluster_shards::node_id(target);
  const std::string s = std::to_string(slot);
  REQUIRE(redis_cluster::query(target, {"CLUSTER", "SETSLOT", s, "IMPORTING", source_id}) == "OK");
  REQUIRE(redis_cluster::query(source, {"CLUSTER", "SETSLOT", s, "MIGRATING", target_id}) == "OK");
  REQUIRE(redis_cluster::query(source, {"MIGRATE", "127.0.0.1", std::to_string(target), key, "0", "5000"}) == "OK");

  // The key left the source: it answers ASK, the client asks the target.
  const auto before = client.stats();
  const auto got = ask(loop, client, {"GET", key});
  REQUIRE(got);
  CHECK(got->str == "moving");
  CHECK(client.stats().ask > before.ask);
  CHECK(client.stats().moved == before.moved);  // ASK does not change the map
  const std::string script_keys[] = {missing, "x"};
  std::optional<claps::redis_reply> set_by_script;
  REQUIRE(!client.eval("return redis.call('SET', KEYS[1], ARGV[1])", 1, script_keys,
                       [&](std::error_code ec, const claps::redis_reply& r) {
                         CHECK(!ec);
                         set_by_script = r;
                       }));
  REQUIRE(loop.run_until([&] { return set_by_script.has_value(); }, 10s));
  CHECK(set_by_script->str == "OK");  // a new key of a migrating slot is created at the target

  // Done: every node learns the slot's new owner; the client gets MOVED.
  for (std::uint16_t port : shards().ports())
    redis_cluster::query(port, {"CLUSTER", "SETSLOT", s, "NODE", target_id});
  REQUIRE(shards().master_of_slot(slot) == target);
  CHECK(redis_cluster::query(target, {"GET", missing}) == "x");
  CHECK(redis_cluster::query(source, {"EXISTS", key}) != "1");
  const auto moved_before = client.stats();
  const auto again = ask(loop, client, {"GET", key});
  REQUIRE(again);
  CHECK(again->str == "moving");
  CHECK(client.stats().moved > moved_before.moved);
  // The map is read again, after which the slot is sent straight to the target.
  REQUIRE(loop.run_until([&] { return client.stats().slot_map_refreshes > moved_before.slot_map_refreshes; }, 10s));
  const auto after_refresh = client.stats();
  CHECK(ask(loop, client, {"GET", key})->str == "moving");
  CHECK(client.stats().moved == after_refresh.moved);
  CHECK(client.ready());

  // The source dropped the channel (an unsolicited sunsubscribe): the bus
  // found the slot's new master, subscribed there, and asked for a resync.
  REQUIRE(loop.run_until([&] { return shard_numsub(target, channel) == 1 && bus.healthy(); }, 10s));
  CHECK(shard_numsub(source, channel) == 0);
  CHECK(seen.resubscribed > resubscribed);
  REQUIRE(!bus.publish("migrating", "moved"));
  REQUIRE(loop.run_until([&] { return seen.got("migrating", "moved"); }, 10s));
}

TEST_CASE("cluster: sharded pub/sub reaches only the buses watching an article, on the shard owning its slot") {
  loop_runner loop;
  claps::redis_client client_a(loop.get(), cluster_options());
  claps::redis_client client_b(loop.get(), cluster_options());
  bus_events seen_a, seen_b;
  claps::redis_bus bus_a(loop.get(), client_a, seen_a.callbacks());
  claps::redis_bus bus_b(loop.get(), client_b, seen_b.callbacks());
  REQUIRE(loop.run_until([&] { return client_a.ready() && client_b.ready() && bus_a.healthy() && bus_b.healthy(); },
                         15s));
  CHECK(seen_b.resubscribed >= 1);  // the first subscription counts too, as with one master
  // Articles on every master.
  std::vector<std::string> articles;
  std::set<std::uint16_t> owners;
  for (int i = 0; owners.size() < 3 || articles.size() < 6; ++i) {
    const std::string a = "ps" + std::to_string(i);
    articles.push_back(a);
    owners.insert(shards().master_of_slot(claps::redis_key_slot("claps:ch:{" + a + "}")));
  }
  for (const auto& a : articles) bus_b.watch(a);
  const auto masters = shards().master_ports();
  for (const auto& a : articles) {
    const std::string channel = "claps:ch:{" + a + "}";
    const std::uint16_t owner = shards().master_of_slot(claps::redis_key_slot(channel));
    REQUIRE(loop.run_until([&] { return shard_numsub(owner, channel) == 1; }, 10s));
    for (std::uint16_t m : masters)
      if (m != owner) CHECK(shard_numsub(m, channel) == 0);  // nothing on the other shards
  }
  for (const auto& a : articles) REQUIRE(!bus_a.publish(a, "hello " + a));
  REQUIRE(!bus_a.publish("unwatched", "nobody"));
  REQUIRE(loop.run_until([&] {
    return std::all_of(articles.begin(), articles.end(), [&](const std::string& a) { return seen_b.got(a, "hello " + a); });
  }, 10s));
  CHECK(seen_a.messages.empty());  // A watches nothing
  for (const auto& [a, payload] : seen_b.messages) CHECK(a != "unwatched");
  CHECK(bus_b.stats().messages == articles.size());

  // Unwatching sunsubscribes on the owning shard.
  bus_b.unwatch(articles[0]);
  const std::string channel0 = "claps:ch:{" + articles[0] + "}";
  REQUIRE(loop.run_until([&] { return shard_numsub(shards().master_of_slot(claps::redis_key_slot(channel0)), channel0) == 0; },
                         10s));
  REQUIRE(!bus_a.publish(articles[0], "late"));
  REQUIRE(!bus_a.publish(articles[1], "still"));
  REQUIRE(loop.run_until([&] { return seen_b.got(articles[1], "still"); }, 10s));
  CHECK(!seen_b.got(articles[0], "late"));
}

TEST_CASE("cluster: two redis_stores keep the exact cap and op ids across nodes") {
  loop_runner loop;
  node a(loop, {"ca", cluster_options()});
  node b(loop, {"cb", cluster_options()});
  REQUIRE(loop.run_until([&] { return a.ready() && b.ready(); }, 20s));
  // Articles on every master, clapped in one tick through both nodes.
  std::vector<std::string> articles;
  std::set<std::uint16_t> owners;
  for (int i = 0; owners.size() < 3 || articles.size() < 12; ++i) {
    articles.push_back("cap" + std::to_string(i));
    owners.insert(shards().master_of_slot(claps::redis_key_slot("claps:t:{" + articles.back() + "}")));
  }
  claps::snapshot snap;
  for (const auto& art : articles) {
    REQUIRE(!a.engine->subscribe(1, "", art, true, snap));
    REQUIRE(!b.engine->subscribe(1, "", art, true, snap));
  }
  std::vector<std::pair<std::uint64_t, std::uint64_t>> cookies;
  for (const auto& art : articles)
    cookies.emplace_back(a.clap("rita", art, 30, "a-" + art), b.clap("rita", art, 30, "b-" + art));
  a.driver->flush();
  b.driver->flush();
  for (std::size_t i = 0; i < articles.size(); ++i) {
    const auto ra = a.wait_result(cookies[i].first), rb = b.wait_result(cookies[i].second);
    CAPTURE(articles[i]);
    CHECK(ra.accepted + rb.accepted == 50);
    CHECK(ra.level == claps::durability::cluster);
    CHECK(rb.level == claps::durability::cluster);
  }
  // Every script call held one slot: none failed.
  CHECK(a.store->stats().arbitration_failures == 0);
  CHECK(b.store->stats().arbitration_failures == 0);
  CHECK(a.store->stats().arbitration_scripts >= owners.size());
  // The same op id through the other node is a replay, not new claps.
  const auto replay = b.wait_result(b.clap("rita", articles[0], 1, "a-" + articles[0]));
  CHECK(replay.replayed);
  // Totals reach the other node through sharded pub/sub.
  REQUIRE(loop.run_until([&] {
    return std::all_of(articles.begin(), articles.end(), [&](const std::string& art) {
      return a.read("", art).total == 50 && b.read("", art).total == 50;
    });
  }, 10s));
  CHECK(b.store->stats().remote_messages > 0);
  // One marker per master for each node, each in a slot its master owns.
  for (const char* id : {"ca", "cb"}) {
    int markers = 0;
    for (std::uint16_t m : shards().master_ports()) {
      for (int k = 0; k < 200; ++k) {
        const std::string key = std::string("claps:mark:{") + id + "#" + std::to_string(k) + "}";
        if (shards().master_of_slot(claps::redis_key_slot(key)) != m) continue;
        CHECK(redis_cluster::query(m, {"EXISTS", key}) == "1");
        ++markers;
        break;
      }
    }
    CHECK(markers == 3);
  }
}

TEST_CASE("cluster: kill -9 of a master: not ready, then ready on the promoted replica; the bus resubscribes") {
  loop_runner loop;
  claps::redis_client client_a(loop.get(), cluster_options());
  claps::redis_client client_b(loop.get(), cluster_options());
  bus_events seen_b;
  claps::redis_bus bus_a(loop.get(), client_a);
  claps::redis_bus bus_b(loop.get(), client_b, seen_b.callbacks());
  int lost = 0;
  client_b.add_listener({{}, [&](std::error_code) { ++lost; }});
  REQUIRE(loop.run_until([&] { return client_a.ready() && client_b.ready() && bus_a.healthy() && bus_b.healthy(); },
                         15s));
  const std::string article = "failover1";
  const std::string channel = "claps:ch:{" + article + "}";
  const std::uint16_t slot = claps::redis_key_slot(channel);
  const std::uint16_t victim = shards().master_of_slot(slot);
  REQUIRE(victim != 0);
  bus_b.watch(article);
  REQUIRE(loop.run_until([&] { return shard_numsub(victim, channel) == 1; }, 10s));
  REQUIRE(!bus_a.publish(article, "before"));
  REQUIRE(loop.run_until([&] { return seen_b.got(article, "before"); }, 10s));
  const int resubscribed = seen_b.resubscribed;

  const auto killed_at = std::chrono::steady_clock::now();
  shards().kill9(victim);
  REQUIRE(loop.run_until([&] { return !client_b.ready(); }, 10s));
  CHECK(lost >= 1);
  // node timeout 1.5 s, then the replica's election.
  REQUIRE(loop.run_until([&] { return client_a.ready() && client_b.ready() && bus_b.healthy(); }, 30s));
  const auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed_at);
  MESSAGE("ready again " << took.count() << " ms after kill -9 of the master");
  const auto masters = client_b.masters();
  CHECK(std::none_of(masters.begin(), masters.end(), [&](const claps::redis_endpoint& m) { return m.port == victim; }));
  CHECK(seen_b.resubscribed > resubscribed);
  const std::uint16_t promoted = shards().master_of_slot(slot);
  REQUIRE(promoted != 0);
  CHECK(promoted != victim);
  REQUIRE(loop.run_until([&] { return shard_numsub(promoted, channel) == 1; }, 10s));
  REQUIRE(!bus_a.publish(article, "after"));
  REQUIRE(loop.run_until([&] { return seen_b.got(article, "after"); }, 10s));
  // Commands to the promoted master work.
  CHECK(ask(loop, client_a, {"SET", "claps:test:{" + article + "}", "1"})->str == "OK");
}
