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
// Implementations shipped: claps::memory_store (this library, <claps/memory_store.hpp>),
// claps::lmdb_store (target claps::lmdb, <claps/lmdb.hpp>).
#pragma once

#include <claps/time.hpp>

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace claps {

/// The committed total of one article after the batch.
struct article_total {
  std::string_view article;
  std::int64_t total = 0;
};

/// One user's committed claps on one article after the batch (0 after undo).
struct user_tally {
  std::string_view user;
  std::string_view article;
  std::int32_t claps = 0;
};

/// The outcome of an operation that carried an op id, kept for replays.
struct op_record {
  std::string_view user;
  std::string_view op_id;
  std::string_view article;
  std::int32_t accepted = 0;  // claps added, negative for an undo
  std::int32_t mine = 0;      // the user's tally on the article after the op
  timestamp expires_at{};     // the record may be purged once this has passed
};

/// An op record as read back from a store; owns its article id.
struct stored_op {
  std::string article;
  std::int32_t accepted = 0;
  std::int32_t mine = 0;
  timestamp expires_at{};
};

/// Everything one tick changed. Views stay valid until the commit's
/// completion handler has been called.
struct commit_batch {
  std::span<const article_total> totals;
  std::span<const user_tally> tallies;
  std::span<const op_record> ops;
  /// Op records whose expires_at <= now may be purged in the same transaction.
  timestamp now{};
};

/// How far a commit reached before it was acknowledged.
enum class durability : std::uint8_t {
  local,   ///< durable on this node (fsync'd LMDB, or memory for memory_store)
  cluster, ///< durable in the shared store too
};

/// Called exactly once per commit(): with an empty error_code and the level
/// reached, or with the error that made the whole batch fail. A failed batch
/// changed nothing; the engine retries its contents on the next tick.
using commit_handler = std::function<void(std::error_code, durability)>;

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

  /// Looks up an op record. `found` is false when there is none. An expired
  /// record not yet purged may still be returned (found = true): the caller
  /// compares out.expires_at with its own clock.
  virtual std::error_code read_op(std::string_view user, std::string_view op_id,
                                  stored_op& out, bool& found) = 0;

  /// Claps of `user` on `article` made through other nodes, as last known to
  /// a store shared by several nodes. The engine accepts at most
  /// cap - (own tally + remote_tally), reports mine as their sum, and an
  /// undo removes both (the own tally may then be negative). A single-node
  /// store has none.
  virtual std::int32_t remote_tally(std::string_view user, std::string_view article) {
    (void)user;
    (void)article;
    return 0;
  }

  /// Commits a batch atomically: all of it or none of it. `done` may run
  /// before commit() returns (embedded stores) or later from the caller's
  /// event loop (networked stores), but never twice.
  virtual void commit(const commit_batch& batch, commit_handler done) = 0;
};

} // namespace claps
