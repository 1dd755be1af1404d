// metrics.hpp - clapsd's counters and their Prometheus text rendering.
// Counters are plain integers: everything runs on the one loop thread.
#pragma once

#include <claps/engine.hpp>

#include <array>
#include <cstdint>
#include <string>

namespace claps::server {

/// Bucket bounds (seconds) of claps_commit_latency_seconds: store commits,
/// from 100 us (LMDB without fsync) to 2.5 s (a Redis deadline).
inline constexpr std::array<double, 14> commit_latency_bounds{
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5};
/// Bucket bounds (seconds) of claps_ack_latency_seconds: an ack waits for its
/// tick (25 ms by default) and then the commit, so the buckets are dense up to
/// a few ticks and reach the Redis deadline (2 s) plus a tick.
inline constexpr std::array<double, 16> ack_latency_bounds{
    0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5};

/// A fixed-bucket histogram in seconds, rendered as a Prometheus histogram.
template <const auto& Bounds>
class seconds_histogram {
public:
  static constexpr const auto& bounds = Bounds;
  void observe(double seconds) noexcept;
  void render(std::string& out, const char* name, const char* help) const;
  /// Observations per bucket (not cumulative); those past the last bound are count() minus their sum.
  const std::array<std::uint64_t, Bounds.size()>& buckets() const noexcept { return buckets_; }
  std::uint64_t count() const noexcept { return count_; }
  double sum() const noexcept { return sum_; }

private:
  std::array<std::uint64_t, Bounds.size()> buckets_{};  // non-cumulative
  std::uint64_t count_ = 0;
  double sum_ = 0;
};
using commit_latency_histogram = seconds_histogram<commit_latency_bounds>;
/// Tick durations share commit latency's buckets (0.1 ms to seconds).
using tick_duration_histogram = seconds_histogram<commit_latency_bounds>;
using ack_latency_histogram = seconds_histogram<ack_latency_bounds>;

/// Why a connection attempt was refused.
enum class refusal {
  max_connections,
  origin,
  unauthorized,
  bad_request,
  draining,
  per_user,
  per_address,
  rate_limited,
  count_
};
/// Why a clap or undo was refused before or by the engine.
enum class clap_rejection { rate_limited, invalid, unavailable, count_ };

struct server_metrics {
  std::uint64_t ws_connections = 0;  // gauge
  std::uint64_t ws_connections_total = 0;
  std::uint64_t sse_streams = 0;  // gauge
  std::array<std::uint64_t, static_cast<int>(refusal::count_)> refused{};
  std::array<std::uint64_t, static_cast<int>(clap_rejection::count_)> claps_rejected{};
  std::uint64_t messages_received = 0;
  std::uint64_t bad_messages = 0;
  std::uint64_t update_frames_sent = 0;      // tick frames written to WebSocket clients
  std::uint64_t update_frames_deferred = 0;  // tick frames that waited for a writable socket
  std::uint64_t sse_events_sent = 0;
  std::uint64_t acks_sent = 0;
  std::uint64_t slow_client_drops = 0;
  std::uint64_t sse_stall_drops = 0;
  std::uint64_t rate_limited_reads = 0;  // subscribes and REST reads refused by the user's bucket
  std::uint64_t oversize_closes = 0;
  std::uint64_t http_requests = 0;
  commit_latency_histogram commit_latency;
  tick_duration_histogram tick_duration;  // wall time of each engine tick (uv_driver::on_tick)
  /// WebSocket clap/undo: from reading the frame to queueing its ack.
  ack_latency_histogram ack_latency;

  void refuse(refusal r) noexcept { ++refused[static_cast<int>(r)]; }
  void reject(clap_rejection r) noexcept { ++claps_rejected[static_cast<int>(r)]; }
};

/// Renders everything as Prometheus text (version 0.0.4).
std::string render_prometheus(const server_metrics& m, const engine_stats& s, bool ready);

/// The store's space as Prometheus text: claps_store_full always, the
/// claps_lmdb_map_* gauges when the store measures (store_space::max_bytes).
std::string render_store_space(const store_space& space);
/// The rate limiter's table sizes (client_limits): users and addresses it remembers.
std::string render_limiter(std::size_t users, std::size_t addresses);

}  // namespace claps::server
