/* The C API (<claps/claps.h>) tested from C, compiled as C: every handle,
 * every error code, bad input, the LMDB store's completion fd, the uv driver
 * and the shutdown path. A tiny harness: each CHECK that fails prints its
 * line, and the program exits 1 if any did. */
#define _XOPEN_SOURCE 700
#include <claps/claps.h>

#include <uv.h>

#include <ftw.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int failures = 0;
static int checks = 0;

#define CHECK(cond)                                                            \
  do {                                                                         \
    ++checks;                                                                  \
    if (!(cond)) {                                                             \
      ++failures;                                                              \
      fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__, #cond); \
    }                                                                          \
  } while (0)
#define CHECK_EQ_INT(a, b)                                                                           \
  do {                                                                                               \
    long long a_ = (long long)(a), b_ = (long long)(b);                                              \
    ++checks;                                                                                        \
    if (a_ != b_) {                                                                                  \
      ++failures;                                                                                    \
      fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, #a, #b, a_, b_); \
    }                                                                                                \
  } while (0)
#define CHECK_EQ_STR(a, b)                                                                      \
  do {                                                                                          \
    const char *a_ = (a), *b_ = (b);                                                            \
    ++checks;                                                                                   \
    if (!a_ || !b_ || strcmp(a_, b_) != 0) {                                                    \
      ++failures;                                                                               \
      fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__, __LINE__, #a, #b, \
              a_ ? a_ : "(null)", b_ ? b_ : "(null)");                                          \
    }                                                                                           \
  } while (0)

/* ---- a recorder of callbacks ---- */

#define MAX_RECORDED 64

typedef struct recorded_result {
  uint64_t cookie;
  char user[130], article[130], op_id[70];
  size_t user_len, article_len, op_id_len;
  int error;
  int32_t accepted, mine;
  int64_t total;
  bool replayed;
  claps_durability durability;
} recorded_result;

typedef struct recorder {
  recorded_result results[MAX_RECORDED];
  int result_count;
  uint64_t delivered_to[MAX_RECORDED];
  int64_t delivered_total[MAX_RECORDED];
  uint32_t delivered_viewers[MAX_RECORDED];
  char delivered_article[MAX_RECORDED][130];
  int delivery_count;
  int store_status[MAX_RECORDED];
  int store_status_count;
} recorder;

static void on_deliver(void* user, uint64_t subscriber, const claps_article_update* updates, size_t count) {
  recorder* r = (recorder*)user;
  for (size_t i = 0; i < count && r->delivery_count < MAX_RECORDED; ++i) {
    int n = r->delivery_count++;
    r->delivered_to[n] = subscriber;
    r->delivered_total[n] = updates[i].total;
    r->delivered_viewers[n] = updates[i].viewers;
    /* NUL-terminated, and the length agrees. */
    if (strlen(updates[i].article) != updates[i].article_len) ++failures;
    snprintf(r->delivered_article[n], sizeof r->delivered_article[n], "%s", updates[i].article);
  }
}

static void on_result(void* user, const claps_op_result* res) {
  recorder* r = (recorder*)user;
  if (r->result_count >= MAX_RECORDED) return;
  recorded_result* x = &r->results[r->result_count++];
  x->cookie = res->cookie;
  snprintf(x->user, sizeof x->user, "%s", res->user);
  snprintf(x->article, sizeof x->article, "%s", res->article);
  snprintf(x->op_id, sizeof x->op_id, "%s", res->op_id);
  x->user_len = res->user_len;
  x->article_len = res->article_len;
  x->op_id_len = res->op_id_len;
  x->error = res->error;
  x->accepted = res->accepted;
  x->total = res->total;
  x->mine = res->mine;
  x->replayed = res->replayed;
  x->durability = res->durability;
}

static void on_store_status(void* user, int error) {
  recorder* r = (recorder*)user;
  if (r->store_status_count < MAX_RECORDED) r->store_status[r->store_status_count++] = error;
}

static claps_engine_callbacks callbacks_for(recorder* r) {
  claps_engine_callbacks cb;
  memset(&cb, 0, sizeof cb);
  cb.deliver = on_deliver;
  cb.deliver_user = r;
  cb.result = on_result;
  cb.result_user = r;
  cb.store_status = on_store_status;
  cb.store_status_user = r;
  return cb;
}

/* ---- temporary directories ---- */

static int remove_entry(const char* path, const struct stat* st, int flag, struct FTW* ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void make_temp_dir(char* out, size_t size) {
  snprintf(out, size, "/tmp/claps-c-api-test-XXXXXX");
  if (!mkdtemp(out)) {
    perror("mkdtemp");
    exit(2);
  }
}

static void remove_dir(const char* path) { nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS); }

/* ---- errors ---- */

static void test_errors(void) {
  /* Every code has its own name, a message and a wire name. */
  static const char* const expected[CLAPS_ERROR_COUNT + 1] = {
      "",
      "bad_request",
      "invalid_article",
      "invalid_user",
      "invalid_op_id",
      "invalid_count",
      "too_many_subscriptions",
      "rate_limited",
      "unauthorized",
      "forbidden",
      "message_too_large",
      "too_many_op_ids",
      "unavailable",
      "store_full",
      "store_io",
      "store_corrupted",
      "store_incompatible",
      "store_timeout",
      "store_disconnected",
  };
  for (int v = 1; v <= CLAPS_ERROR_COUNT; ++v) {
    CHECK_EQ_STR(claps_error_name(-v), expected[v]);
    const char* message = claps_strerror(-v);
    CHECK(message && *message);
    CHECK(strcmp(message, "unknown claps error") != 0);
    CHECK(strcmp(message, "success") != 0);
    const char* wire = claps_error_wire_name(-v);
    CHECK(wire && *wire);
    for (int w = 1; w < v; ++w) CHECK(strcmp(claps_strerror(-w), message) != 0);
  }
  CHECK_EQ_INT(CLAPS_E_STORE_DISCONNECTED, -CLAPS_ERROR_COUNT);
  CHECK(strstr(claps_strerror(CLAPS_E_INVALID_COUNT), "clap count") != NULL);
  CHECK(strstr(claps_strerror(CLAPS_E_INVALID_ARTICLE), "article") != NULL);
  /* Wire names as the protocol sends them. */
  CHECK_EQ_STR(claps_error_wire_name(CLAPS_E_INVALID_ARTICLE), "invalid_article");
  CHECK_EQ_STR(claps_error_wire_name(CLAPS_E_INVALID_COUNT), "bad_request");
  CHECK_EQ_STR(claps_error_wire_name(CLAPS_E_STORE_IO), "unavailable");
  CHECK_EQ_STR(claps_error_wire_name(CLAPS_E_TOO_MANY_OP_IDS), "rate_limited");
  /* Success and codes that are not claps codes. */
  CHECK_EQ_STR(claps_strerror(CLAPS_OK), "success");
  CHECK_EQ_STR(claps_error_name(CLAPS_OK), "");
  CHECK_EQ_STR(claps_error_wire_name(CLAPS_OK), "");
  int unknown[] = {1, 42, -CLAPS_ERROR_COUNT - 1, -1000, INT32_MIN};
  for (size_t i = 0; i < sizeof unknown / sizeof unknown[0]; ++i) {
    CHECK_EQ_STR(claps_strerror(unknown[i]), "unknown claps error");
    CHECK_EQ_STR(claps_error_name(unknown[i]), "unknown");
  }
  CHECK(claps_version() && strchr(claps_version(), '.'));
  CHECK(claps_now_ms() > 1600000000000LL); /* after 2020 */
}

/* ---- NULL and bad input: clear codes, no crash ---- */

static void test_null_arguments(void) {
  claps_memory_store* ms = (claps_memory_store*)1;
  CHECK_EQ_INT(claps_memory_store_new(NULL), CLAPS_E_BAD_REQUEST);
  CHECK(claps_memory_store_as_store(NULL) == NULL);
  claps_memory_store_free(NULL);

  claps_lmdb_store* ls = (claps_lmdb_store*)1;
  claps_lmdb_options lo;
  claps_lmdb_options_init(&lo);
  claps_lmdb_options_init(NULL);
  CHECK(lo.path == NULL);
  CHECK(lo.sync);
  CHECK_EQ_INT(lo.completions, CLAPS_LMDB_INLINE);
  CHECK_EQ_INT(claps_lmdb_store_open(&lo, &ls), CLAPS_E_BAD_REQUEST); /* no path */
  CHECK(ls == NULL);
  lo.path = "";
  ls = (claps_lmdb_store*)1;
  CHECK_EQ_INT(claps_lmdb_store_open(&lo, &ls), CLAPS_E_BAD_REQUEST);
  CHECK(ls == NULL);
  CHECK_EQ_INT(claps_lmdb_store_open(NULL, &ls), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_lmdb_store_open(&lo, NULL), CLAPS_E_BAD_REQUEST);
  CHECK(claps_lmdb_store_as_store(NULL) == NULL);
  CHECK_EQ_INT(claps_lmdb_store_completion_fd(NULL), -1);
  CHECK_EQ_INT(claps_lmdb_store_run_completions(NULL), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_lmdb_store_wait_for_commit(NULL), CLAPS_E_BAD_REQUEST);
  claps_lmdb_store_free(NULL);

  claps_engine* e = (claps_engine*)1;
  CHECK_EQ_INT(claps_engine_new(NULL, NULL, NULL, 0, &e), CLAPS_E_BAD_REQUEST);
  CHECK(e == NULL);
  CHECK_EQ_INT(claps_memory_store_new(&ms), CLAPS_OK);
  CHECK_EQ_INT(claps_engine_new(claps_memory_store_as_store(ms), NULL, NULL, 0, NULL), CLAPS_E_BAD_REQUEST);
  claps_snapshot snap;
  CHECK_EQ_INT(claps_engine_subscribe(NULL, 1, "u", "a", true, &snap), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_unsubscribe(NULL, 1, "a"), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_unsubscribe_all(NULL, 1), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_clap(NULL, "u", "a", 1, NULL, 0), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_undo(NULL, "u", "a", NULL, 0), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_read(NULL, "u", "a", &snap), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_advance(NULL, 0), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_flush(NULL, 0), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_next_deadline(NULL), INT64_MAX);
  CHECK(!claps_engine_delivering(NULL));
  CHECK(!claps_engine_idle(NULL));
  CHECK_EQ_INT(claps_engine_store_error(NULL), CLAPS_OK);
  claps_engine_stats stats;
  CHECK_EQ_INT(claps_engine_stats_get(NULL, &stats), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_close(NULL, 0), CLAPS_E_BAD_REQUEST);
  CHECK(!claps_engine_closed(NULL));
  CHECK_EQ_INT(claps_engine_options_validate(NULL, NULL, 0), CLAPS_E_BAD_REQUEST);
  claps_engine_free(NULL);

  claps_uv_driver* d = (claps_uv_driver*)1;
  CHECK_EQ_INT(claps_uv_driver_new(NULL, NULL, &d), CLAPS_E_BAD_REQUEST);
  CHECK(d == NULL);
  CHECK_EQ_INT(claps_uv_driver_new(NULL, NULL, NULL), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_uv_driver_flush(NULL), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_uv_driver_stop(NULL), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_uv_driver_close(NULL, NULL, NULL), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_uv_driver_ref(NULL), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_uv_driver_unref(NULL), CLAPS_E_BAD_REQUEST);
  claps_uv_driver_free(NULL);

  /* With a real engine: NULL strings and NULL out-pointers where required. */
  CHECK_EQ_INT(claps_engine_new(claps_memory_store_as_store(ms), NULL, NULL, 0, &e), CLAPS_OK);
  CHECK(e != NULL);
  CHECK_EQ_INT(claps_engine_subscribe(e, 1, "u", NULL, true, &snap), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_subscribe(e, 1, NULL, "a", true, NULL), CLAPS_OK); /* both optional */
  CHECK_EQ_INT(claps_engine_unsubscribe(e, 1, NULL), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_clap(e, NULL, "a", 1, NULL, 0), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_clap(e, "u", NULL, 1, NULL, 0), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_undo(e, NULL, "a", NULL, 0), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_undo(e, "u", NULL, NULL, 0), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_read(e, "u", NULL, &snap), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_read(e, "u", "a", NULL), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_stats_get(e, NULL), CLAPS_E_BAD_REQUEST);
  CHECK(claps_engine_idle(e));
  claps_engine_free(e);
  claps_memory_store_free(ms);
}

static void test_bad_options(void) {
  claps_memory_store* ms = NULL;
  CHECK_EQ_INT(claps_memory_store_new(&ms), CLAPS_OK);
  claps_store* st = claps_memory_store_as_store(ms);
  claps_engine_options o;
  claps_engine_options_init(&o);
  claps_engine_options_init(NULL);
  CHECK_EQ_INT(o.tick_ms, 25);
  CHECK_EQ_INT(o.clap_cap, 50);
  CHECK_EQ_INT(o.op_id_window_ms, 15 * 60 * 1000);
  CHECK_EQ_INT(o.max_subscriptions, 256);

  char why[200];
  CHECK_EQ_INT(claps_engine_options_validate(&o, why, sizeof why), CLAPS_OK);
  CHECK_EQ_STR(why, "");
  claps_engine* e = (claps_engine*)1;
  o.tick_ms = 0;
  CHECK_EQ_INT(claps_engine_new(st, &o, NULL, 0, &e), CLAPS_E_BAD_REQUEST);
  CHECK(e == NULL);
  /* The reason names the option; a short buffer gets a cut, terminated copy. */
  CHECK_EQ_INT(claps_engine_options_validate(&o, why, sizeof why), CLAPS_E_BAD_REQUEST);
  CHECK(strstr(why, "tick") != NULL);
  char short_why[6];
  memset(short_why, 'x', sizeof short_why);
  CHECK_EQ_INT(claps_engine_options_validate(&o, short_why, sizeof short_why), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(strlen(short_why), sizeof short_why - 1);
  CHECK_EQ_INT(claps_engine_options_validate(&o, NULL, 0), CLAPS_E_BAD_REQUEST);
  o.tick_ms = 1001;
  CHECK_EQ_INT(claps_engine_new(st, &o, NULL, 0, &e), CLAPS_E_BAD_REQUEST);
  claps_engine_options_init(&o);
  o.clap_cap = 0;
  CHECK_EQ_INT(claps_engine_new(st, &o, NULL, 0, &e), CLAPS_E_BAD_REQUEST);
  CHECK_EQ_INT(claps_engine_options_validate(&o, why, sizeof why), CLAPS_E_BAD_REQUEST);
  CHECK(strstr(why, "clap_cap") != NULL);
  claps_engine_options_init(&o);
  o.op_id_cache = 0;
  CHECK_EQ_INT(claps_engine_new(st, &o, NULL, 0, &e), CLAPS_E_BAD_REQUEST);
  claps_engine_options_init(&o);
  CHECK_EQ_INT(claps_engine_new(st, &o, NULL, 0, &e), CLAPS_OK);
  claps_engine_free(e);
  claps_memory_store_free(ms);

  /* LMDB: sizes out of range, and a path that cannot be a directory. */
  claps_lmdb_options lo;
  claps_lmdb_options_init(&lo);
  char dir[64];
  make_temp_dir(dir, sizeof dir);
  claps_lmdb_store* ls = (claps_lmdb_store*)1;
  lo.path = dir;
  lo.map_size = lo.max_map_size * 2;
  CHECK_EQ_INT(claps_lmdb_store_open(&lo, &ls), CLAPS_E_BAD_REQUEST);
  CHECK(ls == NULL);
  claps_lmdb_options_init(&lo);
  lo.path = dir;
  lo.completions = (claps_lmdb_completions)7;
  CHECK_EQ_INT(claps_lmdb_store_open(&lo, &ls), CLAPS_E_BAD_REQUEST);
  claps_lmdb_options_init(&lo);
  lo.path = "/dev/null/claps";
  CHECK_EQ_INT(claps_lmdb_store_open(&lo, &ls), CLAPS_E_STORE_IO);
  CHECK(ls == NULL);
  remove_dir(dir);
}

/* ---- the engine on a memory store ---- */

/* Runs the next tick at its deadline, if the engine has one. */
static void tick(claps_engine* e, int64_t* now) {
  int64_t deadline = claps_engine_next_deadline(e);
  if (deadline == INT64_MAX) return; /* nothing to do */
  *now = deadline;
  CHECK_EQ_INT(claps_engine_advance(e, *now), CLAPS_OK);
}

static void test_engine_memory(void) {
  recorder* rec = calloc(1, sizeof *rec);
  claps_memory_store* ms = NULL;
  CHECK_EQ_INT(claps_memory_store_new(&ms), CLAPS_OK);
  claps_engine_options o;
  claps_engine_options_init(&o);
  o.clap_cap = 10;
  o.max_subscriptions = 2;
  claps_engine_callbacks cb = callbacks_for(rec);
  int64_t now = 1000000;
  claps_engine* e = NULL;
  CHECK_EQ_INT(claps_engine_new(claps_memory_store_as_store(ms), &o, &cb, now, &e), CLAPS_OK);

  claps_snapshot snap;
  memset(&snap, 0xff, sizeof snap);
  CHECK_EQ_INT(claps_engine_subscribe(e, 7, "alice", "art-1", true, &snap), CLAPS_OK);
  CHECK_EQ_INT(snap.total, 0);
  CHECK_EQ_INT(snap.viewers, 1);
  CHECK_EQ_INT(snap.mine, 0);
  CHECK(snap.global);

  /* Invalid input: each a clear code, and no result fires for it. */
  CHECK_EQ_INT(claps_engine_subscribe(e, 7, "alice", "bad article!", true, &snap), CLAPS_E_INVALID_ARTICLE);
  CHECK_EQ_INT(claps_engine_subscribe(e, 7, "bad user!", "art-1", true, &snap), CLAPS_E_INVALID_USER);
  CHECK_EQ_INT(claps_engine_subscribe(e, 7, NULL, "art-2", false, &snap), CLAPS_OK);
  CHECK_EQ_INT(claps_engine_subscribe(e, 7, NULL, "art-3", false, &snap), CLAPS_E_TOO_MANY_SUBSCRIPTIONS);
  CHECK_EQ_INT(claps_engine_clap(e, "alice", "art-1", 0, NULL, 1), CLAPS_E_INVALID_COUNT);
  CHECK_EQ_INT(claps_engine_clap(e, "alice", "art-1", 11, NULL, 1), CLAPS_E_INVALID_COUNT);
  CHECK_EQ_INT(claps_engine_clap(e, "alice", "", 1, NULL, 1), CLAPS_E_INVALID_ARTICLE);
  CHECK_EQ_INT(claps_engine_clap(e, "", "art-1", 1, NULL, 1), CLAPS_E_INVALID_USER);
  CHECK_EQ_INT(claps_engine_clap(e, "alice", "art-1", 1, "bad op id!", 1), CLAPS_E_INVALID_OP_ID);
  CHECK_EQ_INT(claps_engine_undo(e, "alice", "art-1", "bad op id!", 1), CLAPS_E_INVALID_OP_ID);
  char long_id[200];
  memset(long_id, 'x', sizeof long_id - 1);
  long_id[sizeof long_id - 1] = '\0';
  CHECK_EQ_INT(claps_engine_clap(e, long_id, "art-1", 1, NULL, 1), CLAPS_E_INVALID_USER);
  CHECK_EQ_INT(claps_engine_read(e, NULL, long_id, &snap), CLAPS_E_INVALID_ARTICLE);
  tick(e, &now);
  CHECK_EQ_INT(rec->result_count, 0);
  CHECK(claps_engine_idle(e));
  /* That tick sent the new viewer. */
  CHECK_EQ_INT(rec->delivery_count, 1);
  CHECK_EQ_INT(rec->delivered_total[0], 0);
  CHECK_EQ_INT(rec->delivered_viewers[0], 1);
  rec->delivery_count = 0;

  /* Claps, the cap, a replay and an undo, with their results. */
  CHECK_EQ_INT(claps_engine_clap(e, "alice", "art-1", 6, "op-1", 101), CLAPS_OK);
  CHECK(!claps_engine_idle(e));
  tick(e, &now);
  CHECK_EQ_INT(claps_engine_clap(e, "alice", "art-1", 6, "op-2", 102), CLAPS_OK);
  tick(e, &now);
  CHECK_EQ_INT(claps_engine_clap(e, "alice", "art-1", 6, "op-1", 103), CLAPS_OK);
  tick(e, &now);
  tick(e, &now);
  CHECK_EQ_INT(claps_engine_undo(e, "alice", "art-1", NULL, 104), CLAPS_OK);
  tick(e, &now);
  CHECK_EQ_INT(rec->result_count, 4);
  if (rec->result_count == 4) {
    recorded_result* r = rec->results;
    CHECK_EQ_INT(r[0].cookie, 101);
    CHECK_EQ_INT(r[0].error, CLAPS_OK);
    CHECK_EQ_INT(r[0].accepted, 6);
    CHECK_EQ_INT(r[0].total, 6);
    CHECK_EQ_INT(r[0].mine, 6);
    CHECK(!r[0].replayed);
    CHECK_EQ_STR(r[0].article, "art-1");
    CHECK_EQ_STR(r[0].user, "alice");
    CHECK_EQ_INT(r[0].user_len, 5);
    CHECK_EQ_STR(r[0].op_id, "op-1");
    CHECK_EQ_INT(r[0].op_id_len, 4);
    CHECK_EQ_INT(r[0].article_len, 5);
    CHECK_EQ_INT(r[0].durability, CLAPS_DURABILITY_LOCAL);
    CHECK_EQ_INT(r[1].cookie, 102);
    CHECK_EQ_INT(r[1].accepted, 4); /* the cap */
    CHECK_EQ_INT(r[1].total, 10);
    CHECK_EQ_INT(r[1].mine, 10);
    CHECK_EQ_INT(r[2].cookie, 103);
    CHECK(r[2].replayed);
    CHECK_EQ_INT(r[2].accepted, 6);
    CHECK_EQ_INT(r[2].total, 10);
    CHECK_EQ_INT(r[3].cookie, 104);
    CHECK_EQ_STR(r[3].op_id, ""); /* the undo had none */
    CHECK_EQ_INT(r[3].op_id_len, 0);
    CHECK_EQ_INT(r[3].accepted, -10);
    CHECK_EQ_INT(r[3].total, 0);
    CHECK_EQ_INT(r[3].mine, 0);
  }
  /* Deliveries to subscriber 7: 6, 10, then 0 after the undo (the replay changed nothing). */
  CHECK_EQ_INT(rec->delivery_count, 3);
  if (rec->delivery_count == 3) {
    CHECK_EQ_INT(rec->delivered_to[0], 7);
    CHECK_EQ_STR(rec->delivered_article[0], "art-1");
    CHECK_EQ_INT(rec->delivered_total[0], 6);
    CHECK_EQ_INT(rec->delivered_viewers[0], 1);
    CHECK_EQ_INT(rec->delivered_total[1], 10);
    CHECK_EQ_INT(rec->delivered_total[2], 0);
  }

  CHECK_EQ_INT(claps_engine_clap(e, "bob", "art-1", 3, NULL, 105), CLAPS_OK);
  CHECK_EQ_INT(claps_engine_flush(e, now), CLAPS_OK);
  CHECK_EQ_INT(rec->result_count, 5);
  CHECK_EQ_INT(claps_engine_read(e, "bob", "art-1", &snap), CLAPS_OK);
  CHECK_EQ_INT(snap.total, 3);
  CHECK_EQ_INT(snap.mine, 3);
  CHECK_EQ_INT(claps_engine_read(e, NULL, "art-1", &snap), CLAPS_OK);
  CHECK_EQ_INT(snap.mine, 0);

  claps_engine_stats stats;
  CHECK_EQ_INT(claps_engine_stats_get(e, &stats), CLAPS_OK);
  CHECK_EQ_INT(stats.claps_accepted, 13);
  CHECK_EQ_INT(stats.claps_over_cap, 2);
  CHECK_EQ_INT(stats.replays, 1);
  CHECK_EQ_INT(stats.undos, 1);
  CHECK_EQ_INT(stats.subscribers, 1);
  CHECK_EQ_INT(stats.subscriptions, 2);
  CHECK_EQ_INT(claps_engine_store_error(e), CLAPS_OK);
  CHECK_EQ_INT(rec->store_status_count, 0);

  /* Unsubscribed: no more deliveries. */
  CHECK_EQ_INT(claps_engine_unsubscribe(e, 7, "art-1"), CLAPS_OK);
  CHECK_EQ_INT(claps_engine_unsubscribe(e, 99, "never-watched"), CLAPS_OK);
  CHECK_EQ_INT(claps_engine_unsubscribe_all(e, 7), CLAPS_OK);
  CHECK_EQ_INT(claps_engine_stats_get(e, &stats), CLAPS_OK);
  CHECK_EQ_INT(stats.subscriptions, 0);
  int before = rec->delivery_count;
  CHECK_EQ_INT(claps_engine_clap(e, "carol", "art-1", 1, NULL, 106), CLAPS_OK);
  tick(e, &now);
  CHECK_EQ_INT(rec->delivery_count, before);
  CHECK_EQ_INT(rec->result_count, 6);

  claps_engine_free(e);
  claps_memory_store_free(ms);
  free(rec);
}

/* ---- the LMDB store ---- */

static bool fd_readable(int fd, int timeout_ms) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, timeout_ms) == 1 && (p.revents & POLLIN);
}

static void test_lmdb_inline(void) {
  char dir[64];
  make_temp_dir(dir, sizeof dir);
  recorder* rec = calloc(1, sizeof *rec);
  claps_engine_callbacks cb = callbacks_for(rec);
  claps_lmdb_options lo;
  claps_lmdb_options_init(&lo);
  lo.path = dir;
  claps_lmdb_store* ls = NULL;
  CHECK_EQ_INT(claps_lmdb_store_open(&lo, &ls), CLAPS_OK);
  CHECK_EQ_INT(claps_lmdb_store_completion_fd(ls), -1);
  CHECK_EQ_INT(claps_lmdb_store_run_completions(ls), 0);
  CHECK_EQ_INT(claps_lmdb_store_wait_for_commit(ls), 0);
  int64_t now = claps_now_ms();
  claps_engine* e = NULL;
  CHECK_EQ_INT(claps_engine_new(claps_lmdb_store_as_store(ls), NULL, &cb, now, &e), CLAPS_OK);
  CHECK_EQ_INT(claps_engine_clap(e, "alice", "lmdb-art", 7, "op-1", 1), CLAPS_OK);
  tick(e, &now); /* inline: the result fires inside advance */
  CHECK_EQ_INT(rec->result_count, 1);
  CHECK_EQ_INT(rec->results[0].accepted, 7);
  claps_engine_free(e);
  claps_lmdb_store_free(ls);

  /* Reopened: the claps and the op id are there. */
  ls = NULL;
  CHECK_EQ_INT(claps_lmdb_store_open(&lo, &ls), CLAPS_OK);
  CHECK_EQ_INT(claps_engine_new(claps_lmdb_store_as_store(ls), NULL, &cb, now, &e), CLAPS_OK);
  claps_snapshot snap;
  CHECK_EQ_INT(claps_engine_read(e, "alice", "lmdb-art", &snap), CLAPS_OK);
  CHECK_EQ_INT(snap.total, 7);
  CHECK_EQ_INT(snap.mine, 7);
  CHECK_EQ_INT(claps_engine_clap(e, "alice", "lmdb-art", 7, "op-1", 2), CLAPS_OK);
  tick(e, &now);
  tick(e, &now);
  CHECK_EQ_INT(rec->result_count, 2);
  CHECK(rec->results[1].replayed);
  CHECK_EQ_INT(rec->results[1].total, 7);
  claps_engine_free(e);
  claps_lmdb_store_free(ls);
  free(rec);
  remove_dir(dir);
}

static void test_lmdb_writer_thread(void) {
  char dir[64];
  make_temp_dir(dir, sizeof dir);
  recorder* rec = calloc(1, sizeof *rec);
  claps_engine_callbacks cb = callbacks_for(rec);
  claps_lmdb_options lo;
  claps_lmdb_options_init(&lo);
  lo.path = dir;
  lo.completions = CLAPS_LMDB_WRITER_THREAD;
  claps_lmdb_store* ls = NULL;
  CHECK_EQ_INT(claps_lmdb_store_open(&lo, &ls), CLAPS_OK);
  int fd = claps_lmdb_store_completion_fd(ls);
  CHECK(fd >= 0);
  CHECK(!fd_readable(fd, 0));
  int64_t now = claps_now_ms();
  claps_engine* e = NULL;
  CHECK_EQ_INT(claps_engine_new(claps_lmdb_store_as_store(ls), NULL, &cb, now, &e), CLAPS_OK);
  claps_snapshot snap;
  CHECK_EQ_INT(claps_engine_subscribe(e, 1, "alice", "w-art", true, &snap), CLAPS_OK);
  tick(e, &now); /* the new viewer goes out with no commit */
  CHECK_EQ_INT(rec->delivery_count, 1);
  CHECK(!fd_readable(fd, 0));

  /* Three ops in three commits: each completes only through the fd. */
  for (int i = 0; i < 3; ++i) {
    char op[16];
    snprintf(op, sizeof op, "op-%d", i);
    CHECK_EQ_INT(claps_engine_clap(e, "alice", "w-art", 2, op, (uint64_t)i), CLAPS_OK);
    tick(e, &now);
    CHECK_EQ_INT(rec->result_count, i); /* on the writer thread, not yet here */
    CHECK(fd_readable(fd, 5000));
    CHECK_EQ_INT(claps_lmdb_store_run_completions(ls), 1);
    CHECK(!fd_readable(fd, 0)); /* unreadable again once run */
    CHECK_EQ_INT(claps_lmdb_store_run_completions(ls), 0);
    CHECK_EQ_INT(rec->result_count, i + 1);
    CHECK_EQ_INT(rec->results[i].cookie, (uint64_t)i);
    CHECK_EQ_INT(rec->results[i].total, 2 * (i + 1));
  }
  /* The deliveries came with the completions. */
  CHECK_EQ_INT(rec->delivery_count, 4);
  CHECK_EQ_INT(rec->delivered_total[3], 6);

  /* wait_for_commit: blocks for the commit in flight and completes it. */
  CHECK_EQ_INT(claps_engine_clap(e, "bob", "w-art", 1, NULL, 9), CLAPS_OK);
  tick(e, &now);
  CHECK_EQ_INT(claps_lmdb_store_wait_for_commit(ls), 1);
  CHECK_EQ_INT(rec->result_count, 4);
  CHECK_EQ_INT(rec->results[3].total, 7);
  CHECK_EQ_INT(claps_lmdb_store_run_completions(ls), 0); /* a spurious wake costs nothing */
  CHECK(!fd_readable(fd, 0));
  CHECK(claps_engine_idle(e));

  claps_engine_free(e);
  claps_lmdb_store_free(ls);
  free(rec);
  remove_dir(dir);
}

/* ---- shutdown ---- */

static void test_close_and_free(void) {
  char dir[64];
  make_temp_dir(dir, sizeof dir);
  recorder* rec = calloc(1, sizeof *rec);
  claps_engine_callbacks cb = callbacks_for(rec);
  claps_lmdb_options lo;
  claps_lmdb_options_init(&lo);
  lo.path = dir;
  lo.completions = CLAPS_LMDB_WRITER_THREAD;
  claps_lmdb_store* ls = NULL;
  CHECK_EQ_INT(claps_lmdb_store_open(&lo, &ls), CLAPS_OK);
  int fd = claps_lmdb_store_completion_fd(ls);
  int64_t now = claps_now_ms();
  claps_engine* e = NULL;
  CHECK_EQ_INT(claps_engine_new(claps_lmdb_store_as_store(ls), NULL, &cb, now, &e), CLAPS_OK);

  /* The documented path: close, run completions until closed, free. Every op
   * that returned 0 has its result, and it was written. */
  CHECK_EQ_INT(claps_engine_clap(e, "alice", "close-art", 5, "op-a", 1), CLAPS_OK);
  CHECK_EQ_INT(claps_engine_clap(e, "bob", "close-art", 3, NULL, 2), CLAPS_OK);
  CHECK(!claps_engine_closed(e));
  CHECK_EQ_INT(claps_engine_close(e, now), CLAPS_OK);
  CHECK_EQ_INT(claps_engine_clap(e, "carol", "close-art", 1, NULL, 3), CLAPS_E_UNAVAILABLE);
  CHECK_EQ_INT(claps_engine_subscribe(e, 1, NULL, "close-art", true, NULL), CLAPS_E_UNAVAILABLE);
  int64_t give_up = claps_now_ms() + 5000;
  while (!claps_engine_closed(e) && claps_now_ms() < give_up) {
    if (fd_readable(fd, 100)) CHECK(claps_lmdb_store_run_completions(ls) >= 0);
    int64_t deadline = claps_engine_next_deadline(e);
    if (deadline != INT64_MAX && deadline <= claps_now_ms()) claps_engine_advance(e, claps_now_ms());
  }
  CHECK(claps_engine_closed(e));
  CHECK_EQ_INT(rec->result_count, 2);
  CHECK_EQ_INT(rec->results[0].error, CLAPS_OK);
  CHECK_EQ_INT(rec->results[1].error, CLAPS_OK);
  CHECK_EQ_INT(rec->results[1].total, 8);
  claps_engine_free(e);
  CHECK_EQ_INT(rec->result_count, 2); /* nothing left to settle */

  /* Freed without close, with ops pending and one in flight: each still gets
   * exactly one result, CLAPS_E_UNAVAILABLE, inside claps_engine_free(). */
  rec->result_count = 0;
  CHECK_EQ_INT(claps_engine_new(claps_lmdb_store_as_store(ls), NULL, &cb, now, &e), CLAPS_OK);
  CHECK_EQ_INT(claps_engine_clap(e, "dave", "close-art", 2, "op-d", 10), CLAPS_OK);
  CHECK_EQ_INT(claps_engine_flush(e, now), CLAPS_OK); /* in flight on the writer */
  CHECK_EQ_INT(claps_engine_clap(e, "erin", "close-art", 2, "op-e", 11), CLAPS_OK);
  CHECK_EQ_INT(rec->result_count, 0);
  claps_engine_free(e);
  CHECK_EQ_INT(rec->result_count, 2);
  CHECK_EQ_INT(rec->results[0].cookie, 10);
  CHECK_EQ_INT(rec->results[0].error, CLAPS_E_UNAVAILABLE);
  CHECK_EQ_STR(rec->results[0].user, "dave");
  CHECK_EQ_STR(rec->results[0].op_id, "op-d");
  CHECK_EQ_INT(rec->results[1].cookie, 11);
  CHECK_EQ_INT(rec->results[1].error, CLAPS_E_UNAVAILABLE);
  /* The completion of the commit in flight finds no engine: nothing happens. */
  CHECK(claps_lmdb_store_wait_for_commit(ls) >= 0);
  CHECK_EQ_INT(rec->result_count, 2);
  claps_lmdb_store_free(ls);
  free(rec);
  remove_dir(dir);
}

/* ---- the uv driver ---- */

typedef struct uv_test {
  recorder* rec;
  uv_timer_t deadline;
  bool timed_out;
  bool closed;
} uv_test;

static void on_driver_closed(void* user) { ((uv_test*)user)->closed = true; }

static void on_deadline(uv_timer_t* t) {
  uv_test* s = (uv_test*)t->data;
  s->timed_out = true;
  uv_stop(t->loop);
}

static void test_uv_driver(void) {
  recorder* rec = calloc(1, sizeof *rec);
  claps_engine_callbacks cb = callbacks_for(rec);
  claps_memory_store* ms = NULL;
  CHECK_EQ_INT(claps_memory_store_new(&ms), CLAPS_OK);
  claps_engine* e = NULL;
  CHECK_EQ_INT(claps_engine_new(claps_memory_store_as_store(ms), NULL, &cb, claps_now_ms(), &e), CLAPS_OK);
  uv_loop_t loop;
  CHECK_EQ_INT(uv_loop_init(&loop), 0);
  claps_uv_driver* d = NULL;
  CHECK_EQ_INT(claps_uv_driver_new(&loop, e, &d), CLAPS_OK);
  CHECK(d != NULL);

  uv_test s;
  memset(&s, 0, sizeof s);
  s.rec = rec;
  uv_timer_init(&loop, &s.deadline);
  s.deadline.data = &s;
  uv_timer_start(&s.deadline, on_deadline, 5000, 0);
  uv_unref((uv_handle_t*)&s.deadline);

  /* The driver ticks by itself: run the loop until the result is in. */
  CHECK_EQ_INT(claps_engine_clap(e, "alice", "uv-art", 4, "op-1", 77), CLAPS_OK);
  while (rec->result_count == 0 && !s.timed_out) uv_run(&loop, UV_RUN_ONCE);
  CHECK(!s.timed_out);
  CHECK_EQ_INT(rec->result_count, 1);
  CHECK_EQ_INT(rec->results[0].cookie, 77);
  CHECK_EQ_INT(rec->results[0].total, 4);

  /* flush runs the tick at once. */
  CHECK_EQ_INT(claps_engine_clap(e, "bob", "uv-art", 1, NULL, 78), CLAPS_OK);
  CHECK_EQ_INT(claps_uv_driver_flush(d), CLAPS_OK);
  CHECK_EQ_INT(rec->result_count, 2);
  CHECK_EQ_INT(claps_uv_driver_stop(d), CLAPS_OK);
  claps_uv_driver_free(d);

  /* unref: an armed timer no longer keeps uv_run() going, so the loop
   * returns with the op still pending; ref() makes it wait for the tick. */
  CHECK_EQ_INT(claps_uv_driver_new(&loop, e, &d), CLAPS_OK);
  CHECK_EQ_INT(claps_engine_clap(e, "dan", "uv-art", 1, NULL, 80), CLAPS_OK);
  CHECK_EQ_INT(claps_uv_driver_unref(d), CLAPS_OK);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(rec->result_count, 2);
  CHECK_EQ_INT(claps_uv_driver_ref(d), CLAPS_OK);
  while (rec->result_count == 2 && !s.timed_out) uv_run(&loop, UV_RUN_ONCE);
  CHECK_EQ_INT(rec->result_count, 3);
  /* Idle now: even ref'd, the driver arms nothing and uv_run() returns. */
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK(!s.timed_out);

  /* close: the op pending gets its result, then done runs from the loop. */
  CHECK_EQ_INT(claps_engine_clap(e, "carol", "uv-art", 2, NULL, 79), CLAPS_OK);
  s.closed = false;
  CHECK_EQ_INT(claps_uv_driver_close(d, on_driver_closed, &s), CLAPS_OK);
  CHECK(!s.closed); /* never inside the call */
  while (!s.closed && !s.timed_out) uv_run(&loop, UV_RUN_ONCE);
  CHECK(s.closed);
  CHECK(claps_engine_closed(e));
  CHECK_EQ_INT(rec->result_count, 4);
  CHECK_EQ_INT(rec->results[3].cookie, 79);
  CHECK_EQ_INT(rec->results[3].total, 8);

  claps_uv_driver_free(d);
  uv_close((uv_handle_t*)&s.deadline, NULL);
  uv_run(&loop, UV_RUN_DEFAULT); /* the handles close */
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  claps_engine_free(e);
  claps_memory_store_free(ms);
  free(rec);
}

/* The LMDB writer thread on a libuv loop, as docs/bindings/c.md says: a
 * uv_poll_t on the completion fd runs the completions, the driver ticks, and
 * claps_uv_driver_close() waits for every result before it calls back. */
typedef struct uv_lmdb_test {
  claps_lmdb_store* store;
  uv_poll_t poll;
  int completions;
  bool closed;
} uv_lmdb_test;

static void on_completion_fd(uv_poll_t* p, int status, int events) {
  uv_lmdb_test* t = (uv_lmdb_test*)p->data;
  if (status == 0 && (events & UV_READABLE)) {
    int n = claps_lmdb_store_run_completions(t->store);
    if (n > 0) t->completions += n;
  }
}

static void on_lmdb_driver_closed(void* user) { ((uv_lmdb_test*)user)->closed = true; }

static void test_uv_lmdb_writer_thread(void) {
  char dir[64];
  make_temp_dir(dir, sizeof dir);
  recorder* rec = calloc(1, sizeof *rec);
  claps_engine_callbacks cb = callbacks_for(rec);
  claps_lmdb_options lo;
  claps_lmdb_options_init(&lo);
  lo.path = dir;
  lo.completions = CLAPS_LMDB_WRITER_THREAD;
  uv_lmdb_test t;
  memset(&t, 0, sizeof t);
  CHECK_EQ_INT(claps_lmdb_store_open(&lo, &t.store), CLAPS_OK);
  claps_engine* e = NULL;
  CHECK_EQ_INT(claps_engine_new(claps_lmdb_store_as_store(t.store), NULL, &cb, claps_now_ms(), &e), CLAPS_OK);
  uv_loop_t loop;
  CHECK_EQ_INT(uv_loop_init(&loop), 0);
  CHECK_EQ_INT(uv_poll_init(&loop, &t.poll, claps_lmdb_store_completion_fd(t.store)), 0);
  t.poll.data = &t;
  CHECK_EQ_INT(uv_poll_start(&t.poll, UV_READABLE, on_completion_fd), 0);
  /* Left referenced: while a commit is in flight the engine has no deadline,
   * and only this handle keeps the loop waiting for the writer. */
  claps_uv_driver* d = NULL;
  CHECK_EQ_INT(claps_uv_driver_new(&loop, e, &d), CLAPS_OK);

  uv_test s;
  memset(&s, 0, sizeof s);
  uv_timer_init(&loop, &s.deadline);
  s.deadline.data = &s;
  uv_timer_start(&s.deadline, on_deadline, 5000, 0);
  uv_unref((uv_handle_t*)&s.deadline);

  claps_snapshot snap;
  CHECK_EQ_INT(claps_engine_subscribe(e, 1, "alice", "uvw-art", true, &snap), CLAPS_OK);
  CHECK_EQ_INT(claps_engine_clap(e, "alice", "uvw-art", 4, "op-1", 1), CLAPS_OK);
  while (rec->result_count < 1 && !s.timed_out) uv_run(&loop, UV_RUN_ONCE);
  CHECK_EQ_INT(rec->result_count, 1);
  CHECK(t.completions >= 1);
  CHECK_EQ_INT(rec->results[0].total, 4);
  /* The update of that commit reached subscriber 1 too. */
  while ((rec->delivery_count == 0 || rec->delivered_total[rec->delivery_count - 1] != 4) && !s.timed_out)
    uv_run(&loop, UV_RUN_ONCE);
  CHECK(rec->delivery_count > 0 && rec->delivered_total[rec->delivery_count - 1] == 4);

  /* Shutdown: two ops pending; close calls back only once both are in. */
  CHECK_EQ_INT(claps_engine_clap(e, "bob", "uvw-art", 2, "op-2", 2), CLAPS_OK);
  CHECK_EQ_INT(claps_engine_undo(e, "alice", "uvw-art", "op-3", 3), CLAPS_OK);
  CHECK_EQ_INT(claps_uv_driver_close(d, on_lmdb_driver_closed, &t), CLAPS_OK);
  while (!t.closed && !s.timed_out) uv_run(&loop, UV_RUN_ONCE);
  CHECK(t.closed);
  CHECK(!s.timed_out);
  CHECK_EQ_INT(rec->result_count, 3);
  CHECK_EQ_INT(rec->results[2].cookie, 3);
  CHECK_EQ_INT(rec->results[2].total, 2);
  CHECK_EQ_INT(rec->results[2].error, CLAPS_OK);

  claps_uv_driver_free(d);
  claps_engine_free(e);
  uv_close((uv_handle_t*)&t.poll, NULL);
  uv_close((uv_handle_t*)&s.deadline, NULL);
  uv_run(&loop, UV_RUN_DEFAULT);
  CHECK_EQ_INT(uv_loop_close(&loop), 0);
  claps_lmdb_store_free(t.store);
  free(rec);
  remove_dir(dir);
}

int main(void) {
  test_errors();
  test_null_arguments();
  test_bad_options();
  test_engine_memory();
  test_lmdb_inline();
  test_lmdb_writer_thread();
  test_close_and_free();
  test_uv_driver();
  test_uv_lmdb_writer_thread();
  if (failures) {
    fprintf(stderr, "c_api_test: %d of %d checks failed\n", failures, checks);
    return 1;
  }
  printf("c_api_test: all %d checks passed\n", checks);
  return 0;
}
