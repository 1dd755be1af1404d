// two_nodes: two engines, as two nodes of one application, sharing one Redis.
// Introduces: claps::redis_store (the exact cap and op ids across nodes,
// other nodes' totals), its client and bus, and store::load() for a global
// first snapshot.
// Usage: two_nodes [redis://HOST:PORT]   (default redis://127.0.0.1:6379)
// Each node keeps its journal in its own LMDB directory (./data-two-nodes-a,
// ./data-two-nodes-b). Prints what each side saw and exits 0 when the
// cross-node rules held.
#include <claps/claps.hpp>
#include <claps/lmdb.hpp>
#include <claps/redis.hpp>
#include <claps/uv.hpp>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

namespace {

// One node: its journal, its Redis connections and its engine on the loop.
struct node {
  std::unique_ptr<claps::lmdb_store> journal;
  std::unique_ptr<claps::redis_client> client;
  std::unique_ptr<claps::redis_bus> bus;
  std::unique_ptr<claps::redis_store> store;
  std::unique_ptr<claps::engine> engine;
  std::unique_ptr<claps::uv_driver> driver;
  std::vector<claps::op_result> results;  // views copied out below
  std::vector<std::string> articles;
  std::int64_t last_update_total = -1;

  bool open(uv_loop_t* loop, const claps::redis_options& redis, const std::string& id) {
    claps::lmdb_options lo;
    lo.path = "data-two-nodes-" + id;
    std::error_code ec;
    journal = claps::lmdb_store::open(lo, ec);
    if (!journal) {
      std::fprintf(stderr, "cannot open %s: %s\n", lo.path.c_str(), ec.message().c_str());
      return false;
    }
    client = std::make_unique<claps::redis_client>(loop, redis);
    bus = std::make_unique<claps::redis_bus>(loop, *client);
    claps::redis_store_options so;
    so.node_id = "example-" + id;
    store = std::make_unique<claps::redis_store>(loop, *journal, *client, *bus, so);
    claps::engine_callbacks cb;
    cb.result = [this](const claps::op_result& r) {
      results.push_back(r);
      articles.emplace_back(r.article);  // r.article is a view: keep a copy
    };
    cb.deliver = [this](claps::subscriber_id, std::span<const claps::article_update* const> us) {
      for (const auto* u : us) last_update_total = u->total;
    };
    engine = std::make_unique<claps::engine>(*store, claps::engine_options{}, cb, claps::uv_driver::now());
    driver = std::make_unique<claps::uv_driver>(loop, *engine);
    return true;
  }
  // Shutdown: commit what is pending, let Redis answer, then close in reverse.
  void close() {
    driver->flush();
    driver->stop();
    driver.reset();
    engine.reset();
    store.reset();
    bus.reset();
    client.reset();
  }
};

// Runs the loop until `done` holds, for at most `ms` (a deadline, not a wait).
template <class Done>
bool run_until(uv_loop_t* loop, Done done, std::uint64_t ms) {
  const std::uint64_t end = uv_now(loop) + ms;
  uv_timer_t wake;  // bounds each uv_run(ONCE) so the deadline is seen
  uv_timer_init(loop, &wake);
  uv_timer_start(
      &wake, [](uv_timer_t*) {}, 10, 10);
  bool ok = true;
  while (!done()) {
    uv_update_time(loop);
    if (uv_now(loop) >= end) {
      ok = false;
      break;
    }
    uv_run(loop, UV_RUN_ONCE);
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&wake), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  claps::redis_options redis;
  if (claps::parse_redis_url(argc > 1 ? argv[1] : "redis://127.0.0.1:6379", redis)) {
    std::fprintf(stderr, "usage: two_nodes [redis://HOST:PORT]\n");
    return 2;
  }
  uv_loop_t loop;
  uv_loop_init(&loop);
  node a, b;
  if (!a.open(&loop, redis, "a") || !b.open(&loop, redis, "b")) return 1;
  // Each store re-asserts its journal on its first connect; then writes are whole.
  if (!run_until(
          &loop, [&] { return !a.store->degraded() && !b.store->degraded(); }, 5000)) {
    std::fprintf(stderr, "two_nodes: Redis at %s:%u did not become usable within 5 s\n",
                 redis.address.host.c_str(), static_cast<unsigned>(redis.address.port));
    return 1;
  }

  // A reader on node B watches the article; one user claps 30 on each node at
  // once. The cap (50) holds over both: the store decides in Redis.
  const std::string article =
      "two-nodes-" + std::to_string(claps::uv_driver::now().time_since_epoch().count());
  claps::snapshot snap;
  b.engine->subscribe(1, {}, article, true, snap);
  a.engine->clap({"ada", article, 30, "ada-1", 1});
  b.engine->clap({"ada", article, 30, "ada-2", 2});
  // One op id sent to both nodes at once is applied once.
  a.engine->clap({"bob", article, 5, "bob-1", 3});
  b.engine->clap({"bob", article, 5, "bob-1", 4});
  if (!run_until(
          &loop, [&] { return a.results.size() == 2 && b.results.size() == 2; }, 5000)) {
    std::fprintf(stderr, "two_nodes: results did not arrive\n");
    return 1;
  }
  int ada = 0, bob_applied = 0, bob_replayed = 0;
  for (const node* n : {&a, &b})
    for (const auto& r : n->results) {
      std::printf("node %s: cookie %llu accepted %d mine %d total %lld %s%s\n", n == &a ? "a" : "b",
                  static_cast<unsigned long long>(r.cookie), r.accepted, r.mine,
                  static_cast<long long>(r.total),
                  r.level == claps::durability::cluster ? "cluster" : "local", r.replayed ? " replayed" : "");
      if (r.cookie <= 2) ada += r.accepted;
      else (r.replayed ? bob_replayed : bob_applied) += 1;
    }
  // The reader on B sees the global total: 50 + 5.
  run_until(
      &loop, [&] { return b.last_update_total == 55; }, 3000);
  std::printf("reader on node b sees total %lld\n", static_cast<long long>(b.last_update_total));

  // A first snapshot on A, which watches nothing: load() makes it global.
  const std::string_view articles[] = {article};
  bool loaded = false;
  if (!a.store->load("ada", articles, [&](std::error_code) { loaded = true; }))
    run_until(
        &loop, [&] { return loaded; }, 3000);
  a.engine->subscribe(2, "ada", article, true, snap);
  std::printf("first snapshot on node a: total %lld mine %d global %s\n", static_cast<long long>(snap.total),
              snap.mine, snap.global ? "yes" : "no");

  const bool held = ada == 50 && bob_applied == 1 && bob_replayed == 1 && b.last_update_total == 55 &&
                    snap.total == 55 && snap.mine == 50 && snap.global;
  std::printf("two_nodes: %s\n", held ? "the cap and op ids held across nodes" : "UNEXPECTED");
  a.close();
  b.close();
  uv_run(&loop, UV_RUN_DEFAULT);  // lets the closed handles go
  uv_loop_close(&loop);
  return held ? 0 : 1;
}
