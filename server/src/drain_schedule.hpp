// drain_schedule.hpp - the SIGTERM drain's phases and how its closes are
// spread. No I/O: server.cpp runs the schedule on its timers.
#pragma once

#include <cstddef>
#include <cstdint>

namespace claps::server {

/// Where the drain is. `grace`: /readyz says 503 but the listener still
/// accepts and serves, so a balancer's health checks see it before new
/// connections stop. `closing`: the listener is closed and clients are closed
/// with 1001 in batches.
enum class drain_phase { serving, grace, closing };

/// The phase's name in logs and in the claps_drain_phase metric.
const char* phase_name(drain_phase phase) noexcept;

/// 250 ms: the JS client's first reconnect waits a uniform [0, 250 ms) (its
/// backoff base), so one batch's reconnects fill the gap until the next.
inline constexpr std::uint64_t default_close_interval_ms = 250;

/// The closes of `clients` connections spread over a window: `batches`
/// batches, the first at once and one every `interval_ms` after it, so the
/// last goes out one interval before the window ends. Reconnects then reach
/// the other nodes at an even rate, not as a storm.
struct close_schedule {
  std::size_t clients = 0;
  std::size_t batches = 1;
  std::uint64_t interval_ms = 0;
  /// How many batch `i` (0-based) closes: sizes differ by at most one and sum
  /// to `clients`. The last batch closes whoever is left in any case.
  std::size_t size_of(std::size_t i) const noexcept {
    return clients * (i + 1) / batches - clients * i / batches;
  }
};

/// Batches every `min_interval_ms` (fewer, further apart, when there are fewer
/// clients than batches), evenly sized. A window of 0 (or no clients) is one
/// batch of everyone.
close_schedule plan_closes(std::size_t clients, std::uint64_t window_ms,
                           std::uint64_t min_interval_ms = default_close_interval_ms);

}  // namespace claps::server
