// lmdb_claps: claps flowing through an engine into a real LMDB file, and back
// after a reopen. Introduces: lmdb_store, failing opens, persistence.
// Usage: lmdb_claps [DIR]   (default ./data-example)
#include <claps/claps.hpp>
#include <claps/lmdb.hpp>

#include <chrono>
#include <cstdio>
#include <string>

namespace {

claps::timestamp wall_clock() {
  return std::chrono::time_point_cast<claps::millis>(std::chrono::system_clock::now());
}

}  // namespace

int main(int argc, char** argv) {
  claps::lmdb_options options;
  options.path = argc > 1 ? argv[1] : "data-example";

  for (int round = 1; round <= 2; ++round) {
    std::error_code ec;
    auto store = claps::lmdb_store::open(options, ec);
    if (!store) {
      std::fprintf(stderr, "cannot open %s: %s\n", options.path.c_str(), ec.message().c_str());
      return 1;
    }
    claps::engine_callbacks cb;
    cb.deliver = [](claps::subscriber_id, std::span<const claps::article_update* const> us) {
      for (auto* u : us)
        std::printf("  update %.*s total=%lld viewers=%u\n", static_cast<int>(u->article.size()),
                    u->article.data(), static_cast<long long>(u->total), u->viewers);
    };
    cb.result = [](const claps::op_result& r) {
      std::printf("  ack: accepted %d, mine %d, total %lld%s\n", r.accepted, r.mine,
                  static_cast<long long>(r.total), r.replayed ? " (replayed op id)" : "");
    };
    claps::engine engine(*store, {}, cb, wall_clock());

    claps::snapshot snap;
    engine.subscribe(1, "reader-1", "demo-article", true, snap);
    std::printf("round %d: opened %s, demo-article has %lld claps (reader-1 gave %d)\n", round,
                options.path.c_str(), static_cast<long long>(snap.total), snap.mine);

    claps::clap_request clap;
    clap.user = "reader-1";
    clap.article = "demo-article";
    clap.count = 5;
    clap.op_id = "demo-op-1";  // the same op id both rounds: counted once
    if (auto err = engine.clap(clap)) std::printf("  clap refused: %s\n", err.message().c_str());
    std::string other = "reader-" + std::to_string(round + 1);
    clap.user = other;
    clap.op_id = {};
    clap.count = 2;
    engine.clap(clap);
    engine.flush(wall_clock());  // commit (fsync) and fan out now
  }
  return 0;
}
