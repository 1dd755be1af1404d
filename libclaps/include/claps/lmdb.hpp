// claps/lmdb.hpp - the embedded LMDB store (target claps::lmdb).
//
// One LMDB environment in a directory. Each engine tick is one write
// transaction (group commit): totals, per-user tallies and op records land
// together or not at all, and with `sync` (the default) the transaction is
// fsync'd before the engine hears of it. A reopened environment gives
// identical state.
//
// The environment records an on-disk format version (lmdb_format_version).
// open() migrates an environment of format 1 to the current format in one
// write transaction, so a crash or a failure during the migration leaves it
// at format 1, to be migrated by the next open(). The migration holds the
// tallies and op records in memory while it rewrites them, and needs free map
// space about the size of those tables (else store_full: raise map_size).
// Any other format, older or newer, is refused (errc::store_incompatible).
//
// Failures map to claps::errc: MDB_MAP_FULL, MDB_TXN_FULL, ENOSPC and EDQUOT
// -> store_full; MDB_PANIC, MDB_CORRUPTED, MDB_PAGE_NOTFOUND or a malformed
// record -> store_corrupted; MDB_INVALID, MDB_VERSION_MISMATCH or an unknown
// format version -> store_incompatible; other errors -> store_io (also a
// commit holding ids longer than the id rules of <claps/ids.hpp>, which
// writes nothing); ids or resume keys longer than the id rules ->
// bad_request on reads. After store_corrupted from LMDB, or a commit that
// failed with a system error (LMDB may then have set its fatal flag, and
// refuses every further transaction), the store closes and reopens the
// environment before its next operation (counted by reopens()).
//
// Thread rule: one thread, like the engine. Opening one environment twice in
// one process (two lmdb_store objects on one path) is a programming error:
// LMDB forbids it. clapsd takes a lock file so that two processes do not share
// a data directory either.
#pragma once

#include <claps/store.hpp>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <system_error>

namespace claps {

struct lmdb_options {
  /// Directory of the environment; created if missing (mode 0700). Its
  /// files are created 0600: they hold every user's claps.
  std::string path = "data";
  /// LMDB map size: the most the database may grow to.
  std::size_t map_size = std::size_t{1} << 30;
  /// fsync every commit. Turning it off trades durability on power loss for
  /// speed; a process crash still loses nothing committed.
  bool sync = true;
  /// Expired op records deleted per commit at most, so purging never makes
  /// one tick's transaction large.
  std::size_t max_purge_per_commit = 2048;
};

/// The format version this build writes and reads.
inline constexpr std::uint32_t lmdb_format_version = 2;

class lmdb_store final : public store {
public:
  /// Opens (creating if needed) the environment. On failure returns null and
  /// sets `ec` (store_io with the system message, store_incompatible, ...).
  static std::unique_ptr<lmdb_store> open(const lmdb_options& options, std::error_code& ec);
  ~lmdb_store() override;
  lmdb_store(const lmdb_store&) = delete;
  lmdb_store& operator=(const lmdb_store&) = delete;

  std::error_code read_total(std::string_view article, std::int64_t& total) override;
  std::error_code read_tally(std::string_view user, std::string_view article,
                             std::int32_t& claps) override;
  std::error_code read_op(std::string_view user, std::string_view article, std::string_view op_id,
                          stored_op& out, bool& found) override;
  /// Runs the write transaction before returning; calls `done` before returning.
  /// Also purges up to max_purge_per_commit op records with expires_at <= batch.now.
  void commit(const commit_batch& batch, commit_handler done) override;

  /// Reserves [first, first + count): the next free version is kept in the
  /// environment (the first ever handed out is 1), and the reservation is
  /// fsync'd before this returns, even when `sync` is off. Never derived from
  /// a clock. Errors as for commit(); on an error `first` is unchanged and
  /// no version was handed out. count 0 returns the next free version and
  /// reserves nothing.
  std::error_code reserve_versions(std::uint64_t count, std::uint64_t& first) override;

  /// Walks one table in key order, as store::read_journal() says, in one read
  /// snapshot per call (rows may change between calls). The order is the
  /// byte order of the raw LMDB keys: totals "article", tallies
  /// "article/user", ops "article/user/op_id", so one article's rows are
  /// contiguous. The resume key is that raw key; resuming after a key whose
  /// row has since been deleted starts at the next row. Ops rows include expired records not yet purged;
  /// journal_row::value is 0 for them. On an error appends nothing and leaves
  /// `next` unchanged. Errors: bad_request when `max` is 0 or `after` is
  /// longer than any key; store_corrupted on a malformed row; the mapping
  /// above otherwise. `after` may view `next`.
  std::error_code read_journal(journal_table table, std::string_view after, std::size_t max,
                               std::vector<journal_row>& out, std::string& next) override;

  /// Number of op records stored (expired ones included until purged).
  std::size_t op_count();
  /// How many times the environment was reopened after a panic.
  std::size_t reopens() const noexcept;

private:
  struct impl;
  explicit lmdb_store(std::unique_ptr<impl> impl);
  std::unique_ptr<impl> impl_;
};

} // namespace claps
