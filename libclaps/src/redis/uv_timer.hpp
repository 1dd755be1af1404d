// A uv_timer_t owned by an object that may die before the loop closes the
// handle: the handle lives on the heap and frees itself in its close callback.
#pragma once

#include <uv.h>

#include <cstdint>
#include <functional>
#include <utility>

namespace claps::detail {

class uv_timer {
public:
  uv_timer(uv_loop_t* loop, std::function<void()> fire) : handle_(new handle{}) {
    uv_timer_init(loop, &handle_->timer);
    handle_->timer.data = handle_;
    handle_->fire = std::move(fire);
  }
  ~uv_timer() { close(); }
  // Closes the handle now (idempotent); the object may outlive the loop then.
  void close() {
    if (handle_ == nullptr) return;
    uv_timer_stop(&handle_->timer);
    uv_close(reinterpret_cast<uv_handle_t*>(&handle_->timer),
             [](uv_handle_t* h) { delete static_cast<handle*>(h->data); });
    handle_ = nullptr;
  }
  uv_timer(const uv_timer&) = delete;
  uv_timer& operator=(const uv_timer&) = delete;

  void start(std::uint64_t delay_ms, std::uint64_t repeat_ms = 0) {
    if (handle_ == nullptr) return;
    uv_timer_start(
        &handle_->timer, [](uv_timer_t* t) { static_cast<handle*>(t->data)->fire(); }, delay_ms, repeat_ms);
  }
  void stop() {
    if (handle_ != nullptr) uv_timer_stop(&handle_->timer);
  }
  bool active() const {
    return handle_ != nullptr && uv_is_active(reinterpret_cast<const uv_handle_t*>(&handle_->timer)) != 0;
  }

private:
  struct handle {
    uv_timer_t timer;
    std::function<void()> fire;
  };
  handle* handle_;
};

}  // namespace claps::detail
