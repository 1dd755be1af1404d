// claps/time.hpp - the engine's notion of time.
//
// libclaps never reads a clock. Callers pass a `timestamp`: milliseconds since
// the Unix epoch (wall clock), so that op-id expiry times persisted by a store
// stay meaningful across restarts. The uv driver derives it from the system
// clock; tests pass whatever they like.
#pragma once

#include <chrono>
#include <cstdint>

namespace claps {

using millis = std::chrono::milliseconds;
/// Milliseconds since the Unix epoch, supplied by the caller.
using timestamp = std::chrono::time_point<std::chrono::system_clock, millis>;

}  // namespace claps
