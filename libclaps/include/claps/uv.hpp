// claps/uv.hpp - drives a claps::engine on a libuv loop (target claps::uv).
//
// A uv_driver owns one uv_timer_t on the caller's loop and calls
// engine::advance() at each deadline with the wall-clock time. A
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

#include <functional>
#include <memory>

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
