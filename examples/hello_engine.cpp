// hello_engine: the smallest complete use of the engine.
// Introduces: engine_callbacks, subscribe, clap, and driving time by hand.
#include <claps/claps.hpp>

#include <cstdio>
#include <string>

int main() {
  claps::memory_store store;
  claps::engine_callbacks cb;
  cb.deliver = [](claps::subscriber_id viewer, std::span<const claps::article_update* const> updates) {
    for (const claps::article_update* u : updates)
      std::printf("viewer %llu sees %.*s: %lld claps, %u reading\n", static_cast<unsigned long long>(viewer),
                  static_cast<int>(u->article.size()), u->article.data(), static_cast<long long>(u->total),
                  u->viewers);
  };
  cb.result = [](const claps::op_result& r) {
    std::printf("ack %llu: accepted %d, total %lld, mine %d\n", static_cast<unsigned long long>(r.cookie),
                r.accepted, static_cast<long long>(r.total), r.mine);
  };

  // The engine never reads a clock: we tell it the time.
  claps::timestamp now{claps::millis(0)};
  claps::engine engine(store, {}, cb, now);

  claps::snapshot snap;
  engine.subscribe(1, "alice", "hello-world", true, snap);
  engine.subscribe(2, "bob", "hello-world", true, snap);
  engine.subscribe(3, "carol", "another-article", true, snap);  // never hears of hello-world

  claps::clap_request clap;
  clap.user = "alice";
  clap.article = "hello-world";
  clap.count = 3;
  clap.op_id = "op-1";
  clap.cookie = 42;
  if (auto ec = engine.clap(clap)) {
    std::fprintf(stderr, "clap refused: %s\n", ec.message().c_str());
    return 1;
  }
  now = engine.next_deadline();
  engine.advance(now);  // one tick: commit, then one update per changed article
  return 0;
}
