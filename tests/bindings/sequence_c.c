/* The C runner of tests/bindings/SEQUENCE.md: the scripted sequence through
 * the C API (<claps/claps.h>) on an LMDB store that commits on its writer
 * thread. It drives the ticks itself with the real clock and poll(2)s the
 * store's completion fd, as an application hosting the engine on its own
 * loop would. Prints one JSON line per step on stdout; compare.mjs checks
 * them against the other runners.
 * Usage: sequence_c DIR   (a fresh directory for the LMDB store) */
#define _POSIX_C_SOURCE 200809L
#include <claps/claps.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_TOTALS 32

/* One engine on one store, with what its callbacks saw. */
typedef struct node {
  claps_lmdb_store* store;
  claps_engine* engine;
  bool has_result;
  claps_op_result result; /* its strings are copied below */
  char result_user[130], result_op_id[70];
  int64_t totals[MAX_TOTALS]; /* delivered to subscriber 1, for a1 */
  int total_count;
} node;

static void fail(const char* what, int code) {
  fprintf(stderr, "sequence_c: %s: %s\n", what, code ? claps_strerror(code) : "failed");
  exit(1);
}

static void on_result(void* user, const claps_op_result* r) {
  node* n = (node*)user;
  n->result = *r;
  snprintf(n->result_user, sizeof n->result_user, "%s", r->user);
  snprintf(n->result_op_id, sizeof n->result_op_id, "%s", r->op_id);
  n->has_result = true;
}

static void on_deliver(void* user, uint64_t subscriber, const claps_article_update* updates, size_t count) {
  node* n = (node*)user;
  if (subscriber != 1) return;
  for (size_t i = 0; i < count; ++i)
    if (strcmp(updates[i].article, "a1") == 0 && n->total_count < MAX_TOTALS)
      n->totals[n->total_count++] = updates[i].total;
}

typedef bool (*condition)(const node* n);

/* The host loop: waits on the completion fd until the engine's next
 * deadline, runs the completions when it is readable and the tick when it is
 * due, until `done` or 5 s have passed. */
static void run_until(node* n, condition done, const char* what) {
  const int64_t give_up = claps_now_ms() + 5000;
  struct pollfd p = {claps_lmdb_store_completion_fd(n->store), POLLIN, 0};
  while (!done(n)) {
    int64_t now = claps_now_ms();
    if (now >= give_up) {
      fprintf(stderr, "sequence_c: no %s within 5 s\n", what);
      exit(1);
    }
    const int64_t deadline = claps_engine_next_deadline(n->engine);
    int64_t wait = (deadline < give_up ? deadline : give_up) - now;
    if (wait < 0) wait = 0;
    if (poll(&p, 1, (int)wait) > 0 && (p.revents & POLLIN)) {
      int rc = claps_lmdb_store_run_completions(n->store);
      if (rc < 0) fail("run_completions", rc);
    }
    now = claps_now_ms();
    if (now >= claps_engine_next_deadline(n->engine)) {
      int rc = claps_engine_advance(n->engine, now);
      if (rc) fail("advance", rc);
    }
  }
}

static bool has_result(const node* n) { return n->has_result; }
static bool has_delivery(const node* n) { return n->total_count > 0; }
static bool is_closed(const node* n) { return claps_engine_closed(n->engine); }

static void open_node(node* n, const char* dir) {
  memset(n, 0, sizeof *n);
  claps_lmdb_options lo;
  claps_lmdb_options_init(&lo);
  lo.path = dir;
  lo.completions = CLAPS_LMDB_WRITER_THREAD;
  int rc = claps_lmdb_store_open(&lo, &n->store);
  if (rc) fail("open", rc);
  claps_engine_options eo;
  claps_engine_options_init(&eo);
  eo.tick_ms = 25;
  eo.clap_cap = 50;
  claps_engine_callbacks cb;
  memset(&cb, 0, sizeof cb);
  cb.result = on_result;
  cb.result_user = n;
  cb.deliver = on_deliver;
  cb.deliver_user = n;
  rc = claps_engine_new(claps_lmdb_store_as_store(n->store), &eo, &cb, claps_now_ms(), &n->engine);
  if (rc) fail("engine", rc);
}

/* The documented shutdown: close, drive until closed, free the engine, then
 * the store. */
static void close_node(node* n) {
  int rc = claps_engine_close(n->engine, claps_now_ms());
  if (rc) fail("close", rc);
  run_until(n, is_closed, "closed engine");
  claps_engine_free(n->engine);
  claps_lmdb_store_free(n->store);
  n->engine = NULL;
  n->store = NULL;
}

/* One clap (undo when `undo`) as its line: refused at once, or its result. */
static void op(node* n, bool undo, const char* user, const char* article, int count, const char* op_id,
               uint64_t cookie) {
  n->has_result = false;
  int rc = undo ? claps_engine_undo(n->engine, user, article, op_id, cookie)
                : claps_engine_clap(n->engine, user, article, count, op_id, cookie);
  const char* error = "";
  int32_t accepted = 0, mine = 0;
  int64_t total = 0;
  bool replayed = false;
  if (rc) {
    error = claps_error_name(rc);
  } else {
    run_until(n, has_result, "result");
    const claps_op_result* r = &n->result;
    if (r->cookie != cookie || strcmp(n->result_user, user) != 0 || strcmp(n->result_op_id, op_id) != 0) {
      fprintf(stderr, "sequence_c: the result of %s reports another op\n", op_id);
      exit(1);
    }
    if (r->error) {
      error = claps_error_name(r->error);
    } else {
      accepted = r->accepted;
      total = r->total;
      mine = r->mine;
      replayed = r->replayed;
    }
  }
  printf(
      "{\"step\":\"%s\",\"user\":\"%s\",\"article\":\"%s\",\"count\":%d,\"op\":\"%s\",\"error\":\"%s\","
      "\"accepted\":%d,\"total\":%lld,\"mine\":%d,\"replayed\":%s}\n",
      undo ? "undo" : "clap", user, article, undo ? 0 : count, op_id, error, (int)accepted, (long long)total,
      (int)mine, replayed ? "true" : "false");
}

static void read_view(node* n, const char* user, const char* article) {
  claps_snapshot snap;
  int rc = claps_engine_read(n->engine, user, article, &snap);
  if (rc) fail("read", rc);
  printf("{\"step\":\"read\",\"user\":\"%s\",\"article\":\"%s\",\"total\":%lld,\"mine\":%d}\n", user, article,
         (long long)snap.total, (int)snap.mine);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: sequence_c DIR\n");
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  static node n;
  open_node(&n, argv[1]);
  printf("{\"step\":\"open\"}\n");

  claps_snapshot snap;
  int rc = claps_engine_subscribe(n.engine, 1, "alice", "a1", true, &snap);
  if (rc) fail("subscribe", rc);
  printf(
      "{\"step\":\"subscribe\",\"subscriber\":1,\"article\":\"a1\",\"total\":%lld,\"viewers\":%u,\"mine\":%d}\n",
      (long long)snap.total, (unsigned)snap.viewers, (int)snap.mine);
  /* The subscription's own update (the viewer count) goes out first. */
  run_until(&n, has_delivery, "delivery of the subscription");

  op(&n, false, "alice", "a1", 30, "op-1", 1);
  op(&n, false, "alice", "a1", 30, "op-2", 2);
  op(&n, false, "bob", "a1", 5, "op-3", 3);
  op(&n, false, "alice", "a1", 30, "op-1", 4);
  op(&n, false, "alice", "a1", 0, "op-5", 5);
  op(&n, false, "alice", "bad article!", 1, "op-6", 6);
  op(&n, true, "alice", "a1", 0, "op-4", 7);

  printf("{\"step\":\"deliveries\",\"subscriber\":1,\"totals\":[");
  for (int i = 0; i < n.total_count; ++i) printf("%s%lld", i ? "," : "", (long long)n.totals[i]);
  printf("]}\n");

  close_node(&n);
  printf("{\"step\":\"close\"}\n");

  open_node(&n, argv[1]);
  read_view(&n, "alice", "a1");
  read_view(&n, "bob", "a1");
  op(&n, false, "bob", "a1", 5, "op-3", 8);
  close_node(&n);
  printf("{\"step\":\"close\"}\n");
  return 0;
}
