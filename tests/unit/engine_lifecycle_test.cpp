// An engine's life as an embedding application sees it: what a result
// reports, option errors that name the option, the deadline of an idle
// engine and its wake-up, close(), and a destructor that leaves no op
// without a result (memory store, LMDB inline, LMDB with its writer thread).
#include "test_support.hpp"

#include <claps/lmdb.hpp>

#include <doctest/doctest.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>

#include <sys/wait.h>
#include <unistd.h>

using namespace claps_test;
using claps::errc;

namespace {

// Every result, by cookie, with the strings copied out of the callback.
struct results_by_cookie {
  struct one {
    std::error_code error;
    std::string user, op_id, article;
    std::int32_t accepted = 0;
    std::int64_t total = 0;
    std::int32_t mine = 0;
    bool replayed = false;
    int count = 0;  // how many times it fired
  };
  std::map<std::uint64_t, one> got;

  claps::engine_callbacks callbacks() {
    claps::engine_callbacks cb;
    cb.result = [this](const claps::op_result& r) {
      one& o = got[r.cookie];
      o.error = r.error;
      o.user = r.user;
      o.op_id = r.op_id;
      o.article = r.article;
      o.accepted = r.accepted;
      o.total = r.total;
      o.mine = r.mine;
      o.replayed = r.replayed;
      ++o.count;
    };
    return cb;
  }
};

std::error_code clap(claps::engine& e, std::string_view user, std::string_view article, int count,
                     std::uint64_t cookie, std::string_view op = {}) {
  claps::clap_request r;
  r.user = user;
  r.article = article;
  r.count = count;
  r.op_id = op;
  r.cookie = cookie;
  return e.clap(r);
}

// Every cookie in `accepted` (ops that returned no error) has exactly one result.
void check_each_has_one_result(const std::vector<std::uint64_t>& accepted, const results_by_cookie& rec) {
  for (std::uint64_t cookie : accepted) {
    INFO("cookie " << cookie);
    auto it = rec.got.find(cookie);
    REQUIRE(it != rec.got.end());
    CHECK(it->second.count == 1);
  }
  CHECK(rec.got.size() == accepted.size());
}

class temp_dir {
public:
  temp_dir() {
    char pattern[] = "/tmp/claps-lifecycle-XXXXXX";
    const char* made = ::mkdtemp(pattern);
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

private:
  std::string path_;
};

}  // namespace

TEST_CASE("op_result reports the op's user, op id and article") {
  claps::memory_store st;
  results_by_cookie rec;
  claps::engine eng(st, {}, rec.callbacks(), t0());
  REQUIRE_FALSE(clap(eng, "alice", "a1", 3, 1, "op-1"));
  REQUIRE_FALSE(clap(eng, "bob", "a1", 2, 2));
  claps::undo_request u;
  u.user = "carol";
  u.article = "a2";
  u.op_id = "undo-1";
  u.cookie = 3;
  REQUIRE_FALSE(eng.undo(u));
  eng.flush(t0());
  REQUIRE_FALSE(clap(eng, "alice", "a1", 3, 4, "op-1"));  // a replay
  eng.flush(t0());
  REQUIRE(rec.got.size() == 4);
  CHECK(rec.got[1].user == "alice");
  CHECK(rec.got[1].op_id == "op-1");
  CHECK(rec.got[1].article == "a1");
  CHECK(rec.got[2].user == "bob");
  CHECK(rec.got[2].op_id.empty());
  CHECK(rec.got[3].user == "carol");
  CHECK(rec.got[3].op_id == "undo-1");
  CHECK(rec.got[3].article == "a2");
  CHECK(rec.got[4].user == "alice");
  CHECK(rec.got[4].op_id == "op-1");
  CHECK(rec.got[4].replayed);
}

TEST_CASE("validate() names the bad option, its value and the allowed range") {
  claps::engine_options o;
  std::string why = "stale";
  CHECK_FALSE(claps::validate(o, why));
  CHECK(why.empty());
  o.tick = claps::millis(0);
  CHECK(claps::validate(o, why) == errc::bad_request);
  CHECK(why == "engine_options::tick is 0 ms; it must be 1..1000 ms");
  o.tick = claps::millis(25);
  o.clap_cap = -3;
  CHECK(claps::validate(o, why) == errc::bad_request);
  CHECK(why == "engine_options::clap_cap is -3; it must be at least 1");
  CHECK(claps::validate(o) == errc::bad_request);  // the short form agrees
  o.clap_cap = 50;
  o.op_id_cache = 0;
  CHECK(claps::validate(o, why) == errc::bad_request);
  CHECK(why.find("op_id_cache is 0") != std::string::npos);
}

TEST_CASE("an engine built with bad options prints validate()'s reason and aborts, in every build type") {
  int err_pipe[2];
  REQUIRE(::pipe(err_pipe) == 0);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    std::signal(SIGABRT, SIG_DFL);  // die of it, without doctest's report from the child
    ::dup2(err_pipe[1], 2);
    claps::memory_store st;
    claps::engine_options o;
    o.tick = claps::millis(5000);
    claps::engine eng(st, o, {}, t0());
    std::_Exit(0);  // not reached
  }
  ::close(err_pipe[1]);
  std::string err;
  char buf[512];
  for (ssize_t n; (n = ::read(err_pipe[0], buf, sizeof buf)) > 0;) err.append(buf, static_cast<size_t>(n));
  ::close(err_pipe[0]);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(err.find("engine_options::tick is 5000 ms; it must be 1..1000 ms") != std::string::npos);
}

TEST_CASE("an idle engine's deadline is never; new work calls on_wake once and brings the deadline back") {
  claps::memory_store st;
  results_by_cookie rec;
  claps::engine_options o;
  o.tick = claps::millis(10);
  claps::engine eng(st, o, rec.callbacks(), t0());
  int wakes = 0;
  eng.on_wake([&] { ++wakes; });
  CHECK(eng.next_deadline() == claps::timestamp::max());
  REQUIRE_FALSE(clap(eng, "u", "a", 1, 1));
  CHECK(wakes == 1);
  const claps::timestamp d = eng.next_deadline();
  CHECK(d == t0() + o.tick);
  REQUIRE_FALSE(clap(eng, "u", "a", 1, 2));  // the deadline did not move: no call
  CHECK(wakes == 1);
  eng.advance(d);
  CHECK(rec.got.size() == 2);
  CHECK(eng.next_deadline() == claps::timestamp::max());
  eng.advance(claps::timestamp::max());  // what a naive caller passes: nothing happens
  CHECK(eng.stats().ticks == 1);

  // A subscription changes a viewer count: an update to emit is work too.
  claps::snapshot snap;
  REQUIRE_FALSE(eng.subscribe(7, {}, "a", true, snap));
  CHECK(wakes == 2);
  CHECK(eng.next_deadline() != claps::timestamp::max());
  eng.advance(eng.next_deadline());
  CHECK(eng.next_deadline() == claps::timestamp::max());
  eng.unsubscribe_all(7);
  CHECK(wakes == 3);
  eng.advance(eng.next_deadline());
  CHECK(eng.next_deadline() == claps::timestamp::max());

  // A commit that completes later wakes the engine's driver when it leaves work behind.
  faulty_store deferred(st);
  claps::engine eng2(deferred, o, rec.callbacks(), t0());
  int wakes2 = 0;
  eng2.on_wake([&] { ++wakes2; });
  REQUIRE_FALSE(eng2.subscribe(1, {}, "b", true, snap));
  eng2.flush(t0());
  CHECK(eng2.next_deadline() == claps::timestamp::max());
  deferred.defer = true;
  REQUIRE_FALSE(clap(eng2, "u", "b", 1, 10));
  eng2.advance(eng2.next_deadline());
  REQUIRE(deferred.holding());
  CHECK(eng2.next_deadline() ==
        claps::timestamp::max());  // a commit in flight alone is the store's to finish
  CHECK_FALSE(eng2.idle());
  deferred.release();
  CHECK(rec.got.count(10) == 1);
  CHECK(eng2.idle());
}

TEST_CASE("close() commits what is pending, then refuses new ops; closed() waits for a commit in flight") {
  claps::memory_store backing;
  faulty_store st(backing);
  results_by_cookie rec;
  std::vector<std::int64_t> delivered;  // totals seen by subscriber 1
  claps::engine_callbacks cb = rec.callbacks();
  cb.deliver = [&](claps::subscriber_id, std::span<const claps::article_update* const> us) {
    for (const auto* u : us) delivered.push_back(u->total);
  };
  claps::engine eng(st, {}, cb, t0());
  claps::snapshot snap;
  REQUIRE_FALSE(eng.subscribe(1, "alice", "a1", true, snap));
  REQUIRE_FALSE(clap(eng, "alice", "a1", 4, 1, "op-1"));
  CHECK_FALSE(eng.closed());
  st.defer = true;
  eng.close(t0());
  REQUIRE(st.holding());
  CHECK_FALSE(eng.closed());  // the commit is in flight
  CHECK(rec.got.empty());
  const auto refused = clap(eng, "alice", "a1", 1, 2, "op-2");
  CHECK(refused == errc::unavailable);
  CHECK(refused.message().find("closed") != std::string::npos);
  claps::undo_request u;
  u.user = "alice";
  u.article = "a1";
  u.cookie = 3;
  CHECK(eng.undo(u) == errc::unavailable);
  CHECK(eng.subscribe(2, {}, "a1", true, snap) == errc::unavailable);
  eng.unsubscribe(1, "nothing-watched");  // still allowed
  st.release();
  CHECK(rec.got.size() == 1);
  // The new total goes out on the next tick; closed() waits for it.
  CHECK_FALSE(eng.closed());
  REQUIRE(eng.next_deadline() != claps::timestamp::max());
  eng.advance(eng.next_deadline());
  CHECK(eng.closed());
  CHECK(delivered.back() == 4);
  REQUIRE(rec.got.size() == 1);
  CHECK_FALSE(rec.got[1].error);
  CHECK(rec.got[1].accepted == 4);
  std::int64_t total = 0;
  REQUIRE_FALSE(backing.read_total("a1", total));
  CHECK(total == 4);
}

TEST_CASE("close() with a failing store stays not closed; advance() retries until the commit succeeds") {
  claps::memory_store backing;
  faulty_store st(backing);
  results_by_cookie rec;
  claps::engine eng(st, {}, rec.callbacks(), t0());
  REQUIRE_FALSE(clap(eng, "u", "a", 2, 1));
  st.fail_next = 1;
  eng.close(t0());
  CHECK_FALSE(eng.closed());
  CHECK(rec.got.empty());
  REQUIRE(eng.next_deadline() != claps::timestamp::max());
  eng.advance(eng.next_deadline());
  CHECK(eng.closed());
  CHECK(rec.got[1].accepted == 2);
}

TEST_CASE("the destructor gives every op still without a result errc::unavailable (memory store)") {
  claps::memory_store backing;
  faulty_store st(backing);
  results_by_cookie rec;
  std::vector<std::uint64_t> accepted;
  {
    claps::engine eng(st, {}, rec.callbacks(), t0());
    // Durable, and answered: not the destructor's business.
    REQUIRE_FALSE(clap(eng, "u0", "a", 1, 1, "op-0"));
    accepted.push_back(1);
    eng.flush(t0());
    REQUIRE(rec.got.size() == 1);
    // In flight: the store holds the commit.
    st.defer = true;
    for (std::uint64_t c = 10; c < 20; ++c) {
      REQUIRE_FALSE(clap(eng, "u" + std::to_string(c), "a", 2, c, "op-" + std::to_string(c)));
      accepted.push_back(c);
    }
    eng.advance(eng.next_deadline());
    REQUIRE(st.holding());
    // Pending: not yet in any commit; one is a replay of a durable op.
    for (std::uint64_t c = 20; c < 30; ++c) {
      REQUIRE_FALSE(clap(eng, "v" + std::to_string(c), "a", 3, c));
      accepted.push_back(c);
    }
    REQUIRE_FALSE(clap(eng, "u0", "a", 1, 30, "op-0"));
    accepted.push_back(30);
    REQUIRE(rec.got.size() == 1);
  }
  check_each_has_one_result(accepted, rec);
  for (std::uint64_t c = 10; c <= 30; ++c) {
    INFO("cookie " << c);
    CHECK(rec.got[c].error == errc::unavailable);
  }
  CHECK(rec.got[12].user == "u12");
  CHECK(rec.got[12].op_id == "op-12");
  // (A completion that arrives after the engine is gone: see the LMDB writer case below.)
}

TEST_CASE("the destructor settles every op with LMDB inline and with its writer thread; retries apply once") {
  for (const bool writer : {false, true}) {
    CAPTURE(writer);
    temp_dir dir;
    claps::lmdb_options lo;
    lo.path = dir.path();
    std::atomic<int> ready{0};
    if (writer) lo.on_commit_ready = [&ready] { ++ready; };
    std::error_code ec;
    auto store = claps::lmdb_store::open(lo, ec);
    REQUIRE(store);
    results_by_cookie rec;
    std::vector<std::uint64_t> accepted;
    {
      claps::engine eng(*store, {}, rec.callbacks(), t0());
      for (std::uint64_t c = 0; c < 10; ++c) {
        REQUIRE_FALSE(clap(eng, "u" + std::to_string(c), "a", 5, c, "op-" + std::to_string(c)));
        accepted.push_back(c);
      }
      // Writer thread: this commit stays in flight (its completion is never run).
      eng.advance(eng.next_deadline());
      for (std::uint64_t c = 10; c < 20; ++c) {
        REQUIRE_FALSE(clap(eng, "u" + std::to_string(c), "a", 5, c, "op-" + std::to_string(c)));
        accepted.push_back(c);
      }
      if (writer) CHECK(rec.got.empty());
      else CHECK(rec.got.size() == 10);  // inline: the first ten committed in the tick
    }
    check_each_has_one_result(accepted, rec);
    for (std::uint64_t c = 10; c < 20; ++c) CHECK(rec.got[c].error == errc::unavailable);
    for (std::uint64_t c = 0; c < 10; ++c) CHECK(static_cast<bool>(rec.got[c].error) == writer);

    // Retried with the same op ids on a new engine: each clap counts once.
    results_by_cookie again;
    if (writer) store->wait_for_commit();  // nothing listens any more; must not crash
    {
      claps::engine eng(*store, {}, again.callbacks(), t0() + claps::millis(100));
      for (std::uint64_t c = 0; c < 20; ++c)
        REQUIRE_FALSE(clap(eng, "u" + std::to_string(c), "a", 5, 100 + c, "op-" + std::to_string(c)));
      eng.close(t0() + claps::millis(100));
      for (int spins = 0; !eng.closed() && spins < 5000; ++spins) {
        store->wait_for_commit();
        eng.advance(eng.next_deadline());
      }
      REQUIRE(eng.closed());
    }
    // With the writer thread, the ten ops in flight became durable after
    // all: their retries are replays. The others are applied now.
    REQUIRE(again.got.size() == 20);
    for (auto& [cookie, r] : again.got) {
      CAPTURE(cookie);
      CHECK_FALSE(r.error);
      CHECK(r.accepted == 5);
      CHECK(r.replayed == (cookie < 110));
    }
    std::int64_t total = 0;
    REQUIRE_FALSE(store->read_total("a", total));
    CHECK(total == 100);
  }
}

TEST_CASE("a remote change reported by a shared store wakes an idle engine's driver") {
  claps::memory_store backing;
  arbitrating_store st(backing);
  std::vector<std::int64_t> delivered;
  claps::engine_callbacks cb;
  cb.deliver = [&](claps::subscriber_id, std::span<const claps::article_update* const> us) {
    for (const auto* u : us) delivered.push_back(u->total);
  };
  claps::engine eng(st, {}, cb, t0());
  int wakes = 0;
  eng.on_wake([&] { ++wakes; });
  claps::snapshot snap;
  REQUIRE_FALSE(eng.subscribe(1, {}, "a", true, snap));
  eng.advance(eng.next_deadline());
  REQUIRE(eng.next_deadline() == claps::timestamp::max());
  const int before = wakes;
  REQUIRE(st.listener != nullptr);
  st.listener->remote_changed("a", 7, 2);  // as a Redis store does when another node commits
  CHECK(wakes == before + 1);
  REQUIRE(eng.next_deadline() != claps::timestamp::max());
  eng.advance(eng.next_deadline());
  REQUIRE_FALSE(delivered.empty());
  CHECK(delivered.back() == 7);
}
