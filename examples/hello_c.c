/* hello_c: the engine from C (<claps/claps.h>, target claps::c), on LMDB.
 * Introduces: the C API's handles, callbacks with a user pointer, error
 * codes, driving ticks by hand, and the shutdown path.
 * Usage: hello_c [DIR]   (default ./data-hello-c) */
#include <claps/claps.h>

#include <stdio.h>

static void on_deliver(void* user, uint64_t subscriber, const claps_article_update* updates, size_t count) {
  (void)user;
  for (size_t i = 0; i < count; ++i)
    printf("subscriber %llu sees %s: %lld claps, %u reading\n", (unsigned long long)subscriber,
           updates[i].article, (long long)updates[i].total, updates[i].viewers);
}

static void on_result(void* user, const claps_op_result* r) {
  int* pending = (int*)user;
  --*pending;
  if (r->error) {
    printf("op %s failed: %s\n", r->op_id, claps_strerror(r->error));
    return;
  }
  printf("ack %s: %s accepted %d on %s, total %lld, mine %d%s\n", r->op_id_len ? r->op_id : "(no op id)",
         r->user, r->accepted, r->article, (long long)r->total, r->mine, r->replayed ? " (replayed)" : "");
}

int main(int argc, char** argv) {
  claps_lmdb_options store_options;
  claps_lmdb_options_init(&store_options);
  store_options.path = argc > 1 ? argv[1] : "data-hello-c";
  claps_lmdb_store* store = NULL;
  int rc = claps_lmdb_store_open(&store_options, &store);
  if (rc) {
    fprintf(stderr, "cannot open %s: %s\n", store_options.path, claps_strerror(rc));
    return 1;
  }

  int pending = 0; /* results still to come: the user pointer of on_result */
  claps_engine_callbacks callbacks = {0};
  callbacks.deliver = on_deliver;
  callbacks.result = on_result;
  callbacks.result_user = &pending;
  int64_t now = claps_now_ms();
  claps_engine* engine = NULL;
  rc = claps_engine_new(claps_lmdb_store_as_store(store), NULL, &callbacks, now, &engine);
  if (rc) {
    fprintf(stderr, "cannot make the engine: %s\n", claps_strerror(rc));
    claps_lmdb_store_free(store);
    return 1;
  }

  claps_snapshot snap;
  claps_engine_subscribe(engine, 1, "alice", "hello-c", true, &snap);
  printf("hello-c starts at %lld claps, alice has %d\n", (long long)snap.total, snap.mine);

  if (claps_engine_clap(engine, "alice", "hello-c", 3, "hello-op-1", 0) == 0) ++pending;
  if (claps_engine_clap(engine, "bob", "hello-c", 2, NULL, 0) == 0) ++pending;
  /* A bad count is refused at once, with a code and a message; no result comes. */
  rc = claps_engine_clap(engine, "alice", "hello-c", 0, NULL, 0);
  printf("a clap of 0: %s (%s)\n", claps_error_name(rc), claps_strerror(rc));

  /* Drive the ticks: the engine never reads a clock, we tell it the time
   * (here the deadline itself, so no waiting). */
  while (pending > 0) {
    now = claps_engine_next_deadline(engine);
    claps_engine_advance(engine, now);
  }

  /* Shut down: close commits what is pending (every op gets its result; with
   * the store inline, before close returns), then free the engine, then the
   * store. */
  claps_engine_close(engine, claps_now_ms());
  int ok = claps_engine_closed(engine);
  if (!ok) fprintf(stderr, "the store failed: ops not yet written get CLAPS_E_UNAVAILABLE\n");
  claps_engine_free(engine);
  claps_lmdb_store_free(store);
  return ok ? 0 : 1;
}
