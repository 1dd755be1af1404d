// claps/uv.hpp - drives a claps::engine on a libuv loop (target claps::uv).
//
// A uv_driver owns one uv_timer_t on the caller's loop and calls
// engine::advance() at each deadline with the wall-clock time. It starts no
// thread and never runs the loop itself: the caller does.
#pragma once

#include <claps/engine.hpp>

#include <uv.h>

namespace claps {

class uv_driver {
public:
  /// Starts ticking `engine` on `loop`. Both must outlive the driver.
  uv_driver(uv_loop_t* loop, engine& engine);
  /// Stops the timer. The timer handle is closed and freed by the loop on its
  /// next iteration, so the loop must run once more before uv_loop_close().
  ~uv_driver();
  uv_driver(const uv_driver&) = delete;
  uv_driver& operator=(const uv_driver&) = delete;

  /// Runs a tick now (engine::flush) and re-arms the timer.
  void flush();
  /// Stops ticking; the engine keeps its state.
  void stop();

  /// The wall clock as the engine wants it.
  static timestamp now() noexcept;

  struct state;  // internal

private:
  state* state_;  // freed by the timer's close callback
};

} // namespace claps
