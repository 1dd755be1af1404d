// claps/lmdb.hpp - the embedded LMDB store (target claps::lmdb).
//
// One LMDB environment in a directory. Each engine tick is one write
// transaction (group commit): totals, per-user tallies and op records land
// together or not at all, and with `sync` (the default) the transaction is
// fsync'd before the engine hears of it. A reopened environment gives
// identical state.
//
// Space. The map starts at lmdb_options::map_size and grows by itself,
// doubling between transactions, up to max_map_size (a transaction that
// fails with MDB_MAP_FULL below the maximum is grown and run again, so the
// caller never sees it). Below the maximum the store keeps `headroom` in
// reserve: once the pages in use (the last page in use minus the pages on
// LMDB's free list, not the file size) reach max_map_size - headroom, or a
// write failed because the disk is full (ENOSPC, EDQUOT, or EFBIG: the
// process's file size limit), space() says it no longer accepts new keys, and
// the engine refuses new tallies and new op ids with errc::store_full at once.
// The reserve is what undos, claps on existing tallies and the purge of
// expired op records commit with: LMDB copies every page a transaction
// touches, so even deletes need free pages. Expired op records are purged in
// a transaction of their own while the store is short of space (before the
// batch, so a batch that cannot fit never blocks the purge that would free
// room; halving the count while even that does not fit), and inside the
// batch's transaction otherwise (one fsync per tick). The store accepts new
// keys again after the first commit that finds room: no restart.
//
// The environment records an on-disk format version (lmdb_format_version).
// open() migrates an environment of format 1 to the current format in one
// write transaction, so a crash or a failure during the migration leaves it
// at format 1, to be migrated by the next open(). The migration holds the
// tallies and op records in memory while it rewrites them, and needs free map
// space about the size of those tables (else store_full: raise max_map_size).
// Any other format, older or newer, is refused (errc::store_incompatible).
//
// Failures map to claps::errc: MDB_MAP_FULL at max_map_size, MDB_TXN_FULL,
// ENOSPC, EDQUOT and EFBIG -> store_full; MDB_PANIC, MDB_CORRUPTED,
// MDB_PAGE_NOTFOUND or a malformed record -> store_corrupted; MDB_INVALID,
// MDB_VERSION_MISMATCH or an unknown format version -> store_incompatible;
// other errors -> store_io (also a commit holding ids longer than the id
// rules of <claps/ids.hpp>, which writes nothing); ids or resume keys longer
// than the id rules -> bad_request on reads. After store_corrupted from
// LMDB, or a commit that failed with a system error (LMDB may then have set
// its fatal flag, and refuses every further transaction), the store closes
// and reopens the environment before its next operation (counted by
// reopens()).
//
// Threads. With lmdb_options::on_commit_ready set, the store owns one writer
// thread (named "claps-lmdb"), started by open() and joined by the
// destructor: commit() hands the batch to it and returns at once, so the
// transaction and its fsync run while the caller's thread goes on (fans out
// the tick before, takes new claps). The writer calls on_commit_ready when a
// commit is durable (or failed); the owner then calls run_completions() on
// its own thread, which calls the commit's `done` there. `done` never runs on
// the writer thread, nor inside commit() (unless the batch cannot be copied
// for want of memory: then with store_io, as store.hpp allows). <claps/uv.hpp>'s
// uv_store_pump wires this to a libuv loop. Without on_commit_ready there is
// no thread: commit() runs the transaction and calls `done` before it
// returns (examples, tests, benchmarks without a loop).
//
// Thread rule: every function is called on one thread, the owner's (the
// engine's); only on_commit_ready runs on the writer thread. Reads (read_*,
// read_journal, op_count) run on the owner's thread while the writer's
// transaction is open: LMDB's MVCC gives them the last committed state
// (environment opened with MDB_NOTLS, so a read transaction is not tied to a
// thread). space(), reopens() and growths() may be called from any thread.
// Growing the map, and reopening the environment after a fatal error, need no
// transaction open anywhere in the process: the writer waits for the owner's
// read in progress to end (reads are short and never wait for the writer),
// and a read waits while the map grows. reserve_versions(), and a read that
// finds the environment in need of a reopen, wait for the commit in flight
// to end (LMDB has one writer at a time).
//
// Opening one environment twice in one process (two lmdb_store objects on
// one path) is a programming error: LMDB forbids it. clapsd takes a lock
// file so that two processes do not share a data directory either. The map
// is grown only by the process that owns the environment, between its own
// transactions.
#pragma once

#include <claps/store.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>

namespace claps {

struct lmdb_options {
  /// Directory of the environment; created if missing (mode 0700). Its
  /// files are created 0600: they hold every user's claps.
  std::string path = "data";
  /// The map's initial size. It grows by itself up to max_map_size; an
  /// environment whose data is already larger opens at its data's size.
  /// 1 GiB: address space only (the file grows as pages are used), room for
  /// about 2 million op records before the first growth. Each growth remaps
  /// the file, and reads fault its pages in again: while a small map kept
  /// growing, engine_bench's op-id intake ran some 7% slower.
  std::size_t map_size = std::size_t{1} << 30;
  /// The most the map may grow to: the bound on the data file. map_size
  /// above it fails open() with errc::bad_request. 4 GiB: about 10 million
  /// (user, article) tallies plus the op records of 15 minutes at several
  /// thousand ops per second (docs/architecture.md, "Storage per node and in Redis").
  std::size_t max_map_size = std::size_t{4} << 30;
  /// Room kept in reserve below max_map_size (see the top of this file).
  /// 0 picks default_headroom(max_map_size). At least max_map_size fails
  /// open() with errc::bad_request.
  std::size_t headroom = 0;
  /// fsync every commit. Turning it off trades durability on power loss for
  /// speed; a process crash still loses nothing committed.
  bool sync = true;
  /// Expired op records deleted per commit at most, so purging never makes
  /// one tick's transaction large.
  std::size_t max_purge_per_commit = 2048;
  /// Set: commits run on the store's writer thread (see the top of this
  /// file), and this is called on that thread, once per commit() after its
  /// transaction ended (durable, or failed), to have the owner call
  /// run_completions() on its own thread. It must be thread-safe, return
  /// quickly and not throw, and must not call into the store: e.g.
  /// uv_async_send (claps::uv_store_pump::waker()). It may be called once
  /// more while the store is destroyed. Empty (the default): no thread;
  /// commit() completes before it returns.
  std::function<void()> on_commit_ready;
};

/// The format version this build writes and reads.
inline constexpr std::uint32_t lmdb_format_version = 2;

/// The reserve kept below `max_map_size` when lmdb_options::headroom is 0:
/// 64 MiB, or half the maximum below 128 MiB. It must hold the transactions
/// committed after the store stops accepting new keys (the batch accepted
/// just before, undos, purges), and LMDB copies every page a transaction
/// touches. Measured with random ids on a large map: about 12 KiB of fresh
/// pages per op in one transaction (a leaf each in ops, tallies and
/// totals), so 64 MiB holds a batch of some 5,000 ops, over four ticks of
/// this machine's fsync'd peak ingest (~46k claps/s, 25 ms ticks). A small
/// map is different: a transaction of random writes copies most of its
/// pages, hence half (a 4 MiB map needed 2 MiB for 200 undos).
constexpr std::size_t default_headroom(std::size_t max_map_size) noexcept {
  const std::size_t cap = std::size_t{64} << 20;
  return max_map_size / 2 < cap ? max_map_size / 2 : cap;
}

class lmdb_store final : public store {
public:
  /// Opens (creating if needed) the environment, and starts the writer thread
  /// when options.on_commit_ready is set. On failure returns null and sets
  /// `ec` (store_io with the system message, or when the thread cannot be
  /// started; store_incompatible; bad_request when map_size > max_map_size
  /// or headroom >= max_map_size).
  static std::unique_ptr<lmdb_store> open(const lmdb_options& options, std::error_code& ec);
  /// Joins the writer thread. A commit in flight is finished first (durable,
  /// or failed as it would have), but its `done` is not called: the owner is
  /// going away. To hear of it, call wait_for_commit() first.
  ~lmdb_store() override;
  lmdb_store(const lmdb_store&) = delete;
  lmdb_store& operator=(const lmdb_store&) = delete;

  std::error_code read_total(std::string_view article, std::int64_t& total) override;
  std::error_code read_tally(std::string_view user, std::string_view article, std::int32_t& claps) override;
  std::error_code read_op(std::string_view user, std::string_view article, std::string_view op_id,
                          stored_op& out, bool& found) override;
  /// The latest expires_at in the op records' expiry table (one read; false
  /// on a read error), so an engine opened on a fresh or idle environment
  /// never asks read_op() about new op ids.
  bool op_records_expire_by(timestamp& out) override;
  /// Writes the batch in one write transaction. Without on_commit_ready it
  /// runs before returning and calls `done` before returning. With it, the
  /// batch is copied (its views need not outlive this call) and handed to
  /// the writer thread; `done` runs later, on the owner's thread, from
  /// run_completions() or wait_for_commit(). One commit at a time: calling
  /// commit() while one is in flight (its `done` not yet called) is a
  /// programming error (asserted). Also purges up to max_purge_per_commit op
  /// records with expires_at <= batch.now: in the batch's transaction, or
  /// first in one of their own while space() does not accept new keys, and
  /// then also when the batch failed with store_full (the batch is then
  /// tried once more). Grows the map as needed. An empty batch while short
  /// of space runs only the purge.
  void commit(const commit_batch& batch, commit_handler done) override;

  /// As of the last write transaction (or open; with the writer thread, as of
  /// the last one that ended, so it may run ahead of the completions not yet
  /// run): accepts_new_keys turns
  /// false once used_bytes > max_map_size - headroom, and true again once
  /// used_bytes <= max_map_size - 5/4 headroom (so that it does not flap),
  /// and it is false while the last write found the disk full. used_bytes
  /// counts pages in use: LMDB's last page in use minus the free-list pages
  /// the next transaction may reuse (those the last transaction freed still
  /// hold the snapshot before it). size_bytes is the map now, max_bytes
  /// max_map_size (or the data's size, if an environment opened larger).
  store_space space() const override;

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

  /// With on_commit_ready: calls the `done` of the commit that the writer
  /// finished, if any, on this (the owner's) thread, and returns how many it
  /// called (0 or 1). `done` may call commit() again. Cheap when there is
  /// nothing to complete, so a spurious wake-up costs nothing. Without
  /// on_commit_ready: returns 0.
  std::size_t run_completions();
  /// Waits (blocking this thread) until the commit in flight, if any, has
  /// ended, then runs its completion as run_completions() does. Returns
  /// how many completions it called (0 when no commit was in flight). For a
  /// drain at shutdown: clapsd calls it so that a tick's acks are queued
  /// before it closes the connections.
  std::size_t wait_for_commit();

  /// Number of op records stored (expired ones included until purged).
  std::size_t op_count();
  /// How many times the environment was reopened after a panic.
  std::size_t reopens() const noexcept;
  /// How many times the map grew since open().
  std::size_t growths() const noexcept;

private:
  struct impl;
  explicit lmdb_store(std::unique_ptr<impl> impl);
  std::unique_ptr<impl> impl_;
};

}  // namespace claps
