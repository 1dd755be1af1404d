#include "admin_stats.hpp"

#include "frames.hpp"

#include <algorithm>
#include <cstdio>

namespace claps::server {

article_watch::entry& article_watch::find_or_add(std::string_view article, std::uint64_t now_ms) {
  auto it = entries_.find(article);
  if (it == entries_.end()) {
    if (entries_.size() >= max_articles_) {
      // Full: the article idle longest makes room.
      auto idlest = std::min_element(entries_.begin(), entries_.end(), [](const auto& a, const auto& b) {
        return a.second.last_active_ms < b.second.last_active_ms;
      });
      entries_.erase(idlest);
    }
    it = entries_.emplace(std::string(article), entry{}).first;
    it->second.shown.article = article;
  }
  it->second.last_active_ms = now_ms;
  return it->second;
}

void article_watch::observe(std::span<const article_update> updates, std::uint64_t now_ms) {
  for (const auto& u : updates) {
    entry& e = find_or_add(u.article, now_ms);
    e.shown.total = u.total;
    e.shown.viewers = u.viewers;
    e.shown.local_viewers = u.local_viewers;
  }
}

void article_watch::room_changed(std::string_view article, bool watched, std::uint32_t local_viewers,
                                 std::uint64_t now_ms) {
  if (!watched) local_viewers = 0;
  if (local_viewers == 0 && entries_.find(article) == entries_.end()) return;
  entry& e = find_or_add(article, now_ms);
  const std::uint32_t remote =
      e.shown.viewers >= e.shown.local_viewers ? e.shown.viewers - e.shown.local_viewers : 0;
  e.shown.local_viewers = local_viewers;
  e.shown.viewers = remote + local_viewers;
}

void article_watch::accepted(std::string_view article, std::int32_t claps, std::int64_t total,
                             std::uint64_t now_ms) {
  if (claps <= 0) return;
  entry& e = find_or_add(article, now_ms);
  e.claps_since_sample += claps;
  e.shown.total = total;
}

void article_watch::sample(std::uint64_t now_ms) {
  const std::uint64_t elapsed =
      last_sample_ms_ == 0 || now_ms <= last_sample_ms_ ? 1000 : now_ms - last_sample_ms_;
  last_sample_ms_ = now_ms;
  for (auto it = entries_.begin(); it != entries_.end();) {
    entry& e = it->second;
    e.shown.claps_per_s = static_cast<double>(e.claps_since_sample) * 1000.0 / static_cast<double>(elapsed);
    e.claps_since_sample = 0;
    const bool idle =
        e.shown.viewers == 0 && e.shown.claps_per_s == 0 && now_ms - e.last_active_ms >= idle_ms_;
    it = idle ? entries_.erase(it) : std::next(it);
  }
}

namespace {
template <class Better>
std::vector<article_activity> top(const auto& entries, std::size_t n, auto has, Better better) {
  std::vector<article_activity> out;
  for (const auto& [id, e] : entries)
    if (has(e.shown)) out.push_back(e.shown);
  const std::size_t keep = std::min(n, out.size());
  std::partial_sort(out.begin(), out.begin() + static_cast<std::ptrdiff_t>(keep), out.end(), better);
  out.resize(keep);
  return out;
}
}  // namespace

std::vector<article_activity> article_watch::top_by_viewers(std::size_t n) const {
  return top(
      entries_, n, [](const article_activity& a) { return a.viewers > 0; },
      [](const article_activity& a, const article_activity& b) {
        if (a.viewers != b.viewers) return a.viewers > b.viewers;
        if (a.total != b.total) return a.total > b.total;
        return a.article < b.article;
      });
}

std::vector<article_activity> article_watch::top_by_claps(std::size_t n) const {
  return top(
      entries_, n, [](const article_activity& a) { return a.claps_per_s > 0; },
      [](const article_activity& a, const article_activity& b) {
        if (a.claps_per_s != b.claps_per_s) return a.claps_per_s > b.claps_per_s;
        if (a.viewers != b.viewers) return a.viewers > b.viewers;
        return a.article < b.article;
      });
}

latency_summary summarize(std::span<const std::uint64_t> buckets, double sum_seconds) {
  latency_summary s;
  for (auto b : buckets) s.count += b;
  if (s.count == 0) return s;
  const auto& bounds = commit_latency_histogram::bounds;
  auto bound_ms = [&](std::size_t i) { return bounds[std::min(i, bounds.size() - 1)] * 1000.0; };
  auto percentile = [&](double q) {
    // The smallest bucket holding at least q of the observations.
    const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(s.count) + 0.999999);
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < buckets.size(); ++i) {
      seen += buckets[i];
      if (seen >= std::max<std::uint64_t>(rank, 1)) return bound_ms(i);
    }
    return bound_ms(buckets.size() - 1);
  };
  s.p50_ms = percentile(0.50);
  s.p99_ms = percentile(0.99);
  s.avg_ms = sum_seconds * 1000.0 / static_cast<double>(s.count);
  return s;
}

void latency_window::sample(const commit_latency_histogram& h) {
  point p;
  std::uint64_t within = 0;
  for (std::size_t i = 0; i < h.buckets().size(); ++i) {
    p.buckets[i] = h.buckets()[i];
    within += h.buckets()[i];
  }
  p.buckets.back() = h.count() - within;
  p.sum = h.sum();
  history_.push_back(p);
  while (history_.size() > window_ + 1) history_.pop_front();
}

latency_summary latency_window::summary() const {
  if (history_.size() < 2) return {};
  const point& first = history_.front();
  const point& last = history_.back();
  std::array<std::uint64_t, commit_latency_histogram::bounds.size() + 1> delta{};
  for (std::size_t i = 0; i < delta.size(); ++i) delta[i] = last.buckets[i] - first.buckets[i];
  return summarize(delta, last.sum - first.sum);
}

namespace {

void number(std::string& out, std::string_view key, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "\"%.*s\":%.6g", static_cast<int>(key.size()), key.data(), v);
  out += buf;
}
void count(std::string& out, std::string_view key, std::uint64_t v) {
  out += '"';
  out += key;
  out += "\":";
  out += std::to_string(v);
}
void flag(std::string& out, std::string_view key, bool v) {
  out += '"';
  out += key;
  out += "\":";
  out += v ? "true" : "false";
}
void optional_ms(std::string& out, std::string_view key, const std::optional<double>& v) {
  if (v) {
    number(out, key, *v);
    return;
  }
  out += '"';
  out += key;
  out += "\":null";
}

// ,"key":{window_s,count,p50_ms,p99_ms,avg_ms}
void latency(std::string& out, std::string_view key, const latency_summary& l, std::size_t window_s) {
  out += ",\"";
  out += key;
  out += "\":{";
  count(out, "window_s", window_s);
  out += ',';
  count(out, "count", l.count);
  out += ',';
  optional_ms(out, "p50_ms", l.p50_ms);
  out += ',';
  optional_ms(out, "p99_ms", l.p99_ms);
  out += ',';
  optional_ms(out, "avg_ms", l.avg_ms);
  out += '}';
}

void articles(std::string& out, std::string_view key, const std::vector<article_activity>& list) {
  out += '"';
  out += key;
  out += "\":[";
  for (std::size_t i = 0; i < list.size(); ++i) {
    const auto& a = list[i];
    if (i) out += ',';
    out += "{\"article\":";
    append_json_string(out, a.article);
    out += ',';
    count(out, "viewers", a.viewers);
    out += ',';
    count(out, "local_viewers", a.local_viewers);
    out += ',';
    // Other nodes' readers: what the redis_store reports of their parts.
    count(out, "remote_viewers", a.viewers >= a.local_viewers ? a.viewers - a.local_viewers : 0);
    out += ",\"total\":" + std::to_string(a.total) + ',';
    number(out, "claps_per_s", a.claps_per_s);
    out += '}';
  }
  out += ']';
}

}  // namespace

std::string render_admin_frame(const admin_snapshot& s) {
  const server_metrics& m = s.metrics;
  const engine_stats& e = s.engine;
  auto refused = [&](refusal r) { return m.refused[static_cast<int>(r)]; };
  auto rejected = [&](clap_rejection r) { return m.claps_rejected[static_cast<int>(r)]; };
  std::string out;
  out.reserve(4096);
  out += "{\"type\":\"admin\",\"node\":";
  append_json_string(out, s.node_id);
  out += ',';
  count(out, "uptime_s", s.uptime_s);
  out += ',';
  flag(out, "ready", s.ready);
  out += ',';
  flag(out, "draining", s.draining);
  out += ',';
  flag(out, "degraded", s.redis && s.redis->degraded);
  out += ',';
  flag(out, "store_full", s.store_full);

  out += ",\"connections\":{";
  count(out, "ws", s.ws);
  out += ',';
  count(out, "sse", s.sse);
  out += ',';
  count(out, "rest_in_flight", s.rest_in_flight);
  out += ',';
  count(out, "admin", s.admin);
  out += ',';
  count(out, "max", s.max_connections);
  out += ',';
  count(out, "ws_total", s.ws_total);
  out += '}';

  out += ",\"articles\":{";
  articles(out, "by_viewers", s.by_viewers);
  out += ',';
  articles(out, "by_claps_per_s", s.by_claps);
  out += '}';

  out += ",\"engine\":{";
  number(out, "ticks_per_s", s.ticks_per_s);
  out += ',';
  number(out, "commits_per_s", s.commits_per_s);
  out += ',';
  number(out, "claps_per_s", s.claps_per_s);
  out += ',';
  count(out, "pending_ops", e.pending_ops);
  out += ',';
  count(out, "subscribers", e.subscribers);
  out += ',';
  count(out, "subscriptions", e.subscriptions);
  out += ',';
  count(out, "articles_cached", e.articles_cached);
  out += ',';
  count(out, "deliveries_queued", e.deliveries_queued);
  out += ',';
  count(out, "commit_failures", e.commit_failures);
  latency(out, "commit_latency", s.commit_latency, s.latency_window_s);
  latency(out, "tick_duration", s.tick_duration, s.latency_window_s);
  out += '}';

  out += ",\"clients\":{";
  count(out, "slow_ws_closed", m.slow_client_drops);
  out += ',';
  count(out, "stalled_sse_closed", m.sse_stall_drops);
  out += ',';
  count(out, "oversize_closed", m.oversize_closes);
  out += ',';
  count(out, "bad_messages", m.bad_messages);
  out += '}';

  out += ",\"limits\":{";
  count(out, "max_connections", refused(refusal::max_connections));
  out += ',';
  count(out, "per_user", refused(refusal::per_user));
  out += ',';
  count(out, "per_address", refused(refusal::per_address));
  out += ',';
  count(out, "connects_rate_limited", refused(refusal::rate_limited));
  out += ',';
  count(out, "claps_rate_limited", rejected(clap_rejection::rate_limited));
  out += ',';
  count(out, "reads_rate_limited", m.rate_limited_reads);
  out += ',';
  count(out, "claps_over_cap", e.claps_over_cap);
  out += ',';
  count(out, "op_ids_refused", e.refused_op_ids);
  out += ',';
  count(out, "store_full_refused", e.refused_store_full);
  out += ',';
  count(out, "unauthorized", refused(refusal::unauthorized));
  out += ',';
  count(out, "origin", refused(refusal::origin));
  out += '}';

  out += ",\"redis\":";
  if (!s.redis) {
    out += "null";
  } else {
    const redis_state& r = *s.redis;
    out += '{';
    flag(out, "connected", r.connected);
    out += ',';
    flag(out, "bus_healthy", r.bus_healthy);
    out += ',';
    flag(out, "degraded", r.degraded);
    out += ',';
    flag(out, "node_id_taken", r.node_id_taken);
    out += ',';
    flag(out, "walking_journal", r.walking_journal);
    out += ',';
    count(out, "masters", r.masters);
    out += ',';
    count(out, "dirty_keys", r.dirty_keys);
    out += ",\"nodes\":[";
    for (std::size_t i = 0; i < r.nodes.size(); ++i) {
      const cluster_node::known_node& n = r.nodes[i];
      if (i > 0) out += ',';
      out += "{\"id\":";
      append_json_string(out, n.id);
      out += ',';
      flag(out, "self", n.self);
      out += ',';
      flag(out, "live", n.live);
      out += ",\"heartbeat_age_ms\":";
      if (n.heartbeat_age_ms) out += std::to_string(*n.heartbeat_age_ms);
      else out += "null";
      out += ',';
      count(out, "viewers", n.viewers);
      out += ",\"total\":";
      out += std::to_string(n.total);
      out += ',';
      count(out, "articles", n.articles);
      out += '}';
    }
    out += "]}";
  }
  out += '}';
  return out;
}

}  // namespace claps::server
