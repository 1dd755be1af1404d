/* claps/claps.h - the C API of libclaps (target claps::c, pkg-config claps-c).
 *
 * The same engine as <claps/engine.hpp>, for C programs and for languages
 * that call C (ctypes, cffi, cgo, a JNI or N-API shim). Compiles as C99 and
 * as C++. Nothing here throws: every function that can fail returns 0 on
 * success or a negative CLAPS_E_... code, and an out-of-memory inside the
 * library is returned as CLAPS_E_UNAVAILABLE.
 *
 * Objects. Every object is an opaque handle made by a claps_<object>_new()
 * or _open() call and released by its claps_<object>_free(). Freeing NULL
 * does nothing.
 *   claps_memory_store  a store in process memory (tests, ephemeral use);
 *   claps_lmdb_store    the LMDB store: durable, in a directory;
 *   claps_engine        the engine, on one store (claps_store, the view of
 *                       either store that claps_*_store_as_store() returns);
 *   claps_uv_driver     ticks an engine on a caller's libuv loop.
 *
 * Ownership. The caller owns every handle. A store must outlive the engines
 * made on it, an engine the driver made on it, a uv_loop_t the driver on it.
 * Free in reverse order of creation: driver, engine, store. Strings passed in
 * are copied before the call returns (or not kept at all). Pointers handed to
 * a callback (claps_op_result, claps_article_update and their strings) are
 * valid only until the callback returns: copy what you keep. Strings are
 * NUL-terminated UTF-8; a _len field beside one gives its length in bytes.
 *
 * Thread rule. An engine, its store and its driver belong to one thread, the
 * engine's thread: every call on them is made from that thread, and every
 * callback runs on it. The exceptions: claps_strerror(), claps_error_name(),
 * claps_error_wire_name(), claps_version() and claps_now_ms() may be called
 * from any thread, and the file descriptor of
 * claps_lmdb_store_completion_fd() may be polled from any thread (only
 * claps_lmdb_store_run_completions() itself runs on the engine's thread).
 *
 * Re-entrancy. Callbacks run inside claps_engine_advance(),
 * claps_engine_flush(), claps_engine_close(), claps_engine_free(),
 * claps_lmdb_store_run_completions() and claps_lmdb_store_wait_for_commit() (a
 * commit that completes delivers its results), and inside the libuv callbacks
 * of a claps_uv_driver. They never run inside subscribe, clap, undo or read.
 * A callback may call the queries (claps_engine_next_deadline, _idle,
 * _delivering, _closed, _stats_get, _store_error) and nothing else on the
 * engine: calling a mutating function from a callback makes the engine print
 * why and abort. A callback must return normally (no longjmp, no C++
 * exception).
 *
 * Time. The engine never reads a clock: the caller passes the time as
 * milliseconds since the Unix epoch (claps_now_ms() reads the wall clock).
 * Driving an engine by hand:
 *     for (;;) {
 *       wait for I/O until claps_engine_next_deadline(engine), and for the
 *         LMDB store's completion fd to be readable (poll(2), epoll, asyncio);
 *       if the fd is readable: claps_lmdb_store_run_completions(store);
 *       claps_engine_advance(engine, claps_now_ms());
 *     }
 * or let a claps_uv_driver do it on a libuv loop.
 *
 * Shutdown, the one documented path (every clap and undo that returned 0 gets
 * its result first; nothing acknowledged is lost):
 *     claps_engine_close(engine, claps_now_ms());   (commits what is pending)
 *     while (!claps_engine_closed(engine)) {
 *       poll the completion fd (writer thread only), then
 *       claps_lmdb_store_run_completions(store);
 *       claps_engine_advance(engine, claps_now_ms()); (retries a failed commit)
 *     }
 *     claps_engine_free(engine);
 *     claps_lmdb_store_free(store);
 * With an inline store (memory, or LMDB with CLAPS_LMDB_INLINE) the engine is
 * closed as soon as claps_engine_close() returns, unless the commit failed.
 * On a libuv loop, claps_uv_driver_close() does the waiting and then calls
 * back; free the driver and the engine from there, uv_close() a uv_poll_t on
 * the completion fd before freeing the store (which closes the fd), run the
 * loop once more (the handles close), then uv_loop_close().
 * claps_engine_free() on an engine not yet closed gives every op still without
 * a result its result now, with CLAPS_E_UNAVAILABLE: nothing is silently
 * dropped, but such an op may or may not have been written (retrying it with
 * the same op id is safe: it is applied once).
 */
#ifndef CLAPS_CLAPS_H
#define CLAPS_CLAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- errors ---- */

/* One code per claps::errc (<claps/error.hpp>), negated: CLAPS_E_X is
 * -(int)claps::errc::x. 0 is success. */
#define CLAPS_OK 0
#define CLAPS_E_BAD_REQUEST (-1)            /* malformed request, NULL argument, bad option */
#define CLAPS_E_INVALID_ARTICLE (-2)        /* article id not 1-128 bytes of [A-Za-z0-9._:-] */
#define CLAPS_E_INVALID_USER (-3)           /* user id not 1-128 bytes of [A-Za-z0-9._:-] */
#define CLAPS_E_INVALID_OP_ID (-4)          /* op id not 1-64 bytes of [A-Za-z0-9._:-] */
#define CLAPS_E_INVALID_COUNT (-5)          /* clap count outside 1..cap */
#define CLAPS_E_TOO_MANY_SUBSCRIPTIONS (-6) /* subscriber at its subscription limit */
#define CLAPS_E_RATE_LIMITED (-7)           /* (servers) caller's token bucket is empty */
#define CLAPS_E_UNAUTHORIZED (-8)           /* (servers) missing or invalid credentials */
#define CLAPS_E_FORBIDDEN (-9)              /* (servers) action not allowed */
#define CLAPS_E_MESSAGE_TOO_LARGE (-10)     /* (servers) inbound message over the limit */
#define CLAPS_E_TOO_MANY_OP_IDS (-11)       /* user holds max_op_ids_per_user live op ids */
#define CLAPS_E_UNAVAILABLE (-12)           /* too much uncommitted, closing, or out of memory */
#define CLAPS_E_STORE_FULL (-13)            /* store out of space (LMDB map full, disk full) */
#define CLAPS_E_STORE_IO (-14)              /* store I/O error */
#define CLAPS_E_STORE_CORRUPTED (-15)       /* store contents failed a check, or LMDB panicked */
#define CLAPS_E_STORE_INCOMPATIBLE (-16)    /* on-disk format this build does not read */
#define CLAPS_E_STORE_TIMEOUT (-17)         /* a networked store did not answer in time */
#define CLAPS_E_STORE_DISCONNECTED (-18)    /* a networked store is not connected */
/* How many codes there are: CLAPS_E_BAD_REQUEST down to -CLAPS_ERROR_COUNT. */
#define CLAPS_ERROR_COUNT 18

/* What went wrong and how to fix it, e.g. "invalid clap count: use a whole
 * number from 1 to the cap"; "success" for 0, "unknown claps error" for a
 * code not listed above. Static storage; any thread. */
const char* claps_strerror(int code);
/* The code's own name without the prefix, e.g. "invalid_count" for
 * CLAPS_E_INVALID_COUNT, "" for 0, "unknown" for other codes. Static storage;
 * any thread. */
const char* claps_error_name(int code);
/* The name the WebSocket protocol sends for the code (claps::wire_name, see
 * docs/protocol.md), e.g. "bad_request" for CLAPS_E_INVALID_COUNT and
 * "unavailable" for every store error; "" for 0. Static storage; any thread. */
const char* claps_error_wire_name(int code);

/* The library's version, e.g. "0.1.0". Static storage; any thread. */
const char* claps_version(void);
/* The wall clock in milliseconds since the Unix epoch, as the engine wants
 * it. The engine itself never calls it. Any thread. */
int64_t claps_now_ms(void);

/* ---- stores ---- */

/* A store as an engine sees it: borrowed from a claps_memory_store or a
 * claps_lmdb_store (claps_*_store_as_store), never freed by itself. */
typedef struct claps_store claps_store;

typedef struct claps_memory_store claps_memory_store;

/* Makes an empty memory store: commits always succeed, before the commit
 * returns, and nothing survives the store. Errors: CLAPS_E_BAD_REQUEST (out
 * NULL), CLAPS_E_UNAVAILABLE (out of memory). On error *out is NULL. */
int claps_memory_store_new(claps_memory_store** out);
/* The store for claps_engine_new(); valid until the memory store is freed.
 * NULL for NULL. */
claps_store* claps_memory_store_as_store(claps_memory_store* store);
/* Frees the store. Every engine on it must have been freed first. */
void claps_memory_store_free(claps_memory_store* store);

typedef struct claps_lmdb_store claps_lmdb_store;

/* How an LMDB store completes its commits. */
typedef enum claps_lmdb_completions {
  /* Each commit is written and completed inside the engine's call that
   * commits (advance, flush, close): simple, and the engine's thread waits
   * for every fsync. claps_lmdb_store_completion_fd() is -1. */
  CLAPS_LMDB_INLINE = 0,
  /* Commits run on the store's own writer thread, so the engine's thread
   * never waits for an fsync. When one has ended, the store's completion fd
   * turns readable; the engine's thread then calls
   * claps_lmdb_store_run_completions(), which delivers the results. */
  CLAPS_LMDB_WRITER_THREAD = 1
} claps_lmdb_completions;

typedef struct claps_lmdb_options {
  /* Directory of the environment; created if missing (mode 0700, files
   * 0600). Required: NULL or "" fails with CLAPS_E_BAD_REQUEST. */
  const char* path;
  /* The map's initial size in bytes; it grows by itself up to max_map_size.
   * Default 1 GiB (address space only). */
  size_t map_size;
  /* The most the map may grow to: the bound on the data file. Default 4 GiB.
   * map_size above it fails with CLAPS_E_BAD_REQUEST. */
  size_t max_map_size;
  /* Room kept in reserve below max_map_size for undos and purges; 0 picks
   * 64 MiB (or half of max_map_size below 128 MiB). */
  size_t headroom;
  /* fsync every commit (default true). */
  bool sync;
  /* Expired op records deleted per commit at most (default 2048). */
  size_t max_purge_per_commit;
  /* Default CLAPS_LMDB_INLINE. */
  claps_lmdb_completions completions;
} claps_lmdb_options;

/* Fills `options` with the defaults (path NULL: set it). */
void claps_lmdb_options_init(claps_lmdb_options* options);
/* Opens (creating if needed) the environment in options->path, and starts
 * the writer thread with CLAPS_LMDB_WRITER_THREAD. Opening one directory twice
 * in one process is a programming error (LMDB forbids it). Errors:
 * CLAPS_E_BAD_REQUEST (NULL argument, no path, sizes out of range),
 * CLAPS_E_STORE_IO (cannot create or open the files, or start the thread),
 * CLAPS_E_STORE_INCOMPATIBLE (a format this build does not read),
 * CLAPS_E_UNAVAILABLE (out of memory). On error *out is NULL. */
int claps_lmdb_store_open(const claps_lmdb_options* options, claps_lmdb_store** out);
/* The store for claps_engine_new(); valid until the LMDB store is freed.
 * NULL for NULL. */
claps_store* claps_lmdb_store_as_store(claps_lmdb_store* store);
/* With CLAPS_LMDB_WRITER_THREAD: a file descriptor that is readable while a
 * commit has ended on the writer thread and its completion has not run yet.
 * Poll it for reading (poll, epoll, uv_poll_t, asyncio's add_reader) and
 * call claps_lmdb_store_run_completions() when it is. It may be readable
 * spuriously once after claps_lmdb_store_wait_for_commit(); running the
 * completions then costs nothing. The store owns it: do not read, write or
 * close it; it is closed by claps_lmdb_store_free(). -1 with
 * CLAPS_LMDB_INLINE, or for NULL. */
int claps_lmdb_store_completion_fd(const claps_lmdb_store* store);
/* On the engine's thread: runs the completion of the commit that the writer
 * thread finished, if any (its results and deliveries reach the engine's
 * callbacks now), and makes the completion fd unreadable again until the
 * next commit ends. Returns how many completions ran (0 or 1; always 0 with
 * CLAPS_LMDB_INLINE), or CLAPS_E_BAD_REQUEST for NULL. */
int claps_lmdb_store_run_completions(claps_lmdb_store* store);
/* On the engine's thread: blocks until the commit in flight, if any, has
 * ended, then runs its completion. Returns how many completions ran, or
 * CLAPS_E_BAD_REQUEST for NULL. */
int claps_lmdb_store_wait_for_commit(claps_lmdb_store* store);
/* Stops the writer thread (a commit in flight is finished first, but its
 * completion does not run: close the engine first, see the top of this
 * file), closes the environment and the completion fd. Every engine on the
 * store must have been freed first. */
void claps_lmdb_store_free(claps_lmdb_store* store);

/* ---- the engine ---- */

typedef struct claps_engine claps_engine;

typedef struct claps_engine_options {
  /* Coalescing period, 1..1000 ms (default 25). */
  int64_t tick_ms;
  /* Most claps one user may give one article, >= 1 (default 50). */
  int32_t clap_cap;
  /* How long an op id is remembered for replays (default 15 minutes). */
  int64_t op_id_window_ms;
  /* Most live op ids one user may hold; 0 = unlimited (default 1000). */
  size_t max_op_ids_per_user;
  /* Op ids kept in memory, >= 1 (default 4,000,000). */
  size_t op_id_cache;
  /* Uncommitted claps and undos held while the store fails (default 100,000). */
  size_t max_pending_ops;
  /* Articles one subscriber may watch; 0 = unlimited (default 256). */
  size_t max_subscriptions;
  /* Idle articles kept in memory (default 100,000). */
  size_t article_cache;
  /* Clean (user, article) tallies kept in memory (default 262,144). */
  size_t tally_cache;
  /* Subscribers delivered to per slice; 0 = all at once (default 0). */
  size_t deliveries_per_slice;
  /* Viewer-count-only changes of a room of at least viewer_throttle_min_room
   * readers go out at most once per this interval; 0 = every tick (default). */
  int64_t viewer_update_interval_ms;
  size_t viewer_throttle_min_room; /* default 100 */
  /* Seed of the engine's hash tables: pass a random value when ids come from
   * the network. */
  uint64_t hash_seed;
} claps_engine_options;

/* Fills `options` with the defaults of claps::engine_options. */
void claps_engine_options_init(claps_engine_options* options);

/* One changed article in one delivery. */
typedef struct claps_article_update {
  const char* article;
  size_t article_len;
  int64_t total;    /* committed claps of all users */
  uint32_t viewers; /* subscribers reading it */
} claps_article_update;

/* How far a commit reached before its result was given. */
typedef enum claps_durability {
  CLAPS_DURABILITY_LOCAL = 0,  /* durable on this node (fsync'd LMDB, or memory) */
  CLAPS_DURABILITY_CLUSTER = 1 /* durable in a shared store too */
} claps_durability;

/* The outcome of one clap or undo, delivered after its commit is durable. */
typedef struct claps_op_result {
  uint64_t cookie; /* as passed to claps_engine_clap / _undo */
  const char* user;
  size_t user_len;
  const char* article;
  size_t article_len;
  const char* op_id; /* "" when the op had none */
  size_t op_id_len;
  /* 0 when the op was decided. Otherwise a CLAPS_E_ code and nothing was
   * applied: CLAPS_E_UNAVAILABLE when the engine was freed before the op
   * committed; retry with the same op id. */
  int error;
  int32_t accepted; /* claps counted (fewer than asked at the cap); minus the claps removed by an undo */
  int64_t total;    /* the article's committed total now */
  int32_t mine;     /* the user's committed claps on the article now */
  bool replayed;    /* the op id had been used before: nothing was applied again */
  claps_durability durability;
} claps_op_result;

/* What the engine calls. Each callback gets its own `user` pointer back as
 * its first argument; any callback may be NULL. */
typedef struct claps_engine_callbacks {
  /* Once per tick per subscriber that watches at least one changed article:
   * all of that subscriber's changed articles, `count` of them. */
  void (*deliver)(void* user, uint64_t subscriber, const claps_article_update* updates, size_t count);
  void* deliver_user;
  /* Exactly once per claps_engine_clap() / _undo() that returned 0. */
  void (*result)(void* user, const claps_op_result* result);
  void* result_user;
  /* When the store's health changes: a CLAPS_E_ code on the first failing
   * commit, 0 once a commit succeeds again. */
  void (*store_status)(void* user, int error);
  void* store_status_user;
} claps_engine_callbacks;

/* The state of one article as a subscriber should first see it. */
typedef struct claps_snapshot {
  int64_t total;    /* committed */
  uint32_t viewers; /* readers */
  int32_t mine;     /* the given user's committed claps (0 without a user) */
  /* false when a store shared by several nodes does not know the other
   * nodes' part right now */
  bool global;
} claps_snapshot;

/* Checks option ranges: 0 when usable, else CLAPS_E_BAD_REQUEST with a
 * sentence in `why` (NUL-terminated, cut to why_size bytes; `why` may be
 * NULL) that names the option, its value and the allowed range, e.g.
 * "engine_options::tick is 0 ms; it must be 1..1000 ms". "" when usable. */
int claps_engine_options_validate(const claps_engine_options* options, char* why, size_t why_size);

/* Makes an engine on `store`, at time `now_ms`. `options` NULL means the
 * defaults; `callbacks` NULL means none (the struct is copied). Errors:
 * CLAPS_E_BAD_REQUEST (store or out NULL, or an option out of range:
 * claps_engine_options_validate() says which), CLAPS_E_UNAVAILABLE (out of
 * memory). On error *out is NULL. */
int claps_engine_new(claps_store* store, const claps_engine_options* options,
                     const claps_engine_callbacks* callbacks, int64_t now_ms, claps_engine** out);

/* Adds `article` to what subscriber `subscriber` watches and fills `out` (may
 * be NULL) with its snapshot. `user` (NULL or "" for none) is the reader
 * whose claps out->mine counts; `reading` counts the subscriber among the
 * viewers. Subscribing again changes nothing. Errors: CLAPS_E_BAD_REQUEST
 * (engine or article NULL), CLAPS_E_INVALID_ARTICLE, CLAPS_E_INVALID_USER,
 * CLAPS_E_TOO_MANY_SUBSCRIPTIONS, a store error. */
int claps_engine_subscribe(claps_engine* engine, uint64_t subscriber, const char* user, const char* article,
                           bool reading, claps_snapshot* out);
/* Stops `subscriber` watching `article`; unknown pairs are ignored. Errors:
 * CLAPS_E_BAD_REQUEST (NULL argument). */
int claps_engine_unsubscribe(claps_engine* engine, uint64_t subscriber, const char* article);
/* Stops `subscriber` watching everything. Errors: CLAPS_E_BAD_REQUEST (NULL). */
int claps_engine_unsubscribe_all(claps_engine* engine, uint64_t subscriber);

/* Counts up to `count` claps of `user` on `article`, bounded by the cap. On 0
 * the result arrives later, exactly once, through callbacks.result, after
 * the commit holding it is durable. `op_id` (NULL or "" for none) makes the
 * clap idempotent per (user, article): the same op id again is not applied
 * again, its result repeats the first one's accepted and mine. `cookie` comes
 * back in the result. On an error no result fires. Errors:
 * CLAPS_E_BAD_REQUEST (engine, user or article NULL), CLAPS_E_INVALID_USER,
 * CLAPS_E_INVALID_ARTICLE, CLAPS_E_INVALID_OP_ID, CLAPS_E_INVALID_COUNT,
 * CLAPS_E_UNAVAILABLE (too much uncommitted, or the engine is closing),
 * CLAPS_E_TOO_MANY_OP_IDS, CLAPS_E_STORE_FULL, a store error. */
int claps_engine_clap(claps_engine* engine, const char* user, const char* article, int32_t count,
                      const char* op_id, uint64_t cookie);
/* Removes all of `user`'s claps on `article`. Results and errors as
 * claps_engine_clap() (never CLAPS_E_INVALID_COUNT or CLAPS_E_STORE_FULL);
 * the result's accepted is minus the claps removed. */
int claps_engine_undo(claps_engine* engine, const char* user, const char* article, const char* op_id,
                      uint64_t cookie);
/* The committed state of `article` (loaded from the store if needed) into
 * `out`; `user` NULL or "" leaves out->mine 0. Errors: CLAPS_E_BAD_REQUEST
 * (engine, article or out NULL), CLAPS_E_INVALID_ARTICLE,
 * CLAPS_E_INVALID_USER, a store error. */
int claps_engine_read(claps_engine* engine, const char* user, const char* article, claps_snapshot* out);

/* Runs the tick if now_ms is at or past claps_engine_next_deadline():
 * commits what is pending, then delivers updates and results for what became
 * durable. Calls the callbacks. Errors: CLAPS_E_BAD_REQUEST (NULL). */
int claps_engine_advance(claps_engine* engine, int64_t now_ms);
/* Runs a tick now, whatever the deadline, and delivers to every subscriber
 * waiting. Errors: CLAPS_E_BAD_REQUEST (NULL). */
int claps_engine_flush(claps_engine* engine, int64_t now_ms);
/* When claps_engine_advance() next has work to do (ms since the epoch), or
 * INT64_MAX ("never") when the engine has nothing to do until the next
 * command or store completion; INT64_MAX for NULL. Ask again after every
 * command and after running completions: both may bring it forward. */
int64_t claps_engine_next_deadline(const claps_engine* engine);
/* True while subscribers wait for a delivery slice (deliveries_per_slice). */
bool claps_engine_delivering(const claps_engine* engine);
/* True when nothing is pending and no commit is in flight. */
bool claps_engine_idle(const claps_engine* engine);
/* The error of the last commit as a CLAPS_E_ code; 0 while the store is
 * healthy (and for NULL). */
int claps_engine_store_error(const claps_engine* engine);

/* Counters, monotonic, and gauges (the last six). */
typedef struct claps_engine_stats {
  uint64_t ticks, commits, commit_failures;
  uint64_t claps_requested, claps_accepted, claps_over_cap, undos, replays;
  uint64_t refused_unavailable, refused_op_ids, refused_store_full;
  uint64_t updates, deliveries, viewer_changes_held, ops_purged;
  size_t pending_ops, subscribers, subscriptions, articles_cached, deliveries_queued, tallies_cached;
} claps_engine_stats;
/* Fills `out`. Errors: CLAPS_E_BAD_REQUEST (NULL). */
int claps_engine_stats_get(const claps_engine* engine, claps_engine_stats* out);

/* Shuts the engine down (see the top of this file): stops taking ops and
 * commits everything pending now (callbacks run inside). From then on clap,
 * undo and subscribe return CLAPS_E_UNAVAILABLE; unsubscribe, the queries,
 * advance and flush still work (advance retries a commit that failed).
 * Calling it again commits again. Errors: CLAPS_E_BAD_REQUEST (NULL). */
int claps_engine_close(claps_engine* engine, int64_t now_ms);
/* True once claps_engine_close() was called and every clap and undo that
 * returned 0 has had its result: nothing pending, no commit in flight. A
 * store that keeps failing keeps it false. false for NULL. */
bool claps_engine_closed(const claps_engine* engine);

/* Frees the engine. Ops still without a result get it now, with error
 * CLAPS_E_UNAVAILABLE (the result callback runs inside this call); close the
 * engine first to have them written instead. */
void claps_engine_free(claps_engine* engine);

/* ---- the libuv driver ---- */

/* libuv's loop; include <uv.h> to make one. claps.h does not need it. */
struct uv_loop_s;

typedef struct claps_uv_driver claps_uv_driver;

/* Starts ticking `engine` on `loop` (calls claps_engine_advance() at each
 * deadline with the wall clock; it hears of new work by itself, so there is
 * no need to poke it after a clap). Both must outlive the driver. Errors:
 * CLAPS_E_BAD_REQUEST (NULL argument), CLAPS_E_UNAVAILABLE (out of memory). */
int claps_uv_driver_new(struct uv_loop_s* loop, claps_engine* engine, claps_uv_driver** out);
/* Runs a tick now (claps_engine_flush) and re-arms the timer. */
int claps_uv_driver_flush(claps_uv_driver* driver);
/* Stops ticking; the engine keeps its state. */
int claps_uv_driver_stop(claps_uv_driver* driver);
/* Like uv_unref() on the driver's handles: an armed timer no longer keeps
 * uv_run() from returning, so the loop ends by itself once only the driver is
 * left. claps_uv_driver_ref() undoes it. The driver arms its timer only while
 * the engine has work, so an idle engine costs the loop no wake-ups either
 * way. Errors: CLAPS_E_BAD_REQUEST (NULL). */
int claps_uv_driver_unref(claps_uv_driver* driver);
int claps_uv_driver_ref(claps_uv_driver* driver);
/* The shutdown on a loop: claps_engine_close(), then ticks and waits (the
 * loop runs the store's completions: poll the LMDB store's completion fd with
 * a referenced uv_poll_t that calls claps_lmdb_store_run_completions()) until
 * claps_engine_closed(), then calls `done(user)` once, from a loop callback,
 * never inside this call. `done` (may be NULL) may free the driver, then the
 * engine, then the store. Ticking stops after it. While it waits, the driver
 * keeps the loop running even when unref'd. Errors: CLAPS_E_BAD_REQUEST
 * (driver NULL). */
int claps_uv_driver_close(claps_uv_driver* driver, void (*done)(void* user), void* user);
/* Stops the driver and closes its handles: the loop frees them on its next
 * iteration, so run the loop once more before uv_loop_close(). */
void claps_uv_driver_free(claps_uv_driver* driver);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* CLAPS_CLAPS_H */
