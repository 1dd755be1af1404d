#include <claps/uv.hpp>

#include <mutex>

namespace claps {

// Shared by the pump, its wakers and, until its close callback, the handle:
// a waker called after the pump is gone finds `open` false and does nothing.
struct uv_store_pump::state {
  std::mutex mutex;
  bool open = true;
  uv_async_t async{};
  std::function<void()> on_wake;
  std::shared_ptr<state> self;  // the handle's reference, dropped by its close callback
};

uv_store_pump::uv_store_pump(uv_loop_t* loop, std::function<void()> on_wake)
    : state_(std::make_shared<state>()) {
  state_->on_wake = std::move(on_wake);
  state_->self = state_;
  state_->async.data = state_.get();
  uv_async_init(loop, &state_->async, [](uv_async_t* h) {
    auto* s = static_cast<state*>(h->data);
    if (s->on_wake) s->on_wake();
  });
}

uv_store_pump::~uv_store_pump() {
  {
    std::lock_guard lock(state_->mutex);
    state_->open = false;
  }
  // on_wake lives on until the close callback: the pump may be destroyed from inside it.
  uv_close(reinterpret_cast<uv_handle_t*>(&state_->async), [](uv_handle_t* h) {
    const std::shared_ptr<state> last = std::move(static_cast<state*>(h->data)->self);
  });
}

std::function<void()> uv_store_pump::waker() const {
  return [s = state_] {
    std::lock_guard lock(s->mutex);
    if (s->open) uv_async_send(&s->async);
  };
}

void uv_store_pump::unref() { uv_unref(reinterpret_cast<uv_handle_t*>(&state_->async)); }

void uv_store_pump::ref() { uv_ref(reinterpret_cast<uv_handle_t*>(&state_->async)); }

}  // namespace claps
