// lmdb_store on real LMDB files in a fresh temporary directory per test.
//
// ctest runs this file twice: unit.lmdb_store commits inline (no
// on_commit_ready), unit.lmdb_store.writer (CLAPS_LMDB_TEST_WRITER=1) on the
// store's writer thread, every commit waited for with wait_for_commit().
#include "test_support.hpp"

#include <claps/engine.hpp>
#include <claps/error.hpp>
#include <claps/lmdb.hpp>

#include <doctest/doctest.h>
#include <lmdb.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdlib.h>
#include <unistd.h>

#include <pthread.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using claps::errc;
using claps::timestamp;
using claps_test::temp_dir;

const timestamp t0{claps::millis{1'790'000'000'000}};

bool writer_thread_mode() {
  const char* v = std::getenv("CLAPS_LMDB_TEST_WRITER");
  return v != nullptr && std::string_view(v) == "1";
}

std::unique_ptr<claps::lmdb_store> open_store(claps::lmdb_options options) {
  // wait_for_commit() waits on the store's own condition: the hook has nothing to do.
  if (writer_thread_mode() && !options.on_commit_ready) options.on_commit_ready = [] {};
  std::error_code ec;
  auto store = claps::lmdb_store::open(options, ec);
  INFO("open: " << ec.message());
  REQUIRE_FALSE(ec);
  REQUIRE(store != nullptr);
  return store;
}

std::unique_ptr<claps::lmdb_store> open_store(const std::string& path) {
  claps::lmdb_options options;
  options.path = path;
  options.map_size = std::size_t{64} << 20;
  return open_store(options);
}

// Commits and returns what the completion handler got, checking it ran
// exactly once: before commit() returned, or with the writer thread, not
// before but from wait_for_commit().
std::error_code commit(claps::lmdb_store& store, const claps::commit_batch& batch) {
  int calls = 0;
  std::error_code result;
  store.commit(batch, [&](std::error_code ec, claps::durability level) {
    ++calls;
    result = ec;
    CHECK(level == claps::durability::local);
  });
  if (writer_thread_mode()) {
    CHECK(calls == 0);
    CHECK(store.wait_for_commit() == 1);
  }
  CHECK(store.wait_for_commit() == 0);
  CHECK(calls == 1);
  return result;
}

std::int64_t total_of(claps::store& store, std::string_view article) {
  std::int64_t total = -1;
  REQUIRE_FALSE(store.read_total(article, total));
  return total;
}

std::int32_t tally_of(claps::store& store, std::string_view user, std::string_view article) {
  std::int32_t claps = -1;
  REQUIRE_FALSE(store.read_tally(user, article, claps));
  return claps;
}

std::optional<claps::stored_op> op_of(claps::store& store, std::string_view user, std::string_view op_id,
                                      std::string_view article = "a1") {
  claps::stored_op op;
  bool found = true;
  REQUIRE_FALSE(store.read_op(user, article, op_id, op, found));
  if (!found) return std::nullopt;
  return op;
}

// Owns the strings a batch's views point into.
struct batch_builder {
  std::vector<std::string> strings;
  std::vector<claps::article_total> totals;
  std::vector<claps::user_tally> tallies;
  std::vector<claps::op_record> ops;

  batch_builder() { strings.reserve(100'000); }
  std::string_view keep(std::string s) {
    REQUIRE(strings.size() < strings.capacity());  // views must not move
    strings.push_back(std::move(s));
    return strings.back();
  }
  void total(std::string article, std::int64_t total) { totals.push_back({keep(std::move(article)), total}); }
  void tally(std::string user, std::string article, std::int32_t claps) {
    auto u = keep(std::move(user));
    tallies.push_back({u, keep(std::move(article)), claps});
  }
  void op(std::string user, std::string op_id, std::string article, std::int32_t accepted, std::int32_t mine,
          timestamp expires_at) {
    auto u = keep(std::move(user));
    auto o = keep(std::move(op_id));
    ops.push_back({u, keep(std::move(article)), o, accepted, mine, expires_at});
  }
  claps::commit_batch batch(timestamp now) const { return {totals, tallies, ops, now}; }
};

// Raw LMDB on an environment's files, to build or inspect what lmdb_store
// reads and writes, in one write transaction that commit() commits.
class raw_env {
public:
  explicit raw_env(const std::string& path) {
    std::filesystem::create_directories(path);
    REQUIRE(mdb_env_create(&env_) == 0);
    REQUIRE(mdb_env_set_maxdbs(env_, 8) == 0);
    REQUIRE(mdb_env_set_mapsize(env_, std::size_t{64} << 20) == 0);
    REQUIRE(mdb_env_open(env_, path.c_str(), 0, 0644) == 0);
    REQUIRE(mdb_txn_begin(env_, nullptr, 0, &txn_) == 0);
  }
  ~raw_env() {
    if (txn_ != nullptr) mdb_txn_abort(txn_);
    mdb_env_close(env_);
  }
  raw_env(const raw_env&) = delete;
  raw_env& operator=(const raw_env&) = delete;

  void put(const char* db, std::string_view key, std::string_view value) {
    MDB_val k = val(key), v = val(value);
    REQUIRE(mdb_put(txn_, dbi(db), &k, &v, 0) == 0);
  }
  std::optional<std::string> get(const char* db, std::string_view key) {
    MDB_val k = val(key), v{};
    const int rc = mdb_get(txn_, dbi(db), &k, &v);
    REQUIRE((rc == 0 || rc == MDB_NOTFOUND));
    if (rc != 0) return std::nullopt;
    return std::string(static_cast<const char*>(v.mv_data), v.mv_size);
  }
  void del(const char* db, std::string_view key) {
    MDB_val k = val(key);
    REQUIRE(mdb_del(txn_, dbi(db), &k, nullptr) == 0);
  }
  std::map<std::string, std::string> dump(const char* db) {
    std::map<std::string, std::string> entries;
    MDB_cursor* cursor = nullptr;
    REQUIRE(mdb_cursor_open(txn_, dbi(db), &cursor) == 0);
    MDB_val k{}, v{};
    for (int rc = mdb_cursor_get(cursor, &k, &v, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &k, &v, MDB_NEXT))
      entries.emplace(std::string(static_cast<const char*>(k.mv_data), k.mv_size),
                      std::string(static_cast<const char*>(v.mv_data), v.mv_size));
    mdb_cursor_close(cursor);
    return entries;
  }
  void commit() {
    REQUIRE(mdb_txn_commit(txn_) == 0);
    txn_ = nullptr;
  }

private:
  static MDB_val val(std::string_view s) { return {s.size(), const_cast<char*>(s.data())}; }
  MDB_dbi dbi(const char* name) {
    MDB_dbi d = 0;
    REQUIRE(mdb_dbi_open(txn_, name, MDB_CREATE, &d) == 0);
    return d;
  }
  MDB_env* env_ = nullptr;
  MDB_txn* txn_ = nullptr;
};

std::string le32(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}
std::string le64(std::uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}
// op_expiry's key prefix: expires_at ms, sign bit flipped, big-endian.
std::string expiry_prefix(timestamp t) {
  const std::uint64_t v = static_cast<std::uint64_t>(t.time_since_epoch().count()) ^ (std::uint64_t{1} << 63);
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>(v >> (8 * (7 - i)));
  return s;
}
std::string op_value(timestamp expires_at, std::int32_t accepted, std::int32_t mine) {
  return le64(static_cast<std::uint64_t>(expires_at.time_since_epoch().count())) +
         le32(static_cast<std::uint32_t>(accepted)) + le32(static_cast<std::uint32_t>(mine));
}

// Every table of an environment, to compare two states byte for byte.
std::map<std::string, std::map<std::string, std::string>> dump_all(const std::string& path) {
  raw_env raw(path);
  std::map<std::string, std::map<std::string, std::string>> all;
  for (const char* db : {"meta", "totals", "tallies", "ops", "op_expiry"}) all[db] = raw.dump(db);
  return all;
}

// Reads a whole journal table `page` rows at a time, checking the paging
// contract on the way.
std::vector<claps::journal_row> read_all(claps::store& store, claps::journal_table table, std::size_t page) {
  std::vector<claps::journal_row> rows;
  std::string next;
  for (int calls = 0; calls < 10'000; ++calls) {
    const std::size_t before = rows.size();
    REQUIRE_FALSE(store.read_journal(table, next, page, rows, next));  // `after` views `next`
    CHECK(rows.size() - before <= page);
    if (next.empty()) return rows;
    CHECK(rows.size() - before == page);
  }
  FAIL("the journal walk did not end");
  return rows;
}

// One article's rows come together: once left, an article never comes back.
void check_articles_contiguous(const std::vector<claps::journal_row>& rows) {
  std::set<std::string> done;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i > 0 && rows[i].article != rows[i - 1].article) done.insert(rows[i - 1].article);
    CHECK(done.count(rows[i].article) == 0);
  }
}

}  // namespace

TEST_CASE("an empty store reads zeros and no ops") {
  temp_dir dir;
  auto store = open_store(dir.env());
  CHECK(total_of(*store, "a1") == 0);
  CHECK(tally_of(*store, "u1", "a1") == 0);
  CHECK_FALSE(op_of(*store, "u1", "op-1"));
  CHECK(store->op_count() == 0);
  CHECK(store->reopens() == 0);
  CHECK(std::filesystem::exists(dir.env() + "/data.mdb"));
}

TEST_CASE("a commit is read back; tallies and totals of 0 are deleted") {
  temp_dir dir;
  auto store = open_store(dir.env());
  batch_builder b;
  b.total("a1", 7);
  b.total("a2", 50);
  b.tally("u1", "a1", 3);
  b.tally("u2", "a1", 4);
  b.tally("u1", "a2", 50);
  b.op("u1", "op-1", "a1", 3, 3, t0 + 15min);
  b.op("u2", "op-1", "a1", -2, 4, t0 + 16min);
  REQUIRE_FALSE(commit(*store, b.batch(t0)));

  CHECK(total_of(*store, "a1") == 7);
  CHECK(total_of(*store, "a2") == 50);
  CHECK(total_of(*store, "a3") == 0);
  CHECK(tally_of(*store, "u1", "a1") == 3);
  CHECK(tally_of(*store, "u2", "a1") == 4);
  CHECK(tally_of(*store, "u1", "a2") == 50);
  CHECK(tally_of(*store, "u2", "a2") == 0);
  auto op = op_of(*store, "u2", "op-1");
  REQUIRE(op);
  CHECK(op->accepted == -2);
  CHECK(op->mine == 4);
  CHECK(op->expires_at == t0 + 16min);
  CHECK_FALSE(op_of(*store, "u3", "op-1"));
  CHECK(store->op_count() == 2);

  batch_builder undo;
  undo.total("a1", 4);
  undo.total("a2", 0);
  undo.tally("u1", "a1", 0);
  undo.tally("u1", "a2", 0);
  REQUIRE_FALSE(commit(*store, undo.batch(t0 + 1s)));
  CHECK(total_of(*store, "a1") == 4);
  CHECK(total_of(*store, "a2") == 0);
  CHECK(tally_of(*store, "u1", "a1") == 0);
  CHECK(tally_of(*store, "u2", "a1") == 4);
  CHECK(tally_of(*store, "u1", "a2") == 0);

  // Deleted, not stored as zero: inspect the files with raw LMDB.
  store.reset();
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  mdb_env_set_maxdbs(env, 8);
  REQUIRE(mdb_env_open(env, dir.env().c_str(), MDB_RDONLY, 0644) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) == 0);
  MDB_dbi tallies = 0, totals = 0;
  REQUIRE(mdb_dbi_open(txn, "tallies", 0, &tallies) == 0);
  REQUIRE(mdb_dbi_open(txn, "totals", 0, &totals) == 0);
  MDB_stat stat{};
  REQUIRE(mdb_stat(txn, tallies, &stat) == 0);
  CHECK(stat.ms_entries == 1);
  REQUIRE(mdb_stat(txn, totals, &stat) == 0);
  CHECK(stat.ms_entries == 1);
  mdb_txn_abort(txn);
  mdb_env_close(env);
}

TEST_CASE("a reopened environment gives identical state") {
  temp_dir dir;
  batch_builder b;
  for (int i = 0; i < 300; ++i) {
    b.total("article-" + std::to_string(i), i * 3 + 1);
    b.tally("user-" + std::to_string(i % 17), "article-" + std::to_string(i), i % 50 + 1);
    b.op("user-" + std::to_string(i % 17), "op-" + std::to_string(i), "article-" + std::to_string(i),
         i % 50 + 1, i % 50 + 1, t0 + claps::millis{i});
  }
  auto check_all = [&](claps::store& store) {
    for (const auto& t : b.totals) CHECK(total_of(store, t.article) == t.total);
    for (const auto& t : b.tallies) CHECK(tally_of(store, t.user, t.article) == t.claps);
    for (const auto& o : b.ops) {
      auto op = op_of(store, o.user, o.op_id, o.article);
      REQUIRE(op);
      CHECK(op->accepted == o.accepted);
      CHECK(op->mine == o.mine);
      CHECK(op->expires_at == o.expires_at);
    }
  };
  {
    auto store = open_store(dir.env());
    REQUIRE_FALSE(commit(*store, b.batch(t0 - 1h)));
    check_all(*store);
  }
  auto store = open_store(dir.env());
  check_all(*store);
  CHECK(store->op_count() == b.ops.size());
  CHECK(store->reopens() == 0);
}

TEST_CASE("sync=false commits are durable across a clean close") {
  temp_dir dir;
  claps::lmdb_options options;
  options.path = dir.env();
  options.sync = false;
  batch_builder b;
  b.total("a1", 12);
  b.tally("u1", "a1", 12);
  {
    auto store = open_store(options);
    REQUIRE_FALSE(commit(*store, b.batch(t0)));
  }
  auto store = open_store(dir.env());
  CHECK(total_of(*store, "a1") == 12);
  CHECK(tally_of(*store, "u1", "a1") == 12);
}

TEST_CASE("a different format version is refused") {
  for (std::uint32_t version : {0u, claps::lmdb_format_version + 1}) {
    temp_dir dir;
    open_store(dir.env()).reset();  // creates the environment at the current version
    {
      // Rewrite the version with raw LMDB, as a future build would.
      raw_env raw(dir.env());
      CHECK(raw.get("meta", "format_version") == le32(claps::lmdb_format_version));
      CHECK(claps::lmdb_format_version == 2);
      raw.put("meta", "format_version", le32(version));
      raw.commit();
    }
    claps::lmdb_options options;
    options.path = dir.env();
    std::error_code ec;
    auto store = claps::lmdb_store::open(options, ec);
    CHECK(store == nullptr);
    CHECK(ec == errc::store_incompatible);
  }
}

TEST_CASE("an LMDB environment that is not a claps store is refused") {
  temp_dir dir;
  std::filesystem::create_directories(dir.env());
  MDB_env* env = nullptr;
  REQUIRE(mdb_env_create(&env) == 0);
  REQUIRE(mdb_env_open(env, dir.env().c_str(), 0, 0644) == 0);
  MDB_txn* txn = nullptr;
  REQUIRE(mdb_txn_begin(env, nullptr, 0, &txn) == 0);
  MDB_dbi main = 0;
  REQUIRE(mdb_dbi_open(txn, nullptr, 0, &main) == 0);
  char k[] = "someone-else", d[] = "data";
  MDB_val key{sizeof k, k}, value{sizeof d, d};
  REQUIRE(mdb_put(txn, main, &key, &value, 0) == 0);
  REQUIRE(mdb_txn_commit(txn) == 0);
  mdb_env_close(env);

  claps::lmdb_options options;
  options.path = dir.env();
  std::error_code ec;
  CHECK(claps::lmdb_store::open(options, ec) == nullptr);
  CHECK(ec == errc::store_incompatible);
}

TEST_CASE("a path that cannot be a directory fails with store_io") {
  temp_dir dir;
  const std::string file = dir.path() + "/plain-file";
  {
    std::FILE* f = std::fopen(file.c_str(), "w");
    REQUIRE(f);
    std::fclose(f);
  }
  claps::lmdb_options options;
  options.path = file + "/env";
  std::error_code ec;
  CHECK(claps::lmdb_store::open(options, ec) == nullptr);
  CHECK(ec == errc::store_io);
}

TEST_CASE("a map at its maximum fails the whole batch with store_full and the store keeps working") {
  temp_dir dir;
  claps::lmdb_options options;
  options.path = dir.env();
  options.map_size = 256 * 1024;
  options.max_map_size = options.map_size;  // no room to grow
  auto store = open_store(options);

  batch_builder small;
  small.total("kept", 5);
  small.tally("u1", "kept", 5);
  small.op("u1", "op-kept", "kept", 5, 5, t0 + 15min);
  REQUIRE_FALSE(commit(*store, small.batch(t0)));

  batch_builder big;
  for (int i = 0; i < 5000; ++i) {
    const std::string article = "big-article-with-a-long-name-" + std::to_string(i);
    big.total(article, i + 1);
    big.tally("user-with-a-long-name", article, 1);
    big.op("user-with-a-long-name", "op-" + std::to_string(i), article, 1, 1, t0 + 15min);
  }
  big.total("kept", 99);  // overwrites a committed value: must not show either
  CHECK(commit(*store, big.batch(t0)) == errc::store_full);

  CHECK(total_of(*store, "kept") == 5);
  CHECK(tally_of(*store, "u1", "kept") == 5);
  for (int i : {0, 1, 2500, 4999}) {
    const std::string article = "big-article-with-a-long-name-" + std::to_string(i);
    CHECK(total_of(*store, article) == 0);
    CHECK(tally_of(*store, "user-with-a-long-name", article) == 0);
    CHECK_FALSE(op_of(*store, "user-with-a-long-name", "op-" + std::to_string(i), article));
  }
  CHECK(store->op_count() == 1);

  batch_builder after;
  after.total("kept", 6);
  after.total("new", 1);
  after.tally("u1", "kept", 6);
  after.op("u1", "op-after", "kept", 1, 6, t0 + 15min);
  REQUIRE_FALSE(commit(*store, after.batch(t0 + 1s)));
  CHECK(total_of(*store, "kept") == 6);
  CHECK(total_of(*store, "new") == 1);
  CHECK(tally_of(*store, "u1", "kept") == 6);
  CHECK(op_of(*store, "u1", "op-after", "kept"));
  CHECK(store->op_count() == 2);
  CHECK(store->reopens() == 0);

  // Still consistent after a reopen.
  store.reset();
  store = open_store(options);
  CHECK(total_of(*store, "kept") == 6);
  CHECK(store->op_count() == 2);
}

// ---- space: the map grows, a reserve below its maximum, purges of their own ----

// Commits batches of `per_batch` new ops, each with a tally and a total of its
// own (the shape of a flood), expiring at `expires`, while the store accepts
// new keys, at most `max_batches`. Returns the ops committed; `failed` is the
// first commit error, if any.
int flood(claps::lmdb_store& store, timestamp now, timestamp expires, int per_batch, int& serial,
          std::error_code& failed, int max_batches = 10'000) {
  int committed = 0;
  for (int b = 0; b < max_batches && store.space().accepts_new_keys; ++b) {
    batch_builder batch;
    for (int i = 0; i < per_batch; ++i, ++serial) {
      const std::string article = "flood-article-" + std::to_string(serial * 7919 % 100'003);
      const std::string user = "flood-user-" + std::to_string(serial);
      batch.total(article, 1);
      batch.tally(user, article, 1);
      batch.op(user, "op-" + std::to_string(serial), article, 1, 1, expires);
    }
    if ((failed = commit(store, batch.batch(now)))) return committed;
    committed += per_batch;
  }
  return committed;
}

TEST_CASE("the map grows by itself from map_size up to max_map_size, never past it") {
  temp_dir dir;
  claps::lmdb_options options;
  options.path = dir.env();
  options.map_size = 64 * 1024;
  options.max_map_size = 16 << 20;
  auto store = open_store(options);
  CHECK(store->space().size_bytes == 64 * 1024);
  CHECK(store->space().max_bytes == options.max_map_size);

  // One batch far larger than the initial map.
  int serial = 0;
  std::error_code failed;
  CHECK(flood(*store, t0, t0 + 15min, 3000, serial, failed, 1) == 3000);
  CHECK_FALSE(failed);
  CHECK(store->growths() > 0);
  CHECK(store->space().size_bytes > 64 * 1024);
  CHECK(store->op_count() == 3000);

  // Until it stops: never past the maximum, and no commit ever failed.
  flood(*store, t0, t0 + 15min, 500, serial, failed);
  CHECK_FALSE(failed);
  CHECK_FALSE(store->space().accepts_new_keys);
  CHECK(store->space().size_bytes == options.max_map_size);
  CHECK(std::filesystem::file_size(dir.env() + "/data.mdb") <= options.max_map_size);
  CHECK(store->reopens() == 0);

  // Reopened at the size it had grown to (LMDB keeps the data's size).
  const auto ops = store->op_count();
  store.reset();
  store = open_store(options);
  CHECK(store->op_count() == ops);
  CHECK(store->space().size_bytes >= std::filesystem::file_size(dir.env() + "/data.mdb"));
}

TEST_CASE("open refuses a map_size above max_map_size, or a headroom that leaves nothing") {
  temp_dir dir;
  claps::lmdb_options options;
  options.path = dir.env();
  options.map_size = 8 << 20;
  options.max_map_size = 4 << 20;
  std::error_code ec;
  CHECK(claps::lmdb_store::open(options, ec) == nullptr);
  CHECK(ec == errc::bad_request);
  options.map_size = 1 << 20;
  options.headroom = options.max_map_size;
  CHECK(claps::lmdb_store::open(options, ec) == nullptr);
  CHECK(ec == errc::bad_request);
  CHECK(claps::default_headroom(std::size_t{4} << 30) == std::size_t{64} << 20);
  CHECK(claps::default_headroom(std::size_t{4} << 20) == std::size_t{2} << 20);
}

TEST_CASE(
    "past max_map_size - headroom new keys are refused, and the reserve holds the tail batch and undos") {
  temp_dir dir;
  claps::lmdb_options options;
  options.path = dir.env();
  options.map_size = 256 * 1024;
  options.max_map_size = 4 << 20;  // default headroom: 2 MiB
  auto store = open_store(options);
  CHECK(store->space().accepts_new_keys);

  int serial = 0;
  std::error_code failed;
  const int flooded = flood(*store, t0, t0 + 15min, 100, serial, failed);
  CHECK_FALSE(failed);  // refused before any commit failed
  REQUIRE(flooded > 0);
  const claps::store_space full = store->space();
  CHECK_FALSE(full.accepts_new_keys);
  CHECK(full.used_bytes + claps::default_headroom(options.max_map_size) > options.max_map_size);
  CHECK(full.used_bytes <= options.max_map_size);

  // The tick's batch that was accepted before the refusal still commits...
  batch_builder tail;
  for (int i = 0; i < 100; ++i, ++serial) {
    const std::string article = "tail-" + std::to_string(serial);
    tail.total(article, 1);
    tail.tally("tail-user", article, 1);
    tail.op("tail-user", "op-" + std::to_string(serial), article, 1, 1, t0 + 15min);
  }
  CHECK_FALSE(commit(*store, tail.batch(t0 + 1s)));
  // ...and so do undos spread over the whole store, each with an op record.
  batch_builder undos;
  for (int i = 0; i < 200; ++i) {
    const int victim = i * 31 % flooded;
    const std::string article = "flood-article-" + std::to_string(victim * 7919 % 100'003);
    const std::string user = "flood-user-" + std::to_string(victim);
    undos.total(article, 0);
    undos.tally(user, article, 0);
    undos.op(user, "undo-" + std::to_string(i), article, -1, 0, t0 + 15min);
  }
  CHECK_FALSE(commit(*store, undos.batch(t0 + 2s)));
  CHECK(tally_of(*store, "flood-user-0", "flood-article-0") == 0);
  CHECK(store->reopens() == 0);
}

TEST_CASE("expired op records are purged in a transaction of their own when the batch cannot fit") {
  temp_dir dir;
  claps::lmdb_options options;
  options.path = dir.env();
  options.map_size = 2 << 20;
  options.max_map_size = 2 << 20;
  options.headroom = 4096;  // to reach the true end of the map
  auto store = open_store(options);
  int serial = 0;
  std::error_code failed;
  flood(*store, t0, t0 + 1min, 200, serial, failed);
  REQUIRE(failed == errc::store_full);  // the map itself is full
  const std::size_t before = store->op_count();

  // A batch that can never fit, once its records expired: the purge runs
  // anyway (it used to share the batch's transaction, and fail with it).
  batch_builder big;
  for (int i = 0; i < 12'000; ++i) {
    const std::string article = "big-" + std::to_string(i);
    big.total(article, 1);
    big.tally("big-user", article, 1);
    big.op("big-user", "big-op-" + std::to_string(i), article, 1, 1, t0 + 15min);
  }
  CHECK(commit(*store, big.batch(t0 + 2min)) == errc::store_full);
  CHECK(store->op_count() < before);
  CHECK(total_of(*store, "big-0") == 0);  // and the failed batch wrote nothing

  // The next commits keep purging, while the batch keeps failing whole.
  CHECK(commit(*store, big.batch(t0 + 2min)) == errc::store_full);
  const batch_builder empty;
  for (int i = 0; i < 50 && store->op_count() > 0; ++i) REQUIRE_FALSE(commit(*store, empty.batch(t0 + 2min)));
  CHECK(store->op_count() == 0);
  CHECK(store->reopens() == 0);
}

TEST_CASE(
    "a store short of space accepts new keys again once expired op records are purged, without a reopen") {
  temp_dir dir;
  claps::lmdb_options options;
  options.path = dir.env();
  options.map_size = 256 * 1024;
  options.max_map_size = 4 << 20;
  auto store = open_store(options);
  int serial = 0;
  std::error_code failed;
  // Few tallies, many op ids: what a flood of claps with op ids leaves.
  batch_builder seed;
  seed.total("one", 1);
  seed.tally("user", "one", 1);
  REQUIRE_FALSE(commit(*store, seed.batch(t0)));
  for (int b = 0; b < 1000 && store->space().accepts_new_keys; ++b) {
    batch_builder batch;
    for (int i = 0; i < 200; ++i, ++serial)
      batch.op("user", "op-" + std::to_string(serial) + "-padding-padding", "one", 0, 1, t0 + 1min);
    REQUIRE_FALSE(commit(*store, batch.batch(t0)));
  }
  REQUIRE_FALSE(store->space().accepts_new_keys);
  const std::uint64_t used_full = store->space().used_bytes;
  const auto file_size = std::filesystem::file_size(dir.env() + "/data.mdb");

  // Still refusing before the records expire, whatever is committed.
  const batch_builder empty;
  REQUIRE_FALSE(commit(*store, empty.batch(t0 + 30s)));
  CHECK_FALSE(store->space().accepts_new_keys);

  // Past expiry, the empty batches the engine commits purge it back to room.
  int commits = 0;
  while (!store->space().accepts_new_keys && commits < 100) {
    REQUIRE_FALSE(commit(*store, empty.batch(t0 + 2min)));
    ++commits;
  }
  CHECK(store->space().accepts_new_keys);
  CHECK(store->space().used_bytes < used_full);
  CHECK(std::filesystem::file_size(dir.env() + "/data.mdb") >= file_size);  // the file never shrinks
  batch_builder after;
  after.total("two", 1);
  after.tally("user", "two", 1);
  after.op("user", "op-after", "two", 1, 1, t0 + 15min);
  CHECK_FALSE(commit(*store, after.batch(t0 + 2min)));
  CHECK(op_of(*store, "user", "op-after", "two"));
  CHECK(store->reopens() == 0);
}

// Lowers the process's file size limit (RLIMIT_FSIZE), as a full disk would
// refuse writes, until destroyed. SIGXFSZ is ignored so writes fail with EFBIG.
class file_size_limit {
public:
  explicit file_size_limit(rlim_t bytes) {
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved_) == 0);
    old_handler_ = ::signal(SIGXFSZ, SIG_IGN);
    rlimit lowered = saved_;
    lowered.rlim_cur = bytes;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &lowered) == 0);
  }
  ~file_size_limit() { lift(); }
  file_size_limit(const file_size_limit&) = delete;
  file_size_limit& operator=(const file_size_limit&) = delete;
  void lift() {
    if (lifted_) return;
    lifted_ = true;
    ::setrlimit(RLIMIT_FSIZE, &saved_);
    ::signal(SIGXFSZ, old_handler_);
  }

private:
  rlimit saved_{};
  void (*old_handler_)(int) = nullptr;
  bool lifted_ = false;
};

TEST_CASE("a disk that refuses writes is store_full and refuses new keys, until a commit finds room again") {
  temp_dir dir;
  claps::lmdb_options options;
  options.path = dir.env();
  auto store = open_store(options);
  batch_builder first;
  first.total("kept", 1);
  first.tally("u1", "kept", 1);
  REQUIRE_FALSE(commit(*store, first.batch(t0)));

  batch_builder grows;  // needs pages past the end of the file
  for (int i = 0; i < 2000; ++i) {
    const std::string article = "disk-" + std::to_string(i);
    grows.total(article, 1);
    grows.tally("u1", article, 1);
    grows.op("u1", "op-" + std::to_string(i), article, 1, 1, t0 + 15min);
  }
  {
    file_size_limit full(std::filesystem::file_size(dir.env() + "/data.mdb"));
    CHECK(commit(*store, grows.batch(t0 + 1s)) == errc::store_full);
    CHECK_FALSE(store->space().accepts_new_keys);
    CHECK(commit(*store, grows.batch(t0 + 2s)) == errc::store_full);  // retried: still no room
    CHECK_FALSE(store->space().accepts_new_keys);
    full.lift();
    // The disk has room again: the same batch, retried, commits.
    CHECK_FALSE(commit(*store, grows.batch(t0 + 3s)));
  }
  CHECK(store->space().accepts_new_keys);
  CHECK(total_of(*store, "kept") == 1);
  CHECK(total_of(*store, "disk-1999") == 1);
  CHECK(store->op_count() == 2000);
}

TEST_CASE("expired ops are purged by later commits, a bounded number per commit") {
  temp_dir dir;
  claps::lmdb_options options;
  options.path = dir.env();
  options.max_purge_per_commit = 3;
  auto store = open_store(options);

  batch_builder b;
  // Seven that expire by t0 + 7s (out of order), two far later.
  for (int i : {5, 1, 7, 3, 2, 6, 4})
    b.op("u1", "op-" + std::to_string(i), "a1", 1, i, t0 + std::chrono::seconds{i});
  b.op("u1", "op-late", "a1", 1, 1, t0 + 1h);
  b.op("u2", "op-late", "a1", 1, 1, t0 + 2h);
  REQUIRE_FALSE(commit(*store, b.batch(t0)));
  CHECK(store->op_count() == 9);

  // Expired but not yet purged: still readable; the engine compares expires_at.
  auto expired = op_of(*store, "u1", "op-1");
  REQUIRE(expired);
  CHECK(expired->expires_at <= t0 + 7s);

  const batch_builder empty;
  const timestamp now = t0 + 7s;  // expires_at == now counts as expired
  REQUIRE_FALSE(commit(*store, empty.batch(now)));
  CHECK(store->op_count() == 6);
  // Oldest first.
  for (int i : {1, 2, 3}) CHECK_FALSE(op_of(*store, "u1", "op-" + std::to_string(i)));
  for (int i : {4, 5, 6, 7}) CHECK(op_of(*store, "u1", "op-" + std::to_string(i)));

  REQUIRE_FALSE(commit(*store, empty.batch(now)));
  CHECK(store->op_count() == 3);
  REQUIRE_FALSE(commit(*store, empty.batch(now)));
  CHECK(store->op_count() == 2);
  REQUIRE_FALSE(commit(*store, empty.batch(now)));
  CHECK(store->op_count() == 2);
  CHECK(op_of(*store, "u1", "op-late"));
  CHECK(op_of(*store, "u2", "op-late"));

  REQUIRE_FALSE(commit(*store, empty.batch(t0 + 1h)));
  CHECK(store->op_count() == 1);
  CHECK_FALSE(op_of(*store, "u1", "op-late"));
  CHECK(op_of(*store, "u2", "op-late"));
}

TEST_CASE("a rewritten op record keeps one expiry entry, for its new expiry") {
  temp_dir dir;
  auto store = open_store(dir.env());
  batch_builder first;
  first.op("u1", "op-x", "a1", 2, 2, t0 + 1s);
  REQUIRE_FALSE(commit(*store, first.batch(t0)));
  batch_builder second;
  second.op("u1", "op-x", "a1", 4, 4, t0 + 1h);
  REQUIRE_FALSE(commit(*store, second.batch(t0)));
  CHECK(store->op_count() == 1);

  const batch_builder empty;
  REQUIRE_FALSE(commit(*store, empty.batch(t0 + 1min)));
  auto op = op_of(*store, "u1", "op-x");
  REQUIRE(op);
  CHECK(op->accepted == 4);
  CHECK(op->expires_at == t0 + 1h);
  REQUIRE_FALSE(commit(*store, empty.batch(t0 + 1h)));
  CHECK_FALSE(op_of(*store, "u1", "op-x"));
  CHECK(store->op_count() == 0);
}

TEST_CASE("a commit that rewrites an expired op record keeps the new one") {
  temp_dir dir;
  auto store = open_store(dir.env());
  batch_builder first;
  first.op("u1", "op-x", "a1", 2, 2, t0 + 1s);
  REQUIRE_FALSE(commit(*store, first.batch(t0)));
  batch_builder second;  // purged and rewritten in the same transaction
  second.op("u1", "op-x", "a1", 1, 3, t0 + 2s + 15min);
  REQUIRE_FALSE(commit(*store, second.batch(t0 + 2s)));
  auto op = op_of(*store, "u1", "op-x");
  REQUIRE(op);
  CHECK(op->mine == 3);
  CHECK(op->expires_at == t0 + 2s + 15min);
  CHECK(store->op_count() == 1);
}

TEST_CASE("ids longer than the id rules allow are refused without partial writes") {
  temp_dir dir;
  auto store = open_store(dir.env());
  const std::string too_long(129, 'x');
  std::int64_t total = -1;
  CHECK(store->read_total(too_long, total) == errc::bad_request);
  CHECK(total == 0);
  std::int32_t claps = -1;
  CHECK(store->read_tally(too_long, "a1", claps) == errc::bad_request);
  claps::stored_op op;
  bool found = true;
  CHECK(store->read_op("u1", "a1", too_long, op, found) == errc::bad_request);
  CHECK_FALSE(found);

  batch_builder b;
  b.total("a1", 1);
  b.tally("u1", "a1", 1);
  b.tally(too_long, "a1", 1);
  const std::error_code ec = commit(*store, b.batch(t0));
  CHECK(ec);
  CHECK(ec.category() == claps::error_category());
  CHECK(total_of(*store, "a1") == 0);
  CHECK(tally_of(*store, "u1", "a1") == 0);
  batch_builder fine;
  fine.total("a1", 1);
  REQUIRE_FALSE(commit(*store, fine.batch(t0)));
  CHECK(total_of(*store, "a1") == 1);
}

// Fault injection on the real file: LMDB reports MDB_CORRUPTED when a B-tree
// root is neither a branch nor a leaf page. Flip that page's flags, read,
// restore them, and the store must have reopened its environment.
TEST_CASE("corruption reports store_corrupted and the store reopens its environment") {
  temp_dir dir;
  auto store = open_store(dir.env());
  batch_builder b;
  b.total("corrupt-me-article", 42);
  REQUIRE_FALSE(commit(*store, b.batch(t0)));
  REQUIRE(total_of(*store, "corrupt-me-article") == 42);

  const std::string data_file = dir.env() + "/data.mdb";
  const int fd = ::open(data_file.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  const long page_size = ::sysconf(_SC_PAGESIZE);  // LMDB's page size is the OS page size
  const std::uint64_t size = std::filesystem::file_size(data_file);
  const std::string needle = "corrupt-me-article";
  constexpr std::size_t flags_offset = 10;  // MDB_page: pgno (8), pad (2), flags (2)
  constexpr std::uint16_t leaf_flag = 0x02, overflow_flag = 0x04;
  std::vector<std::pair<off_t, std::uint16_t>> changed;
  std::vector<char> page(static_cast<std::size_t>(page_size));
  for (off_t off = 0; static_cast<std::uint64_t>(off) < size; off += page_size) {
    REQUIRE(::pread(fd, page.data(), page.size(), off) == page_size);
    std::uint16_t flags = 0;
    std::memcpy(&flags, page.data() + flags_offset, 2);
    if ((flags & leaf_flag) == 0) continue;
    if (std::string_view(page.data(), page.size()).find(needle) == std::string_view::npos) continue;
    const std::uint16_t bad = overflow_flag;
    REQUIRE(::pwrite(fd, &bad, 2, off + flags_offset) == 2);
    changed.emplace_back(off, flags);
  }
  REQUIRE_FALSE(changed.empty());

  std::int64_t total = -1;
  CHECK(store->read_total("corrupt-me-article", total) == errc::store_corrupted);
  CHECK(store->reopens() == 0);

  for (auto [off, flags] : changed) REQUIRE(::pwrite(fd, &flags, 2, off + flags_offset) == 2);
  ::close(fd);

  CHECK(total_of(*store, "corrupt-me-article") == 42);
  CHECK(store->reopens() == 1);
  batch_builder next;
  next.total("corrupt-me-article", 43);
  REQUIRE_FALSE(commit(*store, next.batch(t0 + 1s)));
  CHECK(total_of(*store, "corrupt-me-article") == 43);
  CHECK(store->reopens() == 1);
}

TEST_CASE("format 2 keys: article first, ops values without the article") {
  temp_dir dir;
  {
    auto store = open_store(dir.env());
    batch_builder b;
    b.tally("u1", "a1", 3);
    b.op("u1", "op-1", "a1", 3, 3, t0 + 15min);
    REQUIRE_FALSE(commit(*store, b.batch(t0)));
  }
  raw_env raw(dir.env());
  CHECK(raw.get("meta", "format_version") == le32(2));
  CHECK(raw.get("tallies", "a1/u1") == le32(3));
  CHECK(raw.get("ops", "a1/u1/op-1") == op_value(t0 + 15min, 3, 3));
  const auto expiry = raw.dump("op_expiry");
  REQUIRE(expiry.size() == 1);
  CHECK(expiry.begin()->first == expiry_prefix(t0 + 15min) + "a1/u1/op-1");
  CHECK(expiry.begin()->second.empty());
}

TEST_CASE("one user's op id on two articles is two independent records") {
  temp_dir dir;
  auto store = open_store(dir.env());
  batch_builder b;
  b.op("u1", "op-1", "a1", 3, 3, t0 + 1s);
  b.op("u1", "op-1", "a2", 7, 9, t0 + 1h);
  REQUIRE_FALSE(commit(*store, b.batch(t0)));
  CHECK(store->op_count() == 2);
  auto one = op_of(*store, "u1", "op-1", "a1");
  auto two = op_of(*store, "u1", "op-1", "a2");
  REQUIRE(one);
  REQUIRE(two);
  CHECK(one->accepted == 3);
  CHECK(one->mine == 3);
  CHECK(two->accepted == 7);
  CHECK(two->mine == 9);
  CHECK_FALSE(op_of(*store, "u1", "op-1", "a3"));
  CHECK_FALSE(op_of(*store, "u2", "op-1", "a1"));

  // Rewriting one leaves the other; purging one leaves the other.
  batch_builder rewrite;
  rewrite.op("u1", "op-1", "a2", -9, 0, t0 + 2h);
  REQUIRE_FALSE(commit(*store, rewrite.batch(t0)));
  REQUIRE(op_of(*store, "u1", "op-1", "a1"));
  CHECK(op_of(*store, "u1", "op-1", "a1")->accepted == 3);
  const batch_builder empty;
  REQUIRE_FALSE(commit(*store, empty.batch(t0 + 1s)));
  CHECK_FALSE(op_of(*store, "u1", "op-1", "a1"));
  auto left = op_of(*store, "u1", "op-1", "a2");
  REQUIRE(left);
  CHECK(left->accepted == -9);
  CHECK(left->expires_at == t0 + 2h);
  CHECK(store->op_count() == 1);
}

namespace {

// A format-1 environment as the previous build wrote it: tallies
// "user/article", ops "user/op_id" with the article after the op value.
void write_format_1(const std::string& path, int extra_users = 0) {
  raw_env raw(path);
  raw.put("meta", "format_version", le32(1));
  raw.put("totals", "a1", le64(8));
  raw.put("totals", "a2", le64(50));
  raw.put("tallies", "alice/a1", le32(3));
  raw.put("tallies", "bob/a1", le32(5));
  raw.put("tallies", "bob/a2", le32(50));
  auto op = [&](std::string user, std::string op_id, std::string article, std::int32_t accepted,
                std::int32_t mine, timestamp expires_at) {
    const std::string key = user + "/" + op_id;
    raw.put("ops", key, op_value(expires_at, accepted, mine) + article);
    raw.put("op_expiry", expiry_prefix(expires_at) + key, "");
  };
  op("alice", "op-1", "a1", 3, 3, t0 + 15min);
  op("bob", "op-1", "a2", 50, 50, t0 + 1s);
  op("bob", "op-2", "a1", -2, 5, t0 + 2h);
  for (int i = 0; i < extra_users; ++i) {
    const std::string user = "user-with-a-long-name-" + std::to_string(i);
    raw.put("tallies", user + "/a3", le32(1));
    op(user, "op-" + std::to_string(i), "a3", 1, 1, t0 + 3h);
  }
  raw.get("tallies", "alice/a1");  // opens every table, as the previous build did
  raw.dump("totals");
  raw.commit();
}

void check_migrated(claps::lmdb_store& store) {
  CHECK(total_of(store, "a1") == 8);
  CHECK(total_of(store, "a2") == 50);
  CHECK(tally_of(store, "alice", "a1") == 3);
  CHECK(tally_of(store, "bob", "a1") == 5);
  CHECK(tally_of(store, "bob", "a2") == 50);
  CHECK(tally_of(store, "alice", "a2") == 0);
  auto a = op_of(store, "alice", "op-1", "a1");
  REQUIRE(a);
  CHECK(a->accepted == 3);
  CHECK(a->mine == 3);
  CHECK(a->expires_at == t0 + 15min);
  CHECK_FALSE(op_of(store, "alice", "op-1", "a2"));
  auto b1 = op_of(store, "bob", "op-1", "a2");
  REQUIRE(b1);
  CHECK(b1->accepted == 50);
  CHECK(b1->expires_at == t0 + 1s);
  CHECK_FALSE(op_of(store, "bob", "op-1", "a1"));
  auto b2 = op_of(store, "bob", "op-2", "a1");
  REQUIRE(b2);
  CHECK(b2->accepted == -2);
  CHECK(b2->mine == 5);
  CHECK(b2->expires_at == t0 + 2h);
}

}  // namespace

TEST_CASE("a format-1 environment is migrated to format 2 on open") {
  temp_dir dir;
  write_format_1(dir.env());

  open_store(dir.env()).reset();
  const auto migrated = dump_all(dir.env());
  CHECK(migrated.at("meta").at("format_version") == le32(2));
  CHECK(migrated.at("meta").count("next_version") == 0);
  CHECK(migrated.at("tallies") ==
        std::map<std::string, std::string>{{"a1/alice", le32(3)}, {"a1/bob", le32(5)}, {"a2/bob", le32(50)}});
  CHECK(migrated.at("ops") ==
        std::map<std::string, std::string>{{"a1/alice/op-1", op_value(t0 + 15min, 3, 3)},
                                           {"a1/bob/op-2", op_value(t0 + 2h, -2, 5)},
                                           {"a2/bob/op-1", op_value(t0 + 1s, 50, 50)}});
  CHECK(migrated.at("op_expiry") ==
        std::map<std::string, std::string>{{expiry_prefix(t0 + 1s) + "a2/bob/op-1", ""},
                                           {expiry_prefix(t0 + 15min) + "a1/alice/op-1", ""},
                                           {expiry_prefix(t0 + 2h) + "a1/bob/op-2", ""}});

  // Reopening a format-2 environment changes nothing.
  {
    auto store = open_store(dir.env());
    check_migrated(*store);
    CHECK(store->op_count() == 3);
  }
  CHECK(dump_all(dir.env()) == migrated);

  // The migrated expiry entries purge their records.
  auto store = open_store(dir.env());
  const batch_builder empty;
  REQUIRE_FALSE(commit(*store, empty.batch(t0 + 1s)));
  CHECK(store->op_count() == 2);
  CHECK_FALSE(op_of(*store, "bob", "op-1", "a2"));
  REQUIRE_FALSE(commit(*store, empty.batch(t0 + 2h)));
  CHECK(store->op_count() == 0);
  CHECK(tally_of(*store, "bob", "a1") == 5);
  store.reset();
  CHECK(dump_all(dir.env()).at("op_expiry").empty());
}

TEST_CASE("a migration that fails leaves format 1 intact, and the next open migrates") {
  temp_dir dir;
  write_format_1(dir.env(), 3000);
  const auto before = dump_all(dir.env());
  REQUIRE(before.at("meta").at("format_version") == le32(1));

  // LMDB raises a map smaller than the data to the data's size, and the
  // rewritten tables need as much again.
  claps::lmdb_options small;
  small.path = dir.env();
  small.map_size = 4096;
  small.max_map_size = 4096;  // may not grow
  std::error_code ec;
  CHECK(claps::lmdb_store::open(small, ec) == nullptr);
  CHECK(ec == errc::store_full);
  CHECK(dump_all(dir.env()) == before);

  // The same small start with room to grow: the map grows until the
  // migration fits.
  claps::lmdb_options roomy;
  roomy.path = dir.env();
  roomy.map_size = 4096;
  roomy.sync = false;
  auto store = open_store(roomy);
  CHECK(store->growths() > 0);
  check_migrated(*store);
  CHECK(store->op_count() == 3003);
  CHECK(tally_of(*store, "user-with-a-long-name-2999", "a3") == 1);
  CHECK(op_of(*store, "user-with-a-long-name-2999", "op-2999", "a3"));
  const batch_builder empty;
  REQUIRE_FALSE(commit(*store, empty.batch(t0 + 3h)));
  CHECK(store->op_count() == 3003 - 2048);  // max_purge_per_commit
  REQUIRE_FALSE(commit(*store, empty.batch(t0 + 3h)));
  CHECK(store->op_count() == 0);
}

TEST_CASE("reserve_versions hands out ranges that never overlap, across reopens") {
  temp_dir dir;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> ranges;  // [first, end)
  auto reserve = [&](claps::store& store, std::uint64_t count) {
    std::uint64_t first = 0;
    REQUIRE_FALSE(store.reserve_versions(count, first));
    ranges.emplace_back(first, first + count);
    return first;
  };
  {
    auto store = open_store(dir.env());
    CHECK(reserve(*store, 10) == 1);  // the first version ever is 1
    CHECK(reserve(*store, 5) == 11);
    CHECK(reserve(*store, 1) == 16);
  }
  CHECK(dump_all(dir.env()).at("meta").at("next_version") == le64(17));
  for (bool sync : {true, false, false}) {
    claps::lmdb_options options;
    options.path = dir.env();
    options.sync = sync;
    auto store = open_store(options);
    reserve(*store, 1000);
    reserve(*store, 3);
    std::uint64_t next = 0;
    REQUIRE_FALSE(store->reserve_versions(0, next));  // reserves nothing
    CHECK(next == ranges.back().second);
    CHECK(reserve(*store, 2) == next);
  }
  std::sort(ranges.begin(), ranges.end());
  CHECK(ranges.front().first == 1);
  for (std::size_t i = 1; i < ranges.size(); ++i) CHECK(ranges[i - 1].second <= ranges[i].first);
  CHECK(ranges.back().second == 17 + 3 * 1005);
}

TEST_CASE("read_journal walks each table in key order, in pages, one article at a time") {
  temp_dir dir;
  auto store = open_store(dir.env());
  // Articles whose names share prefixes with bytes on both sides of '/'.
  const std::vector<std::string> articles = {"a", "a-b", "a.b", "a0", "ab", "b", "z:9"};
  const std::vector<std::string> users = {"u", "u-1", "u.1", "u1", "v"};
  batch_builder b;
  std::map<std::string, claps::journal_row> want_totals, want_tallies, want_ops;
  std::int64_t n = 0;
  for (const auto& article : articles) {
    b.total(article, ++n * 10);
    want_totals[article] = {"", article, "", n * 10, 0, 0, {}};
    for (const auto& user : users) {
      const auto claps = static_cast<std::int32_t>(++n % 50 + 1);
      b.tally(user, article, claps);
      want_tallies[article + "/" + user] = {user, article, "", claps, 0, 0, {}};
      for (const std::string op_id : {"op-1", "op.2"}) {
        const timestamp expires = t0 + std::chrono::seconds{++n};  // some expire, unpurged
        b.op(user, op_id, article, claps, claps + 1, expires);
        want_ops[article + "/" + user + "/" + op_id] = {user, article, op_id, 0, claps, claps + 1, expires};
      }
    }
  }
  REQUIRE_FALSE(commit(*store, b.batch(t0 - 1h)));

  auto check_table = [&](claps::journal_table table, const std::map<std::string, claps::journal_row>& want) {
    for (std::size_t page :
         {std::size_t{1}, std::size_t{3}, std::size_t{7}, want.size(), std::size_t{1000}}) {
      CAPTURE(page);
      const auto rows = read_all(*store, table, page);
      REQUIRE(rows.size() == want.size());
      auto it = want.begin();
      for (const auto& row : rows) {
        const auto& w = (it++)->second;
        CHECK(row.user == w.user);
        CHECK(row.article == w.article);
        CHECK(row.op_id == w.op_id);
        CHECK(row.value == w.value);
        CHECK(row.accepted == w.accepted);
        CHECK(row.mine == w.mine);
        CHECK(row.expires_at == w.expires_at);
      }
      check_articles_contiguous(rows);
    }
  };
  check_table(claps::journal_table::totals, want_totals);
  check_table(claps::journal_table::tallies, want_tallies);
  check_table(claps::journal_table::ops, want_ops);

  // Expired records are still in the journal until a commit purges them.
  const batch_builder empty;
  REQUIRE_FALSE(commit(*store, empty.batch(t0 + 30s)));
  const auto ops = read_all(*store, claps::journal_table::ops, 4);
  CHECK(ops.size() == store->op_count());
  CHECK(ops.size() < want_ops.size());
  for (const auto& row : ops) CHECK(row.expires_at > t0 + 30s);
  check_articles_contiguous(ops);
}

TEST_CASE("read_journal: empty tables, resuming after a deleted row, bad arguments") {
  temp_dir dir;
  auto store = open_store(dir.env());
  for (auto table :
       {claps::journal_table::totals, claps::journal_table::tallies, claps::journal_table::ops}) {
    std::vector<claps::journal_row> rows;
    std::string next = "stale";
    REQUIRE_FALSE(store->read_journal(table, "", 10, rows, next));
    CHECK(rows.empty());
    CHECK(next.empty());
  }

  batch_builder b;
  for (const char* user : {"u1", "u2", "u3", "u4"}) b.tally(user, "a1", 2);
  REQUIRE_FALSE(commit(*store, b.batch(t0)));
  std::vector<claps::journal_row> rows;
  std::string next;
  REQUIRE_FALSE(store->read_journal(claps::journal_table::tallies, "", 2, rows, next));
  REQUIRE(rows.size() == 2);
  CHECK(rows[1].user == "u2");
  CHECK(next == "a1/u2");  // the raw key

  // The last row of the page is deleted before the walk resumes after it.
  batch_builder undo;
  undo.tally("u2", "a1", 0);
  undo.tally("u3", "a1", 0);
  REQUIRE_FALSE(commit(*store, undo.batch(t0)));
  const std::string after = next;
  REQUIRE_FALSE(store->read_journal(claps::journal_table::tallies, after, 2, rows, next));
  REQUIRE(rows.size() == 3);
  CHECK(rows[2].user == "u4");
  CHECK(next.empty());  // u4 was the last row

  // Resuming past the end gives nothing.
  REQUIRE_FALSE(store->read_journal(claps::journal_table::tallies, "zzz", 2, rows, next));
  CHECK(rows.size() == 3);
  CHECK(next.empty());

  next = "unchanged";
  CHECK(store->read_journal(claps::journal_table::totals, "", 0, rows, next) == errc::bad_request);
  CHECK(store->read_journal(claps::journal_table::ops, std::string(600, 'x'), 5, rows, next) ==
        errc::bad_request);
  CHECK(rows.size() == 3);
  CHECK(next == "unchanged");
}

// ---- the engine on an lmdb_store ----

namespace {

struct recorded_result {
  std::uint64_t cookie = 0;
  std::string article;
  std::int32_t accepted = 0;
  std::int64_t total = 0;
  std::int32_t mine = 0;
  bool replayed = false;
};

struct engine_rig {
  std::vector<recorded_result> results;
  std::vector<std::error_code> store_statuses;
  claps::lmdb_store& store;
  std::unique_ptr<claps::engine> engine;
  timestamp now;

  engine_rig(claps::lmdb_store& store, timestamp start) : store(store), now(start) {
    claps::engine_callbacks callbacks;
    callbacks.result = [this](const claps::op_result& r) {
      results.push_back({r.cookie, std::string(r.article), r.accepted, r.total, r.mine, r.replayed});
    };
    callbacks.store_status = [this](std::error_code ec) { store_statuses.push_back(ec); };
    engine = std::make_unique<claps::engine>(store, claps::engine_options{}, callbacks, start);
  }

  // Advances the fake clock tick by tick until `count` results arrived.
  void run_until_results(std::size_t count) {
    for (int ticks = 0; ticks < 100 && results.size() < count; ++ticks) {
      now = std::max(now + claps::millis{1}, engine->next_deadline());
      engine->advance(now);
      store.wait_for_commit();  // the writer thread's commit completes here
    }
    REQUIRE(results.size() == count);
  }
};

}  // namespace

TEST_CASE("engine on lmdb_store: claps survive a reopen and op ids replay across it") {
  temp_dir dir;
  {
    auto store = open_store(dir.env());
    engine_rig rig(*store, t0);
    REQUIRE_FALSE(rig.engine->clap({"alice", "post-1", 3, "op-1", 1}));
    REQUIRE_FALSE(rig.engine->clap({"bob", "post-1", 5, "", 2}));
    REQUIRE_FALSE(rig.engine->clap({"bob", "post-2", 50, "op-b", 3}));
    rig.run_until_results(3);
    CHECK(rig.results[0].accepted == 3);
    CHECK(rig.results[2].total == 50);
    CHECK(rig.engine->idle());
  }  // engine and store destroyed: only the files remain

  auto store = open_store(dir.env());
  engine_rig rig(*store, t0 + 1min);
  claps::snapshot snap;
  REQUIRE_FALSE(rig.engine->read("alice", "post-1", snap));
  CHECK(snap.total == 8);
  CHECK(snap.mine == 3);
  REQUIRE_FALSE(rig.engine->read("bob", "post-2", snap));
  CHECK(snap.total == 50);
  CHECK(snap.mine == 50);

  // The same op id on the same article is a replay (on another article it
  // would be another op).
  REQUIRE_FALSE(rig.engine->clap({"alice", "post-1", 10, "op-1", 4}));
  REQUIRE_FALSE(rig.engine->clap({"alice", "post-1", 1, "op-1", 5}));
  rig.run_until_results(2);
  for (const auto& r : rig.results) {
    CHECK(r.replayed);
    CHECK(r.article == "post-1");
    CHECK(r.accepted == 3);
    CHECK(r.mine == 3);
    CHECK(r.total == 8);
  }
  REQUIRE_FALSE(rig.engine->read("alice", "post-1", snap));
  CHECK(snap.total == 8);

  // An undo with an op id, then a replay of that undo after another reopen.
  REQUIRE_FALSE(rig.engine->undo({"bob", "post-1", "op-u", 6}));
  rig.run_until_results(3);
  CHECK_FALSE(rig.results[2].replayed);
  CHECK(rig.results[2].accepted == -5);
  CHECK(rig.results[2].total == 3);
  CHECK(rig.results[2].mine == 0);
  const timestamp later = rig.now;
  rig.engine.reset();
  store.reset();

  store = open_store(dir.env());
  engine_rig again(*store, later + 1s);
  REQUIRE_FALSE(again.engine->undo({"bob", "post-1", "op-u", 7}));
  again.run_until_results(1);
  CHECK(again.results[0].replayed);
  CHECK(again.results[0].accepted == -5);
  CHECK(again.results[0].mine == 0);
  CHECK(again.results[0].total == 3);
  CHECK(again.store_statuses.empty());
}

TEST_CASE("engine on lmdb_store: an op id past its window is not replayed after a reopen") {
  temp_dir dir;
  {
    auto store = open_store(dir.env());
    engine_rig rig(*store, t0);
    REQUIRE_FALSE(rig.engine->clap({"alice", "post-1", 3, "op-1", 1}));
    rig.run_until_results(1);
  }
  auto store = open_store(dir.env());
  REQUIRE(store->op_count() == 1);
  // The default window is 15 minutes; the record is still on disk, expired.
  engine_rig rig(*store, t0 + 16min);
  REQUIRE_FALSE(rig.engine->clap({"alice", "post-1", 10, "op-1", 2}));
  rig.run_until_results(1);
  CHECK_FALSE(rig.results[0].replayed);
  CHECK(rig.results[0].accepted == 10);
  CHECK(rig.results[0].mine == 13);
  CHECK(rig.results[0].total == 13);
}

// ---- the writer thread (lmdb_options::on_commit_ready) ----

namespace {

// Records the writer thread's wake-ups; a test waits for them with a
// deadline, never a sleep. Declared before the store: the store may call the
// hook while it is destroyed.
struct wake_recorder {
  std::mutex mutex;
  std::condition_variable cv;
  int wakes = 0;
  std::thread::id thread;
  std::string thread_name;

  std::function<void()> hook() {
    return [this] {
      char name[16] = {};
      pthread_getname_np(pthread_self(), name, sizeof name);
      std::lock_guard lock(mutex);
      ++wakes;
      thread = std::this_thread::get_id();
      thread_name = name;
      cv.notify_all();
    };
  }
  bool wait_for(int count) {
    std::unique_lock lock(mutex);
    return cv.wait_for(lock, 60s, [&] { return wakes >= count; });
  }
  int count() {
    std::lock_guard lock(mutex);
    return wakes;
  }
};

claps::lmdb_options threaded(const temp_dir& dir, wake_recorder& wakes) {
  claps::lmdb_options options;
  options.path = dir.env();
  options.map_size = std::size_t{64} << 20;
  options.on_commit_ready = wakes.hook();
  return options;
}

}  // namespace

TEST_CASE(
    "writer thread: commit() returns at once; done runs on the owner's thread, from run_completions()") {
  temp_dir dir;
  wake_recorder wakes;
  auto store = open_store(threaded(dir, wakes));
  int calls = 0;
  std::error_code result;
  std::thread::id done_on;
  {
    batch_builder b;
    b.total("a1", 5);
    b.tally("alice", "a1", 5);
    b.op("alice", "op-1", "a1", 5, 5, t0 + 15min);
    store->commit(b.batch(t0), [&](std::error_code ec, claps::durability level) {
      ++calls;
      result = ec;
      done_on = std::this_thread::get_id();
      CHECK(level == claps::durability::local);
    });
    CHECK(calls == 0);
  }  // the batch's strings are gone: the store copied them
  REQUIRE(wakes.wait_for(1));
  CHECK(wakes.thread != std::this_thread::get_id());
  CHECK(wakes.thread_name == "claps-lmdb");
  CHECK(calls == 0);  // only the owner runs completions
  CHECK(store->run_completions() == 1);
  CHECK(calls == 1);
  CHECK(done_on == std::this_thread::get_id());
  CHECK_FALSE(result);
  CHECK(store->run_completions() == 0);
  CHECK(store->wait_for_commit() == 0);
  CHECK(total_of(*store, "a1") == 5);
  CHECK(tally_of(*store, "alice", "a1") == 5);
  CHECK(op_of(*store, "alice", "op-1"));

  // A done that commits again (as a store wrapping this one may).
  bool second_done = false;
  batch_builder next;
  next.total("a1", 6);
  store->commit(next.batch(t0 + 1s), [&](std::error_code ec, claps::durability) {
    CHECK_FALSE(ec);
    store->commit(next.batch(t0 + 2s), [&](std::error_code ec2, claps::durability) {
      CHECK_FALSE(ec2);
      second_done = true;
    });
  });
  CHECK(store->wait_for_commit() == 1);
  CHECK(store->wait_for_commit() == 1);
  CHECK(second_done);
  CHECK(total_of(*store, "a1") == 6);
}

TEST_CASE("writer thread: reads during a commit in flight see the last committed state") {
  temp_dir dir;
  wake_recorder wakes;
  auto store = open_store(threaded(dir, wakes));
  batch_builder seed;
  seed.total("seen", 1);
  seed.tally("alice", "seen", 1);
  store->commit(seed.batch(t0), nullptr);
  REQUIRE(store->wait_for_commit() == 1);

  // Large enough that its transaction takes a while.
  batch_builder big;
  big.total("seen", 2);
  for (int i = 0; i < 15'000; ++i) {
    const std::string user = "user-" + std::to_string(i);
    big.tally(user, "big-" + std::to_string(i % 97), 1);
    big.op(user, "op-" + std::to_string(i), "big-" + std::to_string(i % 97), 1, 1, t0 + 15min);
  }
  bool done = false;
  store->commit(big.batch(t0 + 1s), [&](std::error_code ec, claps::durability) {
    CHECK_FALSE(ec);
    done = true;
  });
  int reads = 0, old_reads = 0;
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (wakes.count() < 2 && std::chrono::steady_clock::now() < deadline) {
    // Before the commit: 1; committed but not yet completed: 2. Never an error.
    const std::int64_t total = total_of(*store, "seen");
    CHECK((total == 1 || total == 2));
    if (total == 1) ++old_reads;
    CHECK(tally_of(*store, "alice", "seen") == 1);
    ++reads;
  }
  REQUIRE(wakes.wait_for(2));
  CHECK(old_reads > 0);  // the reads did not wait for the writer's transaction
  MESSAGE(reads << " reads while the commit was in flight");
  CHECK_FALSE(done);
  CHECK(store->run_completions() == 1);
  CHECK(done);
  CHECK(total_of(*store, "seen") == 2);
  CHECK(tally_of(*store, "user-14999", "big-" + std::to_string(14'999 % 97)) == 1);
  CHECK(store->op_count() == 15'000);
}

TEST_CASE("writer thread: the map grows from 1 MiB while the owner reads between and during commits") {
  temp_dir dir;
  wake_recorder wakes;
  auto options = threaded(dir, wakes);
  options.map_size = std::size_t{1} << 20;
  options.max_map_size = std::size_t{256} << 20;
  options.sync = false;  // many commits; durability is not what this tests
  auto store = open_store(options);
  constexpr int rounds = 80, per_round = 250;
  auto user_of = [](int i) { return "grow-user-" + std::to_string(i); };
  auto article_of = [](int i) { return "grow-article-" + std::to_string(i % 61); };
  auto claps_of = [](int i) { return i % 7 + 1; };
  int serial = 0, in_flight_reads = 0;
  std::uint32_t pick = 12345;
  for (int round = 0; round < rounds; ++round) {
    batch_builder b;
    for (int i = 0; i < per_round; ++i, ++serial) {
      b.tally(user_of(serial), article_of(serial), claps_of(serial));
      b.op(user_of(serial), "op-" + std::to_string(serial), article_of(serial), claps_of(serial),
           claps_of(serial), t0 + 15min);
    }
    b.total("grow-count", serial);
    std::error_code result = errc::store_io;
    store->commit(b.batch(t0), [&](std::error_code ec, claps::durability) { result = ec; });
    const int committed_before = serial - per_round;
    // Reads of rows committed earlier, while this commit (and maybe a growth) runs.
    while (wakes.count() < round + 1 && committed_before > 0) {
      pick = pick * 1'103'515'245u + 12'345u;
      const int i = static_cast<int>(pick % static_cast<std::uint32_t>(committed_before));
      REQUIRE(tally_of(*store, user_of(i), article_of(i)) == claps_of(i));
      const std::int64_t count = total_of(*store, "grow-count");
      CHECK((count == committed_before || count == serial));
      ++in_flight_reads;
    }
    REQUIRE(store->wait_for_commit() == 1);
    REQUIRE_FALSE(result);
  }
  MESSAGE(in_flight_reads << " reads during commits, " << store->growths() << " growths");
  CHECK(store->growths() >= 2);
  CHECK(store->space().size_bytes > (std::size_t{1} << 20));
  CHECK(store->op_count() == static_cast<std::size_t>(rounds * per_round));
  for (int i = 0; i < serial; i += 37) CHECK(tally_of(*store, user_of(i), article_of(i)) == claps_of(i));
  store.reset();
  store = open_store(dir.env());
  CHECK(total_of(*store, "grow-count") == serial);
  CHECK(store->op_count() == static_cast<std::size_t>(rounds * per_round));
}

TEST_CASE(
    "writer thread: destroying the store with a commit in flight finishes the commit, without calling done") {
  temp_dir dir;
  int calls = 0;
  {
    wake_recorder wakes;
    auto store = open_store(threaded(dir, wakes));
    batch_builder b;
    b.total("last", 42);
    for (int i = 0; i < 5'000; ++i) b.op("user-" + std::to_string(i), "op", "last", 1, 1, t0 + 15min);
    store->commit(b.batch(t0), [&](std::error_code, claps::durability) { ++calls; });
    store.reset();  // at once: the commit is most likely still in flight
  }
  CHECK(calls == 0);
  auto store = open_store(dir.env());
  CHECK(total_of(*store, "last") == 42);
  CHECK(store->op_count() == 5'000);
}

TEST_CASE(
    "writer thread: the engine's results arrive with the completion; reads of other articles go on meanwhile") {
  temp_dir dir;
  wake_recorder wakes;
  auto store = open_store(threaded(dir, wakes));
  {
    batch_builder seed;
    seed.total("post-2", 7);
    store->commit(seed.batch(t0), nullptr);
    REQUIRE(store->wait_for_commit() == 1);
  }
  std::vector<claps::op_result> results;
  claps::engine_callbacks callbacks;
  callbacks.result = [&](const claps::op_result& r) { results.push_back(r); };
  claps::engine engine(*store, claps::engine_options{}, callbacks, t0);
  REQUIRE_FALSE(engine.clap({"alice", "post-1", 3, "op-1", 1}));
  engine.advance(engine.next_deadline());
  CHECK(results.empty());
  // While the commit may be in flight: an article the engine has not met is read from the store.
  claps::snapshot snap;
  REQUIRE_FALSE(engine.read("bob", "post-2", snap));
  CHECK(snap.total == 7);
  REQUIRE(wakes.wait_for(2));
  CHECK(results.empty());
  CHECK_FALSE(engine.idle());
  CHECK(store->run_completions() == 1);
  REQUIRE(results.size() == 1);
  CHECK(results[0].accepted == 3);
  CHECK(results[0].total == 3);
  CHECK(engine.idle());
  CHECK(total_of(*store, "post-1") == 3);
}
