#include "test_support.hpp"

#include <doctest/doctest.h>

#include <csignal>
#include <random>
#include <set>

#include <sys/wait.h>
#include <unistd.h>

using namespace claps_test;
using claps::errc;

namespace {

// An engine on a memory store behind a fault-injecting wrapper, with a fake clock.
struct fixture {
  claps::memory_store backing;
  faulty_store st{backing};
  recorder rec;
  claps::timestamp now = t0();
  claps::engine eng;

  explicit fixture(claps::engine_options o = {}, bool by_slices = false)
      : rec(by_slices), eng(st, o, rec.callbacks(), t0()) {}

  // The next deadline, or one tick on when the engine is idle ("never").
  void tick() {
    const claps::timestamp d = eng.next_deadline();
    now = d == claps::timestamp::max() ? now + eng.options().tick : d;
    eng.advance(now);
  }
  std::error_code clap(std::string_view user, std::string_view article, int count, std::uint64_t cookie,
                       std::string_view op = {}) {
    claps::clap_request r;
    r.user = user;
    r.article = article;
    r.count = count;
    r.op_id = op;
    r.cookie = cookie;
    return eng.clap(r);
  }
  claps::snapshot sub(claps::subscriber_id s, std::string_view article, bool reading = true,
                      std::string_view user = {}) {
    claps::snapshot out;
    REQUIRE_FALSE(eng.subscribe(s, user, article, reading, out));
    return out;
  }
};

}  // namespace

TEST_CASE("many claps in one tick: one commit, one update per changed article, one batch per subscriber") {
  fixture f;
  f.sub(1, "a1");
  f.sub(1, "a2");
  f.sub(2, "a3");  // watches an article nobody claps for
  f.sub(3, "a2");
  f.tick();  // flush the viewer-count updates of the subscriptions
  f.rec.clear();
  int attempted_before = f.st.commits_attempted;

  for (int i = 0; i < 100; ++i) {
    REQUIRE_FALSE(f.clap("u" + std::to_string(i), "a1", 2, 1000 + i));
    REQUIRE_FALSE(f.clap("u" + std::to_string(i), "a2", 1, 2000 + i));
  }
  CHECK(f.rec.results.empty());  // nothing acknowledged before the commit
  f.tick();

  CHECK(f.st.commits_attempted == attempted_before + 1);
  REQUIRE(f.rec.ticks.size() == 1);
  CHECK(f.rec.ticks[0].size() == 2);
  CHECK(f.rec.encodes == 2);  // once per article, not per subscriber

  REQUIRE(f.rec.batches[1].size() == 1);  // one batch holding both articles
  auto& batch = f.rec.batches[1][0];
  REQUIRE(batch.size() == 2);
  std::map<std::string, recorded_item> by_article;
  for (auto& item : batch) by_article[item.article] = item;
  CHECK(by_article["a1"].total == 200);
  CHECK(by_article["a1"].viewers == 1);
  CHECK(by_article["a1"].encoded == "a1=200/1");
  CHECK(by_article["a2"].total == 100);
  CHECK(by_article["a2"].viewers == 2);

  REQUIRE(f.rec.batches[3].size() == 1);
  CHECK(f.rec.batches[3][0].size() == 1);
  CHECK(f.rec.batches.count(2) == 0);  // the viewer of a3 got nothing

  REQUIRE(f.rec.results.size() == 200);
  for (auto& r : f.rec.results) CHECK(r.total == (r.article == "a1" ? 200 : 100));

  // A quiet tick emits nothing and commits nothing.
  f.rec.clear();
  attempted_before = f.st.commits_attempted;
  f.tick();
  CHECK(f.rec.ticks.empty());
  CHECK(f.rec.batches.empty());
  CHECK(f.st.commits_attempted == attempted_before);
}

TEST_CASE("the per-user cap at 49, 50 and 51") {
  fixture f;
  REQUIRE_FALSE(f.clap("alice", "a1", 49, 1));
  f.tick();
  REQUIRE(f.rec.result(1));
  CHECK(f.rec.result(1)->accepted == 49);
  CHECK(f.rec.result(1)->mine == 49);

  REQUIRE_FALSE(f.clap("alice", "a1", 3, 2));  // only one more fits
  REQUIRE_FALSE(f.clap("alice", "a1", 1, 3));  // at the cap: nothing counted
  REQUIRE_FALSE(f.clap("bob", "a1", 50, 4));   // the cap is per user
  f.tick();
  CHECK(f.rec.result(2)->accepted == 1);
  CHECK(f.rec.result(2)->mine == 50);
  CHECK(f.rec.result(3)->accepted == 0);
  CHECK(f.rec.result(3)->mine == 50);
  CHECK(f.rec.result(4)->accepted == 50);
  CHECK(f.rec.result(4)->total == 100);

  CHECK(f.clap("carol", "a1", 51, 5) == errc::invalid_count);
  CHECK(f.clap("carol", "a1", 0, 6) == errc::invalid_count);
  CHECK(f.clap("carol", "a1", -3, 7) == errc::invalid_count);

  auto s = f.eng.stats();
  CHECK(s.claps_accepted == 100);
  CHECK(s.claps_over_cap == 3);
}

TEST_CASE("undo removes all of the user's claps, and the user may clap again") {
  fixture f;
  f.sub(9, "a1");
  REQUIRE_FALSE(f.clap("alice", "a1", 50, 1));
  REQUIRE_FALSE(f.clap("bob", "a1", 7, 2));
  f.tick();
  REQUIRE_FALSE(f.eng.undo({"alice", "a1", {}, 3}));
  f.tick();
  CHECK(f.rec.result(3)->accepted == -50);
  CHECK(f.rec.result(3)->mine == 0);
  CHECK(f.rec.result(3)->total == 7);
  CHECK(f.rec.batches[9].back()[0].total == 7);  // viewers see the total go down

  REQUIRE_FALSE(f.clap("alice", "a1", 5, 4));
  f.tick();
  CHECK(f.rec.result(4)->accepted == 5);
  CHECK(f.rec.result(4)->total == 12);

  // An undo with nothing to undo is a harmless zero.
  REQUIRE_FALSE(f.eng.undo({"zed", "a1", {}, 5}));
  f.tick();
  CHECK(f.rec.result(5)->accepted == 0);
  CHECK(f.rec.result(5)->total == 12);
}

TEST_CASE("op ids: a replay is not applied again; the same id on another article is another op") {
  fixture f;
  REQUIRE_FALSE(f.clap("alice", "a1", 3, 1, "op-1"));
  REQUIRE_FALSE(f.clap("alice", "a1", 3, 2, "op-1"));  // retried in the same tick
  f.tick();
  CHECK(f.rec.result(1)->accepted == 3);
  CHECK_FALSE(f.rec.result(1)->replayed);
  CHECK(f.rec.result(2)->accepted == 3);
  CHECK(f.rec.result(2)->replayed);
  CHECK(f.rec.result(2)->total == 3);

  REQUIRE_FALSE(f.clap("bob", "a1", 4, 3));
  REQUIRE_FALSE(f.clap("alice", "a1", 9, 16, "op-1"));  // a retry names the article again
  REQUIRE_FALSE(f.clap("alice", "a2", 9, 4, "op-1"));   // same id, other article: a new op
  f.tick();
  auto* r = f.rec.result(16);
  CHECK(r->replayed);
  CHECK(r->article == "a1");
  CHECK(r->accepted == 3);
  CHECK(r->mine == 3);
  CHECK(r->total == 7);  // the current total
  r = f.rec.result(4);
  CHECK_FALSE(r->replayed);
  CHECK(r->article == "a2");
  CHECK(r->accepted == 9);

  // Op ids are scoped to their user.
  REQUIRE_FALSE(f.clap("bob", "a1", 1, 5, "op-1"));
  // Undo with an op id replays too.
  REQUIRE_FALSE(f.eng.undo({"alice", "a1", "op-2", 6}));
  f.tick();
  CHECK_FALSE(f.rec.result(5)->replayed);
  CHECK(f.rec.result(5)->accepted == 1);
  CHECK(f.rec.result(6)->accepted == -3);
  REQUIRE_FALSE(f.eng.undo({"alice", "a1", "op-2", 7}));
  REQUIRE_FALSE(f.clap("alice", "a1", 2, 8, "op-3"));
  f.tick();
  CHECK(f.rec.result(7)->replayed);
  CHECK(f.rec.result(7)->accepted == -3);
  CHECK(f.rec.result(8)->accepted == 2);
  CHECK(f.rec.result(8)->total == 7);

  CHECK(f.clap("alice", "a1", 1, 9, "bad op id") == errc::invalid_op_id);
  CHECK(f.clap("alice", "a1", 1, 9, std::string(65, 'x')) == errc::invalid_op_id);
}

TEST_CASE("op ids expire after the window") {
  claps::engine_options o;
  o.op_id_window = claps::millis(1000);
  fixture f(o);
  REQUIRE_FALSE(f.clap("alice", "a1", 1, 1, "op"));
  f.tick();
  REQUIRE_FALSE(f.clap("alice", "a1", 1, 2, "op"));
  f.tick();
  CHECK(f.rec.result(2)->replayed);
  f.eng.advance(f.now + claps::millis(2000));  // past the window
  REQUIRE_FALSE(f.clap("alice", "a1", 1, 3, "op"));
  f.tick();
  CHECK_FALSE(f.rec.result(3)->replayed);
  CHECK(f.rec.result(3)->total == 2);
  CHECK(f.eng.stats().ops_purged >= 1);
  CHECK(f.backing.op_count() == 1);  // the store purged the expired record too
}

TEST_CASE("invalid ids are rejected with typed errors and nothing is stored") {
  fixture f;
  CHECK(f.clap("alice", "", 1, 1) == errc::invalid_article);
  CHECK(f.clap("alice", "a/1", 1, 1) == errc::invalid_article);
  CHECK(f.clap("alice", std::string(129, 'a'), 1, 1) == errc::invalid_article);
  CHECK(f.clap("", "a1", 1, 1) == errc::invalid_user);
  CHECK(f.clap("al ice", "a1", 1, 1) == errc::invalid_user);
  CHECK(f.clap("alice", std::string("a\0b", 3), 1, 1) == errc::invalid_article);
  CHECK(f.clap("alice", "caf\xc3\xa9", 1, 1) == errc::invalid_article);
  claps::snapshot s;
  CHECK(f.eng.subscribe(1, {}, "../etc", true, s) == errc::invalid_article);
  CHECK(f.eng.subscribe(1, "bad user", "ok", true, s) == errc::invalid_user);
  f.tick();
  CHECK(f.st.commits_attempted == 0);
  CHECK(f.rec.results.empty());
  CHECK(f.eng.stats().subscriptions == 0);
  // Longest valid ids work.
  CHECK_FALSE(f.clap(std::string(128, 'u'), std::string(128, 'a'), 1, 2, std::string(64, 'o')));
}

TEST_CASE("snapshots: committed total, viewers counting the subscriber, and mine") {
  fixture f;
  REQUIRE_FALSE(f.clap("alice", "a1", 5, 1));
  REQUIRE_FALSE(f.clap("bob", "a1", 2, 2));
  f.tick();
  REQUIRE_FALSE(f.clap("alice", "a1", 1, 3));  // pending: not in a snapshot yet
  auto s = f.sub(1, "a1", true, "alice");
  CHECK(s.total == 7);
  CHECK(s.viewers == 1);
  CHECK(s.mine == 5);
  auto home = f.sub(2, "a1", false, "bob");  // not reading: not a viewer
  CHECK(home.viewers == 1);
  CHECK(home.mine == 2);
  auto again = f.sub(1, "a1", true, "alice");  // subscribing again is a no-op
  CHECK(again.viewers == 1);
  CHECK(f.eng.subscription_count(1) == 1);

  // Multi-article subscribe is all or nothing.
  std::vector<claps::snapshot> out;
  std::vector<std::string_view> bad{"b1", "b 2"};
  CHECK(f.eng.subscribe(3, {}, bad, true, out) == errc::invalid_article);
  CHECK(out.empty());
  CHECK(f.eng.subscription_count(3) == 0);
  std::vector<std::string_view> good{"b1", "a1", "b1"};
  REQUIRE_FALSE(f.eng.subscribe(3, {}, good, true, out));
  CHECK(out.size() == 3);
  CHECK(f.eng.subscription_count(3) == 2);
  CHECK(out[1].viewers == 2);
}

TEST_CASE("subscription limit") {
  claps::engine_options o;
  o.max_subscriptions = 3;
  fixture f(o);
  f.sub(1, "a1");
  f.sub(1, "a2");
  std::vector<claps::snapshot> out;
  std::vector<std::string_view> two{"a3", "a4"};
  CHECK(f.eng.subscribe(1, {}, two, true, out) == errc::too_many_subscriptions);
  CHECK(f.eng.subscription_count(1) == 2);
  std::vector<std::string_view> dup{"a1", "a3", "a3"};
  CHECK_FALSE(f.eng.subscribe(1, {}, dup, true, out));
  claps::snapshot s;
  CHECK(f.eng.subscribe(1, {}, "a9", true, s) == errc::too_many_subscriptions);
  f.eng.unsubscribe(1, "a1");
  CHECK_FALSE(f.eng.subscribe(1, {}, "a9", true, s));
}

TEST_CASE("viewer changes are updates; unsubscribe stops them") {
  fixture f;
  f.sub(1, "a1");
  f.tick();
  REQUIRE(f.rec.batches[1].size() == 1);
  CHECK(f.rec.batches[1][0][0].viewers == 1);
  f.sub(2, "a1");
  f.tick();
  CHECK(f.rec.batches[1].back()[0].viewers == 2);
  f.eng.unsubscribe(2, "a1");
  f.eng.unsubscribe(2, "a1");  // unknown pair: ignored
  f.sub(2, "a1");              // leave and return within a tick: no net change
  f.rec.clear();
  f.tick();
  CHECK(f.rec.batches.empty());
  f.eng.unsubscribe_all(2);
  f.tick();
  CHECK(f.rec.batches[1].back()[0].viewers == 1);
  CHECK(f.rec.batches.count(2) == 0);
  CHECK(f.eng.stats().subscribers == 1);
}

TEST_CASE("a failing store keeps every clap and acknowledges nothing until it recovers") {
  claps::engine_options o;
  o.max_pending_ops = 50;
  fixture f(o);
  f.sub(1, "a1");
  f.tick();
  f.rec.clear();
  f.st.fail_next = 3;
  for (int i = 0; i < 20; ++i) REQUIRE_FALSE(f.clap("u" + std::to_string(i), "a1", 1, i));
  f.tick();
  CHECK(f.rec.results.empty());
  CHECK(f.eng.store_error() == errc::store_full);
  REQUIRE(f.rec.statuses.size() == 1);
  CHECK(f.rec.batches.empty());  // no update before the batch is durable
  for (int i = 20; i < 40; ++i) REQUIRE_FALSE(f.clap("u" + std::to_string(i), "a1", 1, i));
  f.tick();
  f.tick();
  CHECK(f.rec.results.empty());
  CHECK(f.eng.stats().pending_ops == 40);
  for (int i = 40; i < 50; ++i) REQUIRE_FALSE(f.clap("u" + std::to_string(i), "a1", 1, i));
  CHECK(f.clap("late", "a1", 1, 99) == errc::unavailable);  // the bound holds
  CHECK_FALSE(f.eng.idle());

  f.tick();  // the store works again
  CHECK_FALSE(f.eng.store_error());
  REQUIRE(f.rec.statuses.size() == 2);
  CHECK_FALSE(f.rec.statuses[1]);
  REQUIRE(f.rec.results.size() == 50);
  for (auto& r : f.rec.results) {
    CHECK(r.accepted == 1);
    CHECK(r.total == 50);
  }
  CHECK(f.rec.batches[1].back()[0].total == 50);
  std::int64_t stored = 0;
  REQUIRE_FALSE(f.backing.read_total("a1", stored));
  CHECK(stored == 50);
  CHECK(f.eng.idle());
  CHECK(f.eng.stats().commit_failures == 3);
}

TEST_CASE("an asynchronous store: one commit in flight, later claps wait for the next") {
  fixture f;
  f.sub(1, "a1");
  f.tick();
  f.rec.clear();
  f.st.defer = true;
  REQUIRE_FALSE(f.clap("alice", "a1", 2, 1, "op-a"));
  f.tick();
  REQUIRE(f.st.holding());
  CHECK(f.rec.results.empty());
  REQUIRE_FALSE(f.clap("bob", "a1", 3, 2));
  REQUIRE_FALSE(f.clap("alice", "a1", 9, 3, "op-a"));  // replay of the op in flight
  f.tick();                                            // the commit is still in flight: no second one
  CHECK(f.st.commits_attempted == 1);                  // the subscribe tick had nothing to commit
  f.st.release();                                      // completion arrives from the "event loop"
  REQUIRE(f.rec.results.size() == 2);
  CHECK(f.rec.result(1)->total == 2);
  CHECK(f.rec.result(3)->replayed);
  CHECK(f.rec.result(3)->accepted == 2);
  CHECK(f.rec.batches[1].back()[0].total == 2);  // emitted at completion
  f.st.defer = false;
  f.tick();
  CHECK(f.rec.result(2)->total == 5);
  CHECK(f.rec.batches[1].back()[0].total == 5);
}

TEST_CASE("an asynchronous completion after the tick emitted waits for the next tick") {
  // Several nodes: the tick emits other nodes' parts, and this node's commit
  // completes later from the loop. A subscriber still gets one batch per tick.
  fixture f;
  f.sub(1, "a1");
  f.tick();
  f.rec.clear();
  f.st.defer = true;
  REQUIRE_FALSE(f.clap("alice", "a1", 2, 1));
  f.eng.set_remote("a1", 10, 0);
  f.tick();  // starts the commit, emits the remote part
  REQUIRE(f.st.holding());
  REQUIRE(f.rec.batches[1].size() == 1);
  CHECK(f.rec.batches[1].back()[0].total == 10);
  f.st.release();                       // completes in the same tick window
  CHECK(f.rec.result(1)->total == 12);  // the ack is not held back
  CHECK(f.rec.batches[1].size() == 1);  // the update is
  f.st.defer = false;
  f.tick();
  REQUIRE(f.rec.batches[1].size() == 2);
  CHECK(f.rec.batches[1].back()[0].total == 12);
  // A window in which the tick emitted nothing lets a completion emit at once.
  f.st.defer = true;
  REQUIRE_FALSE(f.clap("bob", "a1", 1, 2));
  f.tick();  // only starts the commit: nothing changed yet
  CHECK(f.rec.batches[1].size() == 2);
  f.st.release();
  REQUIRE(f.rec.batches[1].size() == 3);
  CHECK(f.rec.batches[1].back()[0].total == 13);
}

TEST_CASE("10k subscribers over 1k articles") {
  fixture f;
  std::mt19937 rng(42);
  std::map<claps::subscriber_id, std::set<int>> watched;
  std::vector<int> viewers(1000, 0);
  for (claps::subscriber_id s = 1; s <= 10'000; ++s) {
    for (int k = 0; k < 5; ++k) {
      int a = static_cast<int>(rng() % 1000);
      if (watched[s].insert(a).second) ++viewers[a];
      f.sub(s, "art-" + std::to_string(a));
    }
  }
  CHECK(f.eng.stats().subscribers == 10'000);
  f.tick();
  f.rec.clear();
  for (int a = 0; a < 1000; ++a) REQUIRE_FALSE(f.clap("u", "art-" + std::to_string(a), 1, a));
  f.tick();
  CHECK(f.rec.encodes == 1000);
  REQUIRE(f.rec.batches.size() == 10'000);
  for (auto& [sub, batches] : f.rec.batches) {
    REQUIRE(batches.size() == 1);  // one batch per subscriber per tick
    CHECK(batches[0].size() == watched[sub].size());
    for (auto& item : batches[0]) {
      int a = std::stoi(item.article.substr(4));
      CHECK(item.viewers == static_cast<std::uint32_t>(viewers[a]));
      CHECK(item.total == 1);
    }
  }
  for (claps::subscriber_id s = 1; s <= 5'000; ++s) {
    for (int a : watched[s]) --viewers[a];
    f.eng.unsubscribe_all(s);
  }
  claps::snapshot snap;
  for (int a = 0; a < 1000; a += 97) {
    REQUIRE_FALSE(f.eng.read({}, "art-" + std::to_string(a), snap));
    CHECK(snap.viewers == static_cast<std::uint32_t>(viewers[a]));
  }
  CHECK(f.eng.stats().subscribers == 5'000);
}

TEST_CASE("idle articles and clean tallies are evicted from memory and reloaded from the store") {
  claps::engine_options o;
  o.article_cache = 10;
  o.tally_cache = 10;
  fixture f(o);
  for (int i = 0; i < 100; ++i)
    REQUIRE_FALSE(f.clap("u" + std::to_string(i % 7), "a" + std::to_string(i), 1, i));
  f.tick();
  f.tick();
  CHECK(f.eng.stats().articles_cached <= 10);
  // Reloaded state is intact, and the cap still holds through a reload.
  REQUIRE_FALSE(f.clap("u0", "a0", 50, 1000));
  f.tick();
  CHECK(f.rec.result(1000)->accepted == 49);
  CHECK(f.rec.result(1000)->total == 50);
}

TEST_CASE("options are validated") {
  claps::engine_options o;
  CHECK_FALSE(claps::validate(o));
  o.tick = claps::millis(0);
  CHECK(claps::validate(o));
  o.tick = claps::millis(1001);
  CHECK(claps::validate(o));
  o.tick = claps::millis(25);
  o.clap_cap = 0;
  CHECK(claps::validate(o));
}

TEST_CASE("the deadline moves one tick at a time and never builds a backlog") {
  fixture f;
  CHECK(f.eng.next_deadline() == claps::timestamp::max());  // nothing to do yet
  REQUIRE_FALSE(f.clap("u", "a", 1, 1));
  auto d = f.eng.next_deadline();
  CHECK(d == t0() + claps::millis(25));
  f.eng.advance(d - claps::millis(1));
  CHECK(f.eng.next_deadline() == d);
  CHECK(f.eng.stats().ticks == 0);
  REQUIRE_FALSE(f.clap("u", "a", 1, 2));
  f.eng.advance(d + claps::millis(1000));  // a long stall: one tick, then onwards from now
  CHECK(f.eng.stats().ticks == 1);
  CHECK(f.eng.next_deadline() == claps::timestamp::max());  // both claps committed
  REQUIRE_FALSE(f.clap("u", "a", 1, 3));
  CHECK(f.eng.next_deadline() == d + claps::millis(1025));
}

TEST_CASE("random subscribe/unsubscribe churn matches a reference model") {
  fixture f;
  std::mt19937 rng(7);
  std::map<claps::subscriber_id, std::set<int>> model;
  for (int step = 0; step < 20'000; ++step) {
    claps::subscriber_id s = rng() % 50;
    int a = static_cast<int>(rng() % 20);
    std::string id = "r" + std::to_string(a);
    switch (rng() % 4) {
    case 0:
    case 1:
      f.sub(s, id);
      model[s].insert(a);
      break;
    case 2:
      f.eng.unsubscribe(s, id);
      model[s].erase(a);
      break;
    default:
      if (rng() % 8 == 0) {
        f.eng.unsubscribe_all(s);
        model.erase(s);
      }
    }
    if (step % 500 == 0) f.tick();
  }
  f.tick();
  f.rec.clear();
  for (int a = 0; a < 20; ++a) REQUIRE_FALSE(f.clap("u", "r" + std::to_string(a), 1, a));
  f.tick();
  for (auto& [s, articles] : model) {
    CHECK(f.eng.subscription_count(s) == articles.size());
    if (articles.empty()) continue;
    REQUIRE(f.rec.batches[s].size() == 1);
    std::set<int> got;
    for (auto& item : f.rec.batches[s][0]) got.insert(std::stoi(item.article.substr(1)));
    CHECK(got == articles);
  }
  for (int a = 0; a < 20; ++a) {
    std::uint32_t expected = 0;
    for (auto& [s, articles] : model) expected += articles.count(a);
    claps::snapshot snap;
    REQUIRE_FALSE(f.eng.read({}, "r" + std::to_string(a), snap));
    CHECK(snap.viewers == expected);
  }
}

TEST_CASE("several nodes: remote parts join totals, viewers, mine and the cap") {
  fixture f;
  f.sub(1, "a1", true, "alice");
  f.tick();
  f.rec.clear();

  // Another node reports 40 claps and 3 readers: emitted without any commit.
  int commits = f.st.commits_attempted;
  f.eng.set_remote("a1", 40, 3);
  f.eng.set_remote("unknown", 5, 5);  // nobody here holds it: ignored
  f.tick();
  CHECK(f.st.commits_attempted == commits);
  REQUIRE(f.rec.batches[1].size() == 1);
  CHECK(f.rec.batches[1][0][0].total == 40);
  CHECK(f.rec.batches[1][0][0].viewers == 4);
  REQUIRE(f.rec.ticks.size() == 1);
  f.rec.clear();
  f.eng.set_remote("a1", 40, 3);  // unchanged: nothing to emit
  f.tick();
  CHECK(f.rec.batches.empty());

  // Alice clapped 45 times through other nodes: only 5 more fit here.
  f.st.remote["alice/a1"] = 45;
  REQUIRE_FALSE(f.clap("alice", "a1", 10, 7, "op-x"));
  f.tick();
  auto* r = f.rec.result(7);
  REQUIRE(r);
  CHECK(r->accepted == 5);
  CHECK(r->mine == 50);
  CHECK(r->total == 45);  // 5 own + 40 remote
  std::int64_t own = 0;
  REQUIRE_FALSE(f.backing.read_total("a1", own));
  CHECK(own == 5);  // the store keeps this node's own part only

  claps::snapshot snap;
  REQUIRE_FALSE(f.eng.subscribe(2, "alice", "a1", true, snap));
  CHECK(snap.total == 45);
  CHECK(snap.viewers == 5);
  CHECK(snap.mine == 50);

  // Undo here removes her 45 claps through other nodes too: this node's
  // register drops to -45, so her claps summed over nodes are 0.
  REQUIRE_FALSE(f.eng.undo({"alice", "a1", "op-u", 8}));
  f.tick();
  r = f.rec.result(8);
  REQUIRE(r);
  CHECK(r->accepted == -50);
  CHECK(r->mine == 0);
  CHECK(r->total == -5);  // -45 own + 40 remote, until the other nodes' new part arrives
  REQUIRE_FALSE(f.backing.read_total("a1", own));
  CHECK(own == -45);
  std::int32_t tally = 0;
  REQUIRE_FALSE(f.backing.read_tally("alice", "a1", tally));
  CHECK(tally == -45);
  // With nothing left anywhere, she may clap the full cap again.
  REQUIRE_FALSE(f.clap("alice", "a1", 50, 9));
  f.tick();
  r = f.rec.result(9);
  REQUIRE(r);
  CHECK(r->accepted == 50);
  CHECK(r->mine == 50);
}

TEST_CASE("op ids from an earlier process are found in the store until one window has passed") {
  claps::memory_store backing;
  faulty_store st(backing);
  // An earlier process committed op "early" for alice shortly before this one started.
  std::vector<claps::op_record> ops{{"alice", "a1", "early", 2, 2, t0() + claps::millis(800)}};
  std::vector<claps::article_total> totals{{"a1", 2}};
  std::vector<claps::user_tally> tallies{{"alice", "a1", 2}};
  backing.commit({totals, tallies, ops, t0()}, [](std::error_code, claps::durability) {});

  recorder rec;
  claps::engine_options o;
  o.op_id_window = claps::millis(1000);
  claps::engine eng(st, o, rec.callbacks(), t0());
  claps::clap_request r;
  r.user = "alice";
  r.article = "a1";
  r.op_id = "early";
  r.cookie = 1;
  REQUIRE_FALSE(eng.clap(r));
  eng.advance(eng.next_deadline());
  REQUIRE(rec.result(1));
  CHECK(rec.result(1)->replayed);
  CHECK(rec.result(1)->accepted == 2);
  int reads = st.op_reads;
  CHECK(reads >= 1);

  // One window later every live op id is this engine's own: new ids skip the store.
  eng.advance(t0() + claps::millis(1500));
  r.op_id = "fresh";
  r.cookie = 2;
  REQUIRE_FALSE(eng.clap(r));
  eng.advance(eng.next_deadline());
  CHECK(st.op_reads == reads);
  CHECK_FALSE(rec.result(2)->replayed);
  r.cookie = 3;  // and a retry of it is still recognised, from memory
  REQUIRE_FALSE(eng.clap(r));
  eng.advance(eng.next_deadline());
  CHECK(rec.result(3)->replayed);
  CHECK(rec.result(3)->accepted == 1);
}

TEST_CASE("a batch in flight keeps valid views while new claps grow the same article") {
  // Regression: batch tallies pointed into tally strings that moved when the
  // article's tallies grew during an asynchronous commit (ASan caught it).
  fixture f;
  f.st.defer = true;
  REQUIRE_FALSE(f.clap("short", "a1", 1, 1));
  f.tick();
  REQUIRE(f.st.holding());
  for (int i = 0; i < 1000; ++i) REQUIRE_FALSE(f.clap("u" + std::to_string(i), "a1", 1, 100 + i));
  f.st.release();  // the deferred store applies the batch's views only now
  std::int32_t claps_of = 0;
  REQUIRE_FALSE(f.backing.read_tally("short", "a1", claps_of));
  CHECK(claps_of == 1);
  f.st.defer = false;
  f.tick();
  CHECK(f.rec.results.size() == 1001);
}

// ---- a store that arbitrates across nodes ----

namespace {

struct arbitrated_fixture {
  claps::memory_store backing;
  arbitrating_store st{backing};
  recorder rec;
  claps::engine eng;

  explicit arbitrated_fixture(claps::engine_options o = {}) : eng(st, o, rec.callbacks(), t0()) {}

  void tick() { eng.advance(eng.next_deadline()); }
  std::error_code clap(std::string_view user, std::string_view article, int count, std::uint64_t cookie,
                       std::string_view op = {}) {
    return eng.clap({user, article, count, op, cookie});
  }
  static claps::op_decision applied(std::int32_t accepted, std::int32_t mine) {
    return {claps::op_decision::kind::applied, accepted, mine};
  }
};

}  // namespace

TEST_CASE(
    "arbitration: a tick's ops go to the store in one call, in order, and its decisions are what counts") {
  arbitrated_fixture f;
  REQUIRE_FALSE(f.clap("alice", "a1", 3, 1, "op-1"));
  REQUIRE_FALSE(f.clap("bob", "a1", 2, 2));
  REQUIRE_FALSE(f.eng.undo({"carol", "a2", {}, 3}));
  CHECK(f.st.calls.empty());  // nothing is decided before the tick
  f.tick();
  REQUIRE(f.st.calls.size() == 1);
  const auto& call = f.st.calls[0];
  REQUIRE(call.size() == 3);
  CHECK(call[0].user == "alice");
  CHECK(call[0].article == "a1");
  CHECK(call[0].op_id == "op-1");
  CHECK(call[0].count == 3);
  CHECK(call[0].own == 0);
  CHECK(call[1].user == "bob");
  CHECK(call[2].undo);
  CHECK(call[2].count == 0);
  CHECK(f.rec.results.empty());

  // Another node holds 48 of alice's claps: the store grants her 2 of 3.
  f.st.remote["alice/a1"] = 48;
  f.st.decide({f.applied(2, 50), f.applied(2, 2), f.applied(0, 0)});
  REQUIRE(f.rec.results.size() == 3);  // committed (memory_store completes at once)
  CHECK(f.rec.result(1)->accepted == 2);
  CHECK(f.rec.result(1)->mine == 50);
  CHECK(f.rec.result(1)->total == 4);
  CHECK_FALSE(f.rec.result(1)->error);
  std::int32_t claps_of = 0;
  REQUIRE_FALSE(f.backing.read_tally("alice", "a1", claps_of));
  CHECK(claps_of == 2);

  // The next op of the pair starts from what the decision left.
  REQUIRE_FALSE(f.clap("alice", "a1", 1, 4));
  f.tick();
  REQUIRE(f.st.calls.size() == 2);
  CHECK(f.st.calls[1][0].own == 2);
  CHECK(f.st.calls[1][0].own_total == 4);
  f.st.decide({f.applied(0, 50)});
  CHECK(f.rec.result(4)->accepted == 0);

  // A retry of a decided op id is answered here, without asking the store.
  REQUIRE_FALSE(f.clap("alice", "a1", 3, 5, "op-1"));
  f.tick();
  CHECK(f.st.calls.size() == 2);
  REQUIRE(f.rec.result(5));
  CHECK(f.rec.result(5)->replayed);
  CHECK(f.rec.result(5)->accepted == 2);
  CHECK(f.eng.idle());
}

TEST_CASE("arbitration: an op id another node applied is replayed and counts nothing here") {
  arbitrated_fixture f;
  REQUIRE_FALSE(f.clap("alice", "a1", 3, 1, "op-1"));
  REQUIRE_FALSE(f.clap("alice", "a1", 3, 2, "op-1"));  // sent again before the decision
  f.tick();
  REQUIRE(f.st.calls.size() == 1);
  CHECK(f.st.calls[0].size() == 1);  // one intent; the second waits for its answer
  f.st.decide({{claps::op_decision::kind::replay, 3, 7}});
  REQUIRE(f.rec.results.size() == 2);
  for (auto& r : f.rec.results) {
    CHECK(r.replayed);
    CHECK(r.accepted == 3);
    CHECK(r.mine == 7);
  }
  std::int64_t total = -1;
  REQUIRE_FALSE(f.backing.read_total("a1", total));
  CHECK(total == 0);
  CHECK(f.eng.stats().replays == 2);
  // The same op id on another article is another op.
  REQUIRE_FALSE(f.clap("alice", "a2", 1, 3, "op-1"));
  f.tick();
  REQUIRE(f.st.calls.size() == 2);
  CHECK(f.st.calls[1][0].article == "a2");
}

TEST_CASE("arbitration: an op id another node is applying is asked again, then refused as unavailable") {
  claps::engine_options o;
  o.op_id_wait = claps::millis(100);
  arbitrated_fixture f(o);
  REQUIRE_FALSE(f.clap("alice", "a1", 3, 1, "op-1"));
  f.tick();
  f.st.decide({{claps::op_decision::kind::retry, 0, 0}});
  CHECK(f.rec.results.empty());
  f.tick();  // asked again
  REQUIRE(f.st.calls.size() == 2);
  CHECK(f.st.calls[1][0].op_id == "op-1");
  f.st.decide({{claps::op_decision::kind::retry, 0, 0}});
  while (f.rec.results.empty()) {
    f.tick();
    REQUIRE(f.st.deciding());
    f.st.decide({{claps::op_decision::kind::retry, 0, 0}});
    REQUIRE(f.st.calls.size() < 20);
  }
  REQUIRE(f.rec.result(1));
  CHECK(f.rec.result(1)->error == errc::unavailable);
  CHECK(f.rec.result(1)->accepted == 0);
  CHECK(f.eng.idle());
  // The client retries the same op id: asked afresh.
  REQUIRE_FALSE(f.clap("alice", "a1", 3, 2, "op-1"));
  f.tick();
  REQUIRE(f.st.deciding());
  f.st.decide({f.applied(3, 3)});
  CHECK(f.rec.result(2)->accepted == 3);
  CHECK_FALSE(f.rec.result(2)->replayed);
}

TEST_CASE("arbitration: with the shared store unreachable, ops are decided here under the step-1 rule") {
  arbitrated_fixture f;
  f.st.reachable = false;
  f.st.remote["alice/a1"] = 45;
  REQUIRE_FALSE(f.clap("alice", "a1", 10, 1, "op-1"));
  f.tick();
  CHECK(f.st.calls.empty());
  REQUIRE(f.rec.result(1));
  CHECK(f.rec.result(1)->accepted == 5);  // the cap minus the last known other part
  CHECK(f.rec.result(1)->mine == 50);
  REQUIRE_FALSE(f.eng.undo({"alice", "a1", {}, 2}));
  f.tick();
  CHECK(f.rec.result(2)->accepted == -50);
}

TEST_CASE("arbitration: the store hears of first and last watchers and of local viewers") {
  arbitrated_fixture f;
  claps::snapshot snap;
  REQUIRE_FALSE(f.eng.subscribe(1, {}, "a1", true, snap));
  CHECK_FALSE(snap.global);                                  // the store has no view of the other nodes yet
  REQUIRE_FALSE(f.eng.subscribe(2, {}, "a1", false, snap));  // not reading: no change
  REQUIRE_FALSE(f.eng.subscribe(3, {}, "a1", true, snap));
  f.eng.unsubscribe(1, "a1");
  f.eng.unsubscribe_all(3);
  f.eng.unsubscribe_all(2);
  REQUIRE(f.st.rooms.size() == 5);
  CHECK((f.st.rooms[0].watched && f.st.rooms[0].viewers == 1));
  CHECK((f.st.rooms[1].watched && f.st.rooms[1].viewers == 2));
  CHECK((f.st.rooms[2].watched && f.st.rooms[2].viewers == 1));
  CHECK((f.st.rooms[3].watched && f.st.rooms[3].viewers == 0));
  CHECK((!f.st.rooms[4].watched && f.st.rooms[4].viewers == 0));  // the last, non-reading one left
  REQUIRE_FALSE(f.eng.subscribe(4, {}, "a2", false, snap));
  f.eng.unsubscribe_all(4);
  CHECK((f.st.rooms.back().article == "a2" && !f.st.rooms.back().watched));
}

TEST_CASE("arbitration: the store reports other nodes' parts through its listener") {
  arbitrated_fixture f;
  claps::snapshot snap;
  REQUIRE_FALSE(f.eng.subscribe(1, {}, "a1", true, snap));
  f.rec.clear();
  REQUIRE_FALSE(f.clap("bob", "a1", 2, 1));
  f.tick();
  f.st.decide({f.applied(2, 2)});
  REQUIRE(f.st.listener);
  f.st.listener->remote_changed("a1", 10, 1);  // as from a Redis reply
  f.tick();
  REQUIRE_FALSE(f.rec.batches[1].empty());
  CHECK(f.rec.batches[1].back()[0].total == 12);
}

TEST_CASE("a subscription over the limit is refused before anything is read from the store") {
  claps::engine_options o;
  o.max_subscriptions = 2;
  fixture f(o);
  f.sub(1, "a1");
  f.sub(1, "a2");
  const int reads = f.st.total_reads;
  std::vector<std::string> names;
  for (int i = 0; i < 100; ++i) names.push_back("new-" + std::to_string(i));
  const std::vector<std::string_view> many(names.begin(), names.end());
  std::vector<claps::snapshot> out;
  CHECK(f.eng.subscribe(1, {}, many, true, out) == errc::too_many_subscriptions);
  claps::snapshot s;
  CHECK(f.eng.subscribe(1, {}, "new-x", true, s) == errc::too_many_subscriptions);
  CHECK(f.st.total_reads == reads);  // the store was not asked for 101 articles
  // Re-subscribing to a watched article still answers.
  CHECK_FALSE(f.eng.subscribe(1, {}, "a1", true, s));
  const std::vector<std::string_view> watched{"a1", "a2", "a1"};
  CHECK_FALSE(f.eng.subscribe(1, {}, watched, true, out));
}

TEST_CASE("a mutating call from inside a callback aborts in every build type") {
  // The child process breaks the rule; the parent sees it die of SIGABRT.
  // Before the check was unconditional, release builds carried on silently.
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    claps::memory_store st;
    claps::engine* self = nullptr;
    claps::engine_callbacks cb;
    cb.result = [&](const claps::op_result&) {
      claps::clap_request again;
      again.user = "u";
      again.article = "a";
      again.count = 1;
      (void)self->clap(again);  // forbidden here
    };
    claps::engine eng(st, {}, cb, t0());
    self = &eng;
    claps::clap_request r;
    r.user = "u";
    r.article = "a";
    r.count = 1;
    (void)eng.clap(r);
    eng.flush(t0());
    _exit(0);  // not reached when the rule is enforced
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
}

TEST_CASE("op ids per user: new ones past the cap are refused, replays still answer, expiry frees room") {
  claps::engine_options o;
  o.max_op_ids_per_user = 3;
  fixture f(o);
  for (int i = 0; i < 3; ++i)
    REQUIRE_FALSE(f.clap("greedy", "a" + std::to_string(i), 1, 1 + i, "op" + std::to_string(i)));
  CHECK(f.clap("greedy", "a9", 1, 9, "op9") == errc::too_many_op_ids);
  CHECK(f.eng.stats().refused_op_ids == 1);
  // Another user, and claps without an op id, are not affected.
  CHECK_FALSE(f.clap("other", "a9", 1, 10, "op9"));
  CHECK_FALSE(f.clap("greedy", "a9", 1, 11));
  f.tick();
  // A replay of a live op id is not a new one: it answers.
  REQUIRE_FALSE(f.clap("greedy", "a0", 1, 12, "op0"));
  f.tick();
  auto* replay = f.rec.result(12);
  REQUIRE(replay != nullptr);
  CHECK(replay->replayed);
  // Once the window passes the user's op ids expire and make room again.
  f.now += o.op_id_window + std::chrono::seconds(1);
  f.eng.advance(f.now);
  CHECK_FALSE(f.clap("greedy", "a9", 1, 13, "op-new"));
}

TEST_CASE("a store short of space: new tallies and new op ids are refused at once, undos and replays pass") {
  fixture f;
  auto undo = [&](std::string_view user, std::string_view article, std::uint64_t cookie,
                  std::string_view op) {
    return f.eng.undo({user, article, op, cookie});
  };
  REQUIRE_FALSE(f.clap("u1", "a1", 3, 1, "op-1"));
  REQUIRE_FALSE(f.clap("u2", "a1", 2, 2, "op-2"));
  f.tick();
  REQUIRE(f.rec.results.size() == 2);
  f.rec.clear();
  const std::size_t records = f.backing.op_count();

  f.st.space_now.accepts_new_keys = false;
  // Would add keys: a new op id (even on an existing tally), a new tally.
  CHECK(f.clap("u3", "a1", 1, 10, "op-3") == errc::store_full);
  CHECK(f.clap("u1", "a1", 1, 11, "op-new") == errc::store_full);
  CHECK(f.clap("u3", "a2", 1, 12) == errc::store_full);
  CHECK(f.eng.stats().refused_store_full == 3);
  CHECK(f.eng.stats().pending_ops == 0);
  // Rewrite nothing new: a replay, a clap without an op id on an existing tally.
  CHECK_FALSE(f.clap("u1", "a1", 3, 13, "op-1"));
  CHECK_FALSE(f.clap("u1", "a1", 1, 14));
  // Undos always pass; one that removes nothing records no op id.
  CHECK_FALSE(undo("u2", "a1", 15, "undo-2"));
  CHECK_FALSE(undo("u9", "a1", 16, "undo-9"));
  f.tick();

  std::map<std::uint64_t, recorded_result> by_cookie;
  for (const auto& r : f.rec.results) by_cookie.emplace(r.cookie, r);
  CHECK(f.rec.results.size() == 4);  // exactly one result per op that was not refused
  for (std::uint64_t refused : {10, 11, 12}) CHECK(by_cookie.count(refused) == 0);
  CHECK(by_cookie.at(13).replayed);
  CHECK(by_cookie.at(14).accepted == 1);
  CHECK(by_cookie.at(14).mine == 4);
  CHECK(by_cookie.at(15).accepted == -2);
  CHECK(by_cookie.at(16).accepted == 0);
  CHECK(f.backing.op_count() == records + 1);  // undo-2 only
  std::int32_t tally = -1;
  REQUIRE_FALSE(f.backing.read_tally("u3", "a2", tally));
  CHECK(tally == 0);

  // Room again: the same op is accepted.
  f.st.space_now.accepts_new_keys = true;
  CHECK_FALSE(f.clap("u3", "a1", 1, 20, "op-3"));
  f.tick();
  CHECK(f.rec.results.back().accepted == 1);
}

TEST_CASE("a store short of space gets an empty batch on every tick that has nothing else to commit") {
  fixture f;
  REQUIRE_FALSE(f.clap("u1", "a1", 1, 1, "op-1"));
  f.tick();
  f.tick();
  CHECK(f.st.empty_commits == 0);  // a healthy store is not asked to commit nothing

  f.st.space_now.accepts_new_keys = false;
  const int attempted = f.st.commits_attempted;
  f.tick();
  f.tick();
  f.tick();
  CHECK(f.st.empty_commits == 3);
  CHECK(f.st.commits_attempted == attempted + 3);
  CHECK_FALSE(f.eng.store_error());
  CHECK(f.eng.idle());

  // A tick with something to commit commits that, and nothing else.
  REQUIRE_FALSE(f.clap("u1", "a1", 1, 2));
  f.tick();
  CHECK(f.st.empty_commits == 3);
  CHECK(f.st.commits_attempted == attempted + 4);

  f.st.space_now.accepts_new_keys = true;
  f.tick();
  CHECK(f.st.commits_attempted == attempted + 4);
}

TEST_CASE(
    "sliced deliveries: subscribers reached after a newer commit get the newer total, once per emission") {
  for (const bool by_slices : {false, true}) {
    CAPTURE(by_slices);
    claps::engine_options o;
    o.deliveries_per_slice = 2;
    fixture f(o, by_slices);
    for (claps::subscriber_id s = 1; s <= 5; ++s) f.sub(s, "a1");
    f.eng.flush(f.now);  // the viewer-count round, delivered whole
    CHECK_FALSE(f.eng.delivering());
    f.rec.clear();

    REQUIRE_FALSE(f.clap("u1", "a1", 1, 1));
    f.tick();  // commits total 1; the first slice reaches two subscribers
    CHECK(f.rec.batches.size() == 2);
    CHECK(f.eng.delivering());
    CHECK(f.eng.next_deadline() == f.now);  // the caller comes back at once

    REQUIRE_FALSE(f.clap("u2", "a1", 1, 2));
    f.now += o.tick;
    f.eng.advance(f.now);  // the next tick commits total 2: the round goes on with it
    while (f.eng.delivering()) f.tick();

    for (claps::subscriber_id s = 1; s <= 5; ++s) {
      const auto& got = f.rec.batches[s];
      REQUIRE(!got.empty());
      CHECK(got.back()[0].total == 2);  // everyone ends on the newest total
      for (const auto& batch : got) CHECK(batch.size() == 1);
      CHECK(got.size() <= 2);  // at most once per emission
    }
    // Those the first slice did not reach never saw the older total.
    int saw_one = 0;
    for (auto& [sub, got] : f.rec.batches)
      if (got.front()[0].total == 1) ++saw_one;
    CHECK(saw_one == 2);
    CHECK(f.rec.results.size() == 2);
    if (by_slices) {
      CHECK(!f.rec.slice_sizes.empty());
      for (std::size_t n : f.rec.slice_sizes) CHECK(n <= 2);
    }
  }
}

TEST_CASE(
    "sliced deliveries: a subscriber that leaves while queued is skipped, and its slot's new owner is served once") {
  claps::engine_options o;
  o.deliveries_per_slice = 1;
  fixture f(o);
  f.sub(1, "a1");
  f.sub(2, "a1");
  f.sub(3, "a1");
  f.eng.flush(f.now);
  f.rec.clear();
  REQUIRE_FALSE(f.clap("u1", "a1", 3, 1));
  f.tick();
  REQUIRE(f.rec.batches.size() == 1);
  f.eng.unsubscribe_all(2);
  f.sub(4, "a1");  // may take subscriber 2's slot
  f.now += o.tick;
  REQUIRE_FALSE(f.clap("u2", "a1", 1, 2));
  f.eng.advance(f.now);
  while (f.eng.delivering()) f.tick();
  CHECK(f.rec.batches.count(2) == 0);
  REQUIRE(f.rec.batches.count(4) == 1);
  CHECK(f.rec.batches[4].size() == 1);
  CHECK(f.rec.batches[4].back()[0].total == 4);
  CHECK(f.rec.batches[3].back()[0].total == 4);
  CHECK(f.eng.stats().deliveries_queued == 0);
}

TEST_CASE("hot rooms: viewer-count-only changes go out at most once per interval; total changes at once") {
  claps::engine_options o;
  o.viewer_update_interval = claps::millis(1000);
  o.viewer_throttle_min_room = 3;
  fixture f(o);
  f.sub(1, "hot");
  f.sub(2, "hot");
  f.sub(5, "hot");
  f.sub(9, "small");
  f.tick();
  REQUIRE(f.rec.batches[1].size() == 1);
  CHECK(f.rec.batches[1][0][0].viewers == 3);
  REQUIRE(f.rec.batches[9].size() == 1);

  f.rec.clear();
  f.sub(3, "hot");     // only the viewer count moves: held
  f.sub(10, "small");  // a small room is not throttled
  f.tick();
  CHECK(f.rec.batches.count(1) == 0);
  CHECK(f.rec.batches.count(3) == 0);
  CHECK(f.rec.batches[9].back()[0].viewers == 2);
  CHECK(f.eng.stats().viewer_changes_held >= 1);

  REQUIRE_FALSE(f.clap("u1", "hot", 1, 1));  // the total moves: out at once, with the viewers
  f.tick();
  REQUIRE(f.rec.batches[3].size() == 1);
  CHECK(f.rec.batches[3][0][0].total == 1);
  CHECK(f.rec.batches[3][0][0].viewers == 4);

  f.rec.clear();
  f.sub(4, "hot");
  const claps::timestamp joined = f.now;
  while (f.rec.batches.count(1) == 0) {
    f.tick();
    REQUIRE(f.now <= joined + claps::millis(1100));
  }
  CHECK(f.now >= joined + claps::millis(975));  // one interval after the last update went out
  CHECK(f.rec.batches[1].back()[0].viewers == 5);
}

// ---- op ids in memory: the op table ----

TEST_CASE("op ids: ids that differ only in where user, article and op id split are different ops") {
  fixture f;
  // '/' is outside the id alphabet, so "ab"+"c"+"d" and "a"+"bc"+"d" never share a key.
  REQUIRE_FALSE(f.clap("ab", "c", 1, 1, "d"));
  REQUIRE_FALSE(f.clap("a", "bc", 1, 2, "d"));
  REQUIRE_FALSE(f.clap("a", "b", 1, 3, "cd"));
  REQUIRE_FALSE(f.clap("a", "bcd", 1, 4, "x"));
  REQUIRE_FALSE(f.clap("a", "b", 1, 5, "c.d"));
  REQUIRE_FALSE(f.clap("a.b", "c", 1, 6, "d"));
  // The same op id for another user or article is another op too.
  REQUIRE_FALSE(f.clap("b", "c", 1, 7, "d"));
  REQUIRE_FALSE(f.clap("ab", "c2", 1, 8, "d"));
  f.tick();
  REQUIRE(f.rec.results.size() == 8);
  for (const auto& r : f.rec.results) {
    CHECK_FALSE(r.replayed);
    CHECK(r.accepted == 1);
  }
  CHECK(f.backing.op_count() == 8);
  // Each one, sent again, replays only itself.
  REQUIRE_FALSE(f.clap("a", "bc", 1, 12, "d"));
  REQUIRE_FALSE(f.clap("a", "b", 1, 13, "cd"));
  f.tick();
  CHECK(f.rec.result(12)->replayed);
  CHECK(f.rec.result(12)->article == "bc");
  CHECK(f.rec.result(13)->replayed);
  CHECK(f.rec.result(13)->mine == 1);  // as when it was made (before "c.d")
  CHECK(f.eng.stats().replays == 2);
}

TEST_CASE("op ids: many made, replayed and expired over many ticks answer like a model") {
  claps::engine_options o;
  o.op_id_window = claps::millis(400);
  o.max_op_ids_per_user = 0;
  fixture f(o);
  struct made {
    std::string user, article;
    std::int32_t accepted, mine;
    claps::timestamp at;
  };
  std::map<std::string, made> model;  // "user/article/op" -> first result
  std::map<std::string, std::int32_t> tallies;
  std::map<std::uint64_t, std::pair<std::string, bool>> sent;  // cookie -> key, expected replay
  std::mt19937 rng(7);
  std::uint64_t cookie = 0;
  std::vector<std::string> keys;
  for (int tick = 0; tick < 60; ++tick) {
    for (int i = 0; i < 40; ++i) {
      std::string user = "u" + std::to_string(rng() % 5), article = "a" + std::to_string(rng() % 4);
      std::string op = "op" + std::to_string(rng() % 200);
      // Sometimes send a recent key again, sometimes one that may have expired.
      if (!keys.empty() && rng() % 3 == 0) {
        const std::string& k = keys[rng() % keys.size()];
        const auto s1 = k.find('/'), s2 = k.find('/', s1 + 1);
        user = k.substr(0, s1);
        article = k.substr(s1 + 1, s2 - s1 - 1);
        op = k.substr(s2 + 1);
      }
      const std::string key = user + "/" + article + "/" + op;
      auto it = model.find(key);
      const bool live = it != model.end() && it->second.at + o.op_id_window > f.now;
      ++cookie;
      REQUIRE_FALSE(f.clap(user, article, 1, cookie, op));
      sent[cookie] = {key, live};
      if (!live) {
        std::int32_t& t = tallies[user + "/" + article];
        const std::int32_t accepted = std::min(1, 50 - t);
        t += accepted;
        model[key] = {user, article, accepted, t, f.now};
        keys.push_back(key);
      }
    }
    f.tick();
  }
  f.tick();
  REQUIRE(f.rec.results.size() == sent.size());
  std::size_t replays = 0;
  for (const auto& r : f.rec.results) {
    const auto& [key, replay] = sent.at(r.cookie);
    CHECK(r.replayed == replay);
    replays += replay;
    if (!replay) continue;
    // A replay repeats the result the op id had when it was made.
    bool matched = false;
    for (const auto& first : f.rec.results)
      if (!first.replayed && sent.at(first.cookie).first == key && first.cookie < r.cookie &&
          first.accepted == r.accepted && first.mine == r.mine)
        matched = true;
    CHECK(matched);
  }
  CHECK(replays > 100);
  CHECK(f.eng.stats().replays == replays);
  CHECK(f.eng.stats().ops_purged > 100);
  CHECK(f.st.op_reads == 0);  // a fresh store: nothing to ask
}

TEST_CASE("op ids: reusing an expired op id makes a new op, and the user's count follows") {
  claps::engine_options o;
  o.op_id_window = claps::millis(1000);
  o.max_op_ids_per_user = 2;
  fixture f(o);
  REQUIRE_FALSE(f.clap("alice", "a1", 1, 1, "op-1"));
  REQUIRE_FALSE(f.clap("alice", "a1", 1, 2, "op-2"));
  CHECK(f.clap("alice", "a1", 1, 3, "op-3") == errc::too_many_op_ids);
  f.tick();
  // A commit held in flight keeps the purge from running.
  f.st.defer = true;
  REQUIRE_FALSE(f.clap("bob", "a1", 1, 20));
  f.tick();
  REQUIRE(f.st.holding());
  f.now += claps::millis(1500);
  f.eng.advance(f.now);
  // Past the window, before any purge: op-1 again is new and replaces the
  // expired record (the user still holds two op ids, not three).
  REQUIRE_FALSE(f.clap("alice", "a1", 1, 4, "op-1"));
  CHECK(f.clap("alice", "a1", 1, 5, "op-3") == errc::too_many_op_ids);
  f.st.defer = false;
  f.st.release();
  f.tick();
  CHECK_FALSE(f.rec.result(4)->replayed);
  CHECK(f.rec.result(4)->mine == 3);
  // The purge removed op-2 and the hole op-1 left: room for one more.
  REQUIRE_FALSE(f.clap("alice", "a1", 1, 6, "op-3"));
  REQUIRE_FALSE(f.clap("alice", "a1", 1, 7, "op-1"));  // still live: a replay
  f.tick();
  CHECK(f.rec.result(6)->mine == 4);
  CHECK(f.rec.result(7)->replayed);
  CHECK(f.rec.result(7)->mine == 3);
  CHECK(f.clap("alice", "a1", 1, 8, "op-4") == errc::too_many_op_ids);
}

TEST_CASE("op ids dropped from memory past op_id_cache are answered by the store until they expire") {
  claps::engine_options o;
  o.op_id_cache = 3;
  o.op_id_window = claps::millis(5000);
  fixture f(o);
  for (int i = 0; i < 6; ++i) REQUIRE_FALSE(f.clap("u" + std::to_string(i), "a1", 2, 1 + i, "op"));
  f.tick();  // committed, then the three oldest dropped
  CHECK(f.eng.stats().ops_purged == 3);
  CHECK(f.st.op_reads == 0);
  REQUIRE_FALSE(f.clap("u0", "a1", 2, 10, "op"));  // dropped: the store answers
  REQUIRE_FALSE(f.clap("u5", "a1", 2, 11, "op"));  // still in memory
  REQUIRE_FALSE(f.clap("u9", "a1", 2, 12, "op"));  // new: asked too, while dropped ids may be live
  f.tick();
  CHECK(f.st.op_reads == 2);
  CHECK(f.rec.result(10)->replayed);
  CHECK(f.rec.result(10)->accepted == 2);
  CHECK(f.rec.result(11)->replayed);
  CHECK_FALSE(f.rec.result(12)->replayed);
  // Once the dropped ones have expired, a miss in memory is a miss.
  f.now += claps::millis(6000);
  f.eng.advance(f.now);
  const int reads = f.st.op_reads;
  REQUIRE_FALSE(f.clap("u7", "a1", 1, 13, "op"));
  f.tick();
  CHECK(f.st.op_reads == reads);
  CHECK_FALSE(f.rec.result(13)->replayed);
}

namespace {

// A store that cannot say when its op records expire (store's default).
class opaque_store final : public claps::store {
public:
  explicit opaque_store(claps::store& inner) : inner_(inner) {}
  int op_reads = 0;
  std::error_code read_total(std::string_view a, std::int64_t& t) override { return inner_.read_total(a, t); }
  std::error_code read_tally(std::string_view u, std::string_view a, std::int32_t& c) override {
    return inner_.read_tally(u, a, c);
  }
  std::error_code read_op(std::string_view u, std::string_view a, std::string_view o, claps::stored_op& out,
                          bool& found) override {
    ++op_reads;
    return inner_.read_op(u, a, o, out, found);
  }
  void commit(const claps::commit_batch& batch, claps::commit_handler done) override {
    inner_.commit(batch, done);
  }

private:
  claps::store& inner_;
};

}  // namespace

TEST_CASE("store lookups of new op ids: skipped with a fresh store, made while its records may be live") {
  SUBCASE("a fresh store holds no op records: never asked") {
    fixture f;
    for (int i = 0; i < 10; ++i) REQUIRE_FALSE(f.clap("alice", "a1", 1, 1 + i, "op" + std::to_string(i)));
    f.tick();
    CHECK(f.st.op_reads == 0);
    CHECK(f.rec.results.size() == 10);
  }
  SUBCASE("a store holding records is asked until the latest of them expires") {
    claps::memory_store backing;
    std::vector<claps::op_record> ops{{"alice", "a1", "old", 3, 3, t0() + claps::millis(500)},
                                      {"bob", "a1", "old", 1, 1, t0() + claps::millis(200)}};
    backing.commit({{}, {}, ops, t0()}, [](std::error_code, claps::durability) {});
    faulty_store st(backing);
    recorder rec;
    claps::engine eng(st, {}, rec.callbacks(), t0());  // a window of 15 minutes: the store's word is shorter
    REQUIRE_FALSE(eng.clap({"alice", "a1", 1, "old", 1}));
    REQUIRE_FALSE(eng.clap({"alice", "a1", 1, "new", 2}));
    eng.advance(t0() + claps::millis(100));
    CHECK(st.op_reads == 2);
    CHECK(rec.result(1)->replayed);
    CHECK(rec.result(1)->accepted == 3);
    CHECK_FALSE(rec.result(2)->replayed);
    eng.advance(t0() + claps::millis(600));
    REQUIRE_FALSE(eng.clap({"alice", "a1", 1, "newer", 3}));
    eng.flush(t0() + claps::millis(700));
    CHECK(st.op_reads == 2);
    CHECK_FALSE(rec.result(3)->replayed);
  }
  SUBCASE("a store that cannot tell is asked for one window") {
    claps::memory_store backing;
    opaque_store st(backing);
    recorder rec;
    claps::engine_options o;
    o.op_id_window = claps::millis(1000);
    claps::engine eng(st, o, rec.callbacks(), t0());
    REQUIRE_FALSE(eng.clap({"alice", "a1", 1, "op-1", 1}));
    eng.advance(t0() + claps::millis(100));
    CHECK(st.op_reads == 1);
    eng.advance(t0() + claps::millis(1100));
    REQUIRE_FALSE(eng.clap({"alice", "a1", 1, "op-2", 2}));
    eng.flush(t0() + claps::millis(1200));
    CHECK(st.op_reads == 1);
  }
}

TEST_CASE("op records of a failed commit are committed later with their own user, article and op id") {
  fixture f;
  f.st.fail_next = 1;
  REQUIRE_FALSE(f.clap("alice", "a1", 2, 1, "op-a"));
  REQUIRE_FALSE(f.clap("bob", "article-2", 3, 2, "op-b"));
  f.tick();  // fails: everything is queued again
  CHECK(f.rec.results.empty());
  REQUIRE_FALSE(f.clap("carol", "a1", 1, 3, "op-c"));
  REQUIRE_FALSE(f.clap("alice", "a1", 1, 4, "op-a"));  // a retry meanwhile: the same answer
  f.tick();
  REQUIRE(f.rec.results.size() == 4);
  CHECK(f.rec.result(4)->replayed);
  CHECK(f.rec.result(4)->accepted == 2);
  claps::stored_op rec;
  bool found = false;
  REQUIRE_FALSE(f.backing.read_op("alice", "a1", "op-a", rec, found));
  CHECK(found);
  CHECK(rec.accepted == 2);
  REQUIRE_FALSE(f.backing.read_op("bob", "article-2", "op-b", rec, found));
  CHECK(found);
  CHECK(rec.mine == 3);
  REQUIRE_FALSE(f.backing.read_op("carol", "a1", "op-c", rec, found));
  CHECK(found);
  CHECK(f.backing.op_count() == 3);
}

TEST_CASE("readers who never clap leave no per-user state behind (issue 12)") {
  fixture f;
  REQUIRE_FALSE(f.clap("clapper", "a1", 5, 1));
  f.tick();
  const std::size_t tallies = f.eng.stats().tallies_cached;
  CHECK(tallies == 1);
  for (int i = 0; i < 1000; ++i) {
    const std::string user = "reader-" + std::to_string(i);
    const std::string_view list[] = {"a1", "a2"};
    std::vector<claps::snapshot> snaps;
    REQUIRE_FALSE(f.eng.subscribe(static_cast<claps::subscriber_id>(i + 1), user, list, true, snaps));
    REQUIRE(snaps.size() == 2);
    CHECK(snaps[0].mine == 0);
    f.eng.unsubscribe_all(static_cast<claps::subscriber_id>(i + 1));
    claps::snapshot read;
    REQUIRE_FALSE(f.eng.read(user, "a2", read));
  }
  f.tick();
  const claps::engine_stats s = f.eng.stats();
  CHECK(s.tallies_cached == tallies);
  CHECK(s.subscribers == 0);
  CHECK(s.subscriptions == 0);
  // The clapper's snapshot still counts their claps, cached or not.
  CHECK(f.sub(5000, "a1", true, "clapper").mine == 5);
}

TEST_CASE("a snapshot's mine comes from the store once the tally was evicted, and caches nothing") {
  claps::engine_options o;
  o.tally_cache = 3;
  fixture f(o);
  REQUIRE_FALSE(f.clap("u1", "a1", 7, 1));
  f.tick();
  for (int i = 0; i < 4; ++i) REQUIRE_FALSE(f.clap("other" + std::to_string(i), "a1", 1, 10 + i));
  f.tick();
  f.tick();
  CHECK(f.eng.stats().tallies_cached == 0);  // past tally_cache: all clean tallies dropped
  CHECK(f.sub(1, "a1", true, "u1").mine == 7);
  CHECK(f.eng.stats().tallies_cached == 0);
  // The cap still holds through the store: 43 more, not 50.
  REQUIRE_FALSE(f.clap("u1", "a1", 50, 2));
  f.tick();
  CHECK(f.rec.result(2)->accepted == 43);
  CHECK(f.rec.result(2)->mine == 50);
}

TEST_CASE("the tally cache stays within tally_cache however many users clap") {
  claps::engine_options o;
  o.tally_cache = 100;
  fixture f(o);
  std::size_t most = 0;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < 40; ++i) {
      const int n = round * 40 + i;
      REQUIRE_FALSE(f.clap("user-" + std::to_string(n), "a" + std::to_string(n % 3), 1,
                           static_cast<std::uint64_t>(n + 1)));
    }
    f.tick();
    most = std::max(most, f.eng.stats().tallies_cached);
  }
  // Between ticks it never holds more than the bound (plus one tick's new tallies).
  CHECK(most <= o.tally_cache + 40);
  CHECK(f.eng.stats().tallies_cached <= o.tally_cache);
  CHECK(f.eng.stats().claps_accepted == 2000);
}
