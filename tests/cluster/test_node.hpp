// One clapsd node as the server wires it, for the cluster tests: an engine
// on a redis_store on an lmdb_store, ticked by a uv_driver.
#pragma once

#include "test_loop.hpp"
#include "../unit/test_support.hpp"  // faulty_store: holds a node's journal commits

#include <claps/engine.hpp>
#include <claps/lmdb.hpp>
#include <claps/redis.hpp>
#include <claps/uv.hpp>

#include <doctest/doctest.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace claps::test {

using namespace std::chrono_literals;

inline claps::timestamp wall_now() { return claps::uv_driver::now(); }

// An op_result with its own copy of the article.
struct outcome {
  std::uint64_t cookie = 0;
  std::error_code error;
  std::string article;
  std::int32_t accepted = 0;
  std::int64_t total = 0;
  std::int32_t mine = 0;
  bool replayed = false;
  claps::durability level = claps::durability::local;
};

// An article_update as the engine emitted it.
struct seen_update {
  std::string article;
  std::int64_t total = 0;
  std::uint32_t viewers = 0;
};

struct node_config {
  node_config(std::string node_id, claps::redis_options options)
      : id(std::move(node_id)), redis(std::move(options)) {}
  std::string id;
  claps::redis_options redis;
  std::filesystem::path dir;  // the LMDB directory; empty: a fresh temporary one
  std::string owner;
  std::chrono::milliseconds viewer_ttl = 20s;
  std::chrono::milliseconds op_id_wait = 3000ms;
  std::chrono::milliseconds reassert_window = 5min;
  std::chrono::milliseconds pending_ttl = 30s;
  // The journal's commits are held (never completed): the node "dies" between
  // deciding ops in Redis and committing them; set `abandoned` at the end.
  bool hold_commits = false;
};

// One clapsd node as the server wires it: an engine on a redis_store on an
// lmdb_store, ticked by a uv_driver, with the results and updates it emitted.
struct node {
  loop_runner& loop;
  std::unique_ptr<temp_dir> scratch;
  std::filesystem::path path;
  std::unique_ptr<claps::lmdb_store> lmdb;
  std::unique_ptr<claps_test::faulty_store> faulty;  // with hold_commits: between lmdb and the redis_store
  std::unique_ptr<claps::redis_client> client;
  std::unique_ptr<claps::redis_bus> bus;
  std::unique_ptr<claps::redis_store> store;
  std::unique_ptr<claps::engine> engine;
  std::unique_ptr<claps::uv_driver> driver;
  std::vector<outcome> results;
  std::vector<seen_update> updates;
  std::string taken_by;  // from node_id_taken
  std::uint64_t next_cookie = 1;
  bool abandoned = false;  // dead (held commits): destroyed without draining

  node(loop_runner& l, const node_config& config) : loop(l) {
    if (config.dir.empty()) {
      scratch = std::make_unique<temp_dir>();
      path = scratch->path;
    } else {
      path = config.dir;
    }
    std::error_code ec;
    claps::lmdb_options lo;
    lo.path = path.string();
    lo.sync = false;
    lmdb = claps::lmdb_store::open(lo, ec);
    REQUIRE(lmdb);
    client = std::make_unique<claps::redis_client>(loop.get(), config.redis);
    bus = std::make_unique<claps::redis_bus>(loop.get(), *client);
    claps::redis_store_options so;
    so.node_id = config.id;
    so.owner = config.owner;
    so.heartbeat_interval = 1000ms;
    so.refresh_interval = 1000ms;
    so.viewer_ttl = config.viewer_ttl;
    so.reassert_window = config.reassert_window;
    so.pending_ttl = config.pending_ttl;
    claps::redis_store_callbacks sc;
    sc.node_id_taken = [this](std::string_view holder) { taken_by = holder; };
    claps::store* journal = lmdb.get();
    if (config.hold_commits) {
      faulty = std::make_unique<claps_test::faulty_store>(*lmdb);
      faulty->defer = true;
      journal = faulty.get();
    }
    store = std::make_unique<claps::redis_store>(loop.get(), *journal, *client, *bus, so, sc);
    claps::engine_options eo;
    eo.op_id_wait = config.op_id_wait;
    eo.max_op_ids_per_user = 0;  // the load cases give one user thousands of op ids
    claps::engine_callbacks callbacks;
    callbacks.result = [this](const claps::op_result& r) {
      results.push_back(
          {r.cookie, r.error, std::string(r.article), r.accepted, r.total, r.mine, r.replayed, r.level});
    };
    callbacks.tick_updates = [this](std::span<const claps::article_update> list) {
      for (const auto& u : list) updates.push_back({std::string(u.article), u.total, u.viewers});
    };
    engine = std::make_unique<claps::engine>(*store, eo, callbacks, wall_now());
    driver = std::make_unique<claps::uv_driver>(loop.get(), *engine);
  }
  // Drains the engine (a networked commit may be in flight), then destroys
  // in reverse order of construction, as redis.hpp asks.
  ~node() {
    if (!abandoned) {
      driver->flush();
      CHECK(loop.run_until([&] { return engine->idle(); }, 10s));
    }
    driver.reset();
    engine.reset();
    store.reset();
    bus.reset();
    client.reset();
    faulty.reset();
    lmdb.reset();
  }

  // Connected, subscribed, and Redis holds everything this node has (the
  // journal walk at start is done).
  bool ready() const { return client->ready() && bus->healthy() && !store->degraded(); }

  std::uint64_t clap(const std::string& user, const std::string& article, std::int32_t count,
                     const std::string& op_id = {}) {
    const std::uint64_t cookie = next_cookie++;
    REQUIRE(!engine->clap({user, article, count, op_id, cookie}));
    return cookie;
  }
  std::uint64_t undo(const std::string& user, const std::string& article, const std::string& op_id = {}) {
    const std::uint64_t cookie = next_cookie++;
    REQUIRE(!engine->undo({user, article, op_id, cookie}));
    return cookie;
  }
  const outcome* result(std::uint64_t cookie) const {
    for (const auto& r : results)
      if (r.cookie == cookie) return &r;
    return nullptr;
  }
  outcome wait_result(std::uint64_t cookie, std::chrono::milliseconds deadline = 10s) {
    REQUIRE(loop.run_until([&] { return result(cookie) != nullptr; }, deadline));
    return *result(cookie);
  }
  // The engine's snapshot (its article view is not kept).
  claps::snapshot read(const std::string& user, const std::string& article) {
    claps::snapshot snap;
    REQUIRE(!engine->read(user, article, snap));
    snap.article = {};
    return snap;
  }
  // Reads the other nodes' parts (and user's claps through them) once.
  std::error_code load(const std::string& article, const std::string& user) {
    const std::string_view list[] = {article};
    std::optional<std::error_code> done;
    if (auto ec = store->load(user, list, [&](std::error_code e) { done = e; })) return ec;
    REQUIRE(loop.run_until([&] { return done.has_value(); }, 10s));
    return *done;
  }
  // The last update the engine emitted for `article`.
  std::optional<seen_update> latest(const std::string& article) const {
    for (auto it = updates.rbegin(); it != updates.rend(); ++it)
      if (it->article == article) return *it;
    return std::nullopt;
  }
  std::int64_t own_total(const std::string& article) {
    std::int64_t total = 0;
    CHECK(!lmdb->read_total(article, total));
    return total;
  }
};

// A synchronous command on the loop (test side): the reply, an error reply
// carrying the request's error, or nullopt when it could not be sent.
inline std::optional<claps::redis_reply> ask(loop_runner& loop, claps::redis_client& client,
                                             std::vector<std::string> args,
                                             std::chrono::milliseconds deadline = std::chrono::seconds(10)) {
  std::vector<std::string_view> views(args.begin(), args.end());
  std::optional<claps::redis_reply> out;
  const auto ec = client.command(views, [&](std::error_code e, const claps::redis_reply& r) {
    out = e ? claps::redis_reply{claps::redis_reply::kind::error, 0, e.message(), {}} : r;
  });
  if (ec) return std::nullopt;
  loop.run_until([&] { return out.has_value(); }, deadline);
  return out;
}

}  // namespace claps::test
