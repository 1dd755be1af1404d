// The Redis address parsers: no server needed, so they run in every build
// that has claps::redis, the sanitizer one included.
#include <claps/redis.hpp>

#include <doctest/doctest.h>

TEST_CASE("redis:// URLs and sentinel lists parse, bad ones are refused") {
  claps::redis_options o;
  REQUIRE(!claps::parse_redis_url("redis://:s3cret@10.0.0.5:6380/2", o));
  CHECK(o.address.host == "10.0.0.5");
  CHECK(o.address.port == 6380);
  CHECK(o.password == "s3cret");
  CHECK(o.username.empty());
  CHECK(o.database == 2);
  REQUIRE(!claps::parse_redis_url("redis://app:pw@[::1]:7000", o));
  CHECK(o.address.host == "::1");
  CHECK(o.username == "app");
  REQUIRE(!claps::parse_redis_url("redis://localhost", o));
  CHECK(o.address.port == 6379);
  CHECK(o.password.empty());
  CHECK(claps::parse_redis_url("http://localhost:6379", o));
  CHECK(claps::parse_redis_url("redis://host:99999", o));
  CHECK(claps::parse_redis_url("redis://:@host", o));
  REQUIRE(!claps::parse_redis_sentinels("127.0.0.1:26379,h2", "mymaster", o));
  REQUIRE(o.sentinels.size() == 2);
  CHECK(o.sentinels[1].port == 26379);
  CHECK(claps::parse_redis_sentinels("a:1,", "m", o));
  CHECK(claps::parse_redis_sentinels("a:1", "", o));
}

TEST_CASE("cluster seed lists parse, bad ones are refused and change nothing") {
  claps::redis_options o;
  REQUIRE(!claps::parse_redis_cluster("127.0.0.1:7000,redis-b:7001,redis-c", o));
  REQUIRE(o.cluster.size() == 3);
  CHECK(o.cluster[0].host == "127.0.0.1");
  CHECK(o.cluster[0].port == 7000);
  CHECK(o.cluster[1].host == "redis-b");
  CHECK(o.cluster[1].port == 7001);
  CHECK(o.cluster[2].port == 6379);
  REQUIRE(!claps::parse_redis_cluster("[::1]:7002", o));
  REQUIRE(o.cluster.size() == 1);
  CHECK(o.cluster[0].host == "::1");
  for (const char* bad : {"", ",", "a:1,", ",a:1", "a:0", "a:65536", "a:x", ":7000", "a:1,,b:2"}) {
    CAPTURE(bad);
    CHECK(claps::parse_redis_cluster(bad, o));
    CHECK(o.cluster.size() == 1);
  }
}

// The specification's values (the cluster spec's CRC16 section and its hash
// tag examples) and what `redis-cli CLUSTER KEYSLOT` answered on 7.0.15.
TEST_CASE("key slots follow CRC16/XMODEM mod 16384 and the hash tag rule") {
  CHECK(claps::redis_key_slot("123456789") == 0x31C3);  // the CRC16/XMODEM check value
  CHECK(claps::redis_key_slot("foo") == 12182);
  CHECK(claps::redis_key_slot("user1000") == 3443);
  CHECK(claps::redis_key_slot("{user1000}.following") == 3443);
  CHECK(claps::redis_key_slot("{user1000}.followers") == 3443);
  CHECK(claps::redis_key_slot("foo{}{bar}") == claps::redis_key_slot("foo{}{bar}"));
  CHECK(claps::redis_key_slot("foo{{bar}}zap") == claps::redis_key_slot("{bar"));
  CHECK(claps::redis_key_slot("foo{bar}{zap}") == claps::redis_key_slot("bar"));
  CHECK(claps::redis_key_slot("claps:t:{a1}") == claps::redis_key_slot("claps:ch:{a1}"));
  CHECK(claps::redis_key_slot("") == 0);
}
