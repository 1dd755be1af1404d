// The LMDB store: one environment, five named databases, one write
// transaction per engine tick.
//
// On-disk format, version 1 (lmdb_format_version). Integers are stored
// little-endian regardless of the host, except the expiry key prefix, which is
// big-endian so that LMDB's bytewise key order is time order.
//
//   meta       "format_version"   -> u32 LE
//   totals     article            -> i64 LE          (absent means 0)
//   tallies    user '/' article   -> i32 LE          (absent means 0; 0 is deleted)
//   ops        user '/' op_id     -> i64 LE expires_at ms, i32 LE accepted,
//                                    i32 LE mine, article bytes
//   op_expiry  u64 BE (expires_at ms with the sign bit flipped) user '/' op_id -> empty
//
// '/' is not in the id alphabet, so the composite keys are unambiguous.
// op_expiry has exactly one entry per ops record, so purging walks it from the
// start with a cursor and stops at the first entry that has not expired.
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

#include <claps/error.hpp>
#include <claps/lmdb.hpp>

#include <lmdb.h>

#include <array>
#include <cassert>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <new>
#include <utility>

namespace claps {
namespace {

constexpr const char* meta_db = "meta";
constexpr const char* totals_db = "totals";
constexpr const char* tallies_db = "tallies";
constexpr const char* ops_db = "ops";
constexpr const char* op_expiry_db = "op_expiry";
constexpr unsigned named_db_count = 5;
constexpr std::string_view format_version_key = "format_version";

// Ids are at most 128 bytes (op ids 64); LMDB's default key limit is 511.
// Composite keys are built on the stack so reads and commits never allocate.
constexpr std::size_t max_id_size = 128;
constexpr std::size_t key_buffer_size = 8 + max_id_size + 1 + max_id_size;
constexpr std::size_t op_header_size = 8 + 4 + 4;
constexpr std::size_t op_value_buffer_size = op_header_size + max_id_size;

void put_u32_le(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
std::uint32_t get_u32_le(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}
void put_u64_le(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
std::uint64_t get_u64_le(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}
void put_i32_le(char* p, std::int32_t v) { put_u32_le(p, static_cast<std::uint32_t>(v)); }
std::int32_t get_i32_le(const char* p) { return static_cast<std::int32_t>(get_u32_le(p)); }
void put_i64_le(char* p, std::int64_t v) { put_u64_le(p, static_cast<std::uint64_t>(v)); }
std::int64_t get_i64_le(const char* p) { return static_cast<std::int64_t>(get_u64_le(p)); }

// Flipping the sign bit makes unsigned big-endian byte order match signed
// order, so timestamps before 1970 would still sort first.
constexpr std::uint64_t sign_bit = std::uint64_t{1} << 63;
void put_time_be(char* p, std::int64_t ms) {
  const std::uint64_t v = static_cast<std::uint64_t>(ms) ^ sign_bit;
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * (7 - i)));
}
std::int64_t get_time_be(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return static_cast<std::int64_t>(v ^ sign_bit);
}

std::int64_t to_ms(timestamp t) { return t.time_since_epoch().count(); }
timestamp from_ms(std::int64_t ms) { return timestamp{millis{ms}}; }

MDB_val as_val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}

// A composite key "<prefix><a>/<b>" built in place.
class composite_key {
public:
  // Returns false when the parts do not fit (ids longer than the alphabet rules allow).
  bool build(std::string_view prefix, std::string_view a, std::string_view b) {
    size_ = prefix.size() + a.size() + 1 + b.size();
    if (a.size() > max_id_size || b.size() > max_id_size || size_ > bytes_.size()) return false;
    char* p = append(bytes_.data(), prefix);
    p = append(p, a);
    *p++ = '/';
    append(p, b);
    return true;
  }
  MDB_val val() { return MDB_val{size_, bytes_.data()}; }

private:
  // An empty string_view may hold a null pointer, which memcpy must not get.
  static char* append(char* p, std::string_view s) {
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    return p + s.size();
  }
  std::array<char, key_buffer_size> bytes_{};
  std::size_t size_ = 0;
};

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
  case MDB_PAGE_NOTFOUND: return errc::store_corrupted;
  case MDB_INVALID:
  case MDB_VERSION_MISMATCH: return errc::store_incompatible;
  default: return errc::store_io;
  }
}

} // namespace

struct lmdb_store::impl {
  lmdb_options options;
  MDB_env* env = nullptr;
  // Kept between reads in the reset state so a read renews it instead of
  // allocating a transaction; a reset transaction pins no pages.
  MDB_txn* reader = nullptr;
  MDB_dbi meta = 0, totals = 0, tallies = 0, ops = 0, op_expiry = 0;
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
    std::snprintf(last_error.data(), last_error.size(), "%s: %s", where, mdb_strerror(rc));
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
    std::filesystem::create_directories(options.path, fs_ec);
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
    if ((rc = mdb_env_open(env, options.path.c_str(), flags, 0644)) != 0)
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
    rc = mdb_dbi_open(txn, meta_db, 0, &meta);
    if (rc == MDB_NOTFOUND && main_stat.ms_entries != 0)
      return incompatible("environment holds data but no claps format version");
    if (rc == MDB_NOTFOUND) rc = mdb_dbi_open(txn, meta_db, MDB_CREATE, &meta);
    if (rc != 0) return abort_and_give_up(rc, "mdb_dbi_open(meta)");

    MDB_val key = as_val(format_version_key);
    MDB_val value{};
    rc = mdb_get(txn, meta, &key, &value);
    if (rc == 0) {
      if (value.mv_size != 4 || get_u32_le(static_cast<const char*>(value.mv_data)) !=
                                    lmdb_format_version)
        return incompatible("claps format version differs from this build's");
    } else if (rc == MDB_NOTFOUND) {
      if (main_stat.ms_entries != 0)
        return incompatible("environment holds data but no claps format version");
      char bytes[4];
      put_u32_le(bytes, lmdb_format_version);
      value = MDB_val{sizeof bytes, bytes};
      if ((rc = mdb_put(txn, meta, &key, &value, 0)) != 0)
        return abort_and_give_up(rc, "mdb_put(meta)");
    } else {
      return abort_and_give_up(rc, "mdb_get(meta)");
    }

    const std::pair<const char*, MDB_dbi*> dbs[] = {
        {totals_db, &totals}, {tallies_db, &tallies}, {ops_db, &ops}, {op_expiry_db, &op_expiry}};
    for (auto [name, dbi] : dbs)
      if ((rc = mdb_dbi_open(txn, name, MDB_CREATE, dbi)) != 0)
        return abort_and_give_up(rc, "mdb_dbi_open");
    if ((rc = mdb_txn_commit(txn)) != 0) return give_up(rc, "mdb_txn_commit(open)");

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

  // Looks `key` up in `dbi` and hands the value to `decode` while the read
  // transaction still pins it. `decode` returns false on a malformed value.
  template <typename Decode>
  std::error_code read(MDB_dbi impl::*dbi, MDB_val key, bool& found, Decode&& decode) {
    found = false;
    if (auto ec = ready()) return ec;
    int rc = mdb_txn_renew(reader);
    if (rc != 0) return fail(rc, "mdb_txn_renew");
    MDB_val value{};
    rc = mdb_get(reader, this->*dbi, &key, &value);
    bool well_formed = true;
    if (rc == 0) {
      found = true;
      try {
        well_formed = decode(value);
      } catch (...) {
        mdb_txn_reset(reader); // a renewed transaction cannot be renewed again
        throw;
      }
    }
    mdb_txn_reset(reader);
    if (rc == MDB_NOTFOUND) return {};
    if (rc != 0) return fail(rc, "mdb_get");
    if (!well_formed) {
      // A bad value in a sound B-tree: reopening would not fix it.
      found = false;
      std::snprintf(last_error.data(), last_error.size(), "malformed value");
      return errc::store_corrupted;
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
    MDB_val key = as_val(t.article);
    char bytes[8];
    put_i64_le(bytes, t.total);
    return put_or_delete(txn, totals, key, t.total == 0, bytes, sizeof bytes);
  }

  int put_tally(MDB_txn* txn, const user_tally& t) {
    composite_key k;
    if (!k.build({}, t.user, t.article)) return MDB_BAD_VALSIZE;
    MDB_val key = k.val();
    char bytes[4];
    put_i32_le(bytes, t.claps);
    return put_or_delete(txn, tallies, key, t.claps == 0, bytes, sizeof bytes);
  }

  int put_op(MDB_txn* txn, const op_record& op) {
    composite_key k;
    if (!k.build({}, op.user, op.op_id) || op.article.size() > max_id_size) return MDB_BAD_VALSIZE;
    const std::int64_t expires = to_ms(op.expires_at);
    std::array<char, op_value_buffer_size> bytes;
    put_i64_le(bytes.data(), expires);
    put_i32_le(bytes.data() + 8, op.accepted);
    put_i32_le(bytes.data() + 12, op.mine);
    if (!op.article.empty())
      std::memcpy(bytes.data() + op_header_size, op.article.data(), op.article.size());
    const std::size_t value_size = op_header_size + op.article.size();

    MDB_val key = k.val();
    MDB_val value{value_size, bytes.data()};
    int rc = mdb_put(txn, ops, &key, &value, MDB_NOOVERWRITE);
    if (rc == MDB_KEYEXIST) {
      // Rewriting a record: drop its old expiry entry so op_expiry keeps
      // exactly one entry per record. `value` now points at the old record.
      if (value.mv_size < op_header_size) return MDB_CORRUPTED;
      const std::int64_t old_expires = get_i64_le(static_cast<const char*>(value.mv_data));
      if (old_expires != expires) {
        char prefix[8];
        put_time_be(prefix, old_expires);
        composite_key old;
        old.build({prefix, sizeof prefix}, op.user, op.op_id);
        MDB_val old_key = old.val();
        rc = mdb_del(txn, op_expiry, &old_key, nullptr);
        if (rc != 0 && rc != MDB_NOTFOUND) return rc;
      }
      value = MDB_val{value_size, bytes.data()};
      rc = mdb_put(txn, ops, &key, &value, 0);
    }
    if (rc != 0) return rc;

    char prefix[8];
    put_time_be(prefix, expires);
    composite_key e;
    e.build({prefix, sizeof prefix}, op.user, op.op_id);
    MDB_val expiry_key = e.val();
    MDB_val empty{0, nullptr};
    return mdb_put(txn, op_expiry, &expiry_key, &empty, 0);
  }

  // Deletes up to max_purge_per_commit op records whose expires_at <= now,
  // oldest first, with their expiry entries.
  int purge(MDB_txn* txn, timestamp now) {
    MDB_cursor* cursor = nullptr;
    int rc = mdb_cursor_open(txn, op_expiry, &cursor);
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
      if (key.mv_size < 8 || key.mv_size > key_buffer_size) {
        rc = MDB_CORRUPTED;
        break;
      }
      const std::int64_t expires = get_time_be(static_cast<const char*>(key.mv_data));
      if (expires > now_ms) break;
      std::array<char, key_buffer_size> op_key_bytes;
      const std::size_t op_key_size = key.mv_size - 8;
      std::memcpy(op_key_bytes.data(), static_cast<const char*>(key.mv_data) + 8, op_key_size);
      MDB_val op_key{op_key_size, op_key_bytes.data()};
      MDB_val record{};
      rc = mdb_get(txn, ops, &op_key, &record);
      if (rc == 0) {
        // Only the record this entry was made for; a rewrite has its own entry.
        if (record.mv_size >= op_header_size &&
            get_i64_le(static_cast<const char*>(record.mv_data)) <= now_ms)
          rc = mdb_del(txn, ops, &op_key, nullptr);
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
    if (auto ec = ready()) return ec;
    MDB_txn* txn = nullptr;
    int rc = mdb_txn_begin(env, nullptr, 0, &txn);
    if (rc != 0) return fail(rc, "mdb_txn_begin");
    const char* where = "purge";
    rc = purge(txn, batch.now);
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

  std::size_t count_ops() {
    if (ready()) return 0;
    if (int rc = mdb_txn_renew(reader); rc != 0) {
      fail(rc, "mdb_txn_renew");
      return 0;
    }
    MDB_stat stat{};
    const int rc = mdb_stat(reader, ops, &stat);
    mdb_txn_reset(reader);
    if (rc != 0) {
      fail(rc, "mdb_stat(ops)");
      return 0;
    }
    return stat.ms_entries;
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
  if (article.size() > max_id_size) return errc::bad_request;
  bool found = false;
  return impl_->read(&impl::totals, as_val(article), found, [&](const MDB_val& v) {
    if (v.mv_size != 8) return false;
    total = get_i64_le(static_cast<const char*>(v.mv_data));
    return true;
  });
}

std::error_code lmdb_store::read_tally(std::string_view user, std::string_view article,
                                       std::int32_t& claps) {
  claps = 0;
  composite_key k;
  if (!k.build({}, user, article)) return errc::bad_request;
  bool found = false;
  return impl_->read(&impl::tallies, k.val(), found, [&](const MDB_val& v) {
    if (v.mv_size != 4) return false;
    claps = get_i32_le(static_cast<const char*>(v.mv_data));
    return true;
  });
}

// Returns the stored record whether or not it has expired: the store has no
// notion of "now" here, so the engine compares out.expires_at with its clock.
// An expired record stays readable until a commit purges it.
std::error_code lmdb_store::read_op(std::string_view user, std::string_view article, std::string_view op_id,
                                    stored_op& out, bool& found) {
  found = false;
  composite_key k;
  if (!k.build({}, user, op_id)) return errc::bad_request;
  try {
    bool same_article = false;
    auto ec = impl_->read(&impl::ops, k.val(), found, [&](const MDB_val& v) {
      if (v.mv_size < op_header_size || v.mv_size > op_value_buffer_size) return false;
      const char* p = static_cast<const char*>(v.mv_data);
      out.expires_at = from_ms(get_i64_le(p));
      out.accepted = get_i32_le(p + 8);
      out.mine = get_i32_le(p + 12);
      // Interim (format 1): one record per user and op id; another article's is another op.
      same_article = std::string_view(p + op_header_size, v.mv_size - op_header_size) == article;
      return true;
    });
    found = found && same_article;
    return ec;
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

std::size_t lmdb_store::op_count() {
  try {
    return impl_->count_ops();
  } catch (const std::bad_alloc&) {
    return 0;
  }
}

std::size_t lmdb_store::reopens() const noexcept { return impl_->reopen_count; }

} // namespace claps
