// claps/lmdb.hpp - the embedded LMDB store (target claps::lmdb).
//
// One LMDB environment in a directory. Each engine tick is one write
// transaction (group commit): totals, per-user tallies and op records land
// together or not at all, and with `sync` (the default) the transaction is
// fsync'd before the engine hears of it. A reopened environment gives
// identical state. The environment records an on-disk format version and
// refuses one it does not know (errc::store_incompatible).
//
// Failures map to claps::errc: MDB_MAP_FULL, MDB_TXN_FULL, ENOSPC and EDQUOT
// -> store_full; MDB_PANIC, MDB_CORRUPTED, MDB_PAGE_NOTFOUND ->
// store_corrupted; MDB_INVALID, MDB_VERSION_MISMATCH or another format
// version -> store_incompatible; other errors -> store_io; ids longer than the
// id rules -> bad_request on reads. After store_corrupted, or a commit that
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
  /// Directory of the environment; created if missing.
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
inline constexpr std::uint32_t lmdb_format_version = 1;

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
  void commit(const commit_batch& batch, commit_handler done) override;

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
