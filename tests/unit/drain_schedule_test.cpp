// clapsd's drain schedule (server/src/drain_schedule.hpp): how SIGTERM's
// closes are spread over --drain-spread-s.
#include "drain_schedule.hpp"

#include <doctest/doctest.h>

#include <cstddef>
#include <string_view>

using namespace claps::server;

namespace {
std::size_t total(const close_schedule& plan) {
  std::size_t sum = 0;
  for (std::size_t i = 0; i < plan.batches; ++i) sum += plan.size_of(i);
  return sum;
}
}  // namespace

TEST_CASE("closes: one batch every 250 ms over the window, evenly sized, everyone once") {
  const auto plan = plan_closes(40, 2000);
  CHECK(plan.batches == 8);
  CHECK(plan.interval_ms == 250);
  for (std::size_t i = 0; i < plan.batches; ++i) CHECK(plan.size_of(i) == 5);

  const auto odd = plan_closes(19001, 5000);
  CHECK(odd.batches == 20);
  CHECK(odd.interval_ms == 250);
  CHECK(total(odd) == 19001);
  for (std::size_t i = 0; i < odd.batches; ++i) {
    CHECK(odd.size_of(i) >= 950);
    CHECK(odd.size_of(i) <= 951);
  }
}

TEST_CASE("closes: fewer clients than batches stretch the interval over the window") {
  const auto plan = plan_closes(3, 5000);
  CHECK(plan.batches == 3);
  CHECK(plan.interval_ms == 1666);
  CHECK(total(plan) == 3);
  CHECK(plan.size_of(0) == 1);
}

TEST_CASE("closes: no window or no clients is one batch of everyone") {
  const auto now = plan_closes(500, 0);
  CHECK(now.batches == 1);
  CHECK(now.size_of(0) == 500);
  const auto none = plan_closes(0, 5000);
  CHECK(none.batches == 1);
  CHECK(none.size_of(0) == 0);
  // A window shorter than one interval is still one batch.
  CHECK(plan_closes(10, 100).batches == 1);
}

TEST_CASE("phases have names for logs and metrics") {
  CHECK(std::string_view(phase_name(drain_phase::serving)) == "serving");
  CHECK(std::string_view(phase_name(drain_phase::grace)) == "grace");
  CHECK(std::string_view(phase_name(drain_phase::closing)) == "closing");
}
