// timed_store.hpp - a store decorator that measures commit latency.
//
// The engine reads no clocks, so the server wraps the real store and times
// each commit from the call to its completion with a monotonic clock.
#pragma once

#include "metrics.hpp"

#include <claps/store.hpp>

namespace claps::server {

class timed_store final : public store {
public:
  timed_store(store& inner, latency_histogram& commit_latency)
      : inner_(inner), commit_latency_(commit_latency) {}

  std::error_code read_total(std::string_view article, std::int64_t& total) override {
    return inner_.read_total(article, total);
  }
  std::error_code read_tally(std::string_view user, std::string_view article,
                             std::int32_t& claps) override {
    return inner_.read_tally(user, article, claps);
  }
  std::error_code read_op(std::string_view user, std::string_view article, std::string_view op_id,
                          stored_op& out, bool& found) override {
    return inner_.read_op(user, article, op_id, out, found);
  }
  void commit(const commit_batch& batch, commit_handler done) override;
  // A cluster store's view of other nodes' claps must reach the engine's cap.
  std::int32_t remote_tally(std::string_view user, std::string_view article) override {
    return inner_.remote_tally(user, article);
  }

private:
  store& inner_;
  latency_histogram& commit_latency_;
};

} // namespace claps::server
