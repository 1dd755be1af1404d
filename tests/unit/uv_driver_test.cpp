#include "test_support.hpp"

#include <claps/lmdb.hpp>
#include <claps/uv.hpp>

#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>
#include <memory>
#include <thread>

namespace {
// Ten claps by users u0..u9 on one article, cookies 0..9.
void clap_ten(claps::engine& engine, std::string_view article) {
  for (int i = 0; i < 10; ++i) {
    std::string user = "u" + std::to_string(i);
    claps::clap_request r;
    r.user = user;
    r.article = article;
    r.cookie = static_cast<std::uint64_t>(i);
    REQUIRE_FALSE(engine.clap(r));
  }
}
// Runs `loop` until `finished` (asked every millisecond; it stops what it
// must itself) says true, or 10 s pass. True when it finished in time.
bool run_until(uv_loop_t* loop, std::function<bool()> finished) {
  struct ctx_t {
    std::function<bool()> finished;
    bool timed_out = false;
  } ctx{std::move(finished)};
  uv_timer_t poll;
  uv_timer_init(loop, &poll);
  poll.data = &ctx;
  uv_timer_start(
      &poll,
      [](uv_timer_t* t) {
        if (static_cast<ctx_t*>(t->data)->finished()) uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
      },
      1, 1);
  uv_timer_t deadline;
  uv_timer_init(loop, &deadline);
  deadline.data = &ctx;
  uv_timer_start(
      &deadline,
      [](uv_timer_t* t) {
        static_cast<ctx_t*>(t->data)->timed_out = true;
        uv_stop(t->loop);
      },
      10'000, 0);
  uv_unref(reinterpret_cast<uv_handle_t*>(&deadline));  // does not keep the loop alive
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close(reinterpret_cast<uv_handle_t*>(&deadline), nullptr);
  if (!uv_is_closing(reinterpret_cast<uv_handle_t*>(&poll)))
    uv_close(reinterpret_cast<uv_handle_t*>(&poll), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);  // the two handles' close callbacks
  return !ctx.timed_out;
}
}  // namespace

TEST_CASE("uv_driver ticks an engine on a real loop until its results arrive") {
  char tmpl[] = "/tmp/claps-uv-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  claps::lmdb_options options;
  options.path = tmpl;
  std::error_code ec;
  auto store = claps::lmdb_store::open(options, ec);
  REQUIRE(store);

  uv_loop_t loop;
  uv_loop_init(&loop);
  struct state {
    int results = 0;
    long long total = 0;
    int updates = 0;
    bool timed_out = false;
    claps::timestamp first_result{};
    std::uint64_t timed_ticks = 0;  // on_tick calls: one per advance() that ran a tick
    bool negative_duration = false;
  } s;
  claps::engine_callbacks cb;
  cb.result = [&](const claps::op_result& r) {
    if (s.results == 0) s.first_result = claps::uv_driver::now();
    ++s.results;
    s.total = r.total;
  };
  cb.deliver = [&](claps::subscriber_id, std::span<const claps::article_update* const> us) {
    s.updates += static_cast<int>(us.size());
  };
  claps::engine_options eo;
  eo.tick = claps::millis(5);
  const claps::timestamp created = claps::uv_driver::now();
  claps::engine engine(*store, eo, cb, created);
  {
    claps::uv_driver driver(&loop, engine);
    driver.on_tick([&](std::chrono::nanoseconds took) {
      ++s.timed_ticks;
      if (took.count() < 0) s.negative_duration = true;
    });
    claps::snapshot snap;
    REQUIRE_FALSE(engine.subscribe(1, {}, "uv-a", true, snap));
    clap_ten(engine, "uv-a");
    // Run the loop until all ten results arrived, with a generous deadline.
    s.timed_out = !run_until(&loop, [&] {
      if (s.results < 10 || s.updates == 0) return false;
      driver.stop();
      return true;
    });
    // The driver ticks at the engine's deadline, not before: claps made at
    // once are acknowledged one tick after the engine was created, at the earliest.
    CHECK(s.first_result >= created + eo.tick);
    // Every tick ran inside an advance() the driver made, and each was timed once.
    CHECK(s.timed_ticks >= 1);
    CHECK(s.timed_ticks == engine.stats().ticks);
    CHECK_FALSE(s.negative_duration);
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // closes the driver's timer
  CHECK(uv_loop_close(&loop) == 0);
  CHECK_FALSE(s.timed_out);
  CHECK(s.results == 10);
  CHECK(s.total == 10);
  CHECK(s.updates >= 1);
  std::filesystem::remove_all(tmpl);  // the store, which outlives the engine, closes its files after
}

TEST_CASE(
    "uv_driver runs the delivery slices of a commit that completed outside the tick before the next tick") {
  claps::memory_store backing;
  claps_test::faulty_store st(backing);
  uv_loop_t loop;
  uv_loop_init(&loop);
  int delivered_with_total = 0;
  std::uint64_t ticks_at_release = 0;
  std::uint64_t ticks_at_last = 0;
  claps::engine* eng_ptr = nullptr;
  // Loop passes, counted after each poll: slices must leave the loop between
  // them, so that it takes in I/O (new claps, a commit that completed).
  std::uint64_t passes = 0;
  std::set<std::uint64_t> passes_with_deliveries;
  claps::engine_callbacks cb;
  cb.deliver = [&](claps::subscriber_id, std::span<const claps::article_update* const> us) {
    if (us[0]->total != 1) return;
    passes_with_deliveries.insert(passes);
    if (++delivered_with_total == 50) {
      ticks_at_last = eng_ptr->stats().ticks;
      uv_stop(&loop);
    }
  };
  claps::engine_options eo;
  eo.tick = claps::millis(1000);  // far apart: the slices must not wait for the next one
  eo.deliveries_per_slice = 4;
  claps::engine engine(st, eo, cb, claps::uv_driver::now());
  eng_ptr = &engine;
  {
    claps::uv_driver driver(&loop, engine);
    for (claps::subscriber_id s = 1; s <= 50; ++s) {
      claps::snapshot snap;
      REQUIRE_FALSE(engine.subscribe(s, {}, "a", true, snap));
    }
    engine.flush(claps::uv_driver::now());
    st.defer = true;
    claps::clap_request r;
    r.user = "u";
    r.article = "a";
    REQUIRE_FALSE(engine.clap(r));
    driver.flush();  // the commit is now held by the store
    REQUIRE(st.holding());
    // Released from a loop callback, as a networked store's reply arrives.
    uv_timer_t release;
    uv_timer_init(&loop, &release);
    struct ctx_t {
      claps_test::faulty_store* st;
      claps::engine* eng;
      std::uint64_t* ticks;
    } ctx{&st, &engine, &ticks_at_release};
    release.data = &ctx;
    uv_timer_start(
        &release,
        [](uv_timer_t* h) {
          auto* c = static_cast<ctx_t*>(h->data);
          *c->ticks = c->eng->stats().ticks;
          c->st->release();
        },
        0, 0);
    uv_timer_t deadline;
    uv_timer_init(&loop, &deadline);
    deadline.data = &loop;
    uv_timer_start(
        &deadline, [](uv_timer_t* t) { uv_stop(static_cast<uv_loop_t*>(t->data)); }, 10'000, 0);
    uv_check_t counter;
    uv_check_init(&loop, &counter);
    counter.data = &passes;
    uv_check_start(&counter, [](uv_check_t* h) { ++*static_cast<std::uint64_t*>(h->data); });
    uv_run(&loop, UV_RUN_DEFAULT);
    CHECK(delivered_with_total == 50);
    CHECK(passes_with_deliveries.size() >= 50 / 4);  // one slice per loop pass
    uv_close(reinterpret_cast<uv_handle_t*>(&counter), nullptr);
    INFO("ticks at release " << ticks_at_release << ", at the last delivery " << ticks_at_last);
    CHECK(ticks_at_last == ticks_at_release);  // every slice ran before the next tick
    uv_close(reinterpret_cast<uv_handle_t*>(&release), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&deadline), nullptr);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("uv_store_pump runs an LMDB writer thread's completions on the loop") {
  char tmpl[] = "/tmp/claps-uv-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::unique_ptr<claps::lmdb_store> store;
  int wakes_run = 0;
  auto pump = std::make_unique<claps::uv_store_pump>(&loop, [&] {
    ++wakes_run;
    store->run_completions();
  });
  claps::lmdb_options options;
  options.path = tmpl;
  options.on_commit_ready = pump->waker();
  std::error_code ec;
  store = claps::lmdb_store::open(options, ec);
  REQUIRE(store);

  struct state {
    int results = 0;
    long long total = 0;
    bool on_loop_thread = true;
    bool timed_out = false;
  } s;
  const auto loop_thread = std::this_thread::get_id();
  claps::engine_callbacks cb;
  cb.result = [&](const claps::op_result& r) {
    ++s.results;
    s.total = r.total;
    s.on_loop_thread = s.on_loop_thread && std::this_thread::get_id() == loop_thread;
  };
  claps::engine_options eo;
  eo.tick = claps::millis(5);
  claps::engine engine(*store, eo, cb, claps::uv_driver::now());
  {
    claps::uv_driver driver(&loop, engine);
    clap_ten(engine, "uv-pumped");
    // Until all ten results arrived; then the pump and driver close, and the
    // loop ends by itself. A deadline stops it otherwise.
    s.timed_out = !run_until(&loop, [&] {
      if (s.results < 10) return false;
      driver.stop();
      pump.reset();
      return true;
    });
  }
  pump.reset();  // a waker called after this does nothing
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
  CHECK_FALSE(s.timed_out);
  CHECK(s.results == 10);
  CHECK(s.total == 10);
  CHECK(s.on_loop_thread);
  CHECK(wakes_run >= 1);
  CHECK(engine.idle());
  std::filesystem::remove_all(tmpl);
}

TEST_CASE("an unref'd uv_store_pump does not keep uv_run going; ref() makes it keep it again") {
  uv_loop_t loop;
  uv_loop_init(&loop);
  int wakes = 0;
  auto pump = std::make_unique<claps::uv_store_pump>(&loop, [&] { ++wakes; });
  pump->unref();
  // Nothing else is on the loop: with the pump unref'd, uv_run returns at once.
  CHECK(uv_run(&loop, UV_RUN_DEFAULT) == 0);
  CHECK(uv_loop_alive(&loop) == 0);
  pump->ref();
  CHECK(uv_loop_alive(&loop) != 0);
  // Ref'd, it holds the loop; a waker call runs on_wake on the next pass.
  pump->waker()();
  CHECK(uv_run(&loop, UV_RUN_NOWAIT) != 0);
  CHECK(wakes == 1);
  pump.reset();
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}

namespace {
// Runs `loop` until uv_run returns by itself (true), or stops it after 10 s
// (false). The deadline's timer is unref'd: it does not keep the loop alive.
bool run_returns_by_itself(uv_loop_t* loop, std::uint64_t* passes = nullptr) {
  bool timed_out = false;
  uv_timer_t deadline;
  uv_timer_init(loop, &deadline);
  deadline.data = &timed_out;
  uv_timer_start(
      &deadline,
      [](uv_timer_t* t) {
        *static_cast<bool*>(t->data) = true;
        uv_stop(t->loop);
      },
      10'000, 0);
  uv_unref(reinterpret_cast<uv_handle_t*>(&deadline));
  uv_check_t counter;
  uv_check_init(loop, &counter);
  counter.data = passes;
  uv_check_start(&counter, [](uv_check_t* h) {
    if (h->data) ++*static_cast<std::uint64_t*>(h->data);
  });
  uv_unref(reinterpret_cast<uv_handle_t*>(&counter));
  uv_run(loop, UV_RUN_DEFAULT);
  uv_close(reinterpret_cast<uv_handle_t*>(&deadline), nullptr);
  uv_close(reinterpret_cast<uv_handle_t*>(&counter), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);  // their close callbacks
  return !timed_out;
}
}  // namespace

TEST_CASE("an idle uv_driver arms no timer: uv_run returns by itself once the results are in") {
  claps::memory_store st;
  uv_loop_t loop;
  uv_loop_init(&loop);
  int results = 0;
  claps::engine_callbacks cb;
  cb.result = [&](const claps::op_result&) { ++results; };
  claps::engine_options eo;
  eo.tick = claps::millis(5);
  claps::engine engine(st, eo, cb, claps::uv_driver::now());
  {
    claps::uv_driver driver(&loop, engine);
    std::uint64_t passes = 0;
    // Nothing to do: the loop has nothing to wait for.
    CHECK(run_returns_by_itself(&loop, &passes));
    CHECK(engine.stats().ticks == 0);
    CHECK(passes == 0);

    // Claps arm the timer by themselves (engine::on_wake): nobody pokes the driver.
    clap_ten(engine, "idle-a");
    CHECK(run_returns_by_itself(&loop, &passes));
    CHECK(results == 10);
    // One tick committed them; a driver that kept ticking would not have let uv_run return.
    CHECK(engine.stats().ticks == 1);
    CHECK(engine.next_deadline() == claps::timestamp::max());

    // Again, after an idle spell.
    clap_ten(engine, "idle-b");
    CHECK(run_returns_by_itself(&loop));
    CHECK(results == 20);
    CHECK(engine.stats().ticks == 2);
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // the driver's handles close
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("uv_driver::unref() lets uv_run return with work pending; ref() keeps the loop for it") {
  claps::memory_store st;
  uv_loop_t loop;
  uv_loop_init(&loop);
  int results = 0;
  claps::engine_callbacks cb;
  cb.result = [&](const claps::op_result&) { ++results; };
  claps::engine_options eo;
  eo.tick = claps::millis(5);
  claps::engine engine(st, eo, cb, claps::uv_driver::now());
  {
    claps::uv_driver driver(&loop, engine);
    driver.unref();
    clap_ten(engine, "unref-a");
    CHECK(run_returns_by_itself(&loop));
    CHECK(results == 0);  // only the driver was left: the loop did not wait for the tick
    CHECK_FALSE(engine.idle());
    driver.ref();
    CHECK(run_returns_by_itself(&loop));
    CHECK(results == 10);
  }
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(uv_loop_close(&loop) == 0);
}

TEST_CASE("uv_driver::close() with an LMDB writer thread: done runs once every result is in") {
  char tmpl[] = "/tmp/claps-uv-XXXXXX";
  REQUIRE(mkdtemp(tmpl));
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::unique_ptr<claps::lmdb_store> store;
  auto pump = std::make_unique<claps::uv_store_pump>(&loop, [&] { store->run_completions(); });
  claps::lmdb_options options;
  options.path = tmpl;
  options.on_commit_ready = pump->waker();
  std::error_code ec;
  store = claps::lmdb_store::open(options, ec);
  REQUIRE(store);
  int results = 0;
  int done_calls = 0;
  bool closed_at_done = false;
  int results_at_done = 0;
  claps::engine_callbacks cb;
  cb.result = [&](const claps::op_result& r) {
    if (!r.error) ++results;
  };
  claps::engine_options eo;
  eo.tick = claps::millis(1000);  // far away: close() must not wait for it
  auto engine = std::make_unique<claps::engine>(*store, eo, cb, claps::uv_driver::now());
  auto driver = std::make_unique<claps::uv_driver>(&loop, *engine);
  driver->unref();  // close() keeps the loop running anyway
  clap_ten(*engine, "closing");
  driver->close([&] {
    ++done_calls;
    closed_at_done = engine->closed();
    results_at_done = results;
    // The documented order: the driver, the engine, then the store.
    driver.reset();
    engine.reset();
    pump.reset();
    store.reset();
  });
  CHECK(done_calls == 0);  // never inside close()
  CHECK(run_returns_by_itself(&loop));
  CHECK(done_calls == 1);
  CHECK(closed_at_done);
  CHECK(results_at_done == 10);
  CHECK(uv_loop_close(&loop) == 0);
  std::filesystem::remove_all(tmpl);
}
