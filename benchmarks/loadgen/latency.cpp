#include "latency.hpp"

#include <algorithm>
#include <bit>

namespace claps::loadgen {

namespace {
// Values below 128 us get their own bucket; above, 64 buckets per power of two.
constexpr std::size_t linear_buckets = 128;
constexpr std::size_t sub_buckets = 64;
constexpr std::size_t max_shift = 40;
}  // namespace

latency_histogram::latency_histogram() : buckets_(linear_buckets + max_shift * sub_buckets, 0) {}

std::size_t latency_histogram::bucket_of(std::uint64_t us) noexcept {
  if (us < linear_buckets) return static_cast<std::size_t>(us);
  const unsigned msb = 63u - static_cast<unsigned>(std::countl_zero(us));
  const unsigned shift = msb - 6;  // (us >> shift) is in [64, 127]
  if (shift > max_shift) return linear_buckets + max_shift * sub_buckets - 1;
  return linear_buckets + (shift - 1) * sub_buckets + ((us >> shift) - sub_buckets);
}

std::uint64_t latency_histogram::bucket_value(std::size_t bucket) noexcept {
  if (bucket < linear_buckets) return bucket;
  const std::size_t shift = (bucket - linear_buckets) / sub_buckets + 1;
  const std::uint64_t mantissa = (bucket - linear_buckets) % sub_buckets + sub_buckets;
  // The middle of the bucket.
  return (mantissa << shift) + (std::uint64_t{1} << (shift - 1));
}

void latency_histogram::record(std::uint64_t us) noexcept {
  ++buckets_[bucket_of(us)];
  ++count_;
  max_us_ = std::max(max_us_, us);
}

double latency_histogram::percentile_ms(double q) const noexcept {
  if (count_ == 0) return 0.0;
  const auto rank = static_cast<std::uint64_t>(q * static_cast<double>(count_ - 1)) + 1;
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    seen += buckets_[b];
    if (seen >= rank) return static_cast<double>(std::min(bucket_value(b), max_us_)) / 1000.0;
  }
  return max_ms();
}

std::vector<std::pair<double, double>> latency_histogram::cdf() const {
  std::vector<std::pair<double, double>> points;
  std::uint64_t seen = 0;
  for (std::size_t b = 0; b < buckets_.size(); ++b) {
    if (!buckets_[b]) continue;
    seen += buckets_[b];
    points.emplace_back(static_cast<double>(std::min(bucket_value(b), max_us_)) / 1000.0,
                        static_cast<double>(seen) / static_cast<double>(count_));
  }
  return points;
}

latency_tracker::latency_tracker(std::size_t articles) : articles_(articles) {}

latency_tracker::sub_id latency_tracker::add_subscription(std::uint32_t article) {
  const auto id = static_cast<sub_id>(subs_.size());
  subs_.emplace_back();
  subs_.back().article = article;
  articles_[article].viewers.push_back(id);
  return id;
}

void latency_tracker::drop_subscription(sub_id sub) noexcept { subs_[sub].live = false; }

void latency_tracker::on_total(sub_id id, std::int64_t total, std::uint32_t now_us) {
  subscription& sub = subs_[id];
  if (!sub.live) return;
  if (sub.last_seen != unseen && total <= sub.last_seen) return;
  if (sub.last_seen != unseen) {
    // Settle the waiting claps this receipt reveals: ack_total in (last_seen, total].
    const auto& claps = articles_[sub.article].claps;
    auto it = std::upper_bound(claps.begin(), claps.end(), sub.last_seen,
                               [](std::int64_t v, const waiting_clap& c) { return v < c.ack_total; });
    for (; it != claps.end() && it->ack_total <= total; ++it)
      histogram_.record(static_cast<std::uint32_t>(now_us - it->sent_us));
  }
  sub.last_seen = total;
  sub.totals[sub.ring_next] = total;
  sub.times[sub.ring_next] = now_us;
  sub.ring_next = static_cast<std::uint8_t>((sub.ring_next + 1) % ring_size);
  if (sub.ring_used < ring_size) ++sub.ring_used;
}

void latency_tracker::on_ack(std::uint32_t article, std::int64_t ack_total, std::uint32_t sent_us) {
  article_state& state = articles_[article];
  if (state.viewers.empty()) return;
  for (const sub_id id : state.viewers) {
    const subscription& sub = subs_[id];
    if (!sub.live || sub.last_seen == unseen) continue;
    ++pairs_expected_;
    if (sub.last_seen < ack_total) continue;  // settled later by on_total
    // Already seen: find the oldest kept receipt that includes the clap.
    const std::size_t oldest = (sub.ring_next + ring_size - sub.ring_used) % ring_size;
    std::uint32_t seen_at = sub.times[oldest];
    bool found = false;
    for (std::size_t k = 0; k < sub.ring_used; ++k) {
      const std::size_t slot = (oldest + k) % ring_size;
      if (sub.totals[slot] >= ack_total) {
        seen_at = sub.times[slot];
        found = k > 0 || sub.ring_used < ring_size;
        break;
      }
    }
    if (!found) ++ring_overflows_;
    // A receipt before the send can only come from clock granularity; clamp to 0.
    histogram_.record(static_cast<std::int32_t>(seen_at - sent_us) < 0 ? 0 : seen_at - sent_us);
  }
  auto pos = std::upper_bound(state.claps.begin(), state.claps.end(), ack_total,
                              [](std::int64_t v, const waiting_clap& c) { return v < c.ack_total; });
  state.claps.insert(pos, waiting_clap{ack_total, sent_us});
}

}  // namespace claps::loadgen
