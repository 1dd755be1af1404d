// Test helpers: a store wrapper that injects faults or defers completion
// around a real store, and a recorder of engine callbacks (nghttp2-style
// accumulators rather than mocks).
#pragma once

#include <claps/claps.hpp>

#include <doctest/doctest.h>

#include <stdlib.h>

#include <filesystem>
#include <map>
#include <string>
#include <system_error>
#include <vector>

namespace claps_test {

using namespace std::chrono_literals;

inline claps::timestamp t0() { return claps::timestamp(claps::millis(1'700'000'000'000)); }

// Forwards to a real store; can fail the next N commits, or hold commits
// until release() is called (a networked store's asynchronous completion).
class faulty_store final : public claps::store {
public:
  explicit faulty_store(claps::store& inner) : inner_(inner) {}

  int fail_next = 0;
  std::error_code fail_with = claps::make_error_code(claps::errc::store_full);
  bool defer = false;
  int commits_attempted = 0;
  int commits_succeeded = 0;
  int empty_commits = 0;                  // batches with no rows at all
  std::vector<std::size_t> batch_totals;  // totals per attempted batch
  // What space() reports: the test sets it, as a store short of space would.
  claps::store_space space_now;
  claps::store_space space() const override { return space_now; }

  int total_reads = 0;
  std::error_code read_total(std::string_view a, std::int64_t& t) override {
    ++total_reads;
    return inner_.read_total(a, t);
  }
  std::error_code read_tally(std::string_view u, std::string_view a, std::int32_t& c) override {
    return inner_.read_tally(u, a, c);
  }
  int op_reads = 0;
  std::error_code read_op(std::string_view u, std::string_view a, std::string_view o, claps::stored_op& out,
                          bool& found) override {
    ++op_reads;
    return inner_.read_op(u, a, o, out, found);
  }
  bool op_records_expire_by(claps::timestamp& out) override { return inner_.op_records_expire_by(out); }
  std::error_code reserve_versions(std::uint64_t count, std::uint64_t& first) override {
    return inner_.reserve_versions(count, first);
  }
  std::error_code read_journal(claps::journal_table table, std::string_view after, std::size_t max,
                               std::vector<claps::journal_row>& out, std::string& next) override {
    return inner_.read_journal(table, after, max, out, next);
  }
  void commit(const claps::commit_batch& batch, claps::commit_handler done) override {
    ++commits_attempted;
    if (batch.totals.empty() && batch.tallies.empty() && batch.ops.empty()) ++empty_commits;
    batch_totals.push_back(batch.totals.size());
    if (fail_next > 0) {
      --fail_next;
      done(fail_with, claps::durability::local);
      return;
    }
    if (defer) {
      // Apply and acknowledge at release(), reading the batch's views only
      // then, as a networked store does when its reply arrives.
      held_ = [this, batch, done] { inner_.commit(batch, done); };
      return;
    }
    inner_.commit(batch, [this, done](std::error_code ec, claps::durability d) {
      if (!ec) ++commits_succeeded;
      done(ec, d);
    });
  }
  // Claps other nodes report for "user/article", as a cluster store would.
  std::map<std::string, std::int32_t> remote;
  std::int32_t remote_tally(std::string_view user, std::string_view article) override {
    auto it = remote.find(std::string(user) + "/" + std::string(article));
    return it == remote.end() ? 0 : it->second;
  }

  bool holding() const { return static_cast<bool>(held_); }
  void release() {
    auto h = std::move(held_);
    held_ = nullptr;
    ++commits_succeeded;
    h();
  }

private:
  claps::store& inner_;
  std::function<void()> held_;
};

// A store shared by several nodes, as the engine sees one: forwards reads and
// commits to a real store, records every arbitrate() call and lets the test
// answer it (or refuses it, as an unreachable Redis does), and records the
// room changes the engine reports.
class arbitrating_store final : public claps::store {
public:
  explicit arbitrating_store(claps::store& inner) : inner_(inner) {}

  struct intent {
    std::string user, article, op_id;
    std::int32_t count;
    bool undo;
    std::int32_t own;
    std::int64_t own_total;
  };
  struct room {
    std::string article;
    bool watched;
    std::uint32_t viewers;
  };
  bool reachable = true;
  std::vector<std::vector<intent>> calls;  // one per arbitrate()
  std::vector<room> rooms;
  claps::store_listener* listener = nullptr;
  std::map<std::string, std::int32_t> remote;  // "user/article" -> other nodes' claps

  std::error_code read_total(std::string_view a, std::int64_t& t) override { return inner_.read_total(a, t); }
  std::error_code read_tally(std::string_view u, std::string_view a, std::int32_t& c) override {
    return inner_.read_tally(u, a, c);
  }
  std::error_code read_op(std::string_view u, std::string_view a, std::string_view o, claps::stored_op& out,
                          bool& found) override {
    return inner_.read_op(u, a, o, out, found);
  }
  void commit(const claps::commit_batch& batch, claps::commit_handler done) override {
    inner_.commit(batch,
                  [done](std::error_code ec, claps::durability) { done(ec, claps::durability::cluster); });
  }
  std::int32_t remote_tally(std::string_view user, std::string_view article) override {
    auto it = remote.find(std::string(user) + "/" + std::string(article));
    return it == remote.end() ? 0 : it->second;
  }
  bool arbitrates() const override { return true; }
  std::error_code arbitrate(std::span<const claps::op_intent> intents,
                            claps::arbitrate_handler done) override {
    if (!reachable) return claps::make_error_code(claps::errc::store_disconnected);
    std::vector<intent> call;
    for (const auto& i : intents)
      call.push_back({std::string(i.user), std::string(i.article), std::string(i.op_id), i.count, i.undo,
                      i.own, i.own_total});
    calls.push_back(std::move(call));
    pending_ = std::move(done);
    return {};
  }
  void room_changed(std::string_view article, bool watched, std::uint32_t viewers) override {
    rooms.push_back({std::string(article), watched, viewers});
  }
  void attach(claps::store_listener* l) override { listener = l; }

  bool deciding() const { return static_cast<bool>(pending_); }
  // Answers the arbitration in flight, as the store's reply would, from the loop.
  void decide(std::vector<claps::op_decision> decisions) {
    auto done = std::move(pending_);
    pending_ = nullptr;
    done(decisions);
  }

private:
  claps::store& inner_;
  claps::arbitrate_handler pending_;
};

struct recorded_result {
  std::uint64_t cookie;
  std::error_code error;
  std::string article;
  std::int32_t accepted;
  std::int64_t total;
  std::int32_t mine;
  bool replayed;
};

struct recorded_item {
  std::string article;
  std::int64_t total;
  std::uint32_t viewers;
  std::string encoded;
};

// Records everything an engine emits.
struct recorder {
  explicit recorder(bool slices = false) : by_slices(slices) {}
  std::vector<recorded_result> results;
  std::map<claps::subscriber_id, std::vector<std::vector<recorded_item>>> batches;
  std::vector<std::vector<recorded_item>> ticks;  // tick_updates per emission
  int encodes = 0;
  std::vector<std::error_code> statuses;
  bool by_slices = false;                // record through deliver_slice instead of deliver
  std::vector<std::size_t> slice_sizes;  // deliver_slice calls

  claps::engine_callbacks callbacks() {
    claps::engine_callbacks cb;
    cb.encode = [this](const claps::article_update& u, std::string& out) {
      ++encodes;
      out = std::string(u.article) + "=" + std::to_string(u.total) + "/" + std::to_string(u.viewers);
    };
    cb.deliver = [this](claps::subscriber_id sub, std::span<const claps::article_update* const> us) {
      std::vector<recorded_item> items;
      for (auto* u : us)
        items.push_back({std::string(u->article), u->total, u->viewers, std::string(u->encoded)});
      batches[sub].push_back(std::move(items));
    };
    if (by_slices) {
      auto one = std::move(cb.deliver);
      cb.deliver = nullptr;
      cb.deliver_slice = [this, one](std::span<const claps::delivery> ds) {
        slice_sizes.push_back(ds.size());
        for (const auto& d : ds) one(d.subscriber, d.updates);
      };
    }
    cb.tick_updates = [this](std::span<const claps::article_update> us) {
      std::vector<recorded_item> items;
      for (auto& u : us)
        items.push_back({std::string(u.article), u.total, u.viewers, std::string(u.encoded)});
      ticks.push_back(std::move(items));
    };
    cb.result = [this](const claps::op_result& r) {
      results.push_back({r.cookie, r.error, std::string(r.article), r.accepted, r.total, r.mine, r.replayed});
    };
    cb.store_status = [this](std::error_code ec) { statuses.push_back(ec); };
    return cb;
  }

  void clear() {
    results.clear();
    batches.clear();
    ticks.clear();
    slice_sizes.clear();
    encodes = 0;
  }

  const recorded_result* result(std::uint64_t cookie) const {
    for (auto& r : results)
      if (r.cookie == cookie) return &r;
    return nullptr;
  }
};

// A directory made with mkdtemp under /tmp and removed with everything in it.
class temp_dir {
public:
  explicit temp_dir(const std::string& prefix = "claps-test") {
    std::string pattern = "/tmp/" + prefix + "-XXXXXX";
    const char* made = ::mkdtemp(pattern.data());
    REQUIRE(made != nullptr);
    path_ = made;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  temp_dir(const temp_dir&) = delete;
  temp_dir& operator=(const temp_dir&) = delete;
  const std::string& path() const { return path_; }
  // Where an LMDB environment goes inside it.
  std::string env() const { return path_ + "/env"; }

private:
  std::string path_;
};

}  // namespace claps_test
