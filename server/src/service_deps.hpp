// service_deps.hpp - what the WebSocket and HTTP services share: the engine
// and the server-wide limits. Wiring only; each piece has its own file.
#pragma once

#include "article_allowlist.hpp"
#include "auth.hpp"
#include "client_limits.hpp"
#include "cluster.hpp"
#include "fanout.hpp"
#include "inbound.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "options.hpp"
#include "subscribers.hpp"

#include <claps/engine.hpp>

#include <uv.h>

#include <cstddef>
#include <functional>
#include <memory>

namespace claps::server {

/// Counts long-lived connections (WebSocket sessions and SSE streams)
/// against --max-connections, and refuses new ones while draining.
struct connection_admission {
  std::size_t max = 19000;
  std::size_t open = 0;
  std::size_t reserved = 0;  // upgrades confirmed but not yet established
  bool draining = false;
  bool has_room() const noexcept { return open + reserved < max; }
  /// Called when `open` drops to zero while draining.
  std::function<void()> on_drained;
  void closed_one() {
    if (open > 0) --open;
    if (draining && open == 0 && on_drained) on_drained();
  }
};

struct service_deps {
  claps::engine& engine;
  endpoint_registry& registry;
  fanout& fan;
  server_metrics& metrics;
  const server_options& options;
  const article_allowlist& allowlist;
  authenticator& auth;
  connection_admission& admission;
  inbound_parser& parser;
  client_limits& limits;
  const logger& log;
  uv_loop_t* loop;
  // Set when this node shares Redis with others: asked to load the other
  // nodes' parts before a first snapshot or a read.
  cluster_node* cluster = nullptr;

  std::uint64_t now_ms() const noexcept { return uv_now(loop); }
  /// Stops `sub` watching everything, after the current engine callback if
  /// one is running (the engine forbids mutation from its callbacks).
  void release(subscriber_id sub, std::unique_ptr<endpoint> owner = nullptr) {
    fan.release(engine, sub, std::move(owner));
  }
};

}  // namespace claps::server
