// The LMDB store: one environment, five named databases, one write
// transaction per engine tick. The on-disk layout is in format.hpp.
//
// Environment flags: MDB_NOTLS because the store keeps one read transaction
// and resets/renews it around every read, so its reader slot must belong to
// the transaction, not to whichever thread opened it. MDB_NORDAHEAD is not set:
// the working set (totals, tallies, recent ops) is expected to fit in RAM, and
// turning off readahead only helps random reads on a database larger than RAM.
//
// LMDB forbids opening the same environment twice in one process (its locks
// are per process), so two lmdb_store objects on one path in one process is a
// programming error with undefined results; the caller must not do it.

#include "format.hpp"

#include <claps/error.hpp>
#include <claps/lmdb.hpp>

#include <lmdb.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <new>
#include <utility>

namespace claps {
namespace {

using namespace detail::lmdb;

std::int64_t to_ms(timestamp t) { return t.time_since_epoch().count(); }
timestamp from_ms(std::int64_t ms) { return timestamp{millis{ms}}; }

bool is_corruption(int rc) {
  return rc == MDB_PANIC || rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND;
}

std::error_code map_error(int rc) {
  switch (rc) {
  case MDB_MAP_FULL:
  case MDB_TXN_FULL: // the batch needs more dirty pages than one transaction may hold
  case ENOSPC:
  case EDQUOT: return errc::store_full;
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

} // namespace

// Decodes one journal row; false when the key or value is malformed.
bool detail::lmdb::decode_row(journal_table table, std::string_view key, std::string_view value, journal_row& row) {
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
  lmdb_options options;
  MDB_env* env = nullptr;
  // Kept between reads in the reset state so a read renews it instead of
  // allocating a transaction; a reset transaction pins no pages.
  MDB_txn* reader = nullptr;
  table_handles tables;
  // Set when LMDB may have marked the environment fatal (MDB_PANIC, corruption,
  // a failed commit): LMDB 0.9 refuses every transaction until it is reopened.
  bool needs_reopen = false;
  std::size_t reopen_count = 0;
  // The last LMDB/system message, for a debugger or a core dump: the caller
  // only gets the error_code.
  std::array<char, 192> last_error{};

  explicit impl(lmdb_options o) : options(std::move(o)) {}
  ~impl() { close_env(); }
  impl(const impl&) = delete;
  impl& operator=(const impl&) = delete;

  std::error_code fail(int rc, const char* where) noexcept {
    std::snprintf(last_error.data(), last_error.size(), "%s: %s", where,
                  rc == malformed_record ? "malformed record" : mdb_strerror(rc));
    if (is_corruption(rc)) needs_reopen = true;
    return map_error(rc);
  }

  void close_env() noexcept {
    if (reader != nullptr) mdb_txn_abort(reader);
    reader = nullptr;
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
      std::snprintf(last_error.data(), last_error.size(), "mkdir %s: %s", options.path.c_str(),
                    fs_ec.message().c_str());
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
    if ((rc = mdb_env_set_mapsize(env, options.map_size)) != 0)
      return give_up(rc, "mdb_env_set_mapsize");
    if ((rc = mdb_env_set_maxdbs(env, named_db_count)) != 0)
      return give_up(rc, "mdb_env_set_maxdbs");
    const unsigned flags = MDB_NOTLS | (options.sync ? 0u : unsigned{MDB_NOSYNC});
    if ((rc = mdb_env_open(env, options.path.c_str(), flags, 0600)) != 0)
      return give_up(rc, "mdb_env_open");
    // Reader slots left by a crashed process would pin old pages forever.
    int stale = 0;
    mdb_reader_check(env, &stale);

    MDB_txn* txn = nullptr;
    if ((rc = mdb_txn_begin(env, nullptr, 0, &txn)) != 0) return give_up(rc, "mdb_txn_begin");
    auto abort_and_give_up = [&](int code, const char* where) {
      mdb_txn_abort(txn);
      return give_up(code, where);
    };
    auto incompatible = [&](const char* why) {
      mdb_txn_abort(txn);
      close_env();
      std::snprintf(last_error.data(), last_error.size(), "%s", why);
      return std::error_code{errc::store_incompatible};
    };

    // An environment with named entries but no meta database is not one of ours.
    MDB_dbi main_dbi = 0;
    if ((rc = mdb_dbi_open(txn, nullptr, 0, &main_dbi)) != 0)
      return abort_and_give_up(rc, "mdb_dbi_open(main)");
    MDB_stat main_stat{};
    if ((rc = mdb_stat(txn, main_dbi, &main_stat)) != 0)
      return abort_and_give_up(rc, "mdb_stat(main)");
    rc = mdb_dbi_open(txn, meta_db, 0, &tables.meta);
    if (rc == MDB_NOTFOUND && main_stat.ms_entries != 0)
      return incompatible("environment holds data but no claps format version");
    if (rc == MDB_NOTFOUND) rc = mdb_dbi_open(txn, meta_db, MDB_CREATE, &tables.meta);
    if (rc != 0) return abort_and_give_up(rc, "mdb_dbi_open(meta)");

    MDB_val key = as_val(format_version_key);
    MDB_val value{};
    std::uint32_t found_version = 0; // none: a new environment
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

    const bool migrate = found_version == 1;
    if (migrate && (rc = migrate_from_format_1(txn, tables)) != 0)
      return abort_and_give_up(rc, "migrating format 1");
    if (found_version != lmdb_format_version) { // new, or just migrated
      char bytes[4];
      put_u32_le(bytes, lmdb_format_version);
      key = as_val(format_version_key);
      value = MDB_val{sizeof bytes, bytes};
      if ((rc = mdb_put(txn, tables.meta, &key, &value, 0)) != 0)
        return abort_and_give_up(rc, "mdb_put(meta)");
    }
    if ((rc = mdb_txn_commit(txn)) != 0) return give_up(rc, "mdb_txn_commit(open)");
    // A migration is worth an fsync even when commits are not.
    if (migrate && !options.sync && (rc = mdb_env_sync(env, 1)) != 0)
      return give_up(rc, "mdb_env_sync(migration)");

    if ((rc = mdb_txn_begin(env, nullptr, MDB_RDONLY, &reader)) != 0) {
      reader = nullptr;
      return give_up(rc, "mdb_txn_begin(read)");
    }
    mdb_txn_reset(reader);
    return {};
  }

  // Reopens the environment if an earlier failure left it unusable.
  std::error_code ready() {
    if (!needs_reopen && env != nullptr) return {};
    close_env();
    if (auto ec = open_env()) return ec;
    needs_reopen = false;
    ++reopen_count;
    return {};
  }

  // Runs `body` (returning 0 or an LMDB code) in the kept read transaction,
  // renewed for it and reset after, also when `body` throws.
  template <typename Body>
  std::error_code in_reader(const char* where, Body&& body) {
    if (auto ec = ready()) return ec;
    if (const int rc = mdb_txn_renew(reader); rc != 0) return fail(rc, "mdb_txn_renew");
    struct reset_on_exit {
      MDB_txn* txn;
      ~reset_on_exit() { mdb_txn_reset(txn); } // a renewed transaction cannot be renewed again
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
        last.clear(); // the table has no more rows
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
  // it, so that nothing is written, when `body` fails.
  template <typename Body>
  std::error_code in_writer(Body&& body) {
    if (auto ec = ready()) return ec;
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
    if (rc != 0) {
      mdb_txn_abort(txn);
      return fail(rc, where);
    }
    rc = mdb_txn_commit(txn); // frees txn whatever the outcome
    if (rc != 0) {
      // A failed flush or meta write can leave LMDB's fatal flag set, after
      // which it refuses every transaction; a reopen is cheap and clears it.
      if (rc != MDB_MAP_FULL && rc != MDB_TXN_FULL) needs_reopen = true;
      return fail(rc, "mdb_txn_commit");
    }
    return {};
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

  // Deletes up to max_purge_per_commit op records whose expires_at <= now,
  // oldest first, with their expiry entries.
  int purge(MDB_txn* txn, timestamp now) {
    MDB_cursor* cursor = nullptr;
    int rc = mdb_cursor_open(txn, tables.op_expiry, &cursor);
    if (rc != 0) return rc;
    const std::int64_t now_ms = to_ms(now);
    for (std::size_t n = 0; n < options.max_purge_per_commit; ++n) {
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
      std::memcpy(op_key_bytes.data(), static_cast<const char*>(key.mv_data) + time_prefix_size,
                  op_key_size);
      MDB_val op_key{op_key_size, op_key_bytes.data()};
      MDB_val record{};
      rc = mdb_get(txn, tables.ops, &op_key, &record);
      if (rc == 0) {
        // Only the record this entry was made for; a rewrite has its own entry.
        if (record.mv_size == op_value_size &&
            get_i64_le(static_cast<const char*>(record.mv_data)) <= now_ms)
          rc = mdb_del(txn, tables.ops, &op_key, nullptr);
      } else if (rc == MDB_NOTFOUND) {
        rc = 0;
      }
      if (rc != 0) break;
      if ((rc = mdb_cursor_del(cursor, 0)) != 0) break;
    }
    mdb_cursor_close(cursor);
    return rc;
  }

  std::error_code write(const commit_batch& batch) {
    return in_writer([&](MDB_txn* txn, const char*& where) {
      where = "purge";
      int rc = purge(txn, batch.now);
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

  std::error_code reserve(std::uint64_t count, std::uint64_t& first) {
    std::uint64_t reserved = 0;
    auto ec = in_writer([&](MDB_txn* txn, const char*& where) {
      where = "mdb_get(next_version)";
      MDB_val key = as_val(next_version_key);
      MDB_val value{};
      int rc = mdb_get(txn, tables.meta, &key, &value);
      std::uint64_t next = 1; // absent: nothing was handed out yet
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
  try {
    auto state = std::make_unique<impl>(options);
    ec = state->open_env();
    if (ec) return nullptr;
    return std::unique_ptr<lmdb_store>(new lmdb_store(std::move(state)));
  } catch (const std::bad_alloc&) {
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
  } catch (const std::bad_alloc&) { // a reopen's open_env()
    return errc::store_io;
  }
}

std::error_code lmdb_store::read_tally(std::string_view user, std::string_view article,
                                       std::int32_t& claps) {
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
std::error_code lmdb_store::read_op(std::string_view user, std::string_view article,
                                    std::string_view op_id, stored_op& out, bool& found) {
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
  std::error_code ec;
  try {
    ec = impl_->write(batch);
  } catch (const std::bad_alloc&) {
    // Nothing in the write path allocates by itself; this guards open_env()
    // during a reopen. The transaction, if any, was never committed.
    ec = errc::store_io;
  }
  if (done) done(ec, durability::local);
}

std::error_code lmdb_store::reserve_versions(std::uint64_t count, std::uint64_t& first) {
  try {
    return impl_->reserve(count, first);
  } catch (const std::bad_alloc&) {
    return errc::store_io;
  }
}

std::error_code lmdb_store::read_journal(journal_table table, std::string_view after,
                                         std::size_t max, std::vector<journal_row>& out,
                                         std::string& next) {
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

} // namespace claps
