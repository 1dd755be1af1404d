#include "drain_schedule.hpp"

#include <algorithm>

namespace claps::server {

const char* phase_name(drain_phase phase) noexcept {
  switch (phase) {
  case drain_phase::serving: return "serving";
  case drain_phase::grace: return "grace";
  case drain_phase::closing: return "closing";
  }
  return "serving";
}

close_schedule plan_closes(std::size_t clients, std::uint64_t window_ms, std::uint64_t min_interval_ms) {
  close_schedule plan;
  plan.clients = clients;
  if (clients == 0 || window_ms == 0 || min_interval_ms == 0) return plan;
  const std::size_t most = static_cast<std::size_t>(std::max<std::uint64_t>(1, window_ms / min_interval_ms));
  plan.batches = std::min(clients, most);
  plan.interval_ms = window_ms / plan.batches;
  return plan;
}

}  // namespace claps::server
