#include "timed_store.hpp"

#include <chrono>

namespace claps::server {

void timed_store::commit(const commit_batch& batch, commit_handler done) {
  const auto started = std::chrono::steady_clock::now();
  inner_.commit(batch, [this, started, done = std::move(done)](std::error_code ec, durability level) {
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - started;
    commit_latency_.observe(took.count());
    done(ec, level);
  });
}

}  // namespace claps::server
