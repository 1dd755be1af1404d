#include "metrics.hpp"

#include <cstdio>
#include <iterator>

namespace claps::server {
namespace {

void line(std::string& out, const char* name, const char* type, const char* help, double value,
          const char* labels = nullptr) {
  char buf[512];
  if (help) {
    std::snprintf(buf, sizeof buf, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "%s%s%s%s %.17g\n", name, labels ? "{" : "", labels ? labels : "",
                labels ? "}" : "", value);
  out += buf;
}

void counter(std::string& out, const char* name, const char* help, double v) {
  line(out, name, "counter", help, v);
}
void gauge(std::string& out, const char* name, const char* help, double v) {
  line(out, name, "gauge", help, v);
}

}  // namespace

template <const auto& Bounds>
void seconds_histogram<Bounds>::observe(double seconds) noexcept {
  ++count_;
  sum_ += seconds;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (seconds <= bounds[i]) {
      ++buckets_[i];
      return;
    }
  }
}

template <const auto& Bounds>
void seconds_histogram<Bounds>::render(std::string& out, const char* name, const char* help) const {
  char buf[256];
  std::snprintf(buf, sizeof buf, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
  out += buf;
  std::uint64_t cumulative = 0;
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    cumulative += buckets_[i];
    std::snprintf(buf, sizeof buf, "%s_bucket{le=\"%g\"} %llu\n", name, bounds[i],
                  static_cast<unsigned long long>(cumulative));
    out += buf;
  }
  std::snprintf(buf, sizeof buf, "%s_bucket{le=\"+Inf\"} %llu\n%s_sum %.9g\n%s_count %llu\n", name,
                static_cast<unsigned long long>(count_), name, sum_, name,
                static_cast<unsigned long long>(count_));
  out += buf;
}

template class seconds_histogram<commit_latency_bounds>;
template class seconds_histogram<ack_latency_bounds>;

std::string render_prometheus(const server_metrics& m, const engine_stats& s, bool ready) {
  std::string out;
  out.reserve(8192);
  gauge(
      out, "claps_ready",
      "1 while /readyz answers 200: the store commits, the server is not draining and its --node-id is its own",
      ready ? 1 : 0);
  gauge(out, "claps_connections", "Open WebSocket connections", static_cast<double>(m.ws_connections));
  counter(out, "claps_connections_total", "WebSocket connections accepted",
          static_cast<double>(m.ws_connections_total));
  gauge(out, "claps_sse_streams", "Open Server-Sent Events streams", static_cast<double>(m.sse_streams));
  static const char* refusal_names[] = {"max_connections", "origin",   "unauthorized", "bad_request",
                                        "draining",        "per_user", "per_address",  "rate_limited"};
  static_assert(std::size(refusal_names) == static_cast<std::size_t>(refusal::count_));
  for (int i = 0; i < static_cast<int>(refusal::count_); ++i) {
    char labels[64];
    std::snprintf(labels, sizeof labels, "reason=\"%s\"", refusal_names[i]);
    line(out, "claps_connections_refused_total", "counter",
         i == 0 ? "WebSocket/SSE handshakes refused, by reason" : nullptr, static_cast<double>(m.refused[i]),
         labels);
  }
  gauge(out, "claps_subscribers", "Subscribers (connections and SSE streams) known to the engine",
        static_cast<double>(s.subscribers));
  gauge(out, "claps_subscriptions", "Article subscriptions", static_cast<double>(s.subscriptions));
  gauge(out, "claps_articles_cached", "Articles cached by the engine",
        static_cast<double>(s.articles_cached));
  gauge(out, "claps_tallies_cached", "(user, article) tallies cached by the engine (only clappers')",
        static_cast<double>(s.tallies_cached));
  counter(out, "claps_claps_requested_total", "Claps asked for (sum of counts)",
          static_cast<double>(s.claps_requested));
  counter(out, "claps_claps_accepted_total", "Claps accepted and committed (sum of counts)",
          static_cast<double>(s.claps_accepted));
  line(out, "claps_claps_rejected_total", "counter",
       "Claps refused: cap in clap counts, the others in messages", static_cast<double>(s.claps_over_cap),
       "reason=\"cap\"");
  static const char* rejection_names[] = {"rate_limited", "invalid", "unavailable"};
  for (int i = 0; i < static_cast<int>(clap_rejection::count_); ++i) {
    char labels[64];
    std::snprintf(labels, sizeof labels, "reason=\"%s\"", rejection_names[i]);
    double v = static_cast<double>(m.claps_rejected[i]);
    line(out, "claps_claps_rejected_total", "counter", nullptr, v, labels);
  }
  line(out, "claps_claps_rejected_total", "counter", nullptr, static_cast<double>(s.refused_op_ids),
       "reason=\"op_ids\"");
  line(out, "claps_claps_rejected_total", "counter", nullptr, static_cast<double>(s.refused_store_full),
       "reason=\"store_full\"");
  // After the last claps_claps_rejected_total line: a family's samples stay together.
  counter(out, "claps_reads_rate_limited_total",
          "Subscribes, REST reads and SSE opens refused by the rate limit",
          static_cast<double>(m.rate_limited_reads));
  counter(out, "claps_undos_total", "Undos applied", static_cast<double>(s.undos));
  counter(out, "claps_replays_total", "Operations answered from an earlier op id",
          static_cast<double>(s.replays));
  gauge(out, "claps_pending_ops", "Claps/undos not yet durable", static_cast<double>(s.pending_ops));
  counter(out, "claps_ticks_total", "Engine ticks", static_cast<double>(s.ticks));
  counter(out, "claps_commits_total", "Store commits", static_cast<double>(s.commits));
  counter(out, "claps_commit_failures_total", "Failed store commits", static_cast<double>(s.commit_failures));
  m.commit_latency.render(out, "claps_commit_latency_seconds", "Store commit latency");
  m.tick_duration.render(out, "claps_tick_duration_seconds",
                         "Wall time of each engine tick: the loop is held that long");
  m.ack_latency.render(out, "claps_ack_latency_seconds",
                       "WebSocket clap/undo latency: from reading the frame to queueing its ack");
  counter(out, "claps_updates_total", "Changed-article updates encoded (one per article per tick)",
          static_cast<double>(s.updates));
  counter(out, "claps_update_frames_sent_total", "Tick update frames written to WebSocket clients",
          static_cast<double>(m.update_frames_sent));
  counter(out, "claps_update_frames_deferred_total",
          "Tick updates held for a client whose socket was not writable (collapsed per article)",
          static_cast<double>(m.update_frames_deferred));
  counter(out, "claps_sse_events_sent_total", "SSE count events written",
          static_cast<double>(m.sse_events_sent));
  counter(out, "claps_acks_sent_total", "Acks written", static_cast<double>(m.acks_sent));
  counter(out, "claps_slow_client_drops_total", "Clients closed (1008) past --slow-client-bytes",
          static_cast<double>(m.slow_client_drops));
  counter(out, "claps_sse_stall_drops_total", "SSE streams dropped: output stalled past --idle-timeout-s",
          static_cast<double>(m.sse_stall_drops));
  counter(out, "claps_oversize_closes_total", "Clients closed (1009) for a message over the limit",
          static_cast<double>(m.oversize_closes));
  counter(out, "claps_messages_received_total", "WebSocket messages received",
          static_cast<double>(m.messages_received));
  counter(out, "claps_bad_messages_total", "WebSocket messages answered with an error frame",
          static_cast<double>(m.bad_messages));
  counter(out, "claps_http_requests_total", "HTTP requests routed", static_cast<double>(m.http_requests));
  return out;
}

std::string render_limiter(std::size_t users, std::size_t addresses) {
  std::string out;
  gauge(out, "claps_limiter_users",
        "Users the rate limiter remembers (a connection, or a bucket still refilling)",
        static_cast<double>(users));
  gauge(out, "claps_limiter_addresses", "Client addresses the rate limiter remembers",
        static_cast<double>(addresses));
  return out;
}

std::string render_store_space(const store_space& space) {
  std::string out;
  gauge(out, "claps_store_full", "1 while the store is short of space and new claps are refused (store_full)",
        space.accepts_new_keys ? 0 : 1);
  if (space.max_bytes == 0) return out;
  gauge(out, "claps_lmdb_map_used_bytes",
        "LMDB pages in use (last page in use minus free-list pages), in bytes",
        static_cast<double>(space.used_bytes));
  gauge(out, "claps_lmdb_map_size_bytes", "LMDB map size now (it grows by itself up to the maximum)",
        static_cast<double>(space.size_bytes));
  gauge(out, "claps_lmdb_map_max_bytes", "Most the LMDB map may grow to (--lmdb-max-size)",
        static_cast<double>(space.max_bytes));
  return out;
}

}  // namespace claps::server
