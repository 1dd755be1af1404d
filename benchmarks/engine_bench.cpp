// engine_bench - in-process throughput of the libclaps engine (issue 2).
//
//   engine_bench [--json FILE] [--data-dir DIR] [--quick]
//
// Measures, through the public headers only:
//   intake   clap() calls per second into the coalescer with memory_store and
//            lmdb_store: the whole call (id validation, cap lookup, op-id
//            check), 1k users x 100 articles so none reaches the cap; ticks
//            run every 50k claps and are timed separately; thread CPU time;
//   fan-out  update deliveries per second to 10k in-memory subscribers over 1k
//            articles (uniform: 10 per article, one changed article each;
//            hot: all on one article; timeline: 50 articles each), with both
//            stores; a delivery appends the shared encodings to the
//            subscriber's buffer, as a server would build its frame;
//   commit   lmdb_store (fsync on) committing a 1k-article tick: median, p99;
//   op memory  heap bytes per live op id: the engine's, and memory_store's
//            apart, over 1M op ids (200k with --quick) made after the
//            (user, article) tallies they land on were already cached.
// Run it pinned to one core (taskset -c 0) for the "one core" figures.
#include <claps/claps.hpp>
#include <claps/lmdb.hpp>

#include <malloc.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

double seconds_since(clock_type::time_point start) {
  return std::chrono::duration<double>(clock_type::now() - start).count();
}

// CPU time of this thread: on a shared machine, preemption by other jobs
// would otherwise count as engine time. (LMDB commits are timed on the wall
// clock instead, since waiting for fsync is their cost.)
double thread_cpu_seconds() {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto index = static_cast<std::size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

std::vector<std::string> numbered(const char* prefix, std::size_t count) {
  std::vector<std::string> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) out.push_back(prefix + std::to_string(i));
  return out;
}

// A store factory: memory, or LMDB with fsync in a fresh directory.
struct store_maker {
  std::string name;
  std::function<std::unique_ptr<claps::store>()> make;
};

struct intake_result {
  std::string store;
  bool op_ids = false;
  std::size_t claps = 0;
  double clap_seconds = 0;
  double tick_seconds = 0;
  std::size_t ticks = 0;
  std::uint64_t accepted = 0;
  std::size_t errors = 0;
};

// 1000 users x 100 articles = 100k (user, article) pairs; 4M claps give each
// pair 40, under the cap of 50, and the engine's caches stay warm after the
// first 100k claps, as they do for a live article.
constexpr std::size_t intake_users = 1000;
constexpr std::size_t intake_articles = 100;
constexpr std::size_t claps_per_tick = 50'000;  // under the default max_pending_ops

intake_result run_intake(const store_maker& maker, std::size_t claps, bool with_op_ids,
                         const std::vector<std::string>& users, const std::vector<std::string>& articles,
                         const std::vector<std::string>& op_ids) {
  intake_result r;
  r.store = maker.name;
  r.op_ids = with_op_ids;
  r.claps = claps;
  auto store = maker.make();
  claps::engine_callbacks callbacks;
  std::uint64_t accepted = 0;
  callbacks.result = [&](const claps::op_result& result) {
    accepted += static_cast<std::uint64_t>(result.accepted);
  };
  claps::timestamp now{claps::millis(1'700'000'000'000)};
  claps::engine_options options;
  // Thousands of op ids per bench user: counted (the cost is measured), not capped.
  options.max_op_ids_per_user = 0;
  claps::engine engine(*store, options, callbacks, now);
  claps::clap_request request;
  for (std::size_t begin = 0; begin < claps; begin += claps_per_tick) {
    const std::size_t end = std::min(claps, begin + claps_per_tick);
    const double start = thread_cpu_seconds();
    for (std::size_t i = begin; i < end; ++i) {
      // Consecutive claps hit different users and articles.
      const std::size_t pair = i % (intake_users * intake_articles);
      request.user = users[pair % intake_users];
      request.article = articles[pair / intake_users];
      request.op_id = with_op_ids ? std::string_view(op_ids[i]) : std::string_view();
      request.cookie = i;
      if (engine.clap(request)) ++r.errors;
    }
    r.clap_seconds += thread_cpu_seconds() - start;
    now += claps::millis(25);
    const double tick_start = thread_cpu_seconds();
    engine.advance(now);
    r.tick_seconds += thread_cpu_seconds() - tick_start;
    ++r.ticks;
  }
  r.accepted = accepted;
  return r;
}

// Bytes the heap holds for the program (glibc: small chunks in the arenas
// plus large mmapped blocks).
std::size_t heap_bytes() {
  const struct mallinfo2 m = mallinfo2();
  return m.uordblks + m.hblkhd;
}

// memory_store, with the heap growth of its commits counted apart.
class measured_store final : public claps::store {
public:
  std::ptrdiff_t commit_bytes = 0;

  std::error_code read_total(std::string_view article, std::int64_t& total) override {
    return inner_.read_total(article, total);
  }
  std::error_code read_tally(std::string_view user, std::string_view article, std::int32_t& claps) override {
    return inner_.read_tally(user, article, claps);
  }
  std::error_code read_op(std::string_view user, std::string_view article, std::string_view op_id,
                          claps::stored_op& out, bool& found) override {
    return inner_.read_op(user, article, op_id, out, found);
  }
  bool op_records_expire_by(claps::timestamp& out) override { return inner_.op_records_expire_by(out); }
  void commit(const claps::commit_batch& batch, claps::commit_handler done) override {
    const std::size_t before = heap_bytes();
    inner_.commit(batch, [&](std::error_code, claps::durability) {});
    commit_bytes += static_cast<std::ptrdiff_t>(heap_bytes()) - static_cast<std::ptrdiff_t>(before);
    if (done) done({}, claps::durability::local);
  }

private:
  claps::memory_store inner_;
};

struct op_memory_result {
  std::size_t live_op_ids = 0;
  double engine_bytes_per_op = 0;
  double store_bytes_per_op = 0;
};

// Heap growth per live op id: the tallies are loaded first, then `count` op
// ids are made and committed (none expires); what the store's commits added
// is the store's share, the rest the engine's.
op_memory_result run_op_memory(std::size_t count, const std::vector<std::string>& users,
                               const std::vector<std::string>& articles,
                               const std::vector<std::string>& op_ids) {
  op_memory_result r;
  measured_store store;
  claps::timestamp now{claps::millis(1'700'000'000'000)};
  claps::engine_options options;
  options.max_op_ids_per_user = 0;
  claps::engine engine(store, options, {}, now);
  claps::clap_request request;
  auto clap_range = [&](std::size_t begin, std::size_t end, bool with_op_ids) {
    for (std::size_t i = begin; i < end; ++i) {
      const std::size_t pair = i % (intake_users * intake_articles);
      request.user = users[pair % intake_users];
      request.article = articles[pair / intake_users];
      request.op_id = with_op_ids ? std::string_view(op_ids[i]) : std::string_view();
      engine.clap(request);
      if ((i + 1) % claps_per_tick == 0 || i + 1 == end) {
        now += claps::millis(25);
        engine.advance(now);
      }
    }
  };
  clap_range(0, intake_users * intake_articles, false);  // every tally cached
  malloc_trim(0);
  const std::size_t before = heap_bytes();
  store.commit_bytes = 0;
  clap_range(0, count, true);
  const auto total = static_cast<double>(heap_bytes()) - static_cast<double>(before);
  r.live_op_ids = count;
  r.store_bytes_per_op = static_cast<double>(store.commit_bytes) / static_cast<double>(count);
  r.engine_bytes_per_op = (total - static_cast<double>(store.commit_bytes)) / static_cast<double>(count);
  return r;
}

struct fanout_result {
  std::string store;
  std::string layout;
  std::size_t subscribers = 0;
  std::size_t ticks = 0;
  std::uint64_t deliveries = 0;
  std::uint64_t updates = 0;
  std::uint64_t bytes = 0;
  double seconds = 0;
  std::vector<double> tick_ms;       // CPU time of advance()
  std::vector<double> wall_tick_ms;  // wall time (includes fsync for LMDB)
};

enum class layout { uniform, hot, timeline };

fanout_result run_fanout(const store_maker& maker, layout shape, std::size_t ticks,
                         const std::vector<std::string>& articles) {
  constexpr std::size_t subscribers = 10'000;
  fanout_result r;
  r.store = maker.name;
  r.layout = shape == layout::uniform ? "uniform" : shape == layout::hot ? "hot" : "timeline";
  r.subscribers = subscribers;
  auto store = maker.make();
  std::vector<std::string> inbox(subscribers);
  for (auto& frame : inbox) frame.reserve(256);
  claps::engine_callbacks callbacks;
  callbacks.encode = [](const claps::article_update& u, std::string& out) {
    char buffer[256];
    const int n = std::snprintf(buffer, sizeof buffer, R"({"article":"%.*s","total":%lld,"viewers":%u})",
                                static_cast<int>(u.article.size()), u.article.data(),
                                static_cast<long long>(u.total), u.viewers);
    out.assign(buffer, static_cast<std::size_t>(n));
  };
  callbacks.deliver = [&](claps::subscriber_id sub, std::span<const claps::article_update* const> updates) {
    // What a server does per subscriber: build one frame from the shared encodings.
    std::string& frame = inbox[sub];
    frame.assign(R"({"type":"counts","counts":[)");
    for (std::size_t i = 0; i < updates.size(); ++i) {
      if (i) frame += ',';
      frame += updates[i]->encoded;
    }
    frame += "]}";
    ++r.deliveries;
    r.updates += updates.size();
    r.bytes += frame.size();
  };
  claps::timestamp now{claps::millis(1'700'000'000'000)};
  claps::engine engine(*store, claps::engine_options{}, callbacks, now);
  claps::snapshot snap;
  for (std::size_t s = 0; s < subscribers; ++s) {
    if (shape == layout::uniform) {
      engine.subscribe(s, {}, articles[s % articles.size()], true, snap);
    } else if (shape == layout::hot) {
      engine.subscribe(s, {}, articles[0], true, snap);
    } else {
      for (std::size_t k = 0; k < 50; ++k)
        engine.subscribe(s, {}, articles[(s * 37 + k * 20) % articles.size()], true, snap);
    }
  }
  // The subscriptions themselves changed viewer counts: flush that tick first.
  now += claps::millis(25);
  engine.advance(now);
  const auto base_deliveries = r.deliveries;
  const auto base_updates = r.updates;
  r.deliveries = r.updates = r.bytes = 0;
  (void)base_deliveries;
  (void)base_updates;

  const auto users = numbered("f", 40 * articles.size());
  claps::clap_request request;
  for (std::size_t t = 0; t < ticks; ++t) {
    // One clap per article (hot: on the hot article), from users that rotate
    // every tick so nobody nears the cap.
    const std::size_t changed = shape == layout::hot ? 1 : articles.size();
    for (std::size_t a = 0; a < changed; ++a) {
      request.user = users[(t % 40) * articles.size() + a];
      request.article = articles[a];
      engine.clap(request);
    }
    now += claps::millis(25);
    const auto start = clock_type::now();
    const double cpu_start = thread_cpu_seconds();
    engine.advance(now);
    const double cpu = thread_cpu_seconds() - cpu_start;
    r.seconds += cpu;
    r.tick_ms.push_back(cpu * 1e3);
    r.wall_tick_ms.push_back(seconds_since(start) * 1e3);
  }
  r.ticks = ticks;
  return r;
}

struct commit_result {
  std::string variant;
  std::size_t commits = 0;
  std::vector<double> ms;
};

// Direct lmdb_store commits of one 1k-article tick: totals for 1k articles,
// plus (as the variant says) one new tally and one op record per article.
commit_result run_lmdb_commits(const std::string& dir, std::size_t commits, bool tallies_too, bool ops_too,
                               bool sync) {
  commit_result r;
  r.variant = std::string("1k totals") + (tallies_too ? " + 1k tallies" : "") +
              (ops_too ? " + 1k op records" : "") + (sync ? ", fsync" : ", no fsync");
  std::error_code ec;
  claps::lmdb_options options;
  options.path = dir;
  options.sync = sync;
  auto store = claps::lmdb_store::open(options, ec);
  if (!store) {
    std::fprintf(stderr, "engine_bench: lmdb open: %s\n", ec.message().c_str());
    return r;
  }
  const auto articles = numbered("a", 1000);
  std::vector<std::string> users, ops;
  std::vector<claps::article_total> totals(1000);
  std::vector<claps::user_tally> tallies(1000);
  std::vector<claps::op_record> records(1000);
  claps::timestamp now{claps::millis(1'700'000'000'000)};
  for (std::size_t c = 0; c < commits; ++c) {
    users.clear();
    ops.clear();
    for (std::size_t a = 0; a < 1000; ++a) {
      users.push_back("c" + std::to_string(c) + "-" + std::to_string(a));
      ops.push_back("o" + std::to_string(c) + "-" + std::to_string(a));
    }
    for (std::size_t a = 0; a < 1000; ++a) {
      totals[a] = {articles[a], static_cast<std::int64_t>(c + 1)};
      tallies[a] = {users[a], articles[a], 1};
      records[a] = {users[a], articles[a], ops[a], 1, 1, now + claps::millis(15 * 60 * 1000)};
    }
    claps::commit_batch batch{
        totals, std::span<const claps::user_tally>(tallies.data(), tallies_too ? tallies.size() : 0),
        std::span<const claps::op_record>(records.data(), ops_too ? records.size() : 0), now};
    const auto start = clock_type::now();
    bool ok = false;
    store->commit(batch, [&](std::error_code e, claps::durability) { ok = !e; });
    r.ms.push_back(seconds_since(start) * 1e3);
    if (!ok) std::fprintf(stderr, "engine_bench: commit %zu failed\n", c);
    now += claps::millis(25);
  }
  r.commits = commits;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  std::string json_path;
  std::string data_root = std::filesystem::temp_directory_path().string();
  bool quick = false;
  std::string only = "intake,fanout,commit,op_memory";
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--json" && i + 1 < argc) json_path = argv[++i];
    else if (arg == "--only" && i + 1 < argc) only = argv[++i];
    else if (arg == "--data-dir" && i + 1 < argc) data_root = argv[++i];
    else if (arg == "--quick") quick = true;
    else {
      std::fprintf(
          stderr,
          "usage: engine_bench [--json FILE] [--data-dir DIR] [--quick] [--only intake,fanout,commit,op_memory]\n");
      return 2;
    }
  }
  std::string root_template = data_root + "/engine_bench-XXXXXX";
  if (!mkdtemp(root_template.data())) {
    std::perror("engine_bench: mkdtemp");
    return 1;
  }
  const std::string root = root_template;
  std::size_t lmdb_dirs = 0;
  const store_maker memory{"memory", [] { return std::make_unique<claps::memory_store>(); }};
  const store_maker lmdb{"lmdb", [&]() -> std::unique_ptr<claps::store> {
                           std::error_code ec;
                           claps::lmdb_options options;
                           options.path = root + "/env" + std::to_string(lmdb_dirs++);
                           auto store = claps::lmdb_store::open(options, ec);
                           if (!store) {
                             std::fprintf(stderr, "engine_bench: lmdb open: %s\n", ec.message().c_str());
                             std::exit(1);
                           }
                           return store;
                         }};

  const std::size_t intake_claps = quick ? 500'000 : 4'000'000;
  const std::size_t intake_op_claps = quick ? 250'000 : 2'000'000;
  const std::size_t fanout_ticks = quick ? 40 : 200;
  const std::size_t commits = quick ? 50 : 300;
  const auto users = numbered("u", intake_users);
  const auto intake_article_ids = numbered("a", intake_articles);
  const auto articles = numbered("a", 1000);
  const std::size_t op_memory_ids = quick ? 200'000 : 1'000'000;
  const auto op_ids = numbered("o", std::max(intake_op_claps, op_memory_ids));

  const auto wanted = [&](std::string_view part) { return only.find(part) != std::string::npos; };
  std::vector<intake_result> intakes;
  if (wanted("intake")) {
    for (const auto* maker : {&memory, &lmdb}) {
      intakes.push_back(run_intake(*maker, intake_claps, false, users, intake_article_ids, op_ids));
      intakes.push_back(run_intake(*maker, intake_op_claps, true, users, intake_article_ids, op_ids));
    }
  }
  // First, while the heap holds little else.
  std::optional<op_memory_result> op_memory;
  if (wanted("op_memory")) op_memory = run_op_memory(op_memory_ids, users, intake_article_ids, op_ids);
  std::vector<fanout_result> fanouts;
  if (wanted("fanout")) {
    for (const auto* maker : {&memory, &lmdb})
      for (const auto shape : {layout::uniform, layout::hot, layout::timeline})
        fanouts.push_back(run_fanout(*maker, shape, fanout_ticks, articles));
  }
  // The first variant is the headline (a full tick); the others split its cost.
  std::vector<commit_result> commit_runs;
  if (wanted("commit")) {
    commit_runs.push_back(run_lmdb_commits(root + "/commits-full", commits, true, true, true));
    commit_runs.push_back(run_lmdb_commits(root + "/commits-totals", commits, false, false, true));
    commit_runs.push_back(run_lmdb_commits(root + "/commits-tallies", commits, true, false, true));
    commit_runs.push_back(run_lmdb_commits(root + "/commits-nosync", commits, true, true, false));
  }
  const commit_result commit = commit_runs.empty() ? commit_result{} : commit_runs.front();
  std::error_code ignored;
  std::filesystem::remove_all(root, ignored);

  std::printf("intake (clap() calls; ticks every %zu claps timed apart)\n", claps_per_tick);
  std::printf("  %-7s %-8s %10s %14s %16s %10s\n", "store", "op ids", "claps", "claps/s", "incl. ticks/s",
              "errors");
  for (const auto& r : intakes)
    std::printf("  %-7s %-8s %10zu %14.0f %16.0f %10zu\n", r.store.c_str(), r.op_ids ? "yes" : "no", r.claps,
                r.claps / r.clap_seconds, r.claps / (r.clap_seconds + r.tick_seconds), r.errors);
  if (op_memory)
    std::printf("op memory (%zu live op ids): engine %.1f bytes per live op id, memory_store %.1f\n",
                op_memory->live_op_ids, op_memory->engine_bytes_per_op, op_memory->store_bytes_per_op);
  std::printf("fan-out (10k subscribers, 1k articles; one tick = advance() incl. commit)\n");
  std::printf("  %-7s %-9s %16s %14s %12s %12s %14s\n", "store", "layout", "deliveries/s", "updates/s",
              "CPU p50 ms", "CPU p99 ms", "wall p50 ms");
  for (const auto& r : fanouts)
    std::printf("  %-7s %-9s %16.0f %14.0f %12.3f %12.3f %14.3f\n", r.store.c_str(), r.layout.c_str(),
                r.deliveries / r.seconds, r.updates / r.seconds, percentile(r.tick_ms, 0.5),
                percentile(r.tick_ms, 0.99), percentile(r.wall_tick_ms, 0.5));
  std::printf("lmdb_store commit of a 1k-article tick (wall time)\n");
  for (const auto& c : commit_runs)
    std::printf("  %-48s median %8.3f ms  p99 %8.3f ms  (%zu commits)\n", c.variant.c_str(),
                percentile(c.ms, 0.5), percentile(c.ms, 0.99), c.commits);

  if (!json_path.empty()) {
    std::FILE* f = std::fopen(json_path.c_str(), "w");
    if (!f) {
      std::perror("engine_bench: json");
      return 1;
    }
    std::fprintf(f, "{\n  \"quick\": %s,\n", quick ? "true" : "false");
    // Heap bytes per live op id: the engine's, and the memory store's apart.
    if (op_memory)
      std::fprintf(f,
                   "  \"bytes_per_live_op_id\": %.1f,\n  \"store_bytes_per_live_op_id\": %.1f,\n"
                   "  \"live_op_ids_measured\": %zu,\n",
                   op_memory->engine_bytes_per_op, op_memory->store_bytes_per_op, op_memory->live_op_ids);
    else std::fprintf(f, "  \"bytes_per_live_op_id\": null,\n  \"store_bytes_per_live_op_id\": null,\n");
    std::fprintf(f, "  \"intake\": [\n");
    for (std::size_t i = 0; i < intakes.size(); ++i) {
      const auto& r = intakes[i];
      std::fprintf(
          f,
          "    {\"store\": \"%s\", \"op_ids\": %s, \"claps\": %zu, \"claps_per_s\": %.0f, "
          "\"claps_per_s_including_ticks\": %.0f, \"ticks\": %zu, \"accepted\": %llu, \"errors\": %zu}%s\n",
          r.store.c_str(), r.op_ids ? "true" : "false", r.claps, r.claps / r.clap_seconds,
          r.claps / (r.clap_seconds + r.tick_seconds), r.ticks, static_cast<unsigned long long>(r.accepted),
          r.errors, i + 1 < intakes.size() ? "," : "");
    }
    std::fprintf(f, "  ],\n  \"fanout\": [\n");
    for (std::size_t i = 0; i < fanouts.size(); ++i) {
      const auto& r = fanouts[i];
      std::fprintf(
          f,
          "    {\"store\": \"%s\", \"layout\": \"%s\", \"subscribers\": %zu, \"ticks\": %zu, "
          "\"deliveries\": %llu, \"deliveries_per_s\": %.0f, \"updates_per_s\": %.0f, "
          "\"tick_ms_p50\": %.4f, \"tick_ms_p99\": %.4f, \"wall_tick_ms_p50\": %.4f, \"wall_tick_ms_p99\": %.4f}%s\n",
          r.store.c_str(), r.layout.c_str(), r.subscribers, r.ticks,
          static_cast<unsigned long long>(r.deliveries), r.deliveries / r.seconds, r.updates / r.seconds,
          percentile(r.tick_ms, 0.5), percentile(r.tick_ms, 0.99), percentile(r.wall_tick_ms, 0.5),
          percentile(r.wall_tick_ms, 0.99), i + 1 < fanouts.size() ? "," : "");
    }
    std::fprintf(
        f,
        "  ],\n  \"lmdb_commit_1k\": {\"variant\": \"%s\", \"commits\": %zu, \"median_ms\": %.4f, \"p99_ms\": %.4f, \"max_ms\": %.4f},\n",
        commit.variant.c_str(), commit.commits, percentile(commit.ms, 0.5), percentile(commit.ms, 0.99),
        commit.ms.empty() ? 0.0 : *std::max_element(commit.ms.begin(), commit.ms.end()));
    std::fprintf(f, "  \"lmdb_commit_variants\": [\n");
    for (std::size_t i = 0; i < commit_runs.size(); ++i)
      std::fprintf(f,
                   "    {\"variant\": \"%s\", \"commits\": %zu, \"median_ms\": %.4f, \"p99_ms\": %.4f}%s\n",
                   commit_runs[i].variant.c_str(), commit_runs[i].commits, percentile(commit_runs[i].ms, 0.5),
                   percentile(commit_runs[i].ms, 0.99), i + 1 < commit_runs.size() ? "," : "");
    std::fprintf(f, "  ]\n}\n");
    std::fclose(f);
  }
  return 0;
}
