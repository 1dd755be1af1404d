/* Links the C API (<claps/claps.h>) as an outside C project would, and checks
 * a clap round-trips through LMDB. Exit 0 on success. */
#include <claps/claps.h>

#include <stdio.h>

static void on_result(void* user, const claps_op_result* r) { *(int64_t*)user = r->error ? -1 : r->total; }

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  claps_lmdb_options options;
  claps_lmdb_options_init(&options);
  options.path = argv[1];
  claps_lmdb_store* store = NULL;
  int rc = claps_lmdb_store_open(&options, &store);
  if (rc) {
    fprintf(stderr, "open: %s\n", claps_strerror(rc));
    return 1;
  }
  int64_t total = -1;
  claps_engine_callbacks cb = {0};
  cb.result = on_result;
  cb.result_user = &total;
  claps_engine* engine = NULL;
  rc = claps_engine_new(claps_lmdb_store_as_store(store), NULL, &cb, claps_now_ms(), &engine);
  if (!rc) rc = claps_engine_clap(engine, "consumer-c", "packaging", 3, NULL, 0);
  if (!rc) rc = claps_engine_flush(engine, claps_now_ms());
  claps_engine_free(engine);
  claps_lmdb_store_free(store);
  printf("claps %s from C: total %lld\n", claps_version(), (long long)total);
  return rc == 0 && total == 3 ? 0 : 1;
}
