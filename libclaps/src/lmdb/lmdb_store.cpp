// The LMDB store: one environment, five named databases, one write
// transaction per engine tick. The on-disk layout is in format.hpp.
//
// Environment flags: MDB_NOTLS because the store keeps read transactions
// and resets/renews them around every read, so a reader slot must belong to
// the transaction, not to whichever thread opened it; and the owner's thread
// reads while the writer thread's transaction is open. MDB_NORDAHEAD is not set:
// the working set (totals, tallies, recent ops) is expected to fit in RAM, and
// turning off readahead only helps random reads on a database larger than RAM.
//
// LMDB forbids opening the same environment twice in one process (its locks
// are per process), so two lmdb_store objects on one path in one process is a
// programming error with undefined results; the caller must not do it.
//
// Locks (see the thread rule in lmdb.hpp), always taken in this order:
// - write_mutex: held by whoever writes (the writer thread's commit, or
//   reserve_versions() on the owner's thread) and by a reopen. It guards
//   the write side's state: map_size, high_bytes, disk_full, `measurer`.
// - pause: shared around each read on the owner's thread; exclusive around
//   mdb_env_set_mapsize and a reopen, which LMDB allows only while no
//   transaction is open in the process. `env`, `tables` and `reader` change
//   only under both locks. A read never waits for the writer while it holds
//   `pause`, so the writer's wait for it always ends.
// - job_mutex: the hand-over of one batch to the writer thread and of its
//   result back.

#include "format.hpp"

#include <claps/error.hpp>
#include <claps/lmdb.hpp>

#include <lmdb.h>

#include <sys/resource.h>
#include <sys/statvfs.h>

#include <pthread.h>

#include <array>
#include <atomic>
#include <cassert>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <mutex>
#include <new>
#include <shared_mutex>
#include <thread>
#include <utility>
#include <vector>

namespace claps {
namespace {

using namespace detail::lmdb;

std::int64_t to_ms(timestamp t) { return t.time_since_epoch().count(); }
timestamp from_ms(std::int64_t ms) { return timestamp{millis{ms}}; }

bool is_corruption(int rc) { return rc == MDB_PANIC || rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND; }

// The disk (or the process's file size limit) has no room for the write.
bool is_disk_full(int rc) { return rc == ENOSPC || rc == EDQUOT || rc == EFBIG; }

// A transaction that found no work: aborted, and reported as success.
constexpr int nothing_written = malformed_record - 1;

std::error_code map_error(int rc) {
  switch (rc) {
  case MDB_MAP_FULL:
  case MDB_TXN_FULL:  // the batch needs more dirty pages than one transaction may hold
  case ENOSPC:
  case EDQUOT:
  case EFBIG: return errc::store_full;
  case MDB_PANIC:
  case MDB_CORRUPTED:
  case MDB_PAGE_NOTFOUND:
  case malformed_record: return errc::store_corrupted;
  case MDB_INVALID:
  case MDB_VERSION_MISMATCH: return errc::store_incompatible;
  default: return errc::store_io;
  }
}

// Splits a tally key (article/user) or ops key (article/user/op_id) into `row`.
bool split_record_key(std::string_view key, bool with_op_id, journal_row& row) {
  const auto a = key.find('/');
  if (a == std::string_view::npos) return false;
  row.article.assign(key.substr(0, a));
  const std::string_view rest = key.substr(a + 1);
  const auto u = rest.find('/');
  if ((u != std::string_view::npos) != with_op_id) return false;
  row.user.assign(rest.substr(0, u));
  if (with_op_id) row.op_id.assign(rest.substr(u + 1));
  return true;
}

// A commit_batch copied, for the writer thread: the engine may be destroyed
// (and its batch with it) while a commit is in flight. Reused from batch to
// batch, so a steady load allocates nothing.
class owned_batch {
public:
  void assign(const commit_batch& b) {
    std::size_t size = 0;
    for (const auto& t : b.totals) size += t.article.size();
    for (const auto& t : b.tallies) size += t.user.size() + t.article.size();
    for (const auto& o : b.ops) size += o.user.size() + o.article.size() + o.op_id.size();
    bytes_.clear();
    bytes_.reserve(size);  // no reallocation below: the views stay put
    totals_.clear();
    tallies_.clear();
    ops_.clear();
    for (const auto& t : b.totals) totals_.push_back({keep(t.article), t.total});
    for (const auto& t : b.tallies) tallies_.push_back({keep(t.user), keep(t.article), t.claps});
    for (const auto& o : b.ops)
      ops_.push_back({keep(o.user), keep(o.article), keep(o.op_id), o.accepted, o.mine, o.expires_at});
    now_ = b.now;
  }
  commit_batch view() const { return {totals_, tallies_, ops_, now_}; }

private:
  std::string_view keep(std::string_view s) {
    const std::size_t at = bytes_.size();
    bytes_.append(s);
    return std::string_view(bytes_).substr(at, s.size());
  }
  std::string bytes_;
  std::vector<article_total> totals_;
  std::vector<user_tally> tallies_;
  std::vector<op_record> ops_;
  timestamp now_{};
};

}  // namespace

// Decodes one journal row; false when the key or value is malformed.
bool detail::lmdb::decode_row(journal_table table, std::string_view key, std::string_view value,
                              journal_row& row) {
  switch (table) {
  case journal_table::totals:
    if (value.size() != 8) return false;
    row.article.assign(key);
    row.value = get_i64_le(value.data());
    return true;
  case journal_table::tallies:
    if (value.size() != 4 || !split_record_key(key, false, row)) return false;
    row.value = get_i32_le(value.data());
    return true;
  case journal_table::ops:
    if (value.size() != op_value_size || !split_record_key(key, true, row)) return false;
    row.expires_at = from_ms(get_i64_le(value.data()));
    row.accepted = get_i32_le(value.data() + 8);
    row.mine = get_i32_le(value.data() + 12);
    return true;
  }
  return false;
}

struct lmdb_store::impl {
  const lmdb_options options;
  std::mutex write_mutex;
  std::shared_mutex pause;
  MDB_env* env = nullptr;
  // Kept between reads in the reset state so a read renews it instead of
  // allocating a transaction; a reset transaction pins no pages. `reader` is
  // the owner's; `measurer` the write side's, for measure().
  MDB_txn* reader = nullptr;
  MDB_txn* measurer = nullptr;
  table_handles tables;
  // Set when LMDB may have marked the environment fatal (MDB_PANIC, corruption,
  // a failed commit): LMDB 0.9 refuses every transaction until it is reopened.
  std::atomic<bool> needs_reopen{false};
  std::atomic<std::size_t> reopen_count{0};
  // The map now; it grows between transactions up to options.max_map_size.
  std::size_t map_size = 0;
  const std::size_t headroom;
  std::atomic<std::size_t> growth_count{0};
  // The last write failed for want of disk; cleared by a batch that commits.
  bool disk_full = false;
  std::uint64_t high_bytes = 0;  // up to the last page in use, free or not
  // Read by the engine before every clap, written after every commit.
  mutable std::mutex space_mutex;
  store_space space_now;
  // The last LMDB/system message, for a debugger or a core dump: the caller
  // only gets the error_code.
  std::mutex error_mutex;
  std::array<char, 192> last_error{};

  // The writer thread (only with options.on_commit_ready) and its one job.
  enum class job_state : std::uint8_t { none, queued, ended };
  std::mutex job_mutex;
  std::condition_variable job_cv;
  job_state job = job_state::none;
  bool stopping = false;
  owned_batch job_batch;  // the writer's alone while job == queued
  commit_handler job_done;
  std::error_code job_result;
  std::thread writer;

  explicit impl(lmdb_options o)
      : options(std::move(o)),
        map_size(options.map_size),
        headroom(options.headroom != 0 ? options.headroom : default_headroom(options.max_map_size)) {}
  ~impl() {
    stop_writer();
    close_env();
  }
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  template <typename... Args>
  void note(const char* format, Args... args) noexcept {
    std::lock_guard lock(error_mutex);
    std::snprintf(last_error.data(), last_error.size(), format, args...);
  }

  std::error_code fail(int rc, const char* where) noexcept {
    note("%s: %s", where, rc == malformed_record ? "malformed record" : mdb_strerror(rc));
    if (is_corruption(rc)) needs_reopen = true;
    return map_error(rc);
  }

  store_space space() const {
    std::lock_guard lock(space_mutex);
    return space_now;
  }

  void close_env() noexcept {
    for (MDB_txn** txn : {&reader, &measurer}) {
      if (*txn != nullptr) mdb_txn_abort(*txn);
      *txn = nullptr;
    }
    if (env != nullptr) {
      // Without MDB_NOSYNC every commit was already fsync'd; with it, a clean
      // shutdown still makes everything durable.
      if (!options.sync) mdb_env_sync(env, 1);
      mdb_env_close(env);
    }
    env = nullptr;
  }

  std::error_code open_env() {
    std::error_code fs_ec;
    // A directory the store creates, and its files, are its owner's only.
    const bool existed = std::filesystem::exists(options.path, fs_ec);
    std::filesystem::create_directories(options.path, fs_ec);
    if (!fs_ec && !existed)
      std::filesystem::permissions(options.path, std::filesystem::perms::owner_all,
                                   std::filesystem::perm_options::replace, fs_ec);
    if (fs_ec) {
      note("mkdir %s: %s", options.path.c_str(), fs_ec.message().c_str());
      return errc::store_io;
    }
    int rc = mdb_env_create(&env);
    if (rc != 0) {
      env = nullptr;
      return fail(rc, "mdb_env_create");
    }
    auto give_up = [&](int code, const char* where) {
      auto ec = fail(code, where);
      close_env();
      return ec;
    };
    // A reopen keeps the size the map had grown to.
    if ((rc = mdb_env_set_mapsize(env, map_size)) != 0) return give_up(rc, "mdb_env_set_mapsize");
    if ((rc = mdb_env_set_maxdbs(env, named_db_count)) != 0) return give_up(rc, "mdb_env_set_maxdbs");
    const unsigned flags = MDB_NOTLS | (options.sync ? 0u : unsigned{MDB_NOSYNC});
    if ((rc = mdb_env_open(env, options.path.c_str(), flags, 0600)) != 0) return give_up(rc, "mdb_env_open");
    // LMDB opens a map no smaller than the data it holds.
    MDB_envinfo info{};
    if ((rc = mdb_env_info(env, &info)) != 0) return give_up(rc, "mdb_env_info");
    map_size = info.me_mapsize;
    // Reader slots left by a crashed process would pin old pages forever.
    int stale = 0;
    mdb_reader_check(env, &stale);

    MDB_txn* txn = nullptr;
    bool migrate = false;
    // Run again in a grown map when a migration does not fit.
    for (;;) {
      if ((rc = mdb_txn_begin(env, nullptr, 0, &txn)) != 0) return give_up(rc, "mdb_txn_begin");
      auto abort_and_give_up = [&](int code, const char* where) {
        mdb_txn_abort(txn);
        return give_up(code, where);
      };
      auto incompatible = [&](const char* why) {
        mdb_txn_abort(txn);
        close_env();
        note("%s", why);
        return std::error_code{errc::store_incompatible};
      };

      // An environment with named entries but no meta database is not one of ours.
      MDB_dbi main_dbi = 0;
      if ((rc = mdb_dbi_open(txn, nullptr, 0, &main_dbi)) != 0)
        return abort_and_give_up(rc, "mdb_dbi_open(main)");
      MDB_stat main_stat{};
      if ((rc = mdb_stat(txn, main_dbi, &main_stat)) != 0) return abort_and_give_up(rc, "mdb_stat(main)");
      rc = mdb_dbi_open(txn, meta_db, 0, &tables.meta);
      if (rc == MDB_NOTFOUND && main_stat.ms_entries != 0)
        return incompatible("environment holds data but no claps format version");
      if (rc == MDB_NOTFOUND) rc = mdb_dbi_open(txn, meta_db, MDB_CREATE, &tables.meta);
      if (rc != 0) return abort_and_give_up(rc, "mdb_dbi_open(meta)");

      MDB_val key = as_val(format_version_key);
      MDB_val value{};
      std::uint32_t found_version = 0;  // none: a new environment
      rc = mdb_get(txn, tables.meta, &key, &value);
      if (rc == 0) {
        found_version = value.mv_size == 4 ? get_u32_le(static_cast<const char*>(value.mv_data)) : 0;
        if (found_version != 1 && found_version != lmdb_format_version)
          return incompatible("claps format version differs from this build's");
      } else if (rc == MDB_NOTFOUND) {
        if (main_stat.ms_entries != 0)
          return incompatible("environment holds data but no claps format version");
      } else {
        return abort_and_give_up(rc, "mdb_get(meta)");
      }

      const std::pair<const char*, MDB_dbi*> dbs[] = {{totals_db, &tables.totals},
                                                      {tallies_db, &tables.tallies},
                                                      {ops_db, &tables.ops},
                                                      {op_expiry_db, &tables.op_expiry}};
      for (auto [name, dbi] : dbs)
        if ((rc = mdb_dbi_open(txn, name, MDB_CREATE, dbi)) != 0)
          return abort_and_give_up(rc, "mdb_dbi_open");

      migrate = found_version == 1;
      if (migrate && (rc = migrate_from_format_1(txn, tables)) != 0) {
        if (rc == MDB_MAP_FULL && map_size < options.max_map_size) {
          mdb_txn_abort(txn);
          if (grow_paused()) continue;
          return give_up(rc, "migrating format 1");
        }
        return abort_and_give_up(rc, "migrating format 1");
      }
      if (found_version != lmdb_format_version) {  // new, or just migrated
        char bytes[4];
        put_u32_le(bytes, lmdb_format_version);
        key = as_val(format_version_key);
        value = MDB_val{sizeof bytes, bytes};
        if ((rc = mdb_put(txn, tables.meta, &key, &value, 0)) != 0)
          return abort_and_give_up(rc, "mdb_put(meta)");
      }
      rc = mdb_txn_commit(txn);
      if (rc == MDB_MAP_FULL && grow_paused()) continue;
      if (rc != 0) return give_up(rc, "mdb_txn_commit(open)");
      break;
    }
    // A migration is worth an fsync even when commits are not.
    if (migrate && !options.sync && (rc = mdb_env_sync(env, 1)) != 0)
      return give_up(rc, "mdb_env_sync(migration)");

    for (MDB_txn** kept : {&reader, &measurer}) {
      if ((rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, kept)) != 0) {
        *kept = nullptr;
        return give_up(rc, "mdb_txn_begin(read)");
      }
      mdb_txn_reset(*kept);
    }
    if (auto ec = measure()) {
      close_env();
      return ec;
    }
    return {};
  }

  // Reads how much of the map is in use, and whether that leaves room for
  // new keys. "In use" is every page up to LMDB's last page minus the pages
  // on its free list that the next transaction may reuse (the free DB, dbi
  // 0, maps a transaction id to the list of pages it freed, the count
  // first), since LMDB reuses free pages before it extends the file: the
  // file size never shrinks and says nothing. The write side's: under
  // write_mutex, or `pause` held exclusively by open_env().
  std::error_code measure() {
    MDB_envinfo info{};
    MDB_stat stat{};
    int rc = mdb_env_info(env, &info);
    if (rc == 0) rc = mdb_env_stat(env, &stat);
    if (rc != 0) return fail(rc, "mdb_env_info");
    const std::uint64_t page = stat.ms_psize;
    std::uint64_t free_pages = 0;
    // The kept reader, without ready(): open_env() measures too.
    if ((rc = mdb_txn_renew(measurer)) != 0) return fail(rc, "mdb_txn_renew");
    MDB_cursor* cursor = nullptr;
    rc = mdb_cursor_open(measurer, 0, &cursor);
    if (rc == 0) {
      MDB_val key{}, value{};
      while ((rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) == 0) {
        std::size_t txnid = 0, count = 0;
        if (key.mv_size != sizeof txnid || value.mv_size < sizeof count) continue;
        std::memcpy(&txnid, key.mv_data, sizeof txnid);
        // The last transaction's freed pages still hold the snapshot before
        // it (the other meta page points there): the next one cannot reuse them.
        if (txnid >= info.me_last_txnid) continue;
        std::memcpy(&count, value.mv_data, sizeof count);
        free_pages += count;
      }
      mdb_cursor_close(cursor);
    }
    mdb_txn_reset(measurer);
    if (rc != 0 && rc != MDB_NOTFOUND) return fail(rc, "free list");
    map_size = info.me_mapsize;
    high_bytes = (std::uint64_t{info.me_last_pgno} + 1) * page;
    store_space now;
    now.used_bytes = high_bytes - std::min(high_bytes, free_pages * page);
    now.size_bytes = map_size;
    now.max_bytes = std::max<std::uint64_t>(options.max_map_size, map_size);
    // Refusing starts past max - headroom and ends a quarter of the headroom
    // lower: each commit lets the pages the one before it freed be reused,
    // which swings "used" by up to a batch's copied pages, and new claps
    // should not be let in and refused again every other tick.
    std::lock_guard lock(space_mutex);
    const std::uint64_t limit = space_now.accepts_new_keys ? headroom : headroom + headroom / 4;
    now.accepts_new_keys = !disk_full && now.used_bytes + limit <= options.max_map_size;
    space_now = now;
    return {};
  }

  // LMDB reports a write cut short as EIO ("filesystem full?"), which is how
  // a full disk or the file size limit usually shows: ask which it was.
  bool disk_looks_full() const {
    struct statvfs fs {};
    if (::statvfs(options.path.c_str(), &fs) == 0 && std::uint64_t{fs.f_bavail} * fs.f_frsize < (1u << 20))
      return true;
    rlimit limit{};
    std::error_code ec;
    const auto size = std::filesystem::file_size(options.path + "/data.mdb", ec);
    return !ec && ::getrlimit(RLIMIT_FSIZE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY &&
           size + (1u << 20) > limit.rlim_cur;
  }

  // Doubles the map, up to the maximum. Legal while no transaction is open
  // in the process: the write side calls it between its transactions, and
  // `pause` keeps the owner's reads out (the kept readers are reset then, and
  // hold no pointer into the old mapping).
  bool grow() {
    if (map_size >= options.max_map_size) return false;
    std::unique_lock paused(pause);
    return grow_paused();
  }

  // grow() with `pause` held exclusively.
  bool grow_paused() {
    if (map_size >= options.max_map_size) return false;
    const std::size_t next = map_size > options.max_map_size / 2 ? options.max_map_size : map_size * 2;
    if (const int rc = mdb_env_set_mapsize(env, next); rc != 0) {
      needs_reopen = true;  // LMDB unmapped the old map before it failed to map the new one
      fail(rc, "mdb_env_set_mapsize");
      return false;
    }
    map_size = next;
    ++growth_count;
    return true;
  }

  // Reopens the environment if an earlier failure left it unusable. The
  // write side's: under write_mutex.
  std::error_code ready() {
    if (!needs_reopen && env != nullptr) return {};
    std::unique_lock paused(pause);
    close_env();
    if (auto ec = open_env()) return ec;
    needs_reopen = false;
    ++reopen_count;
    return {};
  }

  // Runs `body` (returning 0 or an LMDB code) in the kept read transaction,
  // renewed for it and reset after, also when `body` throws.
  // On the owner's thread, concurrently with the writer's transaction.
  template <typename Body>
  std::error_code in_reader(const char* where, Body&& body) {
    std::shared_lock reading(pause);
    while (needs_reopen || env == nullptr) {
      // A reopen waits for the commit in flight (write_mutex), and must not
      // hold `pause` meanwhile: the writer may be waiting to grow the map.
      reading.unlock();
      {
        std::lock_guard writing(write_mutex);
        if (auto ec = ready()) return ec;
      }
      reading.lock();
    }
    if (const int rc = mdb_txn_renew(reader); rc != 0) return fail(rc, "mdb_txn_renew");
    struct reset_on_exit {
      MDB_txn* txn;
      ~reset_on_exit() { mdb_txn_reset(txn); }  // a renewed transaction cannot be renewed again
    } reset{reader};
    const int rc = body(reader);
    return rc == 0 ? std::error_code{} : fail(rc, where);
  }

  // Looks `key` up in the table `dbi` and hands the value to `decode` while
  // the read transaction still pins it. `decode` returns false on a malformed
  // value.
  template <typename Decode>
  std::error_code read(MDB_dbi table_handles::*dbi, MDB_val key, bool& found, Decode&& decode) {
    found = false;
    auto ec = in_reader("mdb_get", [&](MDB_txn* txn) {
      MDB_val value{};
      const int rc = mdb_get(txn, tables.*dbi, &key, &value);
      if (rc == MDB_NOTFOUND) return 0;
      if (rc != 0) return rc;
      found = true;
      return decode(value) ? 0 : malformed_record;
    });
    if (ec) found = false;
    return ec;
  }

  // Appends up to `max` rows of `table` after the key `after` (see
  // store::read_journal); on an error appends nothing.
  std::error_code walk(journal_table table, std::string_view after, std::size_t max,
                       std::vector<journal_row>& out, std::string& next) {
    const std::size_t old_size = out.size();
    // `after` may view `next` (a caller looping on it), so `next` changes last.
    std::string last;
    auto ec = in_reader("journal", [&](MDB_txn* txn) {
      const MDB_dbi dbi = table == journal_table::totals    ? tables.totals
                          : table == journal_table::tallies ? tables.tallies
                                                            : tables.ops;
      MDB_cursor* cursor = nullptr;
      int rc = mdb_cursor_open(txn, dbi, &cursor);
      if (rc != 0) return rc;
      struct close_on_exit {
        MDB_cursor* cursor;
        ~close_on_exit() { mdb_cursor_close(cursor); }
      } close{cursor};
      MDB_val key = as_val(after), value{};
      if (after.empty()) {
        rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
      } else {
        // The first key >= after; the row at `after` itself was already read,
        // and if it has been deleted since, this is the row after it.
        rc = mdb_cursor_get(cursor, &key, &value, MDB_SET_RANGE);
        if (rc == 0 && as_view(key) == after) rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT);
      }
      for (std::size_t n = 0; rc == 0 && n < max; ++n) {
        journal_row& row = out.emplace_back();
        if (!decode_row(table, as_view(key), as_view(value), row)) return malformed_record;
        last.assign(as_view(key));
        rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT);
      }
      if (rc == MDB_NOTFOUND) {
        last.clear();  // the table has no more rows
        rc = 0;
      }
      return rc;
    });
    if (ec) {
      out.resize(old_size);
      return ec;
    }
    next = std::move(last);
    return {};
  }

  // Runs `body(txn, where)` (returning 0 or an LMDB code, and naming the step
  // that failed in `where`) in one write transaction and commits it; aborts
  // it, so that nothing is written, when `body` fails, or returns
  // nothing_written (then reports success). A transaction that does not fit
  // the map is run again in a grown map while it may grow; `body` must be
  // safe to run again. The caller holds write_mutex.
  template <typename Body>
  std::error_code in_writer(Body&& body) {
    if (auto ec = ready()) return ec;
    // Grown before it is full, so a transaction rarely has to run twice.
    if (high_bytes > map_size / 4 * 3) grow();
    for (;;) {
      MDB_txn* txn = nullptr;
      int rc = mdb_txn_begin(env, nullptr, 0, &txn);
      if (rc != 0) return fail(rc, "mdb_txn_begin");
      const char* where = "write";
      try {
        rc = body(txn, where);
      } catch (...) {
        mdb_txn_abort(txn);
        throw;
      }
      if (rc == nothing_written) {
        mdb_txn_abort(txn);
        return {};
      }
      if (rc != 0) {
        mdb_txn_abort(txn);
      } else {
        where = "mdb_txn_commit";
        rc = mdb_txn_commit(txn);  // frees txn whatever the outcome
        // A failed flush or meta write can leave LMDB's fatal flag set, after
        // which it refuses every transaction; a reopen is cheap and clears it.
        if (rc != 0 && rc != MDB_MAP_FULL && rc != MDB_TXN_FULL) needs_reopen = true;
      }
      if (rc == 0) return {};
      if (rc == MDB_MAP_FULL && grow()) continue;
      if (rc == EIO && disk_looks_full()) rc = ENOSPC;
      if (is_disk_full(rc)) disk_full = true;
      return fail(rc, where);
    }
  }

  // A zero reads the same as a missing key, so zeros are deleted, not stored.
  static int put_or_delete(MDB_txn* txn, MDB_dbi dbi, MDB_val& key, bool zero, char* bytes,
                           std::size_t size) {
    if (zero) {
      const int rc = mdb_del(txn, dbi, &key, nullptr);
      return rc == MDB_NOTFOUND ? 0 : rc;
    }
    MDB_val value{size, bytes};
    return mdb_put(txn, dbi, &key, &value, 0);
  }

  int put_total(MDB_txn* txn, const article_total& t) {
    if (t.article.size() > max_article_id_bytes) return MDB_BAD_VALSIZE;
    MDB_val key = as_val(t.article);
    char bytes[8];
    put_i64_le(bytes, t.total);
    return put_or_delete(txn, tables.totals, key, t.total == 0, bytes, sizeof bytes);
  }

  int put_tally(MDB_txn* txn, const user_tally& t) {
    record_key k;
    if (!k.tally(t.article, t.user)) return MDB_BAD_VALSIZE;
    MDB_val key = k.val();
    char bytes[4];
    put_i32_le(bytes, t.claps);
    return put_or_delete(txn, tables.tallies, key, t.claps == 0, bytes, sizeof bytes);
  }

  int put_op(MDB_txn* txn, const op_record& op) {
    record_key k;
    if (!k.op(op.article, op.user, op.op_id)) return MDB_BAD_VALSIZE;
    const std::int64_t expires = to_ms(op.expires_at);
    char bytes[op_value_size];
    put_op_value(bytes, expires, op.accepted, op.mine);

    MDB_val key = k.val();
    MDB_val value{sizeof bytes, bytes};
    int rc = mdb_put(txn, tables.ops, &key, &value, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
      // Rewriting a record: drop its old expiry entry so op_expiry keeps
      // exactly one entry per record. `value` now points at the old record.
      if (value.mv_size != op_value_size) return malformed_record;
      const std::int64_t old_expires = get_i64_le(static_cast<const char*>(value.mv_data));
      if (old_expires != expires) {
        MDB_val old_key = k.expiry_val(old_expires);
        rc = mdb_del(txn, tables.op_expiry, &old_key, nullptr);
        if (rc != 0 && rc != MDB_NOTFOUND) return rc;
      }
      key = k.val();
      value = MDB_val{sizeof bytes, bytes};
      rc = mdb_put(txn, tables.ops, &key, &value, 0);
    }
    if (rc != 0) return rc;

    MDB_val expiry_key = k.expiry_val(expires);
    MDB_val empty{0, nullptr};
    return mdb_put(txn, tables.op_expiry, &expiry_key, &empty, 0);
  }

  // Deletes up to `limit` op records whose expires_at <= now, oldest first,
  // with their expiry entries; counts them in `purged`.
  int purge(MDB_txn* txn, timestamp now, std::size_t limit, std::size_t& purged) {
    purged = 0;
    MDB_cursor* cursor = nullptr;
    int rc = mdb_cursor_open(txn, tables.op_expiry, &cursor);
    if (rc != 0) return rc;
    const std::int64_t now_ms = to_ms(now);
    for (std::size_t n = 0; n < limit; ++n) {
      MDB_val key{}, value{};
      // The deleted entry was the first, so the next candidate is the first again.
      rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST);
      if (rc == MDB_NOTFOUND) {
        rc = 0;
        break;
      }
      if (rc != 0) break;
      if (key.mv_size <= time_prefix_size || key.mv_size > time_prefix_size + max_record_key_size) {
        rc = malformed_record;
        break;
      }
      const std::int64_t expires = get_time_be(static_cast<const char*>(key.mv_data));
      if (expires > now_ms) break;
      // Copied out: the cursor's page may change under the deletes.
      std::array<char, max_record_key_size> op_key_bytes;
      const std::size_t op_key_size = key.mv_size - time_prefix_size;
      std::memcpy(op_key_bytes.data(), static_cast<const char*>(key.mv_data) + time_prefix_size, op_key_size);
      MDB_val op_key{op_key_size, op_key_bytes.data()};
      MDB_val record{};
      rc = mdb_get(txn, tables.ops, &op_key, &record);
      if (rc == 0) {
        // Only the record this entry was made for; a rewrite has its own entry.
        if (record.mv_size == op_value_size && get_i64_le(static_cast<const char*>(record.mv_data)) <= now_ms)
          rc = mdb_del(txn, tables.ops, &op_key, nullptr);
      } else if (rc == MDB_NOTFOUND) {
        rc = 0;
      }
      if (rc != 0) break;
      if ((rc = mdb_cursor_del(cursor, 0)) != 0) break;
      ++purged;
    }
    mdb_cursor_close(cursor);
    return rc;
  }

  // Purges expired op records in a transaction of their own, so that a batch
  // too big for what is left never blocks the purge that frees room. Deleting
  // copies pages too: while even the purge does not fit, it takes half as
  // many records, down to one. Returns how many it deleted; its errors are
  // left for the batch's transaction to meet and report.
  std::size_t purge_alone(timestamp now) {
    for (std::size_t limit = options.max_purge_per_commit; limit > 0; limit /= 2) {
      std::size_t purged = 0;
      const auto ec = in_writer([&](MDB_txn* txn, const char*& where) {
        where = "purge";
        const int rc = purge(txn, now, limit, purged);
        return rc == 0 && purged == 0 ? nothing_written : rc;
      });
      if (!ec) return purged;
      if (ec != errc::store_full) return 0;
    }
    return 0;
  }

  std::error_code write_batch(const commit_batch& batch, bool with_purge) {
    return in_writer([&](MDB_txn* txn, const char*& where) {
      int rc = 0;
      if (with_purge) {
        where = "purge";
        std::size_t purged = 0;
        rc = purge(txn, batch.now, options.max_purge_per_commit, purged);
      }
      for (std::size_t i = 0; rc == 0 && i < batch.totals.size(); ++i) {
        where = "mdb_put(totals)";
        rc = put_total(txn, batch.totals[i]);
      }
      for (std::size_t i = 0; rc == 0 && i < batch.tallies.size(); ++i) {
        where = "mdb_put(tallies)";
        rc = put_tally(txn, batch.tallies[i]);
      }
      for (std::size_t i = 0; rc == 0 && i < batch.ops.size(); ++i) {
        where = "mdb_put(ops)";
        rc = put_op(txn, batch.ops[i]);
      }
      return rc;
    });
  }

  std::error_code write(const commit_batch& batch) {
    if (auto ec = ready()) return ec;
    // Short of space: purge first, on its own.
    const bool short_of_space = !space().accepts_new_keys;
    if (short_of_space) purge_alone(batch.now);
    const bool empty = batch.totals.empty() && batch.tallies.empty() && batch.ops.empty();
    std::error_code ec;
    if (!empty || !short_of_space) {
      ec = write_batch(batch, !short_of_space);
      // The batch did not fit: what the purge frees may make it fit.
      if (ec == errc::store_full && !short_of_space && purge_alone(batch.now) > 0)
        ec = write_batch(batch, false);
      if (!ec) disk_full = false;
    }
    if (env != nullptr && !needs_reopen) {
      if (auto measured = measure(); measured && !ec) ec = measured;
    }
    return ec;
  }

  std::error_code reserve(std::uint64_t count, std::uint64_t& first) {
    std::lock_guard writing(write_mutex);  // waits for the commit in flight
    std::uint64_t reserved = 0;
    auto ec = in_writer([&](MDB_txn* txn, const char*& where) {
      where = "mdb_get(next_version)";
      MDB_val key = as_val(next_version_key);
      MDB_val value{};
      int rc = mdb_get(txn, tables.meta, &key, &value);
      std::uint64_t next = 1;  // absent: nothing was handed out yet
      if (rc == 0) {
        if (value.mv_size != 8) return malformed_record;
        next = get_u64_le(static_cast<const char*>(value.mv_data));
      } else if (rc != MDB_NOTFOUND) {
        return rc;
      }
      if (count > std::numeric_limits<std::uint64_t>::max() - next) return MDB_BAD_VALSIZE;
      reserved = next;
      char bytes[8];
      put_u64_le(bytes, next + count);
      value = MDB_val{sizeof bytes, bytes};
      where = "mdb_put(next_version)";
      return mdb_put(txn, tables.meta, &key, &value, 0);
    });
    if (ec) return ec;
    // Durable before any of them is used, even when commits are not fsync'd.
    if (!options.sync) {
      if (const int rc = mdb_env_sync(env, 1); rc != 0) {
        needs_reopen = true;
        return fail(rc, "mdb_env_sync(next_version)");
      }
    }
    first = reserved;
    return {};
  }

  // Writes a batch on the calling thread (the writer, or the owner without one).
  std::error_code write_now(const commit_batch& batch) noexcept {
    try {
      std::lock_guard writing(write_mutex);
      return write(batch);
    } catch (...) {
      // Nothing in the write path allocates by itself; this guards open_env()
      // during a reopen. The transaction, if any, was never committed.
      return errc::store_io;
    }
  }

  void start_writer() {
    writer = std::thread([this] {
      pthread_setname_np(pthread_self(), "claps-lmdb");
      run_writer();
    });
  }

  void run_writer() {
    std::unique_lock lock(job_mutex);
    for (;;) {
      job_cv.wait(lock, [&] { return job == job_state::queued || stopping; });
      if (job != job_state::queued) return;  // stopping, nothing in flight
      lock.unlock();
      const std::error_code ec = write_now(job_batch.view());
      lock.lock();
      job_result = ec;
      job = job_state::ended;
      job_cv.notify_all();  // wait_for_commit()
      lock.unlock();
      options.on_commit_ready();
      lock.lock();
    }
  }

  // Finishes the job in flight (the writer takes it before it sees `stopping`).
  void stop_writer() noexcept {
    if (!writer.joinable()) return;
    {
      std::lock_guard lock(job_mutex);
      stopping = true;
    }
    job_cv.notify_all();
    writer.join();
  }

  // Leaves `done` alone when copying the batch throws.
  void hand_over(const commit_batch& batch, commit_handler& done) {
    {
      std::lock_guard lock(job_mutex);
      assert(job == job_state::none && "one commit at a time");
      job_batch.assign(batch);
      job_done = std::move(done);
      job = job_state::queued;
    }
    job_cv.notify_one();
  }

  std::size_t complete() {
    commit_handler done;
    std::error_code ec;
    {
      std::lock_guard lock(job_mutex);
      if (job != job_state::ended) return 0;
      job = job_state::none;
      done = std::move(job_done);
      job_done = nullptr;
      ec = job_result;
    }
    if (done) done(ec, durability::local);
    return 1;
  }

  std::size_t wait_and_complete() {
    {
      std::unique_lock lock(job_mutex);
      if (job == job_state::none) return 0;
      job_cv.wait(lock, [&] { return job != job_state::queued; });
    }
    return complete();
  }

  std::size_t count_ops() {
    std::size_t count = 0;
    const auto ec = in_reader("mdb_stat(ops)", [&](MDB_txn* txn) {
      MDB_stat stat{};
      const int rc = mdb_stat(txn, tables.ops, &stat);
      count = stat.ms_entries;
      return rc;
    });
    return ec ? 0 : count;
  }
};

std::unique_ptr<lmdb_store> lmdb_store::open(const lmdb_options& options, std::error_code& ec) {
  if (options.map_size > options.max_map_size || options.headroom >= options.max_map_size) {
    ec = errc::bad_request;
    return nullptr;
  }
  try {
    auto state = std::make_unique<impl>(options);
    {
      std::lock_guard writing(state->write_mutex);
      std::unique_lock paused(state->pause);
      ec = state->open_env();
    }
    if (ec) return nullptr;
    if (state->options.on_commit_ready) state->start_writer();
    return std::unique_ptr<lmdb_store>(new lmdb_store(std::move(state)));
  } catch (const std::bad_alloc&) {
    ec = errc::store_io;
    return nullptr;
  } catch (const std::system_error&) {  // the writer thread could not start
    ec = errc::store_io;
    return nullptr;
  }
}

lmdb_store::lmdb_store(std::unique_ptr<impl> state) : impl_(std::move(state)) {}
lmdb_store::~lmdb_store() = default;

std::error_code lmdb_store::read_total(std::string_view article, std::int64_t& total) {
  total = 0;
  if (article.size() > max_article_id_bytes) return errc::bad_request;
  bool found = false;
  try {
    return impl_->read(&table_handles::totals, as_val(article), found, [&](const MDB_val& v) {
      if (v.mv_size != 8) return false;
      total = get_i64_le(static_cast<const char*>(v.mv_data));
      return true;
    });
  } catch (const std::bad_alloc&) {  // a reopen's open_env()
    return errc::store_io;
  }
}

std::error_code lmdb_store::read_tally(std::string_view user, std::string_view article, std::int32_t& claps) {
  claps = 0;
  record_key k;
  if (!k.tally(article, user)) return errc::bad_request;
  bool found = false;
  try {
    return impl_->read(&table_handles::tallies, k.val(), found, [&](const MDB_val& v) {
      if (v.mv_size != 4) return false;
      claps = get_i32_le(static_cast<const char*>(v.mv_data));
      return true;
    });
  } catch (const std::bad_alloc&) {
    return errc::store_io;
  }
}

// Returns the stored record whether or not it has expired: the store has no
// notion of "now" here, so the engine compares out.expires_at with its clock.
// An expired record stays readable until a commit purges it.
std::error_code lmdb_store::read_op(std::string_view user, std::string_view article, std::string_view op_id,
                                    stored_op& out, bool& found) {
  found = false;
  record_key k;
  if (!k.op(article, user, op_id)) return errc::bad_request;
  try {
    return impl_->read(&table_handles::ops, k.val(), found, [&](const MDB_val& v) {
      if (v.mv_size != op_value_size) return false;
      const char* p = static_cast<const char*>(v.mv_data);
      out.expires_at = from_ms(get_i64_le(p));
      out.accepted = get_i32_le(p + 8);
      out.mine = get_i32_le(p + 12);
      return true;
    });
  } catch (const std::bad_alloc&) {
    found = false;
    return errc::store_io;
  }
}

void lmdb_store::commit(const commit_batch& batch, commit_handler done) {
  if (impl_->writer.joinable()) {
    try {
      impl_->hand_over(batch, done);
      return;
    } catch (const std::bad_alloc&) {  // copying the batch; the store.hpp contract allows done here
      if (done) done(errc::store_io, durability::local);
      return;
    }
  }
  const std::error_code ec = impl_->write_now(batch);
  if (done) done(ec, durability::local);
}

std::size_t lmdb_store::run_completions() { return impl_->complete(); }

std::size_t lmdb_store::wait_for_commit() { return impl_->wait_and_complete(); }

std::error_code lmdb_store::reserve_versions(std::uint64_t count, std::uint64_t& first) {
  try {
    return impl_->reserve(count, first);
  } catch (const std::bad_alloc&) {
    return errc::store_io;
  }
}

std::error_code lmdb_store::read_journal(journal_table table, std::string_view after, std::size_t max,
                                         std::vector<journal_row>& out, std::string& next) {
  if (max == 0 || after.size() > max_record_key_size) return errc::bad_request;
  try {
    return impl_->walk(table, after, max, out, next);
  } catch (const std::bad_alloc&) {
    return errc::store_io;
  }
}

std::size_t lmdb_store::op_count() {
  try {
    return impl_->count_ops();
  } catch (const std::bad_alloc&) {
    return 0;
  }
}

std::size_t lmdb_store::reopens() const noexcept { return impl_->reopen_count; }

std::size_t lmdb_store::growths() const noexcept { return impl_->growth_count; }

store_space lmdb_store::space() const { return impl_->space(); }

}  // namespace claps

namespace claps {

// The last op_expiry entry holds the latest expiry: one cursor step,
// however many records there are.
bool lmdb_store::op_records_expire_by(timestamp& out) {
  bool known = false;
  try {
    const auto ec = impl_->in_reader("op_records_expire_by", [&](MDB_txn* txn) {
      MDB_cursor* cursor = nullptr;
      int rc = mdb_cursor_open(txn, impl_->tables.op_expiry, &cursor);
      if (rc != 0) return rc;
      MDB_val key{}, value{};
      rc = mdb_cursor_get(cursor, &key, &value, MDB_LAST);
      mdb_cursor_close(cursor);
      if (rc == MDB_NOTFOUND) {
        out = timestamp::min();
        known = true;
        return 0;
      }
      if (rc != 0) return rc;
      if (key.mv_size <= time_prefix_size) return malformed_record;
      out = from_ms(get_time_be(static_cast<const char*>(key.mv_data)));
      known = true;
      return 0;
    });
    return !ec && known;
  } catch (const std::bad_alloc&) {
    return false;
  }
}

}  // namespace claps
