// subscribers.hpp - who the engine's subscriber ids and op cookies belong to.
//
// WebSocket sessions, SSE streams and pending REST requests are endpoints.
// The engine only knows numbers: a subscriber_id is an endpoint id, and each
// clap/undo gets a cookie that maps back to its endpoint and op id. An
// endpoint that went away is simply missing, so late results are dropped.
#pragma once

#include <claps/engine.hpp>

#include <chrono>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>

namespace claps::server {

/// Per-tick scratch shared by every endpoint, so multi-article frames reuse
/// one buffer instead of allocating per frame.
struct tick_scratch {
  std::string frame;
};

/// When clapsd read the message that submitted an op (a monotonic clock).
using op_received_at = std::chrono::steady_clock::time_point;

class endpoint {
public:
  virtual ~endpoint() = default;
  /// This tick's changed articles among those the endpoint watches.
  virtual void on_update(std::span<const article_update* const> updates, tick_scratch& scratch) = 0;
  /// The durable outcome of a clap/undo this endpoint submitted; `received`
  /// is what track_op() was given.
  virtual void on_result(const op_result& result, std::string_view op_id, op_received_at received) = 0;
  /// The engine refused a clap/undo this endpoint submitted (its op id as
  /// sent). Called instead of on_result, possibly after the submitting
  /// callback returned (across nodes an op waits for a Redis lookup first).
  virtual void on_refused(std::error_code ec, std::string_view op_id) = 0;
  /// Unique per registration, so a result never reaches a newer endpoint
  /// that happens to live at a freed one's address.
  std::uint64_t serial = 0;
  /// Memory on_update() touches beyond the endpoint itself (a WebSocket's
  /// lws connection), prefetched a few deliveries ahead. May be null.
  const void* hot_peer = nullptr;
};

class endpoint_registry {
public:
  /// Registers an endpoint; the returned id is its subscriber_id. The id is
  /// the endpoint's address, so the engine's deliveries need no lookup.
  std::uint64_t add(endpoint& e);
  /// The endpoint behind a subscriber id the engine delivers to. Valid while
  /// the engine knows the subscriber (ids are released before endpoints die).
  static endpoint& subscriber(std::uint64_t id) noexcept { return *reinterpret_cast<endpoint*>(id); }
  void remove(std::uint64_t id) noexcept;
  endpoint* find(std::uint64_t id) const noexcept;

  /// Remembers who submitted an op, and when its message was read (handed
  /// back to on_result); returns the cookie to pass the engine.
  std::uint64_t track_op(std::uint64_t endpoint_id, std::string_view op_id, op_received_at received = {});
  /// Forgets a cookie whose submission failed (no result will come).
  void forget_op(std::uint64_t cookie) noexcept;
  /// Delivers a result to its endpoint, if that endpoint still exists.
  void complete_op(const op_result& result);
  /// Delivers a refusal instead of a result, if the endpoint still exists.
  void refuse_op(std::uint64_t cookie, std::error_code ec);

private:
  struct pending_op {
    std::uint64_t endpoint_id;
    std::uint64_t serial;
    std::string op_id;
    op_received_at received;
  };
  std::uint64_t next_serial_ = 1;
  std::uint64_t next_cookie_ = 1;
  std::unordered_map<std::uint64_t, endpoint*> endpoints_;
  std::unordered_map<std::uint64_t, pending_op> ops_;
};

}  // namespace claps::server
