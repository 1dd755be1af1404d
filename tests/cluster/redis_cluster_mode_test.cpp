// claps::redis on a real Redis Cluster: 3 masters and 3 replicas started by
// the test (redis-cli --cluster create) on loopback. Routing of commands and
// scripts by slot, MOVED, ASK and TRYAGAIN during a slot migration the test
// drives, sharded pub/sub between two buses, two redis_stores keeping the
// exact cap, a redis-cli reshard under clap load, a cluster behind a
// password, and kill -9 of a master (twice, the second under clap load).
// The failover cases run last: they change the cluster.
#include "redis_cluster.hpp"
#include "test_loop.hpp"
#include "test_node.hpp"

#include <claps/error.hpp>
#include <claps/redis.hpp>

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using claps::test::ask;
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

// Subscribes both nodes to every article (so each hears the other's claps).
void watch_all(node& a, node& b, const std::vector<std::string>& articles) {
  claps::snapshot snap;
  for (const auto& art : articles) {
    REQUIRE(!a.engine->subscribe(1, "", art, true, snap));
    REQUIRE(!b.engine->subscribe(1, "", art, true, snap));
  }
}

// Clap load for as long as it lives: every 2 ms each node claps once, with a
// fresh user and op id, on the article `pick(k)` names for the k-th clap.
class clap_load {
public:
  using picker = std::function<const std::string&(std::uint64_t k)>;
  clap_load(loop_runner& loop, node& a, node& b, picker pick)
      : timer_(new uv_timer_t{}), nodes_{&a, &b}, pick_(std::move(pick)) {
    uv_timer_init(loop.get(), timer_);
    timer_->data = this;
    uv_timer_start(
        timer_, [](uv_timer_t* t) { static_cast<clap_load*>(t->data)->clap_once(); }, 2, 2);
  }
  ~clap_load() { stop(); }
  clap_load(const clap_load&) = delete;
  clap_load& operator=(const clap_load&) = delete;

  /// Stops clapping; the timer is freed once the loop runs its close callback.
  void stop() {
    if (timer_ == nullptr) return;
    uv_close(reinterpret_cast<uv_handle_t*>(timer_),
             [](uv_handle_t* h) { delete reinterpret_cast<uv_timer_t*>(h); });
    timer_ = nullptr;
  }
  std::uint64_t sent = 0;
  std::uint64_t refused = 0;  // clap() calls the engine refused outright

private:
  void clap_once() {
    for (node* n : nodes_) {
      const std::uint64_t k = sent++;
      const std::string id = std::to_string(k);
      if (n->engine->clap({"u-" + id, pick_(k), 1, "op-" + id, n->next_cookie++})) ++refused;
    }
  }
  uv_timer_t* timer_;
  node* nodes_[2];
  picker pick_;
};

}  // namespace

TEST_CASE(
    "cluster: commands and scripts go to the master owning their key's slot; keys land on every master") {
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
  CHECK(client.command({"PING"}, [](std::error_code, const claps::redis_reply&) {}) ==
        claps::errc::bad_request);
  CHECK(client.eval("return 1", 0, {}, [](std::error_code, const claps::redis_reply&) {}) ==
        claps::errc::bad_request);
  // CLUSTER KEYSLOT agrees with redis_key_slot.
  for (const char* key : {"foo", "{user1000}.following", "claps:t:{a1}", "claps:ch:{a1}", "x{}y"})
    CHECK(number(redis_cluster::query(masters[0], {"CLUSTER", "KEYSLOT", key})) ==
          claps::redis_key_slot(key));
}

TEST_CASE(
    "cluster: ASK during a slot migration, then MOVED once it is done; a bus follows its channel's slot") {
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
  const std::string key2 = "claps:test:{migrating}:2";
  REQUIRE(ask(loop, client, {"SET", key, "moving"})->str == "OK");
  REQUIRE(ask(loop, client, {"SET", key2, "two"})->str == "OK");
  const std::string source_id = shards().node_id(source);
  const std::string target_id = shards().node_id(target);
  const std::string s = std::to_string(slot);
  REQUIRE(redis_cluster::query(target, {"CLUSTER", "SETSLOT", s, "IMPORTING", source_id}) == "OK");
  REQUIRE(redis_cluster::query(source, {"CLUSTER", "SETSLOT", s, "MIGRATING", target_id}) == "OK");
  REQUIRE(redis_cluster::query(source, {"MIGRATE", "127.0.0.1", std::to_string(target), key, "0", "5000"}) ==
          "OK");

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

  // A script over two keys of the slot, one moved and one not: TRYAGAIN,
  // retried until the second has moved too, then answered by the target.
  const std::string both[] = {key, key2};
  std::optional<claps::redis_reply> pair;
  std::error_code pair_error;
  REQUIRE(!client.eval("return redis.call('MGET', KEYS[1], KEYS[2])", 2, both,
                       [&](std::error_code ec, const claps::redis_reply& r) {
                         pair_error = ec;
                         pair = r;
                       }));
  REQUIRE(loop.run_until([&] { return client.stats().tryagain > before.tryagain || pair.has_value(); }, 5s));
  CHECK(!pair.has_value());
  REQUIRE(redis_cluster::query(source, {"MIGRATE", "127.0.0.1", std::to_string(target), key2, "0", "5000"}) ==
          "OK");
  REQUIRE(loop.run_until([&] { return pair.has_value(); }, 5s));
  CHECK(!pair_error);
  REQUIRE(pair->elements.size() == 2);
  CHECK(pair->elements[0].str == "moving");
  CHECK(pair->elements[1].str == "two");

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
  REQUIRE(loop.run_until([&] { return client.stats().slot_map_refreshes > moved_before.slot_map_refreshes; },
                         10s));
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

TEST_CASE(
    "cluster: sharded pub/sub reaches only the buses watching an article, on the shard owning its slot") {
  loop_runner loop;
  claps::redis_client client_a(loop.get(), cluster_options());
  claps::redis_client client_b(loop.get(), cluster_options());
  bus_events seen_a, seen_b;
  claps::redis_bus bus_a(loop.get(), client_a, seen_a.callbacks());
  claps::redis_bus bus_b(loop.get(), client_b, seen_b.callbacks());
  REQUIRE(loop.run_until(
      [&] { return client_a.ready() && client_b.ready() && bus_a.healthy() && bus_b.healthy(); }, 15s));
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
  REQUIRE(loop.run_until(
      [&] {
        return std::all_of(articles.begin(), articles.end(),
                           [&](const std::string& a) { return seen_b.got(a, "hello " + a); });
      },
      10s));
  CHECK(seen_a.messages.empty());  // A watches nothing
  for (const auto& [a, payload] : seen_b.messages) CHECK(a != "unwatched");
  CHECK(bus_b.stats().messages == articles.size());

  // Unwatching sunsubscribes on the owning shard.
  bus_b.unwatch(articles[0]);
  const std::string channel0 = "claps:ch:{" + articles[0] + "}";
  REQUIRE(loop.run_until(
      [&] { return shard_numsub(shards().master_of_slot(claps::redis_key_slot(channel0)), channel0) == 0; },
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
  watch_all(a, b, articles);
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
  REQUIRE(loop.run_until(
      [&] {
        return std::all_of(articles.begin(), articles.end(), [&](const std::string& art) {
          return a.read("", art).total == 50 && b.read("", art).total == 50;
        });
      },
      10s));
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

TEST_CASE(
    "cluster: resharding 300 slots under clap load: every clap decided in Redis, none lost or doubled") {
  loop_runner loop;
  node a(loop, {"sa", cluster_options()});
  node b(loop, {"sb", cluster_options()});
  REQUIRE(loop.run_until([&] { return a.ready() && b.ready(); }, 20s));
  // redis-cli moves the source's lowest slots first: take articles there.
  const auto masters = shards().master_ports();
  REQUIRE(masters.size() == 3);
  const std::uint16_t from = shards().master_of_slot(0), to = from == masters[0] ? masters[1] : masters[0];
  std::vector<std::string> articles;
  for (int i = 0; articles.size() < 8; ++i) {
    const std::string art = "rs" + std::to_string(i);
    if (claps::redis_key_slot(art) < 300 && shards().master_of_slot(claps::redis_key_slot(art)) == from)
      articles.push_back(art);
  }
  watch_all(a, b, articles);
  clap_load plan(loop, a, b,
                 [&](std::uint64_t k) -> const std::string& { return articles[k % articles.size()]; });
  REQUIRE(loop.run_until([&] { return a.results.size() + b.results.size() >= 200; }, 10s));
  const auto moved_before =
      a.client->stats().moved + b.client->stats().moved + a.client->stats().ask + b.client->stats().ask;
  const auto maps_before = a.client->stats().slot_map_refreshes;
  const pid_t reshard = shards().start_reshard(from, to, 300);
  bool ok = false;
  REQUIRE(loop.run_until([&] { return redis_cluster_shards::reshard_done(reshard, ok); }, 60s));
  CHECK(ok);
  const std::uint64_t sent_at_end = plan.sent;
  REQUIRE(loop.run_until([&] { return plan.sent >= sent_at_end + 200; }, 10s));
  plan.stop();
  REQUIRE(loop.run_until(
      [&] {
        return a.engine->idle() && b.engine->idle() && a.results.size() + b.results.size() == plan.sent;
      },
      20s));
  for (const auto& art : articles) CHECK(shards().master_of_slot(claps::redis_key_slot(art)) == to);
  const auto redirects =
      a.client->stats().moved + b.client->stats().moved + a.client->stats().ask + b.client->stats().ask;
  MESSAGE(plan.sent << " claps during a 300-slot reshard; redirects followed: " << redirects - moved_before
                    << ", TRYAGAIN retried: " << a.client->stats().tryagain + b.client->stats().tryagain);
  // The clients learn each moved slot from a MOVED or ASK, or first from
  // the bus: Redis drops the slot's channels (sunsubscribe) and the bus has
  // the map read again, often before any command hits the old owner.
  CHECK(a.client->stats().slot_map_refreshes > maps_before);
  CHECK(plan.refused == 0);
  // No script failed: every clap was decided in Redis and acknowledged as cluster-durable.
  CHECK(a.store->stats().arbitration_failures == 0);
  CHECK(b.store->stats().arbitration_failures == 0);
  std::int64_t total = 0;
  for (const node* n : {&a, &b})
    for (const auto& r : n->results) {
      CHECK(!r.error);
      CHECK(r.level == claps::durability::cluster);
      total += r.accepted;
    }
  CHECK(static_cast<std::uint64_t>(total) == plan.sent);
  for (const auto& art : articles) {
    std::int64_t want = 0;
    for (const node* n : {&a, &b})
      for (const auto& r : n->results)
        if (r.article == art) want += r.accepted;
    REQUIRE(
        loop.run_until([&] { return a.read("", art).total == want && b.read("", art).total == want; }, 10s));
  }
}

TEST_CASE("cluster: a cluster behind a password: the command links and the sharded subscribers AUTH") {
  redis_cluster_shards secured(3, 0, "s3cret-pw");
  loop_runner loop;
  claps::redis_options o;
  REQUIRE(!claps::parse_redis_cluster(secured.seeds(), o));
  o.password = "s3cret-pw";
  claps::redis_client client(loop.get(), o);
  bus_events seen;
  claps::redis_bus bus(loop.get(), client, seen.callbacks());
  REQUIRE(loop.run_until([&] { return client.ready() && bus.healthy(); }, 15s));
  std::vector<std::string> articles;
  std::set<std::uint16_t> owners;
  for (int i = 0; owners.size() < 3; ++i) {
    articles.push_back("pw" + std::to_string(i));
    owners.insert(secured.master_of_slot(claps::redis_key_slot("claps:ch:{" + articles.back() + "}")));
  }
  for (const auto& a : articles) {
    bus.watch(a);
    CHECK(ask(loop, client, {"SET", "claps:test:{" + a + "}", a})->str == "OK");
  }
  REQUIRE(loop.run_until([&] { return bus.stats().subscribes >= articles.size() && bus.healthy(); }, 10s));
  for (const auto& a : articles) REQUIRE(!bus.publish(a, "secret " + a));
  REQUIRE(loop.run_until(
      [&] {
        return std::all_of(articles.begin(), articles.end(),
                           [&](const std::string& a) { return seen.got(a, "secret " + a); });
      },
      10s));

  // A wrong password: never ready, and nothing routed.
  o.password = "wrong";
  claps::redis_client refused(loop.get(), o);
  claps::redis_bus refused_bus(loop.get(), refused);
  CHECK(!loop.run_until([&] { return refused.ready() || refused_bus.healthy(); }, 2s));
  CHECK(refused.command({"GET", "claps:test:{pw0}"}, [](std::error_code, const claps::redis_reply&) {}) ==
        claps::errc::store_disconnected);
}

TEST_CASE(
    "cluster: kill -9 of a master: not ready, then ready on the promoted replica; the bus resubscribes") {
  loop_runner loop;
  claps::redis_client client_a(loop.get(), cluster_options());
  claps::redis_client client_b(loop.get(), cluster_options());
  bus_events seen_b;
  claps::redis_bus bus_a(loop.get(), client_a);
  claps::redis_bus bus_b(loop.get(), client_b, seen_b.callbacks());
  int lost = 0;
  client_b.add_listener({{}, [&](std::error_code) { ++lost; }});
  REQUIRE(loop.run_until(
      [&] { return client_a.ready() && client_b.ready() && bus_a.healthy() && bus_b.healthy(); }, 15s));
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
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed_at);
  MESSAGE("ready again " << took.count() << " ms after kill -9 of the master");
  const auto masters = client_b.masters();
  CHECK(std::none_of(masters.begin(), masters.end(),
                     [&](const claps::redis_endpoint& m) { return m.port == victim; }));
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

TEST_CASE(
    "cluster: kill -9 of the master of a hot article under clap load: no acknowledged clap lost or doubled") {
  loop_runner loop;
  node a(loop, {"ka", cluster_options()});
  node b(loop, {"kb", cluster_options()});
  REQUIRE(loop.run_until([&] { return a.ready() && b.ready(); }, 20s));
  // Articles on every master; the hot one on a master that still has a
  // replica to promote (an earlier case may have used one up).
  std::vector<std::string> articles;
  std::set<std::uint16_t> owners;
  std::uint16_t victim = 0;
  for (int i = 0; owners.size() < 3 || victim == 0; ++i) {
    const std::string art = "load" + std::to_string(i);
    const std::uint16_t owner = shards().master_of_slot(claps::redis_key_slot("claps:t:{" + art + "}"));
    owners.insert(owner);
    articles.push_back(art);
    if (victim == 0 && redis_cluster::query(owner, {"INFO", "replication"}).find("connected_slaves:1") !=
                           std::string::npos) {
      victim = owner;
      std::swap(articles.front(), articles.back());  // articles[0] is the hot one
    }
  }
  watch_all(a, b, articles);

  // Every 2 ms A claps the hot article and B one of the articles in turn,
  // before, during and after the failover: fresh users and op ids.
  clap_load plan(loop, a, b, [&](std::uint64_t k) -> const std::string& {
    return k % 2 == 0 ? articles[0] : articles[k / 2 % articles.size()];
  });
  auto count = [](const node& n, claps::durability level) {
    return std::count_if(n.results.begin(), n.results.end(),
                         [&](const claps::test::outcome& r) { return r.level == level; });
  };
  auto acked = [](const node& n, const std::string& art) {
    std::int64_t sum = 0;
    for (const auto& r : n.results)
      if (art.empty() || r.article == art) sum += r.accepted;
    return sum;
  };
  const auto cluster_acks = [&] {
    return count(a, claps::durability::cluster) + count(b, claps::durability::cluster);
  };
  REQUIRE(loop.run_until([&] { return cluster_acks() >= 100; }, 10s));

  const auto killed_at = std::chrono::steady_clock::now();
  shards().kill9(victim);
  REQUIRE(loop.run_until([&] { return !a.client->ready() || !b.client->ready(); }, 10s));
  REQUIRE(loop.run_until([&] { return a.ready() && b.ready(); }, 30s));
  const auto took =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - killed_at);
  MESSAGE("both nodes ready (connected, subscribed, journal re-asserted) " << took.count()
                                                                           << " ms after kill -9");
  const auto cluster_before = cluster_acks();
  REQUIRE(loop.run_until([&] { return cluster_acks() >= cluster_before + 100; }, 15s));
  plan.stop();

  REQUIRE(loop.run_until(
      [&] {
        return a.engine->idle() && b.engine->idle() && a.results.size() + b.results.size() == plan.sent &&
               !a.store->degraded() && !b.store->degraded();
      },
      20s));
  const std::int64_t total = acked(a, {}) + acked(b, {});
  MESSAGE(plan.sent << " claps sent, " << total << " acknowledged (" << cluster_acks() << " cluster, "
                    << count(a, claps::durability::local) + count(b, claps::durability::local) << " local)");
  CHECK(plan.refused == 0);
  CHECK(static_cast<std::uint64_t>(total) == plan.sent);
  CHECK(count(a, claps::durability::local) + count(b, claps::durability::local) >
        0);  // the failover was felt
  // Each article's master (the promoted replica for the hot one) holds both
  // nodes' parts, equal to what they acknowledged; LMDB holds the same.
  for (const auto& art : articles) {
    CAPTURE(art);
    CHECK(a.own_total(art) == acked(a, art));
    CHECK(b.own_total(art) == acked(b, art));
    const std::int64_t want = acked(a, art) + acked(b, art);
    std::string pa, pb;
    std::uint16_t owner = 0;
    CAPTURE(want);
    CAPTURE(pa);
    CAPTURE(pb);
    CAPTURE(owner);
    REQUIRE(loop.run_until(
        [&] {
          owner = shards().master_of_slot(claps::redis_key_slot("claps:t:{" + art + "}"));
          pa = redis_cluster::query(owner, {"HGET", "claps:t:{" + art + "}", "ka"});
          pb = redis_cluster::query(owner, {"HGET", "claps:t:{" + art + "}", "kb"});
          // "version:total"; a node that never clapped the article has no field.
          const auto value = [](const std::string& s) {
            return s.find(':') == std::string::npos ? 0 : std::atoll(s.c_str() + s.find(':') + 1);
          };
          return value(pa) + value(pb) == want;
        },
        10s));
    REQUIRE(
        loop.run_until([&] { return a.read("", art).total == want && b.read("", art).total == want; }, 10s));
  }
  CHECK(shards().master_of_slot(claps::redis_key_slot("claps:t:{" + articles[0] + "}")) != victim);
  MESSAGE("victim " << victim << ", hot " << articles[0]);
}
