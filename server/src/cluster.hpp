// cluster.hpp - clapsd as one node of several sharing Redis (--redis or
// --sentinel with --node-id).
//
// A cluster_node owns the node's redis_client, redis_bus and redis_store and
// is the glue docs/design.md ("Wiring into clapsd") describes: the engine
// commits into its store(); every subscription the engine accepts is
// reported here so the store watches the article's channel exactly while
// this node has subscribers for it; each tick's local viewer counts go to
// Redis; the other nodes' parts come back into the engine through
// engine::set_remote().
//
// Without the flags clapsd never builds one and runs on LMDB alone.
#pragma once

#include "log.hpp"
#include "options.hpp"

#include <claps/engine.hpp>
#include <claps/store.hpp>

#include <uv.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace claps::server {

class cluster_node {
public:
  /// Connects (asynchronously) to Redis as options say, wrapping `local`
  /// (which must outlive the node). Null with `error` set when the Redis
  /// flags do not parse or this build has no Redis support.
  static std::unique_ptr<cluster_node> create(uv_loop_t* loop, store& local,
                                              const server_options& options, const logger& log,
                                              std::string& error);
  ~cluster_node();
  cluster_node(const cluster_node&) = delete;
  cluster_node& operator=(const cluster_node&) = delete;

  /// The store to hand the engine (a redis_store over `local`).
  claps::store& store() noexcept;

  /// Adds tick_updates to the engine's callbacks (local viewers to Redis).
  /// Call before constructing the engine.
  void extend(engine_callbacks& callbacks);
  /// The engine the other nodes' parts go to. `in_engine_callback` tells
  /// whether the engine is inside a callback right now; set_remote() is then
  /// deferred to the end of the loop iteration.
  void attach(engine& e, std::function<bool()> in_engine_callback);

  /// The engine accepted `sub` watching `article` (subscribing again is
  /// harmless). `user` may be empty; with one, the user's claps through other
  /// nodes are fetched for the cap.
  void subscribed(subscriber_id sub, std::string_view article, std::string_view user);
  /// `sub` stopped watching `article` (unknown pairs are ignored).
  void unsubscribed(subscriber_id sub, std::string_view article);
  /// `sub` is gone (engine::unsubscribe_all).
  void released(subscriber_id sub);

  /// What another node answered for an op id (its value in Redis).
  struct prior_op {
    std::string article;
    std::int32_t accepted = 0;
    std::int32_t mine = 0;
  };
  /// Before a clap or undo: makes the node count exactly across nodes while
  /// Redis is reachable. Ops of one (user, article) go through one at a time:
  ///  1. an op id is claimed in Redis; one another node applied is answered
  ///     with `replay(prior)`, one another node is still applying is asked
  ///     again for up to 3 s, then refused (`unavailable`: retry the op id);
  ///  2. an undo drops this node's cap reservation and reads the user's claps
  ///     through other nodes fresh (the undo removes them too); a clap of
  ///     `count` reserves room under the cap in Redis, so nodes never grant
  ///     more than the cap between them;
  ///  3. on an article no local subscriber watches, the other nodes' parts
  ///     are read first, so the result's total is global;
  /// then `apply()`. With Redis unreachable (or a step failing) the op is
  /// applied at once under the step-1 rules of docs/design.md. Calls back
  /// from the loop, or at once; never from an engine callback; never after
  /// shutdown().
  void before_op(std::string_view user, std::string_view article, std::string_view op_id, bool undo,
                 std::int32_t count, std::function<void()> apply, std::function<void(const prior_op&)> replay,
                 std::function<void(std::error_code)> refuse);

  /// Before answering a read of an article no local subscriber watches:
  /// loads the other nodes' parts (and `user`'s claps through them) into the
  /// engine, then calls `done()`. At once when watched or Redis is not ready;
  /// after a Redis error `done()` still runs and the engine knows this
  /// node's part only. Never after shutdown().
  void before_read(std::string_view article, std::string_view user, std::function<void()> done);

  /// Applies at once every op still waiting for its lookup (on SIGTERM, so
  /// the drain commits and acknowledges them like any pending clap).
  void settle_lookups();

  /// True while commits are acknowledged only as locally durable.
  bool degraded() const noexcept;
  /// True while another data directory holds this node's --node-id in Redis
  /// (nothing is written there; /readyz answers 503).
  bool node_id_taken() const noexcept;
  /// Prometheus text of the Redis client, bus and store (claps_cluster_*, claps_redis_*).
  std::string metrics_text() const;

  /// After the engine is idle: destroys store, bus and client (in that order),
  /// closing their uv handles; the loop must run once more. Later calls of the
  /// hooks above do nothing.
  void shutdown();

  struct impl;

private:
  explicit cluster_node(std::unique_ptr<impl> impl);
  std::unique_ptr<impl> impl_;
};

} // namespace claps::server
