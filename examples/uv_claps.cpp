// uv_claps: an engine driven by the libuv adapter on a real loop, with LMDB.
// Introduces: uv_driver, which calls advance() at each deadline.
// Usage: uv_claps [DIR]   (default ./data-uv-example); runs for about a second.
#include <claps/claps.hpp>
#include <claps/lmdb.hpp>
#include <claps/uv.hpp>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  claps::lmdb_options options;
  options.path = argc > 1 ? argv[1] : "data-uv-example";
  std::error_code ec;
  auto store = claps::lmdb_store::open(options, ec);
  if (!store) {
    std::fprintf(stderr, "cannot open %s: %s\n", options.path.c_str(), ec.message().c_str());
    return 1;
  }

  int acks = 0;
  int updates = 0;
  claps::engine_callbacks cb;
  cb.deliver = [&](claps::subscriber_id, std::span<const claps::article_update* const> us) {
    updates += static_cast<int>(us.size());
  };
  cb.result = [&](const claps::op_result&) { ++acks; };
  claps::engine engine(*store, {}, cb, claps::uv_driver::now());

  uv_loop_t loop;
  uv_loop_init(&loop);
  {
    claps::uv_driver driver(&loop, engine);
    claps::snapshot snap;
    engine.subscribe(1, {}, "uv-article", true, snap);

    // A reader who claps every 10 ms for a second, as 100 different users.
    struct clapper {
      claps::engine* engine;
      claps::uv_driver* driver;
      int sent = 0;
    } state{&engine, &driver};
    uv_timer_t timer;
    uv_timer_init(&loop, &timer);
    timer.data = &state;
    uv_timer_start(
        &timer,
        [](uv_timer_t* t) {
          auto* s = static_cast<clapper*>(t->data);
          std::string user = "uv-user-" + std::to_string(s->sent);
          claps::clap_request r;
          r.user = user;
          r.article = "uv-article";
          s->engine->clap(r);
          if (++s->sent == 100) {
            uv_close(reinterpret_cast<uv_handle_t*>(t), nullptr);
            s->driver->flush();  // commit what is pending now, then stop ticking
            s->driver->stop();
          }
        },
        10, 10);
    uv_run(&loop, UV_RUN_DEFAULT);  // returns once nothing is active
  }
  uv_run(&loop, UV_RUN_DEFAULT);  // lets the driver's timer close
  uv_loop_close(&loop);
  std::printf("uv_claps: 100 claps sent, %d acked, %d updates seen\n", acks, updates);
  return 0;
}
