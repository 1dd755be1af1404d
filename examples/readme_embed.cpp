// readme_embed: the README's "Embedding the engine" example, built and run by
// the test suite (examples.readme_embed), which also checks that the README
// shows this file from its first #include on (examples.readme_snippet).
// An engine on LMDB that commits on the store's writer thread, driven by a
// libuv loop: one reader, one clap, then the documented shutdown.
// Usage: readme_embed [DIR]   (default ./data-readme-example)
#include <claps/claps.hpp>
#include <claps/lmdb.hpp>
#include <claps/uv.hpp>

#include <cstdio>
#include <memory>

int main(int argc, char** argv) {
  uv_loop_t loop;
  uv_loop_init(&loop);

  // LMDB commits on its own thread; the pump runs each completion on the loop.
  std::unique_ptr<claps::lmdb_store> store;
  auto pump = std::make_unique<claps::uv_store_pump>(&loop, [&] { store->run_completions(); });
  claps::lmdb_options options;
  options.path = argc > 1 ? argv[1] : "data-readme-example";
  options.on_commit_ready = pump->waker();
  std::error_code ec;
  store = claps::lmdb_store::open(options, ec);
  if (!store) return std::fprintf(stderr, "%s: %s\n", options.path.c_str(), ec.message().c_str()), 1;

  claps::engine_callbacks cb;
  cb.deliver = [](claps::subscriber_id viewer, std::span<const claps::article_update* const> updates) {
    for (const claps::article_update* u : updates)  // one call per viewer per tick
      std::printf("viewer %llu: %.*s has %lld claps\n", static_cast<unsigned long long>(viewer),
                  static_cast<int>(u->article.size()), u->article.data(), static_cast<long long>(u->total));
  };
  cb.result = [](const claps::op_result& r) {  // the ack, once the clap is durable
    std::printf("%.*s's op %.*s: %d accepted, %d mine%s\n", static_cast<int>(r.user.size()), r.user.data(),
                static_cast<int>(r.op_id.size()), r.op_id.data(), r.accepted, r.mine,
                r.replayed ? " (a replay)" : "");
  };
  const claps::timestamp now = claps::uv_driver::now();  // the engine never reads a clock
  auto engine = std::make_unique<claps::engine>(*store, claps::engine_options{}, cb, now);
  auto driver = std::make_unique<claps::uv_driver>(&loop, *engine);  // ticks only while there is work

  claps::snapshot snap;
  if (auto err = engine->subscribe(/*viewer*/ 1, "alice", "my-article", /*reading*/ true, snap))
    std::fprintf(stderr, "subscribe: %s\n", err.message().c_str());
  if (auto err =
          engine->clap({.user = "bob", .article = "my-article", .count = 3, .op_id = "op-1", .cookie = 7}))
    std::fprintf(stderr, "clap: %s\n", err.message().c_str());

  // Shutdown: commit what is pending, wait for every result, then free in this order.
  driver->close([&] {
    driver.reset();
    engine.reset();
    pump.reset();
    store.reset();
  });
  uv_run(&loop, UV_RUN_DEFAULT);  // returns once all of the above is closed
  return uv_loop_close(&loop);
}
