// claps::redis against a real Redis: a master, two replicas and three
// sentinels on loopback (plus a standalone server for the tests that stop
// or flush it). Every wait is on an event or condition, with a deadline.
#include "redis_cluster.hpp"

#include "../../libclaps/src/redis/scripts.hpp"  // white-box: replay a stale write

#include <claps/engine.hpp>
#include <claps/error.hpp>
#include <claps/lmdb.hpp>
#include <claps/redis.hpp>
#include <claps/uv.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using claps::test::redis_cluster;
using steady = std::chrono::steady_clock;

namespace {

redis_cluster& cluster() {
  static redis_cluster instance;  // killed (only its own pids) at exit
  return instance;
}

// A uv loop that tests step until a condition holds or a deadline passes.
// The wake timer only bounds how long one uv_run(ONCE) may block, so the
// deadline is checked; the conditions themselves are events on the loop.
class loop_runner {
public:
  loop_runner() {
    uv_loop_init(&loop_);
    uv_timer_init(&loop_, &wake_);
    uv_timer_start(&wake_, [](uv_timer_t*) {}, 20, 20);
  }
  ~loop_runner() {
    uv_close(reinterpret_cast<uv_handle_t*>(&wake_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);  // lets closed handles finish
    CHECK(uv_loop_close(&loop_) == 0);
  }
  uv_loop_t* get() { return &loop_; }

  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds deadline) {
    const auto end = steady::now() + deadline;
    while (!done()) {
      if (steady::now() >= end) return false;
      uv_run(&loop_, UV_RUN_ONCE);
    }
    return true;
  }

private:
  uv_loop_t loop_{};
  uv_timer_t wake_{};
};

claps::redis_options sentinel_options() {
  claps::redis_options o;
  std::string list = "127.0.0.1:1";  // nothing listens there: the client must move on
  for (auto port : cluster().sentinel_ports()) list += ",127.0.0.1:" + std::to_string(port);
  REQUIRE(!claps::parse_redis_sentinels(list, redis_cluster::master_name, o));
  o.request_timeout = 1000ms;
  o.connect_timeout = 1000ms;
  return o;
}

claps::redis_options standalone_options() {
  claps::redis_options o;
  REQUIRE(!claps::parse_redis_url("redis://127.0.0.1:" + std::to_string(cluster().standalone_port()), o));
  o.request_timeout = 1000ms;
  o.connect_timeout = 1000ms;
  return o;
}

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    char tmpl[] = "/tmp/claps-redis-lmdb-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

// One clapsd node's Redis side: LMDB, command client, bus and store.
struct node {
  temp_dir dir;
  std::unique_ptr<claps::lmdb_store> lmdb;
  std::unique_ptr<claps::redis_client> client;
  std::unique_ptr<claps::redis_bus> bus;
  std::unique_ptr<claps::redis_store> store;
  std::map<std::string, std::pair<std::int64_t, std::uint32_t>> remote;  // from remote_changed
  std::function<void(std::string_view, std::int64_t, std::uint32_t)> on_remote;
  int connects = 0;

  node(loop_runner& loop, const std::string& id, const claps::redis_options& options,
       std::chrono::milliseconds viewer_ttl = 20s) {
    std::error_code ec;
    claps::lmdb_options lo;
    lo.path = dir.path.string();
    lo.sync = false;
    lmdb = claps::lmdb_store::open(lo, ec);
    REQUIRE(lmdb);
    claps::redis_client_callbacks cc;
    cc.connected = [this](const claps::redis_endpoint&) { ++connects; };
    client = std::make_unique<claps::redis_client>(loop.get(), options, cc);
    bus = std::make_unique<claps::redis_bus>(loop.get(), *client);
    claps::redis_store_options so;
    so.node_id = id;
    so.heartbeat_interval = 1000ms;
    so.refresh_interval = 1000ms;
    so.viewer_ttl = viewer_ttl;
    claps::redis_store_callbacks sc;
    sc.remote_changed = [this](std::string_view a, std::int64_t total, std::uint32_t viewers) {
      remote[std::string(a)] = {total, viewers};
      if (on_remote) on_remote(a, total, viewers);
    };
    store = std::make_unique<claps::redis_store>(loop.get(), *lmdb, *client, *bus, so, sc);
  }
  ~node() {
    store.reset();
    bus.reset();
    client.reset();
  }
  bool ready() const { return client->ready() && bus->healthy(); }
};

claps::timestamp wall_now() { return claps::uv_driver::now(); }

// Commits one batch and steps the loop until its handler ran.
std::optional<claps::durability> commit(loop_runner& loop, claps::store& store,
                                        std::vector<claps::article_total> totals,
                                        std::vector<claps::user_tally> tallies = {},
                                        std::vector<claps::op_record> ops = {},
                                        std::chrono::milliseconds deadline = 5s) {
  claps::commit_batch batch;
  batch.totals = totals;
  batch.tallies = tallies;
  batch.ops = ops;
  batch.now = wall_now();
  std::optional<claps::durability> level;
  std::error_code error;
  store.commit(batch, [&](std::error_code ec, claps::durability d) {
    error = ec;
    level = d;
  });
  loop.run_until([&] { return level.has_value(); }, deadline);
  CHECK(!error);
  return level;
}

// A synchronous command on the loop (test side).
std::optional<claps::redis_reply> ask(loop_runner& loop, claps::redis_client& client,
                                      std::vector<std::string> args) {
  std::vector<std::string_view> views(args.begin(), args.end());
  std::optional<claps::redis_reply> out;
  const auto ec = client.command(views, [&](std::error_code e, const claps::redis_reply& r) {
    out = e ? claps::redis_reply{claps::redis_reply::kind::error, 0, e.message(), {}} : r;
  });
  if (ec) return std::nullopt;
  loop.run_until([&] { return out.has_value(); }, 5s);
  return out;
}

std::int64_t numsub(std::uint16_t port, const std::string& channel) {
  const std::string r = redis_cluster::query(port, {"PUBSUB", "NUMSUB", channel});
  return std::atoll(r.c_str() + r.find(' ') + 1);
}

std::string field_value(const std::string& stored) {  // "version:value" -> "value"
  const auto colon = stored.find(':');
  return colon == std::string::npos ? std::string() : stored.substr(colon + 1);
}

std::uint64_t field_version(const std::string& stored) {
  return std::stoull(stored.substr(0, stored.find(':')));
}

} // namespace

TEST_CASE("redis:// URLs and sentinel lists parse, bad ones are refused") {
  claps::redis_options o;
  REQUIRE(!claps::parse_redis_url("redis://:s3cret@10.0.0.5:6380/2", o));
  CHECK(o.address.host == "10.0.0.5");
  CHECK(o.address.port == 6380);
  CHECK(o.password == "s3cret");
  CHECK(o.username.empty());
  CHECK(o.database == 2);
  REQUIRE(!claps::parse_redis_url("redis://app:pw@[::1]:7000", o));
  CHECK(o.address.host == "::1");
  CHECK(o.username == "app");
  REQUIRE(!claps::parse_redis_url("redis://localhost", o));
  CHECK(o.address.port == 6379);
  CHECK(o.password.empty());
  CHECK(claps::parse_redis_url("http://localhost:6379", o));
  CHECK(claps::parse_redis_url("redis://host:99999", o));
  CHECK(claps::parse_redis_url("redis://:@host", o));
  REQUIRE(!claps::parse_redis_sentinels("127.0.0.1:26379,h2", "mymaster", o));
  REQUIRE(o.sentinels.size() == 2);
  CHECK(o.sentinels[1].port == 26379);
  CHECK(claps::parse_redis_sentinels("a:1,", "m", o));
  CHECK(claps::parse_redis_sentinels("a:1", "", o));
}

TEST_CASE("the client finds the master through Sentinel, skipping a dead sentinel") {
  loop_runner loop;
  claps::redis_client client(loop.get(), sentinel_options());
  REQUIRE(loop.run_until([&] { return client.ready(); }, 15s));
  CHECK(client.master().port == cluster().sentinel_master_port());
  auto set = ask(loop, client, {"SET", "claps:test:k", "v1"});
  REQUIRE(set);
  CHECK(set->str == "OK");
  auto get = ask(loop, client, {"GET", "claps:test:k"});
  REQUIRE(get);
  CHECK(get->str == "v1");
  // Not ready: refused at once, and the handler never runs.
  claps::redis_options nowhere;
  REQUIRE(!claps::parse_redis_url("redis://127.0.0.1:1", nowhere));
  claps::redis_client offline(loop.get(), nowhere);
  bool called = false;
  CHECK(offline.command({"PING"}, [&](std::error_code, const claps::redis_reply&) { called = true; }) ==
        claps::make_error_code(claps::errc::store_disconnected));
  loop.run_until([] { return false; }, 100ms);
  CHECK(!called);
}

TEST_CASE("sentinels that require a password are asked with sentinel_password") {
  redis_cluster guarded(0, 1, false, "s3nt1nel-pw");
  loop_runner loop;
  claps::redis_options o;
  REQUIRE(!claps::parse_redis_sentinels(
      "127.0.0.1:" + std::to_string(guarded.sentinel_ports().front()), redis_cluster::master_name, o));
  o.connect_timeout = 1000ms;
  {
    claps::redis_client refused(loop.get(), o);  // no password: NOAUTH, never ready
    CHECK(!loop.run_until([&] { return refused.ready(); }, 1500ms));
  }
  o.sentinel_password = "s3nt1nel-pw";
  claps::redis_client client(loop.get(), o);
  REQUIRE(loop.run_until([&] { return client.ready(); }, 10s));
  CHECK(client.master().port == guarded.sentinel_master_port());
  auto pong = ask(loop, client, {"PING"});
  REQUIRE(pong);
  CHECK(pong->str == "PONG");
}

TEST_CASE("pub/sub reaches a subscriber on another connection, only for watched articles") {
  loop_runner loop;
  const auto options = sentinel_options();
  claps::redis_client publisher(loop.get(), options);
  claps::redis_client other(loop.get(), options);
  std::vector<std::pair<std::string, std::string>> received;
  claps::redis_bus_callbacks callbacks;
  callbacks.message = [&](std::string_view article, std::string_view payload) {
    received.emplace_back(article, payload);
  };
  claps::redis_bus sender(loop.get(), publisher);
  claps::redis_bus receiver(loop.get(), other, callbacks);
  REQUIRE(loop.run_until([&] { return publisher.ready() && receiver.healthy(); }, 15s));
  const std::uint16_t master = publisher.master().port;

  receiver.watch("a1");
  receiver.watch("a1");  // again: still one subscription
  CHECK(receiver.watching("a1"));
  REQUIRE(loop.run_until([&] { return numsub(master, "claps:ch:a1") == 1; }, 5s));
  CHECK(numsub(master, "claps:ch:a2") == 0);

  CHECK(!sender.publish("a2", "not for you"));
  CHECK(!sender.publish("a1", "hello"));
  CHECK(!sender.publish("a1", "again"));
  REQUIRE(loop.run_until([&] { return received.size() >= 2; }, 5s));
  // Same publisher connection, so a2's message (sent first) would be here by now.
  REQUIRE(received.size() == 2);
  CHECK(received[0] == std::pair<std::string, std::string>{"a1", "hello"});
  CHECK(received[1] == std::pair<std::string, std::string>{"a1", "again"});

  // A burst: every message arrives, in order. Timing is a figure, not an assertion.
  constexpr int burst = 10000;
  received.clear();
  const auto start = steady::now();
  for (int i = 0; i < burst; ++i) REQUIRE(!sender.publish("a1", std::to_string(i)));
  REQUIRE(loop.run_until([&] { return received.size() >= static_cast<std::size_t>(burst); }, 20s));
  const auto took = std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - start);
  CHECK(received.front().second == "0");
  CHECK(received.back().second == std::to_string(burst - 1));
  MESSAGE(burst << " messages published and received through Redis in " << took.count()
                << " us (publisher, Redis and subscriber on this 2-core machine)");

  receiver.unwatch("a1");
  CHECK_FALSE(receiver.watching("a1"));
  REQUIRE(loop.run_until([&] { return numsub(master, "claps:ch:a1") == 0; }, 5s));
  CHECK(receiver.stats().channels == 0);
}

TEST_CASE("versioned per-node writes never go backwards; totals, tallies and op ids cross nodes") {
  loop_runner loop;
  const auto options = standalone_options();
  const std::uint16_t port = cluster().standalone_port();
  node n1(loop, "n1", options);
  node n2(loop, "n2", options);
  REQUIRE(loop.run_until([&] { return n1.ready() && n2.ready(); }, 10s));

  n1.store->watch("v1");
  REQUIRE(loop.run_until([&] { return numsub(port, "claps:ch:v1") == 1; }, 5s));

  const auto expires = wall_now() + 60s;
  auto level = commit(loop, *n2.store, {{"v1", 7}}, {{"u1", "v1", 7}},
                      {{"u1", "op1", "v1", 7, 7, expires}});
  REQUIRE(level);
  CHECK(*level == claps::durability::cluster);
  const std::string first = redis_cluster::query(port, {"HGET", "claps:t:{v1}", "n2"});
  CHECK(field_value(first) == "7");
  CHECK(redis_cluster::query(port, {"GET", "claps:op:{u1}:op1"}) == "n2|v1|7|7");
  CHECK(std::stoll(redis_cluster::query(port, {"PTTL", "claps:op:{u1}:op1"})) > 0);
  // The local store got the batch first.
  std::int64_t local_total = 0;
  REQUIRE(!n2.lmdb->read_total("v1", local_total));
  CHECK(local_total == 7);

  // n1 watches v1: n2's part arrives over the bus.
  REQUIRE(loop.run_until([&] { return n1.store->remote_total("v1") == 7; }, 5s));
  CHECK(n1.remote["v1"].first == 7);

  // A stale or replayed write (older or equal version) changes nothing.
  const std::uint64_t v = field_version(first);
  for (std::uint64_t stale : {v - 1, v}) {
    const std::string args[] = {"claps:t:{v1}", "n2", std::to_string(stale), "1"};
    std::optional<claps::redis_reply> reply;
    REQUIRE(!n2.client->eval(claps::detail::scripts::write_article, 1, args,
                             [&](std::error_code ec, const claps::redis_reply& r) {
                               CHECK(!ec);
                               reply = r;
                             }));
    REQUIRE(loop.run_until([&] { return reply.has_value(); }, 5s));
    REQUIRE(reply->elements.size() == 1);
    CHECK(reply->elements[0].integer == 1);  // counted as stale
    CHECK(redis_cluster::query(port, {"HGET", "claps:t:{v1}", "n2"}) == first);
  }

  // A newer write moves forward; an undo (lower value) is just a newer value.
  level = commit(loop, *n2.store, {{"v1", 3}}, {{"u1", "v1", 3}});
  REQUIRE(level);
  CHECK(*level == claps::durability::cluster);
  const std::string second = redis_cluster::query(port, {"HGET", "claps:t:{v1}", "n2"});
  CHECK(field_value(second) == "3");
  CHECK(field_version(second) > v);
  REQUIRE(loop.run_until([&] { return n1.store->remote_total("v1") == 3; }, 5s));

  // n1 claps too: it learns u1's claps through n2 (for the cap), sees the
  // overshoot of an outage overlap, and finds op1 already used by n2.
  level = commit(loop, *n1.store, {{"v1", 49}}, {{"u1", "v1", 49}},
                 {{"u1", "op1", "v1", 49, 49, expires}});
  REQUIRE(level);
  CHECK(*level == claps::durability::cluster);
  CHECK(n1.store->remote_tally("u1", "v1") == 3);
  CHECK(n1.store->stats().cap_overshoot == 2);  // 49 + 3 > 50
  CHECK(n1.store->stats().remote_op_conflicts == 1);
  CHECK(redis_cluster::query(port, {"GET", "claps:op:{u1}:op1"}) == "n2|v1|7|7");
  n2.store->prefetch_tally("u1", "v1");
  REQUIRE(loop.run_until([&] { return n2.store->remote_tally("u1", "v1") == 49; }, 5s));

  // Viewers: n2's local viewers show up as n1's remote viewers.
  n2.store->set_local_viewers("v1", 4);
  REQUIRE(loop.run_until([&] { return n1.store->remote_viewers("v1") == 4; }, 5s));
  n2.store->set_local_viewers("v1", 0);
  REQUIRE(loop.run_until([&] { return n1.store->remote_viewers("v1") == 0; }, 5s));
  n1.store->unwatch("v1");
  REQUIRE(loop.run_until([&] { return numsub(port, "claps:ch:v1") == 0; }, 5s));
}

TEST_CASE("a crashed node's viewers expire from the global count") {
  loop_runner loop;
  const auto options = standalone_options();
  node watcher(loop, "w1", options);
  auto doomed = std::make_unique<node>(loop, "w2", options, 1500ms);
  REQUIRE(loop.run_until([&] { return watcher.ready() && doomed->ready(); }, 10s));
  watcher.store->watch("x1");
  REQUIRE(loop.run_until([&] { return numsub(cluster().standalone_port(), "claps:ch:x1") == 1; }, 5s));
  doomed->store->set_local_viewers("x1", 6);
  REQUIRE(loop.run_until([&] { return watcher.store->remote_viewers("x1") == 6; }, 5s));
  // Gone without a word (no HDEL, no message): its field expires by Redis TIME
  // and the watcher's periodic refresh drops it.
  const auto gone_at = steady::now();
  doomed.reset();
  REQUIRE(loop.run_until([&] { return watcher.store->remote_viewers("x1") == 0; }, 10s));
  CHECK(steady::now() - gone_at < 1500ms + 1000ms + 3000ms);  // ttl + refresh + slack for busy CI
  CHECK(watcher.remote["x1"].second == 0);
}

TEST_CASE("a stopped Redis: requests time out within the deadline, commits degrade, then merge") {
  loop_runner loop;
  const auto options = standalone_options();  // request_timeout 1 s
  const std::uint16_t port = cluster().standalone_port();
  node n(loop, "n3", options);
  bool degraded_seen = false;
  REQUIRE(loop.run_until([&] { return n.ready(); }, 10s));
  REQUIRE(*commit(loop, *n.store, {{"s1", 1}}) == claps::durability::cluster);

  cluster().stop(port);
  struct resume_guard {
    std::uint16_t port;
    ~resume_guard() { cluster().resume(port); }
  } guard{port};

  std::optional<std::error_code> outcome;
  const auto start = steady::now();
  REQUIRE(!n.client->command({"PING"}, [&](std::error_code ec, const claps::redis_reply&) {
    outcome = ec;
  }));
  REQUIRE(loop.run_until([&] { return outcome.has_value(); }, 10s));
  const auto waited = steady::now() - start;
  CHECK(*outcome == claps::make_error_code(claps::errc::store_timeout));
  CHECK(waited >= 900ms);
  CHECK(waited < 5s);  // the deadline (1 s) plus slack for a busy machine: never a hang
  CHECK(n.client->stats().timeouts >= 1);

  // While Redis is stopped, commits are acknowledged as locally durable.
  const auto level = commit(loop, *n.store, {{"s1", 2}}, {}, {}, 10s);
  REQUIRE(level);
  CHECK(*level == claps::durability::local);
  CHECK(n.store->degraded());
  degraded_seen = n.store->stats().local_commits >= 1;
  CHECK(degraded_seen);
  std::int64_t local_total = 0;
  REQUIRE(!n.lmdb->read_total("s1", local_total));
  CHECK(local_total == 2);

  cluster().resume(port);
  // Reconnect, re-assert the dirty key, leave degraded mode.
  REQUIRE(loop.run_until([&] { return !n.store->degraded(); }, 15s));
  CHECK(field_value(redis_cluster::query(port, {"HGET", "claps:t:{s1}", "n3"})) == "2");
  CHECK(n.store->stats().reasserts >= 1);
}

TEST_CASE("writes a Redis lost are re-asserted after the reconnect") {
  loop_runner loop;
  const std::uint16_t port = cluster().standalone_port();
  node n(loop, "n4", standalone_options());
  REQUIRE(loop.run_until([&] { return n.ready(); }, 10s));
  REQUIRE(*commit(loop, *n.store, {{"r1", 11}}, {{"u9", "r1", 11}}) == claps::durability::cluster);
  const int connects = n.connects;
  // Lose the data (as an asynchronous failover can) and drop our connections.
  CHECK(redis_cluster::query(port, {"FLUSHALL"}) == "OK");
  redis_cluster::query(port, {"CLIENT", "KILL", "TYPE", "normal"});
  REQUIRE(loop.run_until([&] { return n.connects > connects && n.client->ready(); }, 10s));
  REQUIRE(loop.run_until([&] {
    return field_value(redis_cluster::query(port, {"HGET", "claps:t:{r1}", "n4"})) == "11";
  }, 10s));
  CHECK(field_value(redis_cluster::query(port, {"HGET", "claps:u:{r1}:u9", "n4"})) == "11");
}

TEST_CASE("a master demoted under the client (READONLY) makes it reconnect, not fail forever") {
  loop_runner loop;
  const std::uint16_t port = cluster().standalone_port();
  claps::redis_client client(loop.get(), standalone_options());
  REQUIRE(loop.run_until([&] { return client.ready(); }, 10s));
  const auto connects = client.stats().connects;
  // Demote it: a replica of a master that does not exist stays read-only.
  REQUIRE(redis_cluster::query(port, {"REPLICAOF", "127.0.0.1", "1"}) == "OK");
  struct promote_guard {
    std::uint16_t port;
    ~promote_guard() { redis_cluster::query(port, {"REPLICAOF", "NO", "ONE"}); }
  } guard{port};
  auto reply = ask(loop, client, {"SET", "claps:test:ro", "x"});
  REQUIRE(reply);
  CHECK(reply->str.rfind("READONLY", 0) == 0);
  CHECK(!client.ready());  // dropped at once; ROLE now refuses it
  loop.run_until([&] { return client.stats().not_master >= 2; }, 5s);
  CHECK(client.stats().not_master >= 2);
  CHECK(!client.ready());
  REQUIRE(redis_cluster::query(port, {"REPLICAOF", "NO", "ONE"}) == "OK");
  REQUIRE(loop.run_until([&] { return client.ready(); }, 10s));
  CHECK(client.stats().connects == connects + 1);
  reply = ask(loop, client, {"SET", "claps:test:ro", "y"});
  REQUIRE(reply);
  CHECK(reply->str == "OK");
}

TEST_CASE("a 1000-article batch with tallies and op ids commits cluster-durable") {
  loop_runner loop;
  const std::uint16_t port = cluster().standalone_port();
  node n(loop, "big", standalone_options());
  REQUIRE(loop.run_until([&] { return n.ready(); }, 10s));
  constexpr int articles = 1000;
  std::vector<std::string> names;
  for (int i = 0; i < articles; ++i) names.push_back("big" + std::to_string(i));
  const auto expires = wall_now() + 60s;
  for (int round = 1; round <= 2; ++round) {
    std::vector<claps::article_total> totals;
    std::vector<claps::user_tally> tallies;
    std::vector<claps::op_record> ops;
    std::vector<std::string> op_ids;
    for (int i = 0; i < articles; ++i) op_ids.push_back("op" + std::to_string(round) + "-" + std::to_string(i));
    for (int i = 0; i < articles; ++i) {
      totals.push_back({names[i], i + round});
      tallies.push_back({"bu", names[i], round});
      ops.push_back({"bu", op_ids[i], names[i], 1, round, expires});
    }
    const auto start = steady::now();
    const auto level = commit(loop, *n.store, totals, tallies, ops, 10s);
    const auto took = std::chrono::duration_cast<std::chrono::microseconds>(steady::now() - start);
    REQUIRE(level);
    CHECK(*level == claps::durability::cluster);
    // Not an assertion on speed: a figure for docs/design.md (LMDB without fsync here).
    MESSAGE("round " << round << ": " << articles << " articles + " << articles << " tallies + "
                     << articles << " op ids committed (LMDB + Redis) in " << took.count() << " us");
  }
  CHECK(field_value(redis_cluster::query(port, {"HGET", "claps:t:{big0}", "big"})) == "2");
  CHECK(field_value(redis_cluster::query(port, {"HGET", "claps:t:{big999}", "big"})) == "1001");
  CHECK(field_value(redis_cluster::query(port, {"HGET", "claps:u:{big500}:bu", "big"})) == "2");
  CHECK(redis_cluster::query(port, {"GET", "claps:op:{bu}:op2-999"}) == "big|big999|1|2");
  CHECK(n.store->stats().stale_writes == 0);
  const std::string commandstats = redis_cluster::query(port, {"INFO", "commandstats"});
  for (const char* command : {"cmdstat_evalsha:", "cmdstat_eval:"}) {
    const auto at = commandstats.find(command);
    if (at != std::string::npos)
      MESSAGE("redis " << commandstats.substr(at, commandstats.find('\n', at) - at));
  }
}

TEST_CASE("an engine on a redis_store acknowledges claps as cluster-durable") {
  loop_runner loop;
  const std::uint16_t port = cluster().standalone_port();
  node n(loop, "n5", standalone_options());
  REQUIRE(loop.run_until([&] { return n.ready(); }, 10s));
  std::vector<claps::op_result> results;
  claps::engine_callbacks callbacks;
  callbacks.result = [&](const claps::op_result& r) { results.push_back(r); };
  claps::engine engine(*n.store, {}, callbacks, wall_now());
  claps::uv_driver driver(loop.get(), engine);
  REQUIRE(!engine.clap({"reader", "e1", 5, "op-e1", 1}));
  REQUIRE(loop.run_until([&] { return !results.empty(); }, 5s));
  CHECK(results[0].accepted == 5);
  CHECK(results[0].level == claps::durability::cluster);
  CHECK(field_value(redis_cluster::query(port, {"HGET", "claps:t:{e1}", "n5"})) == "5");
  CHECK(field_value(redis_cluster::query(port, {"HGET", "claps:u:{e1}:reader", "n5"})) == "5");
  CHECK(redis_cluster::query(port, {"GET", "claps:op:{reader}:op-e1"}) == "n5|e1|5|5");
}

// These two change which server is the master, so they run last.
TEST_CASE("a forced failover (old master demoted, not killed) moves idle clients") {
  loop_runner loop;
  const auto options = sentinel_options();
  node a(loop, "sa", options);
  REQUIRE(loop.run_until([&] { return a.ready(); }, 15s));
  const std::uint16_t old_master = a.client->master().port;
  const auto connects = a.client->stats().connects;
  const auto sentinel = cluster().sentinel_ports().front();
  // Let the sentinels' +switch-master subscribers come up before the switch.
  // (Sentinel has no PUBSUB command; its CLIENT LIST shows subscribers.)
  REQUIRE(loop.run_until([&] {
    return redis_cluster::query(sentinel, {"CLIENT", "LIST"}).find(" sub=1 ") != std::string::npos;
  }, 10s));
  REQUIRE(redis_cluster::query(sentinel, {"SENTINEL", "FAILOVER", redis_cluster::master_name}) == "OK");
  // Nothing is written. Sentinel kills the demoted master's clients and
  // announces +switch-master (which alone moves us when the old master is
  // cut off from the sentinels and cannot be told).
  REQUIRE(loop.run_until([&] {
    return a.ready() && a.bus->healthy() && a.client->master().port != old_master &&
           a.client->stats().switch_announcements >= 1;
  }, 30s));
  CHECK(a.client->stats().connects > connects);
  CHECK(redis_cluster::query(a.client->master().port, {"ROLE"}).rfind("master", 0) == 0);
  REQUIRE(*commit(loop, *a.store, {{"sw1", 1}}) == claps::durability::cluster);
  // The old master is alive and now a replica.
  REQUIRE(loop.run_until([&] {
    return redis_cluster::query(old_master, {"ROLE"}).rfind("slave", 0) == 0;
  }, 15s));
}

// A node with an engine on its redis_store, clapping on one article with a
// fresh user and op id per clap, counting what was acknowledged.
struct clapping_node {
  node n;
  std::unique_ptr<claps::engine> engine;
  std::unique_ptr<claps::uv_driver> driver;
  std::int64_t acked = 0;
  int cluster_acks = 0;
  int local_acks = 0;
  int refused = 0;
  std::uint64_t sent = 0;

  clapping_node(loop_runner& loop, const std::string& id, const claps::redis_options& options)
      : n(loop, id, options) {
    claps::engine_callbacks callbacks;
    callbacks.result = [this](const claps::op_result& r) {
      acked += r.accepted;
      (r.level == claps::durability::cluster ? cluster_acks : local_acks) += 1;
    };
    engine = std::make_unique<claps::engine>(*n.store, claps::engine_options{}, callbacks, wall_now());
    driver = std::make_unique<claps::uv_driver>(loop.get(), *engine);
    // The server's wiring: other nodes' parts go into the engine.
    n.on_remote = [this](std::string_view article, std::int64_t total, std::uint32_t viewers) {
      engine->set_remote(article, total, viewers);
    };
  }
  ~clapping_node() {
    driver.reset();
    engine.reset();  // callers wait for engine->idle() first: a networked commit may be in flight
  }
  void clap(const std::string& article) {
    const std::string user = "u-" + std::to_string(sent);
    const std::string op = "op-" + std::to_string(sent);
    ++sent;
    if (engine->clap({user, article, 1, op, sent})) ++refused;
  }
  std::int64_t shown_total(const std::string& article) {
    claps::snapshot snap;
    CHECK(!engine->read(article, {}, snap));
    return snap.total;
  }
  std::int64_t own_total(const std::string& article) {
    std::int64_t total = 0;
    CHECK(!n.lmdb->read_total(article, total));
    return total;
  }
};

TEST_CASE("the cap counts claps made through other nodes; totals and viewers cross nodes") {
  loop_runner loop;
  const auto options = standalone_options();
  clapping_node a(loop, "ca", options);
  clapping_node b(loop, "cb", options);
  REQUIRE(loop.run_until([&] { return a.n.ready() && b.n.ready(); }, 10s));
  // A reader on each node (the server calls watch() when it subscribes).
  claps::snapshot snap;
  REQUIRE(!a.engine->subscribe(1, "c1", true, "reader", snap));
  REQUIRE(!b.engine->subscribe(1, "c1", true, "reader", snap));
  a.n.store->watch("c1");
  b.n.store->watch("c1");
  a.n.store->set_local_viewers("c1", 1);
  b.n.store->set_local_viewers("c1", 1);
  REQUIRE(loop.run_until([&] { return numsub(cluster().standalone_port(), "claps:ch:c1") == 2; }, 5s));

  std::vector<claps::op_result> results_b;
  // 30 claps by "fan" through node A.
  REQUIRE(!a.engine->clap({"fan", "c1", 30, "fan-1", 1}));
  REQUIRE(loop.run_until([&] { return a.cluster_acks == 1; }, 5s));
  CHECK(a.acked == 30);
  // Node B learns them (the server prefetches when "fan" subscribes there)...
  b.n.store->prefetch_tally("fan", "c1");
  REQUIRE(loop.run_until([&] { return b.n.store->remote_tally("fan", "c1") == 30; }, 5s));
  // ... so B accepts only 20 more of 30, and both nodes show 50.
  REQUIRE(!b.engine->clap({"fan", "c1", 30, "fan-2", 2}));
  REQUIRE(loop.run_until([&] { return b.cluster_acks == 1; }, 5s));
  CHECK(b.acked == 20);
  CHECK(b.engine->stats().claps_over_cap == 10);
  REQUIRE(loop.run_until([&] { return a.shown_total("c1") == 50 && b.shown_total("c1") == 50; }, 5s));
  claps::snapshot mine;
  REQUIRE(!b.engine->read("c1", "fan", mine));
  CHECK(mine.mine == 50);
  CHECK(a.n.store->stats().cap_overshoot == 0);
  CHECK(b.n.store->stats().cap_overshoot == 0);
  // Viewers: one reader per node, two in all on both.
  REQUIRE(loop.run_until([&] {
    claps::snapshot sa, sb;
    return !a.engine->read("c1", {}, sa) && !b.engine->read("c1", {}, sb) && sa.viewers == 2 &&
           sb.viewers == 2;
  }, 5s));
  a.engine->flush(wall_now());
  b.engine->flush(wall_now());
  REQUIRE(loop.run_until([&] { return a.engine->idle() && b.engine->idle(); }, 5s));
}

TEST_CASE("reservations and op-id claims arbitrate between nodes atomically") {
  loop_runner loop;
  const auto options = standalone_options();
  clapping_node a(loop, "ra", options);
  clapping_node b(loop, "rb", options);
  REQUIRE(loop.run_until([&] { return a.n.ready() && b.n.ready(); }, 10s));

  // Both nodes ask for 30 of one user's claps in the same loop iteration:
  // Redis runs one script after the other, so together they get 50.
  int answers = 0;
  std::int32_t granted_a = -1, granted_b = -1;
  a.n.store->reserve_claps("rita", "r1", 0, 30, [&](std::error_code ec, std::int32_t g) {
    CHECK(!ec);
    granted_a = g;
    ++answers;
  });
  b.n.store->reserve_claps("rita", "r1", 0, 30, [&](std::error_code ec, std::int32_t g) {
    CHECK(!ec);
    granted_b = g;
    ++answers;
  });
  REQUIRE(loop.run_until([&] { return answers == 2; }, 5s));
  CHECK(granted_a + granted_b == 50);
  // The first to run saw nobody else; the second saw the first's 30.
  CHECK(a.n.store->remote_tally("rita", "r1") + b.n.store->remote_tally("rita", "r1") == 30);
  // Asking again from the level already reserved grants nothing more.
  a.n.store->reserve_claps("rita", "r1", granted_a, 5, [&](std::error_code ec, std::int32_t g) {
    CHECK(!ec);
    CHECK(g == 0);
    ++answers;
  });
  REQUIRE(loop.run_until([&] { return answers == 3; }, 5s));
  // A released reservation frees its room (an undo does this first). The
  // release is a command on b's connection: a's next script runs after it
  // once b has been answered, so wait for a round trip on b.
  b.n.store->release_claps("rita", "r1");
  b.n.store->reserve_claps("rita", "r-other", 0, 1, [&](std::error_code, std::int32_t) { ++answers; });
  REQUIRE(loop.run_until([&] { return answers == 4; }, 5s));
  a.n.store->reserve_claps("rita", "r1", granted_a, 50, [&](std::error_code ec, std::int32_t g) {
    CHECK(!ec);
    CHECK(g == 50 - granted_a);
    ++answers;
  });
  REQUIRE(loop.run_until([&] { return answers == 5; }, 5s));

  // One op id claimed by both: one gets it, the other sees it pending; once
  // the owner's commit records the result, the other sees that result.
  using holder = claps::redis_store::op_claim::holder;
  holder by_a{}, by_b{};
  int claims = 0;
  a.n.store->claim_op("otto", "op-7", [&](std::error_code ec, const claps::redis_store::op_claim& c) {
    CHECK(!ec);
    by_a = c.by;
    ++claims;
  });
  b.n.store->claim_op("otto", "op-7", [&](std::error_code ec, const claps::redis_store::op_claim& c) {
    CHECK(!ec);
    by_b = c.by;
    ++claims;
  });
  REQUIRE(loop.run_until([&] { return claims == 2; }, 5s));
  REQUIRE(((by_a == holder::claimed_now && by_b == holder::other_node_pending) ||
           (by_b == holder::claimed_now && by_a == holder::other_node_pending)));
  clapping_node& owner = by_a == holder::claimed_now ? a : b;
  clapping_node& other = by_a == holder::claimed_now ? b : a;
  REQUIRE(!owner.engine->clap({"otto", "o1", 4, "op-7", 1}));
  REQUIRE(loop.run_until([&] { return owner.cluster_acks == 1; }, 5s));
  claps::redis_store::op_claim seen;
  bool answered = false;
  other.n.store->claim_op("otto", "op-7", [&](std::error_code ec, const claps::redis_store::op_claim& c) {
    CHECK(!ec);
    seen = c;
    answered = true;
  });
  owner.n.store->claim_op("otto", "op-7", [&](std::error_code ec, const claps::redis_store::op_claim& c) {
    CHECK(!ec);
    CHECK(c.by == holder::this_node);
  });
  REQUIRE(loop.run_until([&] { return answered; }, 5s));
  CHECK(seen.by == holder::other_node_done);
  CHECK(seen.article == "o1");
  CHECK(seen.accepted == 4);
  CHECK(seen.mine == 4);
  a.engine->flush(wall_now());
  b.engine->flush(wall_now());
  REQUIRE(loop.run_until([&] { return a.engine->idle() && b.engine->idle(); }, 5s));
}

// Last: it changes which server is the master.
TEST_CASE("SIGKILL the master under clap load: failover, no acknowledged clap lost or doubled") {
  loop_runner loop;
  const auto options = sentinel_options();
  clapping_node a(loop, "na", options);
  clapping_node b(loop, "nb", options);
  REQUIRE(loop.run_until([&] { return a.n.ready() && b.n.ready(); }, 15s));
  const std::uint16_t old_master = a.n.client->master().port;
  REQUIRE(old_master == cluster().sentinel_master_port());
  a.n.store->watch("f1");
  b.n.store->watch("f1");
  REQUIRE(loop.run_until([&] { return numsub(old_master, "claps:ch:f1") == 2; }, 5s));

  // Load: both nodes clap on f1 every 2 ms, before, during and after the failover.
  bool loading = true;
  uv_timer_t load{};
  uv_timer_init(loop.get(), &load);
  struct load_state {
    clapping_node* a;
    clapping_node* b;
  } targets{&a, &b};
  load.data = &targets;
  uv_timer_start(&load, [](uv_timer_t* t) {
    auto* nodes = static_cast<load_state*>(t->data);
    nodes->a->clap("f1");
    nodes->b->clap("f1");
  }, 2, 2);
  REQUIRE(loop.run_until([&] { return a.cluster_acks >= 50 && b.cluster_acks >= 50; }, 10s));

  const auto killed_at = steady::now();
  cluster().kill9(old_master);
  REQUIRE(loop.run_until([&] {
    return a.n.ready() && b.n.ready() && a.n.client->master().port != old_master &&
           b.n.client->master().port != old_master;
  }, 45s));
  const auto failover = std::chrono::duration_cast<std::chrono::milliseconds>(steady::now() - killed_at);
  MESSAGE("failover seen by both clients after " << failover.count() << " ms");
  const std::uint16_t new_master = a.n.client->master().port;
  CHECK(b.n.client->master().port == new_master);
  CHECK(redis_cluster::query(new_master, {"ROLE"}).rfind("master", 0) == 0);
  // Resubscribed on the new master; keep clapping until acks are cluster-durable again.
  REQUIRE(loop.run_until([&] { return numsub(new_master, "claps:ch:f1") == 2; }, 10s));
  const int cluster_before = a.cluster_acks + b.cluster_acks;
  REQUIRE(loop.run_until([&] { return a.cluster_acks + b.cluster_acks >= cluster_before + 100; }, 15s));
  uv_timer_stop(&load);
  uv_close(reinterpret_cast<uv_handle_t*>(&load), nullptr);
  loading = false;

  // Drain: everything pending committed, dirty keys re-asserted.
  REQUIRE(loop.run_until([&] {
    return !loading && a.engine->idle() && b.engine->idle() && !a.n.store->degraded() &&
           !b.n.store->degraded();
  }, 20s));
  const std::int64_t acked = a.acked + b.acked;
  MESSAGE((a.sent + b.sent) << " claps sent, " << acked << " acknowledged ("
          << a.cluster_acks + b.cluster_acks << " cluster, " << a.local_acks + b.local_acks
          << " local), " << a.refused + b.refused << " refused");
  CHECK(a.refused + b.refused == 0);
  CHECK(static_cast<std::uint64_t>(acked) == a.sent + b.sent);
  // Each node's LMDB holds exactly what it acknowledged ...
  CHECK(a.own_total("f1") == a.acked);
  CHECK(b.own_total("f1") == b.acked);
  // ... and the new master holds every node's part: nothing lost, nothing twice.
  REQUIRE(loop.run_until([&] {
    const auto na = field_value(redis_cluster::query(new_master, {"HGET", "claps:t:{f1}", "na"}));
    const auto nb = field_value(redis_cluster::query(new_master, {"HGET", "claps:t:{f1}", "nb"}));
    return !na.empty() && !nb.empty() && std::stoll(na) + std::stoll(nb) == acked;
  }, 10s));
  // Both engines converge on the global total (own part + the other's part).
  REQUIRE(loop.run_until([&] {
    return a.shown_total("f1") == acked && b.shown_total("f1") == acked;
  }, 10s));
  CHECK(a.own_total("f1") + a.n.store->remote_total("f1") == acked);
  CHECK(a.n.client->stats().connects >= 2);
  CHECK(b.n.bus->stats().resubscribes >= 1);
}

// claps::redis runs hiredis through its own libuv adapter, which flushes
// commands once per loop iteration instead of polling for writability per
// command. These pin down what that must keep: order, values, big writes the
// socket takes in parts, and deadlines against a stopped server.
namespace {

std::uint64_t reads_processed(std::uint16_t port) {  // INFO stats: read events served
  const std::string info = redis_cluster::query(port, {"INFO", "stats"});
  const std::string field = "total_reads_processed:";
  const auto at = info.find(field);
  REQUIRE(at != std::string::npos);
  return std::stoull(info.substr(at + field.size()));
}

} // namespace

TEST_CASE("1000 commands issued in one loop iteration are answered in order, in a few writes") {
  loop_runner loop;
  auto options = standalone_options();
  options.request_timeout = 10s;  // 16 MB below on a busy machine: no spurious timeouts
  const std::uint16_t port = cluster().standalone_port();
  claps::redis_client client(loop.get(), options);
  REQUIRE(loop.run_until([&] { return client.ready(); }, 10s));
  REQUIRE(ask(loop, client, {"DEL", "pipeline:counter"}));

  // INCR and ECHO alternate: replies must come back in issue order, each
  // to its own handler, with its own value.
  constexpr int count = 1000;
  std::vector<int> order;
  std::vector<std::string> bad;
  const std::uint64_t reads_before = reads_processed(port);
  for (int i = 0; i < count; ++i) {
    const std::string echo = "echo-" + std::to_string(i);
    auto check = [&, i, echo](std::error_code ec, const claps::redis_reply& r) {
      order.push_back(i);
      const bool ok = !ec && (i % 2 == 0 ? r.type == claps::redis_reply::kind::integer &&
                                               r.integer == i / 2 + 1
                                         : r.type == claps::redis_reply::kind::string &&
                                               r.str == echo);
      if (!ok) bad.push_back(std::to_string(i) + ": " + (ec ? ec.message() : r.str));
    };
    const std::error_code sent = i % 2 == 0 ? client.command({"INCR", "pipeline:counter"}, check)
                                            : client.command({"ECHO", echo}, check);
    REQUIRE(!sent);
  }
  REQUIRE(loop.run_until([&] { return order.size() == count; }, 20s));
  CHECK(bad.empty());
  for (int i = 0; i < count; ++i) REQUIRE(order[static_cast<std::size_t>(i)] == i);
  // One write of ~25 KB: Redis reads it in 16 KB chunks. A write per command
  // would show up as hundreds of read events (the bound leaves room for the
  // INFO queries and keepalives).
  const std::uint64_t reads = reads_processed(port) - reads_before;
  MESSAGE("Redis read events for 1000 pipelined commands: " << reads);
  CHECK(reads < 100);

  // 64 replies of 256 KB each way: one write() cannot take 16 MB, so the
  // rest waits for writability while the replies stream in.
  constexpr int big = 64;
  std::vector<std::string> payloads;
  for (int i = 0; i < big; ++i)
    payloads.push_back(std::to_string(i) + ":" + std::string(256 * 1024, static_cast<char>('a' + i % 26)));
  int big_answers = 0;
  int big_good = 0;
  for (int i = 0; i < big; ++i) {
    REQUIRE(!client.command({"ECHO", payloads[static_cast<std::size_t>(i)]},
                            [&, i](std::error_code ec, const claps::redis_reply& r) {
      if (!ec && big_answers == i && r.str == payloads[static_cast<std::size_t>(i)]) ++big_good;
      ++big_answers;
    }));
  }
  REQUIRE(loop.run_until([&] { return big_answers == big; }, 30s));
  CHECK(big_good == big);
  CHECK(client.stats().timeouts == 0);
  CHECK(client.stats().disconnects == 0);
  const auto after = ask(loop, client, {"GET", "pipeline:counter"});
  REQUIRE(after);
  CHECK(after->str == std::to_string(count / 2));
}

TEST_CASE("connecting to a stopped Redis gives up at the connect deadline, then connects on resume") {
  loop_runner loop;
  const auto options = standalone_options();  // connect_timeout 1 s
  const std::uint16_t port = cluster().standalone_port();
  cluster().stop(port);
  struct resume_guard {
    std::uint16_t port;
    ~resume_guard() { cluster().resume(port); }
  } guard{port};

  // The kernel still completes the TCP handshake for a stopped server, so
  // only the ROLE handshake's deadline can end the attempt.
  const auto start = steady::now();
  claps::redis_client client(loop.get(), options);
  REQUIRE(loop.run_until([&] { return client.stats().timeouts >= 1; }, 10s));
  const auto waited = steady::now() - start;
  CHECK(waited >= 900ms);
  CHECK(waited < 5s);  // the deadline (1 s) plus slack for a busy machine: never a hang
  CHECK(!client.ready());
  CHECK(client.command({"PING"}, [](std::error_code, const claps::redis_reply&) {}) ==
        claps::make_error_code(claps::errc::store_disconnected));

  cluster().resume(port);
  REQUIRE(loop.run_until([&] { return client.ready(); }, 15s));
  const auto pong = ask(loop, client, {"PING"});
  REQUIRE(pong);
  CHECK(pong->str == "PONG");
}
