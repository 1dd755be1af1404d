// Runs a hiredis async context on a libuv loop without the stock adapter's
// epoll churn. hiredis' <hiredis/adapters/libuv.h> calls uv_poll_start on
// every addRead/addWrite, and libuv turns each uv_poll_start into an
// epoll_ctl(DEL) plus an epoll_ctl(ADD): several system calls per command
// and per reply. This adapter instead
//   - keeps the socket registered for UV_READABLE for the context's life,
//   - flushes pending commands once per loop iteration from a uv_idle handle
//     (active only while hiredis has output), so every command issued in one
//     iteration goes out in one write(). uv_idle rather than uv_prepare or
//     uv_check: an active idle handle keeps the loop from blocking in poll,
//     so a command queued from any callback (timer, I/O, another idle or
//     prepare handle) is flushed before the loop could sleep on it;
//   - polls for UV_WRITABLE only while connecting (hiredis learns that a
//     non-blocking connect finished from the first writable event) and after
//     a write the socket did not take whole.
#pragma once

#include <uv.h>

struct redisAsyncContext;

namespace claps::detail {

/// Sets `ac`'s event hooks to drive it from `loop`. On success hiredis owns
/// the adapter: its cleanup hook (run when the context is freed, also from
/// inside a hiredis callback) closes the uv handles, which free the adapter
/// from their close callbacks. Returns false, with nothing attached, when
/// `ac` already has an event library or libuv refuses its socket; the
/// caller then frees `ac`.
bool attach_uv_adapter(redisAsyncContext* ac, uv_loop_t* loop);

}  // namespace claps::detail
