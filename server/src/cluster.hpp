// cluster.hpp - clapsd as one node of several sharing Redis (--redis or
// --sentinel with --node-id).
//
// A cluster_node owns the node's redis_client, redis_bus and redis_store. The
// engine does the rest through its store (claps::redis_store): it has each
// tick's claps decided across nodes, reports its rooms, and hears the other
// nodes' parts. clapsd only asks the store, before answering a read or a
// first subscription, to load what it does not know yet, so that answers are
// global.
//
// Without the flags clapsd never builds one and runs on LMDB alone.
#pragma once

#include "log.hpp"
#include "options.hpp"

#include <claps/store.hpp>

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace claps::server {

class cluster_node {
public:
  /// Connects (asynchronously) to Redis as options say, wrapping `local`
  /// (which must outlive the node). Null with `error` set when the Redis
  /// flags do not parse or this build has no Redis support.
  static std::unique_ptr<cluster_node> create(uv_loop_t* loop, store& local, const server_options& options,
                                              const logger& log, std::string& error);
  ~cluster_node();
  cluster_node(const cluster_node&) = delete;
  cluster_node& operator=(const cluster_node&) = delete;

  /// The store to hand the engine (a redis_store over `local`).
  claps::store& store() noexcept;

  /// Before a snapshot or a read of `articles`: loads the other nodes' parts
  /// (and `user`'s claps through them) unless the store knows them, then
  /// calls `done()` from the loop, or at once when nothing is to be loaded
  /// or Redis is unreachable (the answer is then partial: snapshot::global
  /// is false). Never after shutdown().
  void before_read(std::string_view user, std::span<const std::string_view> articles,
                   std::function<void()> done);

  /// True while commits are acknowledged only as locally durable.
  bool degraded() const noexcept;
  /// True while another data directory holds this node's --node-id in Redis
  /// (nothing is written there; /readyz answers 503).
  bool node_id_taken() const noexcept;
  /// The Redis side at a glance, for the admin page.
  struct status {
    bool connected = false;    // the command connection (every master on Redis Cluster)
    bool bus_healthy = false;  // the subscription connection
    bool degraded = false;
    bool node_id_taken = false;
    bool walking_journal = false;  // a full re-assertion of the journal is due or running
    std::size_t masters = 0;
    std::uint64_t dirty_keys = 0;  // waiting to be written to Redis
  };
  status current_status() const;
  /// A node sharing Redis, as this node's store knows it (redis_node_info).
  struct known_node {
    std::string id;
    bool self = false;
    std::optional<std::uint64_t> heartbeat_age_ms;  // empty: no heartbeat read yet
    bool live = false;
    std::int64_t total = 0;  // its part of the totals of the articles this node knows
    std::uint32_t viewers = 0;
    std::size_t articles = 0;
  };
  /// Every node sharing Redis, this one included, sorted by id; no Redis request.
  std::vector<known_node> nodes() const;
  /// Prometheus text of the Redis client, bus and store (claps_cluster_*, claps_redis_*).
  std::string metrics_text() const;

  /// After the engine is idle: closes the store (which the engine may keep
  /// using, locally only) and destroys bus and client, closing their uv
  /// handles; the loop must run once more. Idempotent.
  void shutdown();

  struct impl;

private:
  explicit cluster_node(std::unique_ptr<impl> impl);
  std::unique_ptr<impl> impl_;
};

}  // namespace claps::server
