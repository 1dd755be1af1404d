// claps/uv.hpp - drives a claps::engine on a libuv loop (target claps::uv).
//
// A uv_driver owns one uv_timer_t on the caller's loop and calls
// engine::advance() at each deadline with the wall-clock time. The timer is
// armed only while the engine has work (engine::next_deadline() is not
// "never"): an idle engine costs the loop no wake-ups. The driver hears of
// new work through engine::on_wake(), which it sets itself, so callers need
// not tell it about their clap()/subscribe() calls (a "poke the driver after
// every call" rule would be forgotten on one path and stall that op until
// the next unrelated one). A
// uv_store_pump owns one uv_async_t that brings a store's completions from
// its writer thread (claps::lmdb_store with lmdb_options::on_commit_ready)
// back to the loop. Neither starts a thread nor runs the loop itself: the
// caller does.
//
// Thread rule: everything here runs on the loop's thread, except
// uv_store_pump::waker()'s function, which may be called from any thread.
#pragma once

#include <claps/engine.hpp>

#include <uv.h>

#include <chrono>
#include <functional>
#include <memory>

namespace claps {

class uv_driver {
public:
  /// Starts ticking `engine` on `loop`, and registers itself with
  /// engine::on_wake(). Both must outlive the driver.
  uv_driver(uv_loop_t* loop, engine& engine);
  /// Stops the timer and unregisters from engine::on_wake(). The handles are
  /// closed and freed by the loop on its next iteration, so the loop must run
  /// once more before uv_loop_close().
  ~uv_driver();
  uv_driver(const uv_driver&) = delete;
  uv_driver& operator=(const uv_driver&) = delete;

  /// Runs a tick now (engine::flush) and re-arms the timer.
  void flush();
  /// Stops ticking; the engine keeps its state.
  void stop();
  /// Calls `observer` after each advance() that ran a tick, with the wall
  /// time (steady clock) that advance() took: the tick's commit hand-off,
  /// encodes and first delivery slice, as long as the loop was held.
  /// Empty (the default): nothing is timed. Loop thread only.
  void on_tick(std::function<void(std::chrono::nanoseconds took)> observer);

  /// Like uv_unref() on the driver's handles: an armed timer no longer keeps
  /// uv_run() from returning, so the loop ends by itself once only the driver
  /// is left (ops still pending then wait for the next uv_run). ref() undoes it.
  /// While close() waits, the driver keeps the loop running regardless.
  void unref();
  void ref();

  /// The documented shutdown on a loop: engine::close(now), then ticks and
  /// waits (the loop runs the store's completions, e.g. a uv_store_pump)
  /// until engine::closed(), then calls `done` once, on the loop's thread,
  /// from a loop callback (never inside close() itself). `done` may destroy
  /// the driver, then the engine, then the store. Ticking stops after `done`.
  void close(std::function<void()> done);

  /// The wall clock as the engine wants it.
  static timestamp now() noexcept;

  struct state;  // internal

private:
  state* state_;  // freed by the timer's close callback
};

/// Runs `on_wake` on the loop's thread after waker()'s function was called
/// on another thread. With an LMDB store that commits on its writer thread:
///
///     std::unique_ptr<claps::lmdb_store> store;
///     claps::uv_store_pump pump(loop, [&] { store->run_completions(); });
///     options.on_commit_ready = pump.waker();
///     store = claps::lmdb_store::open(options, ec);
///
/// Several wakes before the loop gets to run may run `on_wake` once
/// (uv_async_send coalesces them): `on_wake` must handle everything that is
/// ready, as run_completions() does. The pump's handle is active, so it keeps
/// the loop running until the pump is destroyed, unless unref()'d.
class uv_store_pump {
public:
  /// Opens a uv_async_t on `loop`, which must outlive the pump.
  uv_store_pump(uv_loop_t* loop, std::function<void()> on_wake);
  /// Closes the handle; the loop frees it on its next iteration, so the loop
  /// must run once more before uv_loop_close(). Wakes after this do nothing
  /// (the waker may outlive the pump: a store may be destroyed after it).
  ~uv_store_pump();
  uv_store_pump(const uv_store_pump&) = delete;
  uv_store_pump& operator=(const uv_store_pump&) = delete;

  /// A thread-safe function that makes the loop run `on_wake` soon; for
  /// lmdb_options::on_commit_ready. Copies may be called from any thread,
  /// before or after the pump is destroyed.
  std::function<void()> waker() const;

  /// Like uv_unref()/uv_ref() on the pump's handle: an unref'd pump does not
  /// keep uv_run() going by itself, so a process whose store is idle can end.
  /// A host that lets the loop end this way refs the pump again while a
  /// commit may be in flight, or its completion may never run. A new pump is
  /// ref'd.
  void unref();
  void ref();

  struct state;  // internal

private:
  std::shared_ptr<state> state_;
};

}  // namespace claps
