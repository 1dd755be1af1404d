// The admin page's numbers (server/src/admin_stats.hpp): hot articles,
// commit-latency percentiles over a window, and the admin frame itself.
#include "admin_stats.hpp"

#include <doctest/doctest.h>
#include <simdjson.h>

#include <string>
#include <vector>

using namespace claps::server;

TEST_CASE("article_watch: top by viewers and by claps/s, idle articles forgotten") {
  article_watch watch(100, 5000);
  const std::vector<claps::article_update> tick{{"a", 10, 3, {}, 1}, {"b", 50, 7, {}, 7}, {"c", 0, 0, {}, 0}};
  watch.observe(tick, 1000);
  watch.accepted("a", 4, 14, 1200);
  watch.accepted("c", 2, 2, 1300);
  watch.accepted("c", -1, 1, 1400);  // an undo adds no claps
  watch.sample(2000);                // the first sample counts as one second
  const auto viewers = watch.top_by_viewers(10);
  REQUIRE(viewers.size() == 2);
  CHECK(viewers[0].article == "b");
  CHECK(viewers[1].article == "a");
  CHECK(viewers[1].local_viewers == 1);
  CHECK(viewers[1].total == 14);
  const auto claps = watch.top_by_claps(1);
  REQUIRE(claps.size() == 1);
  CHECK(claps[0].article == "a");
  CHECK(claps[0].claps_per_s == doctest::Approx(4.0));
  watch.accepted("c", 6, 8, 2100);
  watch.sample(4000);  // two seconds
  CHECK(watch.top_by_claps(10).at(0).claps_per_s == doctest::Approx(3.0));
  CHECK(watch.size() == 3);
  watch.sample(9500);  // c: no viewers, no claps for 5 s
  CHECK(watch.size() == 2);
  CHECK(watch.top_by_claps(10).empty());
}

TEST_CASE("article_watch: a room that empties shows no local viewers (the engine emits nothing for it)") {
  article_watch watch;
  watch.room_changed("quiet", false, 0, 100);  // unknown and empty: not listed
  CHECK(watch.size() == 0);
  const std::vector<claps::article_update> tick{{"r", 5, 4, {}, 1}};  // 3 readers elsewhere
  watch.observe(tick, 100);
  watch.room_changed("r", true, 2, 200);
  CHECK(watch.top_by_viewers(1).at(0).viewers == 5);
  watch.room_changed("r", false, 0, 300);
  const auto top = watch.top_by_viewers(1);
  REQUIRE(top.size() == 1);
  CHECK(top[0].viewers == 3);
  CHECK(top[0].local_viewers == 0);
}

TEST_CASE("article_watch: a full watch makes room by dropping the idlest") {
  article_watch watch(2, 60000);
  watch.accepted("old", 1, 1, 100);
  watch.accepted("mid", 1, 1, 200);
  watch.accepted("new", 1, 1, 300);
  CHECK(watch.size() == 2);
  watch.sample(1000);
  std::vector<std::string> ids;
  for (const auto& a : watch.top_by_claps(10)) ids.push_back(a.article);
  CHECK(ids == std::vector<std::string>{"mid", "new"});
}

TEST_CASE("latency: percentiles are bucket bounds over the window only") {
  commit_latency_histogram h;
  latency_window window(2);
  window.sample(h);
  CHECK(!window.summary().p50_ms);
  for (int i = 0; i < 98; ++i) h.observe(0.0008);  // the 1 ms bucket
  h.observe(0.2);                                  // 250 ms
  h.observe(9.0);                                  // past the last bound
  window.sample(h);
  auto s = window.summary();
  CHECK(s.count == 100);
  CHECK(*s.p50_ms == doctest::Approx(1.0));
  CHECK(*s.p99_ms == doctest::Approx(250.0));
  CHECK(*s.avg_ms == doctest::Approx((98 * 0.8 + 200 + 9000) / 100.0));
  h.observe(0.004);
  window.sample(h);
  window.sample(h);  // the window (2 samples back) no longer holds the first 100
  s = window.summary();
  CHECK(s.count == 1);
  CHECK(*s.p99_ms == doctest::Approx(5.0));
}

TEST_CASE("the admin frame is JSON with every section") {
  admin_snapshot s;
  s.node_id = "n\"1";
  s.ws = 3;
  s.admin = 1;
  s.metrics.refuse(refusal::per_user);
  s.metrics.reject(clap_rejection::rate_limited);
  s.metrics.slow_client_drops = 2;
  s.by_viewers = {{"a", 9, 5, 2, 1.5}};
  s.redis = redis_state{true, true, true, false, true, 3, 12, {}};
  s.redis->nodes = {{"n\"1", true, 1200, true, 7, 2, 1}, {"n2", false, std::nullopt, false, -3, 0, 4}};
  s.tick_duration = latency_summary{4, 0.25, 1.0, 0.4};
  const std::string text = render_admin_frame(s);
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  REQUIRE(parser.parse(text).get(doc) == simdjson::SUCCESS);
  CHECK(std::string_view(doc["type"]) == "admin");
  CHECK(std::string_view(doc["node"]) == "n\"1");
  CHECK(bool(doc["degraded"]));
  CHECK(uint64_t(doc["connections"]["ws"]) == 3);
  CHECK(uint64_t(doc["limits"]["per_user"]) == 1);
  CHECK(uint64_t(doc["limits"]["claps_rate_limited"]) == 1);
  CHECK(uint64_t(doc["clients"]["slow_ws_closed"]) == 2);
  simdjson::dom::element top = doc["articles"]["by_viewers"].at(0);
  CHECK(uint64_t(top["remote_viewers"]) == 3);
  CHECK(double(top["claps_per_s"]) == doctest::Approx(1.5));
  CHECK(doc["engine"]["commit_latency"]["p50_ms"].is_null());
  CHECK(bool(doc["redis"]["walking_journal"]));
  CHECK(uint64_t(doc["redis"]["masters"]) == 3);
  CHECK(uint64_t(doc["engine"]["tick_duration"]["count"]) == 4);
  CHECK(double(doc["engine"]["tick_duration"]["p99_ms"]) == doctest::Approx(1.0));
  simdjson::dom::array nodes = doc["redis"]["nodes"];
  REQUIRE(nodes.size() == 2);
  simdjson::dom::element self = nodes.at(0), other = nodes.at(1);
  CHECK(std::string_view(self["id"]) == "n\"1");
  CHECK(bool(self["self"]));
  CHECK(bool(self["live"]));
  CHECK(uint64_t(self["heartbeat_age_ms"]) == 1200);
  CHECK(uint64_t(self["viewers"]) == 2);
  CHECK(int64_t(self["total"]) == 7);
  CHECK(!bool(other["live"]));
  CHECK(other["heartbeat_age_ms"].is_null());
  CHECK(int64_t(other["total"]) == -3);
  CHECK(uint64_t(other["articles"]) == 4);
  s.redis.reset();
  REQUIRE(parser.parse(render_admin_frame(s)).get(doc) == simdjson::SUCCESS);
  CHECK(doc["redis"].is_null());
  CHECK(!bool(doc["degraded"]));
}
