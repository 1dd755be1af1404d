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
