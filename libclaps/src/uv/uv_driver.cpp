#include <claps/uv.hpp>

#include <algorithm>
#include <chrono>

namespace claps {

struct uv_driver::state {
  uv_timer_t timer;
  // Before each poll: deliveries queued outside advance() (a commit that a
  // store completed later) get their next slice without waiting for the tick.
  uv_prepare_t prepare;
  engine* eng;
  bool stopped = false;
  int open_handles = 2;
};

namespace {

void arm(uv_timer_t* timer, engine& eng) {
  auto wait = eng.next_deadline() - uv_driver::now();
  auto ms = std::max<std::int64_t>(0, wait.count());
  uv_timer_start(
      timer,
      [](uv_timer_t* t) {
        auto* s = static_cast<uv_driver::state*>(t->data);
        s->eng->advance(uv_driver::now());
        if (!s->stopped) arm(t, *s->eng);
      },
      static_cast<std::uint64_t>(ms), 0);
}

} // namespace

uv_driver::uv_driver(uv_loop_t* loop, engine& eng) : state_(new state) {
  state_->eng = &eng;
  uv_timer_init(loop, &state_->timer);
  state_->timer.data = state_;
  uv_prepare_init(loop, &state_->prepare);
  state_->prepare.data = state_;
  uv_prepare_start(&state_->prepare, [](uv_prepare_t* p) {
    auto* s = static_cast<uv_driver::state*>(p->data);
    if (!s->stopped && s->eng->delivering() && uv_timer_get_due_in(&s->timer) > 0) arm(&s->timer, *s->eng);
  });
  // The prepare handle alone must not keep the loop running.
  uv_unref(reinterpret_cast<uv_handle_t*>(&state_->prepare));
  arm(&state_->timer, eng);
}

uv_driver::~uv_driver() {
  state_->stopped = true;
  auto closed = [](uv_handle_t* h) {
    auto* s = static_cast<state*>(h->data);
    if (--s->open_handles == 0) delete s;
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&state_->timer), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&state_->prepare), closed);
}

void uv_driver::flush() {
  state_->eng->flush(now());
  if (!state_->stopped) arm(&state_->timer, *state_->eng);
}

void uv_driver::stop() {
  state_->stopped = true;
  uv_timer_stop(&state_->timer);
  uv_prepare_stop(&state_->prepare);
}

timestamp uv_driver::now() noexcept {
  return std::chrono::time_point_cast<millis>(std::chrono::system_clock::now());
}

} // namespace claps
