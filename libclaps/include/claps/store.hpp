// claps/store.hpp - the storage interface the engine commits through.
//
// The engine batches everything a tick changed into one commit_batch and hands
// it to store::commit() exactly once per tick; at most one commit is in flight
// at a time. Reads happen synchronously when the engine first meets an
// article, a (user, article) tally or an op id it has not cached.
//
// Values in a batch are absolute (a total, a tally), never deltas, so a
// retried or replayed commit is harmless. That is also what lets a shared
// store, one that several nodes write to, keep per-node absolute values with a
// version and never move backwards.
//
// A store shared by several nodes (claps::redis_store) also arbitrates: before
// the engine applies a tick's claps, it asks the store to decide them across
// nodes (arbitrates(), arbitrate()), and it tells the store which articles it
// watches (room_changed()). Stores of one node need neither.
//
// Op ids are scoped to a (user, article) pair: the same op id sent for another
// article is another op.
//
// Argument order everywhere: user before article, article before op id.
//
// Implementations shipped: claps::memory_store (this library, <claps/memory_store.hpp>),
// claps::lmdb_store (target claps::lmdb, <claps/lmdb.hpp>), claps::redis_store
// (target claps::redis, <claps/redis.hpp>).
#pragma once

#include <claps/time.hpp>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace claps {

/// The committed total of one article after the batch.
struct article_total {
  std::string_view article;
  std::int64_t total = 0;
};

/// One user's committed claps on one article after the batch (0 after undo;
/// negative on a node whose undo removed claps made through other nodes).
struct user_tally {
  std::string_view user;
  std::string_view article;
  std::int32_t claps = 0;
};

/// The outcome of an operation that carried an op id, kept for replays.
struct op_record {
  std::string_view user;
  std::string_view article;
  std::string_view op_id;
  std::int32_t accepted = 0;  // claps added, negative for an undo
  std::int32_t mine = 0;      // the user's tally on the article after the op
  timestamp expires_at{};     // the record may be purged once this has passed
};

/// An op record as read back from a store.
struct stored_op {
  std::int32_t accepted = 0;
  std::int32_t mine = 0;
  timestamp expires_at{};
};

/// Everything one tick changed. Views stay valid until the commit's
/// completion handler has been called. A batch may be empty: while the store
/// does not accept new keys (store::space()), the engine commits an empty
/// batch on every tick that has nothing else to commit, so that the store
/// can purge expired op records and find room again.
struct commit_batch {
  std::span<const article_total> totals;
  std::span<const user_tally> tallies;
  std::span<const op_record> ops;
  /// Op records whose expires_at <= now may be purged by this commit (in its
  /// transaction, or in one of their own: see claps::lmdb_store).
  timestamp now{};
};

/// A store's room for new data, as store::space() reports it.
struct store_space {
  /// False while the store is short of space (near its most, or its disk
  /// full). The engine then refuses, with errc::store_full, every op that
  /// would add a key: a clap that would make a new (user, article) tally or
  /// a new op record. Undos, replays and claps that only rewrite an existing
  /// tally still pass: the store keeps room in reserve for them.
  bool accepts_new_keys = true;
  /// Bytes holding data now, the store's current size and the most it may
  /// grow to; all 0 for a store that does not measure (memory_store).
  std::uint64_t used_bytes = 0;
  std::uint64_t size_bytes = 0;
  std::uint64_t max_bytes = 0;
};

/// How far a commit reached before it was acknowledged.
enum class durability : std::uint8_t {
  local,    ///< durable on this node (fsync'd LMDB, or memory for memory_store)
  cluster,  ///< durable in the shared store too
};

/// Called exactly once per commit(): with an empty error_code and the level
/// reached, or with the error that made the whole batch fail. A failed batch
/// changed nothing; the engine retries its contents on the next tick.
using commit_handler = std::function<void(std::error_code, durability)>;

/// One row of a store's journal (see store::read_journal()).
struct journal_row {
  std::string user;  // tallies and ops; empty for totals
  std::string article;
  std::string op_id;          // ops only
  std::int64_t value = 0;     // the total, or the tally's claps
  std::int32_t accepted = 0;  // ops only
  std::int32_t mine = 0;      // ops only
  timestamp expires_at{};     // ops only
};

/// The tables of a journal, walked one after another.
enum class journal_table : std::uint8_t { totals, tallies, ops };

// ---- arbitration across nodes ----

/// One clap or undo the engine asks a shared store to decide. Views stay
/// valid until the arbitrate handler has been called.
struct op_intent {
  std::string_view user;
  std::string_view article;
  std::string_view op_id;  // may be empty
  std::int32_t count = 0;  // claps wanted, 1..cap; 0 for an undo
  bool undo = false;
  /// This node's claps of user on article before the op: committed and
  /// decided. The engine fills it; the store decides from it, not from what
  /// the shared store last held, because the journal is the source of truth.
  std::int32_t own = 0;
  /// This node's total of article before the op (committed and decided).
  std::int64_t own_total = 0;
};

/// What the shared store decided for one op_intent.
struct op_decision {
  enum class kind : std::uint8_t {
    applied,  ///< decided across nodes: apply `accepted`
    replay,   ///< another node applied this op id: answer its accepted/mine, change nothing
    retry,    ///< another node is applying this op id right now: ask again later
    local,    ///< could not be decided across nodes (Redis failed): decide locally
  };
  kind what = kind::local;
  std::int32_t accepted = 0;  // applied, replay
  std::int32_t mine = 0;      // applied, replay: the user's claps on the article over all nodes after the op
};

/// Called exactly once per arbitrate() that returned no error, with one
/// decision per intent in the same order. The views are valid for the call.
using arbitrate_handler = std::function<void(std::span<const op_decision>)>;

/// What a store shared by several nodes tells the engine that uses it. The
/// engine registers itself with store::attach().
class store_listener {
public:
  /// The other nodes' part of an article changed. May be called at any time
  /// on the engine's thread, also from inside an engine callback.
  virtual void remote_changed(std::string_view article, std::int64_t remote_total,
                              std::uint32_t remote_viewers) = 0;

protected:
  ~store_listener() = default;
};

/// The storage interface. Thread rule: a store is used by one engine on one
/// thread. None of its functions throw.
class store {
public:
  virtual ~store() = default;

  /// Reads an article's committed total; 0 when the article is unknown.
  virtual std::error_code read_total(std::string_view article, std::int64_t& total) = 0;

  /// Reads a user's committed claps on an article; 0 when there are none.
  virtual std::error_code read_tally(std::string_view user, std::string_view article,
                                     std::int32_t& claps) = 0;

  /// Looks up the op record of op_id for (user, article). `found` is false
  /// when there is none. An expired record not yet purged may still be
  /// returned (found = true): the caller compares out.expires_at with its own
  /// clock.
  virtual std::error_code read_op(std::string_view user, std::string_view article, std::string_view op_id,
                                  stored_op& out, bool& found) = 0;

  /// When every op record this store holds now has expired: the latest
  /// expires_at among them (expired records not yet purged may count), or a
  /// time in the past, such as timestamp::min(), when it holds none. The
  /// engine asks once, from its constructor: until that time, an op id new to
  /// it may have a record here from an earlier process, so it asks read_op()
  /// about each; afterwards it asks only about op ids it dropped from memory
  /// early. False when the store cannot tell (the default): the engine then
  /// asks about every op id new to it for one op_id_window after it started.
  /// A store that wraps another forwards it. On a read error, false.
  virtual bool op_records_expire_by(timestamp& out) {
    (void)out;
    return false;
  }

  /// Commits a batch atomically: all of it or none of it. `done` may run
  /// before commit() returns (embedded stores) or later from the caller's
  /// event loop (networked stores), but never twice.
  virtual void commit(const commit_batch& batch, commit_handler done) = 0;

  /// The store's room for new keys, as of its last commit (or open). Cheap
  /// and does no I/O: the engine asks before it queues each clap or undo. A
  /// store that wraps another forwards it. The default: always accepts, and
  /// measures nothing.
  virtual store_space space() const { return {}; }

  // ---- journal: what a node re-asserts into a shared store ----

  /// Reserves `count` consecutive versions, [first, first + count), that no
  /// earlier call handed out, in this process or (for a persistent store) any
  /// earlier process on the same data; durable before it returns. Versions
  /// are what a shared store orders one node's writes by, so they must grow
  /// across restarts and clock steps. The default counts in memory.
  virtual std::error_code reserve_versions(std::uint64_t count, std::uint64_t& first) {
    first = next_version_;
    next_version_ += count;
    return {};
  }

  /// Reads up to `max` rows of `table` in key order, starting after the row
  /// whose resume key is `after` (empty: from the start). Appends them to
  /// `out` and sets `next` to the resume key of the last row appended (empty
  /// when the table has no more rows). Ops rows include expired records not
  /// yet purged. The default: errc::bad_request (the store keeps no journal).
  virtual std::error_code read_journal(journal_table table, std::string_view after, std::size_t max,
                                       std::vector<journal_row>& out, std::string& next);

  // ---- several nodes; a store of one node keeps the defaults ----

  /// Claps of `user` on `article` made through other nodes, as last known to
  /// a store shared by several nodes. A single-node store has none.
  virtual std::int32_t remote_tally(std::string_view user, std::string_view article) {
    (void)user;
    (void)article;
    return 0;
  }

  /// The other nodes' part of an article, when the store keeps a view of
  /// them: true with `total` and `viewers` set, false when it does not (never
  /// loaded, the shared store is unreachable, or a store of one node). The
  /// engine asks before every snapshot; it leaves what engine::set_remote()
  /// set alone when this returns false.
  virtual bool remote_part(std::string_view article, std::int64_t& total, std::uint32_t& viewers) {
    (void)article;
    (void)total;
    (void)viewers;
    return false;
  }

  /// True when claps must be decided by arbitrate() before they are applied.
  virtual bool arbitrates() const { return false; }

  /// Decides `intents` across nodes, in order. On success `done` runs once,
  /// later, from the caller's loop, never from inside arbitrate(). Errors
  /// (and then `done` never runs): store_disconnected when the shared store is
  /// unreachable; the engine then decides locally. The default returns
  /// store_disconnected.
  virtual std::error_code arbitrate(std::span<const op_intent> intents, arbitrate_handler done);

  /// The engine's room of `article` changed: `watched` is false once its last
  /// subscriber left; `viewers` counts its local readers. Called on every
  /// change, from inside the engine's calls.
  virtual void room_changed(std::string_view article, bool watched, std::uint32_t viewers) {
    (void)article;
    (void)watched;
    (void)viewers;
  }

  /// Registers the engine that uses this store (null to unregister). The
  /// engine calls it from its constructor and destructor.
  virtual void attach(store_listener* listener) { (void)listener; }

private:
  std::uint64_t next_version_ = 1;
};

}  // namespace claps
