#include <claps/memory_store.hpp>

#include <doctest/doctest.h>

#include <vector>

TEST_CASE("memory_store applies a batch and reads it back") {
  claps::memory_store st;
  std::int64_t total = -1;
  std::int32_t claps_of = -1;
  REQUIRE_FALSE(st.read_total("a1", total));
  CHECK(total == 0);
  claps::timestamp now(claps::millis(1000));
  std::vector<claps::article_total> totals{{"a1", 7}};
  std::vector<claps::user_tally> tallies{{"alice", "a1", 7}};
  std::vector<claps::op_record> ops{{"alice", "a1", "op1", 7, 7, now + claps::millis(10)}};
  bool called = false;
  st.commit({totals, tallies, ops, now}, [&](std::error_code ec, claps::durability) {
    CHECK_FALSE(ec);
    called = true;
  });
  CHECK(called);
  REQUIRE_FALSE(st.read_total("a1", total));
  CHECK(total == 7);
  REQUIRE_FALSE(st.read_tally("alice", "a1", claps_of));
  CHECK(claps_of == 7);
  claps::stored_op rec;
  bool found = false;
  REQUIRE_FALSE(st.read_op("alice", "a1", "op1", rec, found));
  CHECK(found);
  CHECK(rec.accepted == 7);

  // A zero tally is deleted; expired ops are purged by a later commit.
  std::vector<claps::user_tally> zero{{"alice", "a1", 0}};
  st.commit({{}, zero, {}, now + claps::millis(20)}, [](std::error_code, claps::durability) {});
  REQUIRE_FALSE(st.read_tally("alice", "a1", claps_of));
  CHECK(claps_of == 0);
  CHECK(st.op_count() == 0);
  CHECK(st.commits() == 2);
}

TEST_CASE("memory_store tells when the op records it holds expire") {
  claps::memory_store st;
  claps::timestamp by;
  REQUIRE(st.op_records_expire_by(by));
  CHECK(by == claps::timestamp::min());
  claps::timestamp now(claps::millis(1000));
  std::vector<claps::op_record> ops{{"alice", "a1", "op1", 1, 1, now + claps::millis(30)},
                                    {"bob", "a1", "op1", 1, 1, now + claps::millis(10)}};
  st.commit({{}, {}, ops, now}, [](std::error_code, claps::durability) {});
  REQUIRE(st.op_records_expire_by(by));
  CHECK(by == now + claps::millis(30));
  st.commit({{}, {}, {}, now + claps::millis(40)}, [](std::error_code, claps::durability) {});
  REQUIRE(st.op_records_expire_by(by));
  CHECK(by == claps::timestamp::min());
}
