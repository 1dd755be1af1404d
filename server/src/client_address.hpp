// client_address.hpp - who is on the other end: a client's IP address, the
// --trusted-proxy CIDRs, and X-Forwarded-For as far as those proxies vouch
// for it. Pure functions, so tests and fuzzers need no socket.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace claps::server {

/// An IPv4 or IPv6 address as 16 bytes (IPv4 mapped into IPv6), small
/// enough to keep per connection without an allocation.
struct ip_address {
  std::array<std::uint8_t, 16> bytes{};

  bool is_v4() const noexcept;
  /// 127.0.0.0/8 or ::1.
  bool loopback() const noexcept;
  /// Dotted quad for IPv4, RFC 5952 text for IPv6.
  std::string to_string() const;
  bool operator==(const ip_address&) const = default;
};

struct ip_address_hash {
  std::size_t operator()(const ip_address& a) const noexcept;
};

/// "192.0.2.7", "2001:db8::1", "::ffff:192.0.2.7" or "[2001:db8::1]";
/// nullopt for anything else (ports, host names, zone ids).
std::optional<ip_address> parse_ip(std::string_view text);

/// An address range: "10.0.0.0/8", "fd00::/8", or one address (/32, /128).
struct ip_range {
  ip_address network;
  int prefix_bits = 128;  // counted over the 16 bytes (IPv4 /8 is 104)
  bool contains(const ip_address& a) const noexcept;
};
/// Parses a range; nullopt with a bad address or prefix.
std::optional<ip_range> parse_ip_range(std::string_view text);

/// The client behind a request. When `peer` is in `trusted` (a proxy of
/// ours), the rightmost X-Forwarded-For entry that is not itself trusted is
/// the client: entries further left were written by the client and prove
/// nothing. Without trusted proxies, with a malformed entry on the way, or
/// without the header, the peer is the client.
ip_address client_ip(const ip_address& peer, std::string_view forwarded_for,
                     std::span<const ip_range> trusted);

}  // namespace claps::server
