// fanout.hpp - the engine's callbacks: encode each changed article once,
// hand each subscriber its changed articles, route results to their senders.
#pragma once

#include "log.hpp"
#include "metrics.hpp"
#include "subscribers.hpp"

#include <claps/engine.hpp>

#include <functional>
#include <memory>
#include <span>
#include <vector>

namespace claps::server {

class fanout {
public:
  fanout(endpoint_registry& registry, const logger& log) : registry_(registry), log_(log) {}

  /// Callbacks bound to this object; it must outlive the engine.
  engine_callbacks callbacks();

  /// True while the engine is inside a callback of ours: engine mutations
  /// (e.g. unsubscribe_all from a connection that closed) must then wait.
  bool in_engine_callback() const noexcept { return depth_ > 0; }

  /// engine.unsubscribe_all(sub) now, or once the running callback returns;
  /// `owner` (the endpoint behind `sub`, if the caller is done with it) is
  /// destroyed only after that, because deliveries reach it without a lookup.
  void release(engine& e, subscriber_id sub, std::unique_ptr<endpoint> owner = nullptr);
  /// Runs the releases deferred by release(); call after each loop pass.
  void run_deferred(engine& e);

  /// Called when the store's health changes (empty: healthy again).
  /// An op came back undecided (op_result::error), for the metrics.
  std::function<void()> on_refused;
  /// Every changed article of an emission, and every decided op: what the
  /// admin page's article_watch follows. Optional.
  std::function<void(std::span<const article_update>)> on_tick;
  std::function<void(const op_result&)> on_result;

private:
  struct depth_guard {
    int& d;
    explicit depth_guard(int& depth) : d(depth) { ++d; }
    ~depth_guard() { --d; }
  };
  endpoint_registry& registry_;
  const logger& log_;
  tick_scratch scratch_;
  int depth_ = 0;
  std::vector<subscriber_id> deferred_;
  std::vector<std::unique_ptr<endpoint>> graveyard_;
};

}  // namespace claps::server
