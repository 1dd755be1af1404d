#include "uv_hiredis_adapter.hpp"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

namespace claps::detail {

namespace {

// hiredis' hooks only record what it wants (write_wanted_); sync() turns that
// into uv state, changing the uv_poll mask only when it really changes. While
// this adapter is inside a hiredis call, hooks just record and the caller
// syncs once afterwards, so transient wishes (connect callback queueing the
// handshake, then the same write sending it) cost nothing.
class uv_hiredis_adapter {
public:
  explicit uv_hiredis_adapter(redisAsyncContext* ac) : ac_(ac) {}

  bool init(uv_loop_t* loop) {
    if (uv_poll_init(loop, &poll_, ac_->c.fd) != 0) return false;
    uv_idle_init(loop, &flush_);
    poll_.data = this;
    flush_.data = this;
    ac_->ev.data = this;
    ac_->ev.addRead = [](void* self) { static_cast<uv_hiredis_adapter*>(self)->changed(); };
    // Reading stays on until cleanup: re-arming it per reply is the churn.
    ac_->ev.delRead = [](void*) {};
    ac_->ev.addWrite = [](void* self) { static_cast<uv_hiredis_adapter*>(self)->want_write(true); };
    ac_->ev.delWrite = [](void* self) { static_cast<uv_hiredis_adapter*>(self)->want_write(false); };
    ac_->ev.cleanup = [](void* self) { static_cast<uv_hiredis_adapter*>(self)->cleanup(); };
    return true;
  }

private:
  bool connected() const { return (ac_->c.flags & REDIS_CONNECTED) != 0; }

  void want_write(bool wanted) {
    write_wanted_ = wanted;
    if (!wanted) write_blocked_ = false;
    changed();
  }

  void changed() {
    if (!in_hiredis_) sync();
  }

  void sync() {
    if (ac_ == nullptr) return;  // cleaned up: the handles are closing
    const bool poll_writable = write_wanted_ && (!connected() || write_blocked_);
    const int events = UV_READABLE | (poll_writable ? UV_WRITABLE : 0);
    if (events != polled_ && uv_poll_start(&poll_, events, on_poll) == 0) polled_ = events;
    if (write_wanted_ && !poll_writable) uv_idle_start(&flush_, on_flush);  // no-op while already active
    else uv_idle_stop(&flush_);
  }

  // One redisAsyncHandleWrite: a single write() of everything queued.
  // hiredis asks for write again when the socket did not take it all; then
  // the rest waits for UV_WRITABLE instead of spinning through uv_idle.
  void write() {
    redisAsyncHandleWrite(ac_);
    if (ac_ != nullptr && write_wanted_) write_blocked_ = true;
  }

  static void on_flush(uv_idle_t* handle) {
    auto* self = static_cast<uv_hiredis_adapter*>(handle->data);
    if (self->ac_ == nullptr || !self->connected()) {
      // The connect is still pending: the writable event will report it.
      uv_idle_stop(handle);
      return;
    }
    self->in_hiredis_ = true;
    self->write();
    self->in_hiredis_ = false;
    self->sync();
  }

  static void on_poll(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<uv_hiredis_adapter*>(handle->data);
    if (self->ac_ == nullptr) return;
    if (status < 0) {
      // libuv stopped the watcher on POLLERR: let hiredis read the socket
      // error (a refused connect, a reset) and disconnect now, instead of
      // leaving the link silent until a deadline.
      self->polled_ = 0;
      events = UV_READABLE | (self->write_wanted_ ? UV_WRITABLE : 0);
    }
    self->in_hiredis_ = true;
    if (events & UV_READABLE) redisAsyncHandleRead(self->ac_);
    if (self->ac_ != nullptr && (events & UV_WRITABLE) && self->write_wanted_) self->write();
    self->in_hiredis_ = false;
    self->sync();
  }

  // hiredis is freeing the context (maybe from inside on_poll or on_flush,
  // which then see ac_ == nullptr and touch nothing else).
  void cleanup() {
    ac_ = nullptr;
    uv_close(reinterpret_cast<uv_handle_t*>(&poll_), on_closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&flush_), on_closed);
  }

  static void on_closed(uv_handle_t* handle) {
    auto* self = static_cast<uv_hiredis_adapter*>(handle->data);
    if (--self->open_handles_ == 0) delete self;
  }

  redisAsyncContext* ac_;
  uv_poll_t poll_{};
  uv_idle_t flush_{};
  int polled_ = 0;              // the events uv_poll is started with
  bool write_wanted_ = false;   // hiredis has output (between addWrite and delWrite)
  bool write_blocked_ = false;  // the socket did not take it all: wait for writable
  bool in_hiredis_ = false;     // inside a hiredis call made by this adapter
  int open_handles_ = 2;
};

}  // namespace

bool attach_uv_adapter(redisAsyncContext* ac, uv_loop_t* loop) {
  if (ac->ev.data != nullptr) return false;
  auto* adapter = new uv_hiredis_adapter(ac);
  if (!adapter->init(loop)) {
    delete adapter;  // no handle was initialised
    return false;
  }
  return true;
}

}  // namespace claps::detail
