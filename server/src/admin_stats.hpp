// admin_stats.hpp - what the live admin page shows, as data: the hot
// articles seen in the engine's ticks and results, commit latency over a
// recent window, and the `admin` frame that carries a snapshot of it all.
// No I/O: clapsd fills an admin_snapshot from its counters once a second and
// sends render_admin_frame() to the subscribed admin sockets (admin_channel).
#pragma once

#include "cluster.hpp"
#include "metrics.hpp"

#include <claps/engine.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace claps::server {

/// One article as the admin page lists it.
struct article_activity {
  std::string article;
  std::int64_t total = 0;           // committed, with other nodes' parts when known
  std::uint32_t viewers = 0;        // readers on every node
  std::uint32_t local_viewers = 0;  // this node's readers
  double claps_per_s = 0;           // claps accepted on this node over the last sample
};

/// The articles seen lately: totals and viewers from each tick's updates
/// (engine_callbacks::tick_updates), claps from this node's op results.
/// Articles with no viewers and no claps for `idle_ms` are forgotten; at most
/// `max_articles` are kept (the idlest go first).
class article_watch {
public:
  explicit article_watch(std::size_t max_articles = 4096, std::uint64_t idle_ms = 60000)
      : max_articles_(max_articles), idle_ms_(idle_ms) {}
  void observe(std::span<const article_update> updates, std::uint64_t now_ms);
  /// This node's room of `article` changed (store::room_changed): its local
  /// readers now; other nodes' part stays as last reported.
  void room_changed(std::string_view article, bool watched, std::uint32_t local_viewers,
                    std::uint64_t now_ms);
  /// A clap or undo decided on this node, with the article's total after it
  /// (negative counts, undos, add no claps).
  void accepted(std::string_view article, std::int32_t claps, std::int64_t total, std::uint64_t now_ms);
  /// Once a second: turns the claps since the last sample into claps/s and
  /// forgets idle articles.
  void sample(std::uint64_t now_ms);
  /// The top `n` by viewers (ties: by total), or by claps/s (ties: by viewers); none with 0 of it.
  std::vector<article_activity> top_by_viewers(std::size_t n) const;
  std::vector<article_activity> top_by_claps(std::size_t n) const;
  std::size_t size() const noexcept { return entries_.size(); }

private:
  struct entry {
    article_activity shown;
    std::int64_t claps_since_sample = 0;
    std::uint64_t last_active_ms = 0;
  };
  entry& find_or_add(std::string_view article, std::uint64_t now_ms);
  std::size_t max_articles_;
  std::uint64_t idle_ms_;
  std::uint64_t last_sample_ms_ = 0;
  // Looked up by string_view: a tick's updates allocate nothing for known articles.
  struct id_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view id) const noexcept { return std::hash<std::string_view>{}(id); }
  };
  std::unordered_map<std::string, entry, id_hash, std::equal_to<>> entries_;
};

/// Percentiles of a commit_latency_histogram's observations over a window, as the
/// upper bounds of the buckets they fall in (the histogram keeps no more).
struct latency_summary {
  std::uint64_t count = 0;
  std::optional<double> p50_ms;  // empty when nothing was observed
  std::optional<double> p99_ms;
  std::optional<double> avg_ms;
};
/// From bucket counts (non-cumulative, as commit_latency_histogram keeps them);
/// an observation past the last bound counts as that bound.
latency_summary summarize(std::span<const std::uint64_t> buckets, double sum_seconds);

/// Keeps the histogram's counts at each of the last `window` samples, so
/// that the summary covers roughly the last `window` seconds.
class latency_window {
public:
  explicit latency_window(std::size_t window = 10) : window_(window) {}
  void sample(const commit_latency_histogram& h);
  latency_summary summary() const;
  std::size_t seconds() const noexcept { return history_.empty() ? 0 : history_.size() - 1; }

private:
  struct point {
    std::array<std::uint64_t, commit_latency_histogram::bounds.size() + 1> buckets{};
    double sum = 0;
  };
  std::size_t window_;
  std::deque<point> history_;
};

/// The Redis side of a node sharing Redis with others.
struct redis_state {
  bool connected = false;
  bool bus_healthy = false;
  bool degraded = false;
  bool node_id_taken = false;
  bool walking_journal = false;
  std::size_t masters = 0;
  std::uint64_t dirty_keys = 0;
  std::vector<cluster_node::known_node> nodes;  // every node sharing Redis, this one included
};

/// Everything one admin frame says. Counters are as read now; the *_per_s
/// rates are over the last sample.
struct admin_snapshot {
  std::string node_id;  // --node-id, may be empty
  std::uint64_t uptime_s = 0;
  bool ready = false;
  bool draining = false;
  bool store_full = false;
  // Connections by kind.
  std::uint64_t ws = 0;
  std::uint64_t sse = 0;
  std::uint64_t rest_in_flight = 0;
  std::uint64_t admin = 0;
  std::uint64_t max_connections = 0;
  std::uint64_t ws_total = 0;  // accepted since start
  server_metrics metrics;      // refusals, rejections and drops
  engine_stats engine;
  double ticks_per_s = 0;
  double commits_per_s = 0;
  double claps_per_s = 0;  // accepted on this node
  latency_summary commit_latency;
  latency_summary tick_duration;
  std::size_t latency_window_s = 0;
  std::vector<article_activity> by_viewers;
  std::vector<article_activity> by_claps;
  std::optional<redis_state> redis;  // only on a node sharing Redis
};

/// The `admin` frame (JSON text; docs/protocol.md).
std::string render_admin_frame(const admin_snapshot& s);

}  // namespace claps::server
