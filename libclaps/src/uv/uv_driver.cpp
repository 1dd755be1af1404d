#include <claps/uv.hpp>

#include <algorithm>
#include <chrono>
#include <utility>

namespace claps {

// While subscribers wait for delivery slices, an idle handle runs one
// advance() per loop pass (a slice, or the tick when it is due) and keeps the
// poll from blocking, so the loop takes in I/O between slices. A timer of 0 ms
// would not: libuv before 1.45 runs a timer that re-arms itself at 0 again in
// the same pass, so every slice of a round would run back to back. Otherwise
// the timer waits for the next deadline, and is stopped while the engine has
// nothing to do (engine::on_wake re-arms it).
struct uv_driver::state {
  uv_timer_t timer;
  uv_idle_t idle;
  // Before each poll: deliveries queued outside advance() (a commit that a
  // store completed later) get their slices without waiting for the tick,
  // and close() sees the engine closed.
  uv_prepare_t prepare;
  engine* eng;
  std::function<void(std::chrono::nanoseconds)> on_tick;
  bool stopped = false;
  bool unrefd = false;   // unref(): the timer and idle handles do not keep the loop alive
  bool closing = false;  // close() waits for engine::closed()
  std::function<void()> done;
  int open_handles = 3;
};

namespace {

void rearm(uv_driver::state& s);

void advance(uv_driver::state& s) {
  if (!s.on_tick) {
    s.eng->advance(uv_driver::now());
    return;
  }
  const std::uint64_t ticks = s.eng->stats().ticks;
  const auto started = std::chrono::steady_clock::now();
  s.eng->advance(uv_driver::now());
  const auto took = std::chrono::steady_clock::now() - started;
  if (s.eng->stats().ticks != ticks) s.on_tick(took);
}

// close()'s end: ticking stops, then `done` runs (it may destroy the driver,
// whose handles are then closed; `s` lives until their close callbacks).
void finish_close(uv_driver::state& s) {
  s.stopped = true;
  uv_timer_stop(&s.timer);
  uv_idle_stop(&s.idle);
  uv_prepare_stop(&s.prepare);
  auto done = std::move(s.done);
  s.done = nullptr;
  if (done) done();
}

void on_timer(uv_timer_t* t) {
  auto* s = static_cast<uv_driver::state*>(t->data);
  if (s->closing && s->eng->closed()) return finish_close(*s);
  advance(*s);
  rearm(*s);
}

void on_idle(uv_idle_t* i) {
  auto* s = static_cast<uv_driver::state*>(i->data);
  advance(*s);
  rearm(*s);
}

void rearm(uv_driver::state& s) {
  if (s.stopped) return;
  if (s.closing && s.eng->closed()) {
    // `done` runs from the timer's callback, never inside close() or an engine call.
    uv_idle_stop(&s.idle);
    uv_timer_start(&s.timer, on_timer, 0, 0);
    return;
  }
  if (s.eng->delivering()) {
    uv_timer_stop(&s.timer);
    if (!uv_is_active(reinterpret_cast<uv_handle_t*>(&s.idle))) uv_idle_start(&s.idle, on_idle);
    return;
  }
  uv_idle_stop(&s.idle);
  const timestamp deadline = s.eng->next_deadline();
  if (deadline == timestamp::max()) {  // nothing to do: no wake-ups until on_wake
    uv_timer_stop(&s.timer);
    return;
  }
  auto wait = deadline - uv_driver::now();
  auto ms = std::max<std::int64_t>(0, wait.count());
  uv_timer_start(&s.timer, on_timer, static_cast<std::uint64_t>(ms), 0);
}

void set_ref(uv_driver::state& s, bool ref) {
  for (auto* h : {reinterpret_cast<uv_handle_t*>(&s.timer), reinterpret_cast<uv_handle_t*>(&s.idle)}) {
    if (ref) uv_ref(h);
    else uv_unref(h);
  }
}

}  // namespace

uv_driver::uv_driver(uv_loop_t* loop, engine& eng) : state_(new state) {
  state_->eng = &eng;
  uv_timer_init(loop, &state_->timer);
  state_->timer.data = state_;
  uv_idle_init(loop, &state_->idle);
  state_->idle.data = state_;
  uv_prepare_init(loop, &state_->prepare);
  state_->prepare.data = state_;
  uv_prepare_start(&state_->prepare, [](uv_prepare_t* p) {
    auto* s = static_cast<uv_driver::state*>(p->data);
    if (s->stopped) return;
    if (s->closing && s->eng->closed() && !uv_is_active(reinterpret_cast<uv_handle_t*>(&s->timer))) rearm(*s);
    else if (s->eng->delivering() && !uv_is_active(reinterpret_cast<uv_handle_t*>(&s->idle))) rearm(*s);
  });
  // The prepare handle alone must not keep the loop running.
  uv_unref(reinterpret_cast<uv_handle_t*>(&state_->prepare));
  eng.on_wake([s = state_] { rearm(*s); });
  rearm(*state_);
}

uv_driver::~uv_driver() {
  state_->stopped = true;
  state_->done = nullptr;
  state_->eng->on_wake(nullptr);
  auto closed = [](uv_handle_t* h) {
    auto* s = static_cast<state*>(h->data);
    if (--s->open_handles == 0) delete s;
  };
  uv_close(reinterpret_cast<uv_handle_t*>(&state_->timer), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&state_->idle), closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&state_->prepare), closed);
}

void uv_driver::flush() {
  state_->eng->flush(now());
  rearm(*state_);
}

void uv_driver::on_tick(std::function<void(std::chrono::nanoseconds)> observer) {
  state_->on_tick = std::move(observer);
}

void uv_driver::stop() {
  state_->stopped = true;
  uv_timer_stop(&state_->timer);
  uv_idle_stop(&state_->idle);
  uv_prepare_stop(&state_->prepare);
}

void uv_driver::unref() {
  state_->unrefd = true;
  if (!state_->closing) set_ref(*state_, false);
}

void uv_driver::ref() {
  state_->unrefd = false;
  set_ref(*state_, true);
}

void uv_driver::close(std::function<void()> done) {
  state& s = *state_;
  s.done = std::move(done);
  s.closing = true;
  set_ref(s, true);  // the loop runs until `done`, whatever unref() said
  s.eng->close(now());
  rearm(s);
}

timestamp uv_driver::now() noexcept {
  return std::chrono::time_point_cast<millis>(std::chrono::system_clock::now());
}

}  // namespace claps
