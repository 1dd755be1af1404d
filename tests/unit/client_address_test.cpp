// clapsd's client address rules (server/src/client_address.hpp): parsing,
// ranges, and how far X-Forwarded-For is believed.
#include "client_address.hpp"

#include <doctest/doctest.h>

#include <vector>

using namespace claps::server;

namespace {
ip_address ip(const char* text) {
  auto a = parse_ip(text);
  REQUIRE(a.has_value());
  return *a;
}
ip_range range(const char* text) {
  auto r = parse_ip_range(text);
  REQUIRE(r.has_value());
  return *r;
}
}  // namespace

TEST_CASE("addresses: IPv4, IPv6, mapped IPv4 and brackets; nothing else") {
  CHECK(ip("192.0.2.7").to_string() == "192.0.2.7");
  CHECK(ip("::ffff:192.0.2.7") == ip("192.0.2.7"));
  CHECK(ip("[2001:db8::1]").to_string() == "2001:db8::1");
  CHECK(ip(" 10.1.2.3 ").is_v4());
  CHECK(ip("127.8.9.10").loopback());
  CHECK(ip("::1").loopback());
  CHECK_FALSE(ip("10.0.0.1").loopback());
  for (const char* bad :
       {"", "1.2.3", "1.2.3.4:80", "localhost", "1.2.3.4.5", "fe80::1%eth0", "300.1.1.1", "::1::2", "[::1"})
    CHECK_MESSAGE(!parse_ip(bad), bad);
}

TEST_CASE("ranges: prefixes count within their family") {
  CHECK(range("10.0.0.0/8").contains(ip("10.200.3.4")));
  CHECK_FALSE(range("10.0.0.0/8").contains(ip("11.0.0.1")));
  CHECK(range("192.0.2.7").contains(ip("192.0.2.7")));
  CHECK_FALSE(range("192.0.2.7").contains(ip("192.0.2.8")));
  CHECK(range("0.0.0.0/0").contains(ip("203.0.113.9")));
  CHECK_FALSE(range("0.0.0.0/0").contains(ip("2001:db8::1")));  // /0 of IPv4 is not every IPv6 address
  CHECK(range("2001:db8::/32").contains(ip("2001:db8:ffff::1")));
  CHECK(range("10.0.0.0/9").contains(ip("10.127.0.1")));
  CHECK_FALSE(range("10.0.0.0/9").contains(ip("10.128.0.1")));
  for (const char* bad : {"10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8x", "/8"})
    CHECK_MESSAGE(!parse_ip_range(bad), bad);
}

TEST_CASE("X-Forwarded-For is believed only as far as trusted proxies vouch for it") {
  const std::vector<ip_range> proxies = {range("127.0.0.1/32"), range("10.0.0.0/8")};
  const ip_address proxy = ip("127.0.0.1");
  const ip_address stranger = ip("198.51.100.20");
  // Not from a proxy: the header is the client's own claim.
  CHECK(client_ip(stranger, "203.0.113.5", proxies) == stranger);
  // Without trusted proxies, never.
  CHECK(client_ip(proxy, "203.0.113.5", {}) == proxy);
  CHECK(client_ip(proxy, "203.0.113.5", proxies) == ip("203.0.113.5"));
  // The rightmost untrusted entry: what the client wrote further left is ignored.
  CHECK(client_ip(proxy, "1.1.1.1, 203.0.113.5", proxies) == ip("203.0.113.5"));
  // Through two proxies of ours.
  CHECK(client_ip(proxy, "203.0.113.5, 10.1.1.1", proxies) == ip("203.0.113.5"));
  // Garbage stops the walk at the last good hop.
  CHECK(client_ip(proxy, "203.0.113.5, junk", proxies) == proxy);
  CHECK(client_ip(proxy, "junk, 10.1.1.1", proxies) == ip("10.1.1.1"));
  // Only proxies in the header: the leftmost is as far as it goes.
  CHECK(client_ip(proxy, "10.2.2.2, 10.1.1.1", proxies) == ip("10.2.2.2"));
  CHECK(client_ip(proxy, "", proxies) == proxy);
}
