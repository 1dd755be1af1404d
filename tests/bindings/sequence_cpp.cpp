// The C++ runner of tests/bindings/SEQUENCE.md: the scripted sequence through
// claps::engine on an LMDB store that commits on its writer thread, driven by
// a libuv loop (uv_driver + uv_store_pump), as an embedding application
// would. Prints one JSON line per step on stdout; compare.mjs checks them.
// Usage: sequence_cpp DIR   (a fresh directory for the LMDB store)
#include <claps/claps.hpp>
#include <claps/lmdb.hpp>
#include <claps/uv.hpp>

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace {

// One engine on one store on the loop, with what its callbacks saw.
struct node {
  uv_loop_t* loop;
  std::unique_ptr<claps::lmdb_store> store;
  std::unique_ptr<claps::uv_store_pump> pump;
  std::unique_ptr<claps::engine> engine;
  std::unique_ptr<claps::uv_driver> driver;
  std::optional<claps::op_result> result;  // the last one; its views are re-pointed below
  std::string result_user, result_op_id;
  std::uint64_t result_cookie = 0;
  std::vector<std::int64_t> totals;  // delivered to subscriber 1, for a1
};

[[noreturn]] void fail(const std::string& why) {
  std::fprintf(stderr, "sequence_cpp: %s\n", why.c_str());
  std::exit(1);
}

// Runs the loop until `done()` or 5 s passed (a timer on the loop, unref'd).
void run_until(uv_loop_t* loop, const std::function<bool()>& done, const char* what) {
  bool timed_out = false;
  uv_timer_t deadline;
  uv_timer_init(loop, &deadline);
  deadline.data = &timed_out;
  uv_timer_start(
      &deadline, [](uv_timer_t* t) { *static_cast<bool*>(t->data) = true; }, 5000, 0);
  uv_unref(reinterpret_cast<uv_handle_t*>(&deadline));
  while (!done() && !timed_out) uv_run(loop, UV_RUN_ONCE);
  uv_close(reinterpret_cast<uv_handle_t*>(&deadline), nullptr);
  uv_run(loop, UV_RUN_NOWAIT);
  if (timed_out) fail(std::string("no ") + what + " within 5 s");
}

void open(node& n, uv_loop_t* loop, const std::string& dir) {
  n.loop = loop;
  n.pump = std::make_unique<claps::uv_store_pump>(loop, [&n] { n.store->run_completions(); });
  claps::lmdb_options lo;
  lo.path = dir;
  lo.on_commit_ready = n.pump->waker();
  std::error_code ec;
  n.store = claps::lmdb_store::open(lo, ec);
  if (!n.store) fail("open " + dir + ": " + ec.message());
  claps::engine_options eo;
  eo.tick = claps::millis(25);
  eo.clap_cap = 50;
  claps::engine_callbacks cb;
  cb.result = [&n](const claps::op_result& r) {
    n.result = r;
    n.result_user = r.user;
    n.result_op_id = r.op_id;
    n.result_cookie = r.cookie;
  };
  cb.deliver = [&n](claps::subscriber_id sub, std::span<const claps::article_update* const> updates) {
    if (sub != 1) return;
    for (const claps::article_update* u : updates)
      if (u->article == "a1") n.totals.push_back(u->total);
  };
  n.engine = std::make_unique<claps::engine>(*n.store, eo, cb, claps::uv_driver::now());
  n.driver = std::make_unique<claps::uv_driver>(loop, *n.engine);
}

// The documented shutdown: close, run the loop until closed(), then the
// driver, the engine, the pump and the store, in that order.
void close(node& n) {
  bool done = false;
  n.driver->close([&] {
    done = true;
    n.driver.reset();
    n.engine.reset();
    n.pump.reset();
    n.store.reset();
  });
  run_until(
      n.loop, [&] { return done; }, "closed engine");
  uv_run(n.loop, UV_RUN_NOWAIT);  // the handles' close callbacks
}

std::string name_of(std::error_code ec) { return std::string(claps::errc_name(ec)); }

// One clap (undo when `undo`) as its line: refused at once, or its result.
void op(node& n, bool undo, const char* user, const char* article, int count, const char* op_id,
        std::uint64_t cookie) {
  n.result.reset();
  std::error_code ec;
  if (undo) ec = n.engine->undo({.user = user, .article = article, .op_id = op_id, .cookie = cookie});
  else
    ec = n.engine->clap({.user = user, .article = article, .count = count, .op_id = op_id, .cookie = cookie});
  std::string error;
  std::int32_t accepted = 0, mine = 0;
  std::int64_t total = 0;
  bool replayed = false;
  if (ec) {
    error = name_of(ec);
  } else {
    run_until(
        n.loop, [&] { return n.result.has_value(); }, "result");
    const claps::op_result& r = *n.result;
    if (n.result_cookie != cookie || n.result_user != user || n.result_op_id != op_id)
      fail("the result of " + std::string(op_id) + " reports another op");
    if (r.error) {
      error = name_of(r.error);
    } else {
      accepted = r.accepted;
      total = r.total;
      mine = r.mine;
      replayed = r.replayed;
    }
  }
  std::printf(
      "{\"step\":\"%s\",\"user\":\"%s\",\"article\":\"%s\",\"count\":%d,\"op\":\"%s\",\"error\":\"%s\","
      "\"accepted\":%d,\"total\":%lld,\"mine\":%d,\"replayed\":%s}\n",
      undo ? "undo" : "clap", user, article, undo ? 0 : count, op_id, error.c_str(), accepted,
      static_cast<long long>(total), mine, replayed ? "true" : "false");
}

void read(node& n, const char* user, const char* article) {
  claps::snapshot snap;
  if (auto ec = n.engine->read(user, article, snap)) fail("read: " + ec.message());
  std::printf("{\"step\":\"read\",\"user\":\"%s\",\"article\":\"%s\",\"total\":%lld,\"mine\":%d}\n", user,
              article, static_cast<long long>(snap.total), snap.mine);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: sequence_cpp DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  uv_loop_t loop;
  uv_loop_init(&loop);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  node n;
  open(n, &loop, dir);
  std::printf("{\"step\":\"open\"}\n");

  claps::snapshot snap;
  if (auto ec = n.engine->subscribe(1, "alice", "a1", true, snap)) fail("subscribe: " + ec.message());
  std::printf(
      "{\"step\":\"subscribe\",\"subscriber\":1,\"article\":\"a1\",\"total\":%lld,\"viewers\":%u,"
      "\"mine\":%d}\n",
      static_cast<long long>(snap.total), snap.viewers, snap.mine);
  // The subscription's own update (the viewer count) goes out first.
  run_until(
      &loop, [&] { return !n.totals.empty(); }, "delivery of the subscription");

  op(n, false, "alice", "a1", 30, "op-1", 1);
  op(n, false, "alice", "a1", 30, "op-2", 2);
  op(n, false, "bob", "a1", 5, "op-3", 3);
  op(n, false, "alice", "a1", 30, "op-1", 4);
  op(n, false, "alice", "a1", 0, "op-5", 5);
  op(n, false, "alice", "bad article!", 1, "op-6", 6);
  op(n, true, "alice", "a1", 0, "op-4", 7);

  std::string totals;
  for (std::int64_t t : n.totals) totals += (totals.empty() ? "" : ",") + std::to_string(t);
  std::printf("{\"step\":\"deliveries\",\"subscriber\":1,\"totals\":[%s]}\n", totals.c_str());

  close(n);
  std::printf("{\"step\":\"close\"}\n");

  node again;
  open(again, &loop, dir);
  read(again, "alice", "a1");
  read(again, "bob", "a1");
  op(again, false, "bob", "a1", 5, "op-3", 8);
  close(again);
  std::printf("{\"step\":\"close\"}\n");

  return uv_loop_close(&loop) == 0 ? 0 : 1;
}
