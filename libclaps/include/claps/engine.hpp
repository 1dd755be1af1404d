// claps/engine.hpp - the realtime clap engine. It does no I/O.
//
// An engine holds rooms (which subscriber watches which article), accepts
// claps and undos, and coalesces them: once per tick it commits everything
// pending to its store in one batch and, only after that batch is durable,
// emits one update per changed article and completes the clappers' results.
//
// The engine never reads a clock, opens a socket, starts a thread or arms a
// timer. Its caller:
//   1. feeds it commands (subscribe, unsubscribe, clap, undo);
//   2. calls advance(now) whenever now >= next_deadline() (timestamp::max():
//      nothing to do until the next command);
//   3. receives output through the callbacks in engine_callbacks;
//   4. shuts it down with close() (see "Shutdown" below).
// <claps/uv.hpp> does this on a libuv loop; tests do it with a fake clock.
//
// Thread rule: an engine and its store belong to one thread.
// Re-entrancy rule: callbacks run inside advance(), flush(), close() and the
// destructor, and, with a store that completes later (claps::lmdb_store with
// its writer thread, a networked store), from the caller's loop when the
// store completes a commit or an arbitration (lmdb_store::run_completions(),
// the Redis client's loop). They never run inside subscribe(), clap(),
// undo() or a query. From a callback the caller may use the const queries and
// set_remote() only; calling another mutating function (subscribe, clap,
// advance, ...) from a callback is a programming error: the engine prints
// why to stderr and aborts, in every build type. Views passed to a callback
// are valid only until the callback returns.
//
// Order of results: within one commit, results fire in the order their ops
// were accepted by clap()/undo(); replays of ops that were already durable
// fire in the next tick: after that tick's commit results when the store
// completes inside commit(), before them when it completes later.
// Within a tick, results come before the updates and deliveries of the
// articles they changed (the result of a clap fires before its article's
// new total is delivered).
//
// Shutdown, the one sequence:
//   - a store that completes inside commit() (claps::memory_store,
//     claps::lmdb_store without on_commit_ready): engine.close(now), then
//     destroy the engine, then the store;
//   - a store that completes later (lmdb_store with its writer thread, the
//     Redis store): engine.close(now), keep running the store's completions
//     (the caller's loop) until engine.closed(), destroy the engine, then the
//     store. claps::uv_driver::close() does the waiting on a libuv loop.
// close() commits everything pending at once; closed() turns true when every
// op that returned no error has had its result and the updates went out.
// With a store that completes inside commit() that is at once, unless a
// viewer-count change is held back (engine_options::viewer_update_interval):
// destroying the engine then drops only that update. Destroying an engine
// while ops still wait gives each errc::unavailable (see ~engine).
//
// Several nodes: with a store that arbitrates (claps::redis_store), clap() and
// undo() only queue the op; each tick the engine asks the store to decide the
// queued ops across nodes in one call, applies the decisions, commits them,
// and then completes the results. See <claps/store.hpp> and docs/design.md.
#pragma once

#include <claps/error.hpp>
#include <claps/store.hpp>
#include <claps/time.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace claps {

/// A caller-chosen handle for one subscriber (a connection, an SSE stream).
using subscriber_id = std::uint64_t;

struct engine_options {
  /// Coalescing period, 1..1000 ms.
  millis tick{25};
  /// Most claps one user may give one article (Medium: 50), >= 1.
  std::int32_t clap_cap = 50;
  /// How long an op id is remembered for replays.
  millis op_id_window{std::chrono::minutes(15)};
  /// Most live op ids one user may hold at once (each one is a stored record
  /// for op_id_window); past it, clap() and undo() with a new op id return
  /// errc::too_many_op_ids. Counted over the op ids this engine holds in
  /// memory. 0 means unlimited. A reader clapping by hand stays far below
  /// the default; a script that makes up a new id per request does not.
  std::size_t max_op_ids_per_user = 1000;
  /// Op ids kept in memory (about 50 bytes each). Past it, the oldest ones
  /// already committed are dropped from memory early; until they expire the
  /// engine then asks the store (store::read_op()) about every op id it does
  /// not hold, so replays of them are still answered. >= 1.
  std::size_t op_id_cache = 4'000'000;
  /// Uncommitted claps/undos held while the store fails. Past it, clap() and
  /// undo() return errc::unavailable instead of growing memory.
  std::size_t max_pending_ops = 100'000;
  /// Articles a subscriber may watch at once; 0 means unlimited.
  std::size_t max_subscriptions = 256;
  /// Idle articles (no viewers, nothing pending) kept cached in memory.
  std::size_t article_cache = 100'000;
  /// (user, article) tallies kept in memory while clean: the cap check of
  /// a user's next clap needs no store read. Only claps and undos cache a
  /// tally (a subscribe or read() reads the store and keeps nothing), so
  /// readers who never clap leave no per-user state behind. Past this many,
  /// all clean tallies are dropped at once between ticks (about 100 bytes
  /// each, plus the user id when longer than 15 bytes); a dropped tally is
  /// read from the store again by the user's next clap. 262,144 (about
  /// 26 MB at most): at 65,536, engine_bench's 100k clapping (user, article)
  /// pairs were all dropped every tick and read back, and intake fell from
  /// ~15 M to ~5 M claps/s.
  std::size_t tally_cache = 262'144;
  /// With a store that arbitrates: how long an op whose op id another node
  /// is applying right now is asked about again (each tick) before its
  /// result is errc::unavailable (the caller retries with the same op id).
  millis op_id_wait{3000};
  /// Subscribers delivered to per slice; 0 delivers every queued subscriber
  /// in the call that emits. With a limit, advance() delivers one slice per
  /// call and next_deadline() stays "now" while subscribers wait, so the
  /// caller's loop handles its I/O (a commit that completed, new claps)
  /// between slices, and a subscriber reached later in a round gets the
  /// newest values: a round of 20k connections no longer holds back the
  /// commit of the next tick. One delivery per subscriber per emission
  /// still holds: a queued subscriber keeps its place when its articles
  /// change again.
  std::size_t deliveries_per_slice = 0;
  /// Hot rooms: an article whose only change is its viewer count goes out
  /// at most once per this interval (0 = every tick) when its room holds at
  /// least viewer_throttle_min_room local subscribers. A change of the total
  /// goes out at once and carries the viewer count with it. Nobody reads a
  /// count of 20,000 viewers changing 40 times a second; at 20k viewers
  /// each such change costs 20k frames.
  millis viewer_update_interval{0};
  std::size_t viewer_throttle_min_room = 100;
  /// Seed of the engine's hash tables. Servers that accept ids from the
  /// network should pass a random value, so that nobody can choose ids that
  /// all land in one bucket.
  std::uint64_t hash_seed = 0x2545F4914F6CDD1Dull;
};

/// Checks option ranges. Empty error_code (usable) or errc::bad_request.
std::error_code validate(const engine_options& options) noexcept;
/// The same, and on an error sets `why` to a sentence that names the option,
/// its value and the allowed range, e.g. "engine_options::tick is 0 ms; it
/// must be 1..1000 ms". `why` is cleared when the options are usable.
std::error_code validate(const engine_options& options, std::string& why);

/// One changed article in one tick. `total` is committed; `viewers` counts
/// subscribers with reading=true. Both include other nodes' parts when a
/// cluster store reports them (engine::set_remote). `encoded` is what
/// engine_callbacks::encode produced for it (empty without an encoder), made
/// once per article per tick.
struct article_update {
  std::string_view article;
  std::int64_t total = 0;
  std::uint32_t viewers = 0;
  std::string_view encoded;
  std::uint32_t local_viewers = 0;  // this engine's readers only
};

/// The state of one article as a subscriber should first see it.
struct snapshot {
  std::string_view article;
  std::int64_t total = 0;  // committed
  std::uint32_t viewers = 0;
  std::int32_t mine = 0;  // committed claps of the given user (0 without one)
  /// False when a store shared by several nodes does not know the other
  /// nodes' part right now (unreachable, or not loaded yet): total, viewers
  /// and mine are then this node's view only.
  bool global = true;
};

/// The outcome of one clap() or undo(), delivered after its batch is durable.
/// The views (user, op_id, article) are valid only during the callback.
struct op_result {
  std::uint64_t cookie = 0;  // as passed in clap_request / undo_request
  /// Empty when the op was decided. errc::unavailable when a store shared by
  /// several nodes kept finding its op id in use by another node for
  /// engine_options::op_id_wait: nothing was applied; retry the same op id.
  /// errc::unavailable also when the engine was destroyed before the op had
  /// its result (see ~engine): the op may or may not be durable; retrying it
  /// with the same op id is safe (it is applied exactly once).
  std::error_code error;
  std::string_view user;   // as in the request
  std::string_view op_id;  // as in the request; empty when the op had none
  std::string_view article;
  std::int32_t accepted = 0;  // claps counted; < count at the cap; negative for undo
  std::int64_t total = 0;     // the article's committed total now
  std::int32_t mine = 0;      // the user's committed tally on the article
  bool replayed = false;      // true when the op id had been used before
  durability level = durability::local;
};

struct clap_request {
  std::string_view user;
  std::string_view article;
  std::int32_t count = 1;  // 1..clap_cap
  std::string_view op_id;  // optional idempotency key, scoped to (user, article)
  std::uint64_t cookie = 0;
};

struct undo_request {
  std::string_view user;
  std::string_view article;
  std::string_view op_id;  // optional idempotency key, scoped to (user, article)
  std::uint64_t cookie = 0;
};

/// One subscriber's part of a delivery slice (engine_callbacks::deliver_slice).
struct delivery {
  subscriber_id subscriber = 0;
  std::span<const article_update* const> updates;
};

struct engine_callbacks {
  /// Encodes one changed article, once per tick; the result is shared by all
  /// its subscribers through article_update::encoded. Optional.
  std::function<void(const article_update&, std::string& out)> encode;
  /// Once per emission per subscriber that watches at least one changed
  /// article: all of that subscriber's changed articles together, with
  /// their newest values when the delivery runs (see
  /// engine_options::deliveries_per_slice). Optional.
  std::function<void(subscriber_id, std::span<const article_update* const>)> deliver;
  /// The same deliveries, a slice at a time: one call per slice instead of
  /// one per subscriber, so a fan-out to 20k connections makes a few dozen
  /// calls, and the caller sees the next subscribers coming (to prefetch
  /// their state). Used instead of `deliver` when set. Optional.
  std::function<void(std::span<const delivery>)> deliver_slice;
  /// Once per emission with every changed article, before its deliveries. Optional.
  std::function<void(std::span<const article_update>)> tick_updates;
  /// Exactly once per clap()/undo() that returned no error (op_result::error
  /// tells the rare op that could not be decided). Optional.
  std::function<void(const op_result&)> result;
  /// When the store's health changes: an error on the first failing commit,
  /// an empty code when a commit succeeds again. Optional.
  std::function<void(std::error_code)> store_status;
};

/// Counters for metrics. Monotonic unless noted.
struct engine_stats {
  std::uint64_t ticks = 0;
  std::uint64_t commits = 0;
  std::uint64_t commit_failures = 0;
  std::uint64_t claps_requested = 0;  // sum of counts asked for
  std::uint64_t claps_accepted = 0;   // sum of counts accepted
  std::uint64_t claps_over_cap = 0;   // sum of counts refused by the cap
  std::uint64_t undos = 0;
  std::uint64_t replays = 0;
  std::uint64_t refused_unavailable = 0;
  std::uint64_t refused_op_ids = 0;       // errc::too_many_op_ids
  std::uint64_t refused_store_full = 0;   // claps refused because the store is short of space
  std::uint64_t updates = 0;              // changed articles emitted
  std::uint64_t deliveries = 0;           // deliver() calls
  std::uint64_t viewer_changes_held = 0;  // viewer-count-only emissions held back (throttle)
  std::uint64_t ops_purged = 0;           // expired op ids dropped from memory
  // Gauges.
  std::size_t pending_ops = 0;  // claps/undos not yet durable
  std::size_t subscribers = 0;
  std::size_t subscriptions = 0;
  std::size_t articles_cached = 0;
  std::size_t deliveries_queued = 0;  // subscribers waiting for their delivery
  std::size_t tallies_cached = 0;     // (user, article) tallies in memory (engine_options::tally_cache)
};

class engine {
public:
  /// `store` must outlive the engine. `options` must pass validate(): the
  /// constructor checks it in every build type and, when they do not, prints
  /// validate()'s reason to stderr and aborts (a caller with options from
  /// outside checks validate() first).
  engine(store& store, engine_options options, engine_callbacks callbacks, timestamp now);
  /// Every op that returned no error and still has no result gets one now,
  /// with error errc::unavailable: first those in a commit in flight (which
  /// the store may still make durable after the engine is gone), then those
  /// waiting for a shared store's decision, then those pending. Such an op
  /// may or may not be durable; retrying it with the same op id is safe: it
  /// is applied exactly once. A store completion that
  /// arrives after the engine is gone does nothing. After close() and
  /// closed(), nothing is left for the destructor to settle.
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // ---- rooms ----

  /// Adds `article` to what `sub` watches and fills `out` with its snapshot
  /// (viewers counting this subscriber when reading). `user`, the reader
  /// whose claps out.mine counts, may be empty; then out.mine is 0. Subscribing again to a watched article changes
  /// nothing and returns the snapshot. `out.article` stays valid until the
  /// next call into the engine. The user's claps are read from the store
  /// unless their tally is cached (see engine_options::tally_cache); nothing
  /// about the user is kept.
  /// Errors: invalid_article, invalid_user, too_many_subscriptions, or a
  /// store error when the article's total or the user's claps could not be read.
  std::error_code subscribe(subscriber_id sub, std::string_view user, std::string_view article, bool reading,
                            snapshot& out);

  /// All or nothing: validates every id and the subscription limit first,
  /// then subscribes to each and appends one snapshot per article to `out`.
  /// Errors as subscribe(); on error nothing changed.
  std::error_code subscribe(subscriber_id sub, std::string_view user,
                            std::span<const std::string_view> articles, bool reading,
                            std::vector<snapshot>& out);

  /// Stops `sub` watching `article`. Unknown pairs are ignored.
  void unsubscribe(subscriber_id sub, std::string_view article);
  /// Stops `sub` watching everything; forgets the subscriber.
  void unsubscribe_all(subscriber_id sub);

  // ---- claps ----

  /// Counts up to request.count claps of a user on an article, bounded by the
  /// cap. On success the result arrives later through callbacks.result, after
  /// the batch holding it is durable. A reused op id (same user and article)
  /// is not applied again; its result repeats the original accepted/mine with
  /// the current total. The same op id on another article is another op.
  /// Errors (and then no callback fires): invalid_user, invalid_article,
  /// invalid_op_id, invalid_count, unavailable (too much uncommitted),
  /// too_many_op_ids (a new op id past engine_options::max_op_ids_per_user;
  /// replays of live ones still answer), store_full, or a store error from
  /// reading state the engine had not cached.
  ///
  /// store_full: the store is short of space (store::space() says it accepts
  /// no new keys), and this clap would add a key: it carries an op id not
  /// seen before, or the user has no claps on the article yet. Refused at
  /// once, before anything is queued, and counted in
  /// engine_stats::refused_store_full. A replay of a known op id, and a clap
  /// without an op id on a tally the user already has, still pass.
  std::error_code clap(const clap_request& request);

  /// Removes all of a user's claps on an article (Medium's undo applause).
  /// Results and errors as clap(), except that an undo is never refused for
  /// store_full: the store keeps room in reserve for undos. While the store
  /// accepts no new keys, an undo that finds no claps to remove is answered
  /// (accepted 0) without recording its op id, so a flood of such undos
  /// cannot fill that reserve; sending it again removes the claps the user
  /// has made since, if any. Accepted is minus the claps removed.
  /// With a store shared by several nodes that includes the claps made
  /// through other nodes (store::remote_tally): this node's own tally then
  /// goes below zero by that amount, so the user's claps sum to 0.
  std::error_code undo(const undo_request& request);

  // ---- several nodes ----

  /// The other nodes' part of an article, as a cluster store reports it. From
  /// then on snapshots, updates and results report total = own committed
  /// total + remote_total and viewers = local viewers + remote_viewers; when
  /// that differs from what was last emitted, the article is emitted on the
  /// next tick (no commit needed). Commit batches keep carrying this engine's
  /// own values. Ignored for articles the engine does not hold in memory
  /// (nobody here watches them or clapped for them recently). A store that
  /// arbitrates calls this itself (store_listener), so callers rarely need
  /// to. May be called from inside a callback.
  void set_remote(std::string_view article, std::int64_t remote_total, std::uint32_t remote_viewers);

  // ---- time ----

  /// Runs the tick if now is at or past the tick's deadline: commits the
  /// pending batch (when no commit is in flight), then emits updates and
  /// results for what became durable. Otherwise delivers the next slice of
  /// queued subscribers, if any (engine_options::deliveries_per_slice).
  /// Calls the callbacks. While the store accepts no new keys, a
  /// tick with nothing to commit commits an empty batch, so that the store
  /// may purge expired op records and recover by itself.
  /// advance(timestamp::max()), the deadline of an idle engine, does nothing.
  void advance(timestamp now);
  /// Runs a tick now, whatever the deadline, and delivers to every queued
  /// subscriber (used to drain on shutdown).
  void flush(timestamp now);
  /// When advance() next has work to do: the tick's deadline, or the last
  /// time the engine was told while subscribers wait for a delivery slice,
  /// or timestamp::max() ("never") when the engine has nothing to do: no op
  /// pending or waiting for a shared store, no queued delivery or update (a
  /// viewer-count change held back by the throttle counts as one), no
  /// articles or tallies over their cache limits, and a store that accepts
  /// new keys. A commit in flight alone is not work for advance(): its
  /// completion comes from the store. Housekeeping that needs no answer (op
  /// ids that expired are dropped from memory, op records purged from the
  /// store) waits for the next tick, which an idle engine runs after its next
  /// command. The first op after an idle spell may thus commit at once, in
  /// the next advance(), rather than after a full tick.
  /// A store that completes a commit later queues deliveries outside
  /// advance(), so a driver asks again after each of its loop's passes
  /// (claps::uv_driver does).
  timestamp next_deadline() const noexcept;
  /// Registers `wake`, called when next_deadline() becomes earlier than the
  /// value it last returned: a command (clap, undo, subscribe, unsubscribe,
  /// set_remote) or a store completion gave an idle engine work. A driver
  /// sets it to re-arm its timer (claps::uv_driver does, in its constructor,
  /// so its callers need not tell it about their calls). It runs inside
  /// those calls and may only call next_deadline() and the const queries.
  /// Empty to unregister. One function at a time: a second call replaces it.
  void on_wake(std::function<void()> wake);
  /// True while subscribers wait for a delivery slice.
  bool delivering() const noexcept;

  // ---- shutdown ----

  /// Stops taking ops and commits everything pending now, as flush() does
  /// (callbacks run inside). From then on clap(), undo() and subscribe()
  /// return errc::unavailable ("the engine is closed"); unsubscribe, the
  /// queries, advance() and flush() still work (advance() retries a commit
  /// that failed). Calling close() again flushes again.
  void close(timestamp now);
  /// True once close() was called, every op that returned no error has had
  /// its result (nothing pending, no commit or arbitration in flight), and
  /// the updates of what was committed went out to their subscribers (a
  /// commit that completed after close() emits on the next tick; a viewer
  /// change held back by engine_options::viewer_update_interval waits for it).
  /// With a store that completes later, the caller runs its loop (the store's
  /// completions) until this is true; a store that keeps failing keeps it
  /// false (advance() retries; destroying the engine settles the rest).
  bool closed() const noexcept;

  // ---- queries (const, callable from callbacks) ----

  /// The committed state of an article as the engine knows it, loading it
  /// from the store if needed (so this one is not const). `user` may be
  /// empty; then out.mine is 0. `out.article` stays valid until the next call
  /// into the engine. Errors: invalid_article, invalid_user, or a store error.
  std::error_code read(std::string_view user, std::string_view article, snapshot& out);
  /// Error of the last commit; empty while the store is healthy.
  std::error_code store_error() const noexcept;
  /// True when nothing is pending and no commit is in flight.
  bool idle() const noexcept;
  /// Articles `sub` watches.
  std::size_t subscription_count(subscriber_id sub) const noexcept;
  engine_stats stats() const noexcept;
  const engine_options& options() const noexcept;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace claps
