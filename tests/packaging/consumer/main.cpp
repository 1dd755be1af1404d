// Links libclaps as an outside project would, and checks a clap round-trips
// through LMDB. Exit 0 on success.
#include <claps/claps.hpp>
#include <claps/lmdb.hpp>
#include <claps/uv.hpp>

// Built with CLAPS_CONSUMER_CPLUSPLUS=N: the compiler must run in that
// standard or later (no flag from the package may lower it).
#ifdef CLAPS_CONSUMER_CPLUSPLUS
static_assert(__cplusplus >= CLAPS_CONSUMER_CPLUSPLUS, "a package flag lowered the C++ standard");
#endif

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv) {
  if (argc < 2) return 2;
  claps::lmdb_options options;
  options.path = argv[1];
  std::error_code ec;
  auto store = claps::lmdb_store::open(options, ec);
  if (!store) {
    std::fprintf(stderr, "open: %s\n", ec.message().c_str());
    return 1;
  }
  long long total = -1;
  claps::engine_callbacks cb;
  cb.result = [&](const claps::op_result& r) { total = r.total; };
  claps::engine engine(*store, {}, cb, claps::uv_driver::now());
  claps::clap_request r;
  r.user = "consumer";
  r.article = "packaging";
  r.count = 3;
  if (engine.clap(r)) return 1;
  engine.flush(claps::uv_driver::now());
  std::printf("claps %s: total %lld\n", claps::version(), total);
  return total == 3 ? 0 : 1;
}
