// timed_store.hpp - a store decorator that measures commit latency.
//
// The engine reads no clocks, so the server wraps the real store and times
// each commit from the call to its completion with a monotonic clock. It
// also hands the engine's room changes to an observer (the admin page's
// article_watch): the engine emits no update for a room that just emptied.
#pragma once

#include "metrics.hpp"

#include <claps/store.hpp>

#include <functional>

namespace claps::server {

class timed_store final : public store {
public:
  timed_store(store& inner, commit_latency_histogram& commit_latency)
      : inner_(inner), commit_latency_(commit_latency) {}

  std::error_code read_total(std::string_view article, std::int64_t& total) override {
    return inner_.read_total(article, total);
  }
  std::error_code read_tally(std::string_view user, std::string_view article, std::int32_t& claps) override {
    return inner_.read_tally(user, article, claps);
  }
  std::error_code read_op(std::string_view user, std::string_view article, std::string_view op_id,
                          stored_op& out, bool& found) override {
    return inner_.read_op(user, article, op_id, out, found);
  }
  void commit(const commit_batch& batch, commit_handler done) override;
  // Everything else passes through: a cluster store's arbitration, rooms
  // and view of the other nodes must reach the engine unchanged.
  std::error_code reserve_versions(std::uint64_t count, std::uint64_t& first) override {
    return inner_.reserve_versions(count, first);
  }
  std::error_code read_journal(journal_table table, std::string_view after, std::size_t max,
                               std::vector<journal_row>& out, std::string& next) override {
    return inner_.read_journal(table, after, max, out, next);
  }
  std::int32_t remote_tally(std::string_view user, std::string_view article) override {
    return inner_.remote_tally(user, article);
  }
  bool remote_part(std::string_view article, std::int64_t& total, std::uint32_t& viewers) override {
    return inner_.remote_part(article, total, viewers);
  }
  bool arbitrates() const override { return inner_.arbitrates(); }
  std::error_code arbitrate(std::span<const op_intent> intents, arbitrate_handler done) override {
    return inner_.arbitrate(intents, std::move(done));
  }
  void room_changed(std::string_view article, bool watched, std::uint32_t viewers) override {
    if (on_room_changed) on_room_changed(article, watched, viewers);
    inner_.room_changed(article, watched, viewers);
  }
  /// Sees every room change (store::room_changed) before the inner store. Optional.
  std::function<void(std::string_view article, bool watched, std::uint32_t local_viewers)> on_room_changed;
  void attach(store_listener* listener) override { inner_.attach(listener); }
  store_space space() const override { return inner_.space(); }
  bool op_records_expire_by(timestamp& out) override { return inner_.op_records_expire_by(out); }

private:
  store& inner_;
  commit_latency_histogram& commit_latency_;
};

}  // namespace claps::server
