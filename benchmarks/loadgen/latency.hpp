// latency.hpp - clap-to-viewer latency with coalescing servers.
//
// Method. Every accepted clap's ack carries the article's committed total
// after the batch holding that clap (T_ack). Totals only grow (the tool never
// undoes), so a viewer has seen a total that includes the clap exactly when
// it has received a total >= T_ack; the first such receipt gives that
// viewer's latency, measured from when the clap was written to its socket.
// A coalescing server may skip intermediate totals: a viewer jumping from 10
// to 14 has seen every clap whose T_ack is in (10, 14] at that instant.
//
// The ack and the viewers' updates race (they leave the server in the same
// tick), so both orders are handled:
//   - update before ack: each subscription keeps its last few receipts
//     (total, time); on the ack we look up the first receipt >= T_ack;
//   - ack before update: the clap waits in its article's list, sorted by
//     T_ack; each update then settles every waiting clap in
//     (last seen total, new total] with one binary search.
// Each (clap, viewer) pair is counted once, so samples = claps x viewers when
// every viewer eventually sees every clap; the shortfall is reported as
// `missing`.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

namespace claps::loadgen {

/// Log-linear histogram of microseconds (under 1% relative error).
class latency_histogram {
public:
  latency_histogram();
  void record(std::uint64_t us) noexcept;
  std::uint64_t count() const noexcept { return count_; }
  /// q in [0, 1]; 0 when empty.
  double percentile_ms(double q) const noexcept;
  double max_ms() const noexcept { return static_cast<double>(max_us_) / 1000.0; }
  /// (latency ms, fraction of samples <= it), one point per non-empty bucket.
  std::vector<std::pair<double, double>> cdf() const;

private:
  static std::size_t bucket_of(std::uint64_t us) noexcept;
  static std::uint64_t bucket_value(std::size_t bucket) noexcept;
  std::vector<std::uint64_t> buckets_;
  std::uint64_t count_ = 0;
  std::uint64_t max_us_ = 0;
};

class latency_tracker {
public:
  using sub_id = std::uint32_t;
  explicit latency_tracker(std::size_t articles);

  /// A viewer's subscription to `article`; it counts once its first total arrives.
  sub_id add_subscription(std::uint32_t article);
  /// The viewer's connection is gone; it is no longer expected to see claps.
  void drop_subscription(sub_id sub) noexcept;
  /// The subscription received `total` at `now_us`.
  void on_total(sub_id sub, std::int64_t total, std::uint32_t now_us);
  /// An accepted clap on `article` sent at `sent_us` was acknowledged with `ack_total`.
  void on_ack(std::uint32_t article, std::int64_t ack_total, std::uint32_t sent_us);

  const latency_histogram& histogram() const noexcept { return histogram_; }
  /// (clap, viewer) pairs that should have been seen, and those seen.
  std::uint64_t pairs_expected() const noexcept { return pairs_expected_; }
  std::uint64_t pairs_seen() const noexcept { return histogram_.count(); }
  /// Pairs whose update was older than the receipts kept; timed at the oldest kept.
  std::uint64_t ring_overflows() const noexcept { return ring_overflows_; }

private:
  static constexpr std::size_t ring_size = 8;
  static constexpr std::int64_t unseen = std::numeric_limits<std::int64_t>::min();
  struct subscription {
    std::int64_t last_seen = unseen;
    std::uint32_t article = 0;
    std::uint8_t ring_next = 0;
    std::uint8_t ring_used = 0;
    bool live = true;
    std::array<std::int64_t, ring_size> totals{};
    std::array<std::uint32_t, ring_size> times{};
  };
  struct waiting_clap {
    std::int64_t ack_total;
    std::uint32_t sent_us;
  };
  struct article_state {
    std::vector<sub_id> viewers;
    std::vector<waiting_clap> claps;  // sorted by ack_total
  };
  std::vector<subscription> subs_;
  std::vector<article_state> articles_;
  latency_histogram histogram_;
  std::uint64_t pairs_expected_ = 0;
  std::uint64_t ring_overflows_ = 0;
};

}  // namespace claps::loadgen
