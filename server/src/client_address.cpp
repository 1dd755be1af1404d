#include "client_address.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace claps::server {
namespace {

constexpr std::array<std::uint8_t, 12> v4_prefix = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool ip_address::is_v4() const noexcept { return std::memcmp(bytes.data(), v4_prefix.data(), 12) == 0; }

bool ip_address::loopback() const noexcept {
  if (is_v4()) return bytes[12] == 127;
  static constexpr std::array<std::uint8_t, 16> v6_loopback = {0, 0, 0, 0, 0, 0, 0, 0,
                                                               0, 0, 0, 0, 0, 0, 0, 1};
  return bytes == v6_loopback;
}

std::string ip_address::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  if (is_v4()) inet_ntop(AF_INET, bytes.data() + 12, text, sizeof text);
  else inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
  return text;
}

std::size_t ip_address_hash::operator()(const ip_address& a) const noexcept {
  std::uint64_t lo, hi;
  std::memcpy(&lo, a.bytes.data(), 8);
  std::memcpy(&hi, a.bytes.data() + 8, 8);
  return static_cast<std::size_t>((lo * 0x9E3779B97F4A7C15ull) ^ (hi + 0x632BE59BD9B4E019ull + (lo << 6)));
}

std::optional<ip_address> parse_ip(std::string_view text) {
  text = trim(text);
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) return std::nullopt;
  char buf[INET6_ADDRSTRLEN];
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  ip_address a;
  if (inet_pton(AF_INET, buf, a.bytes.data() + 12) == 1) {
    std::memcpy(a.bytes.data(), v4_prefix.data(), 12);
    return a;
  }
  if (inet_pton(AF_INET6, buf, a.bytes.data()) == 1) return a;
  return std::nullopt;
}

bool ip_range::contains(const ip_address& a) const noexcept {
  int bits = prefix_bits;
  for (std::size_t i = 0; i < 16 && bits > 0; ++i, bits -= 8) {
    const std::uint8_t mask = bits >= 8 ? 0xff : static_cast<std::uint8_t>(0xff << (8 - bits));
    if ((a.bytes[i] & mask) != (network.bytes[i] & mask)) return false;
  }
  return true;
}

std::optional<ip_range> parse_ip_range(std::string_view text) {
  text = trim(text);
  const auto slash = text.find('/');
  auto address = parse_ip(text.substr(0, slash));
  if (!address) return std::nullopt;
  ip_range r{*address, 128};
  const int width = address->is_v4() ? 32 : 128;
  if (slash != std::string_view::npos) {
    const auto bits = text.substr(slash + 1);
    int n = -1;
    const auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), n);
    if (bits.empty() || ec != std::errc{} || end != bits.data() + bits.size() || n < 0 || n > width)
      return std::nullopt;
    r.prefix_bits = 128 - width + n;
  }
  return r;
}

ip_address client_ip(const ip_address& peer, std::string_view forwarded_for,
                     std::span<const ip_range> trusted) {
  auto is_trusted = [&](const ip_address& a) {
    for (const auto& range : trusted)
      if (range.contains(a)) return true;
    return false;
  };
  if (trusted.empty() || !is_trusted(peer)) return peer;
  ip_address client = peer;
  // Right to left: each trusted hop vouches for the address before it.
  while (!forwarded_for.empty()) {
    const auto comma = forwarded_for.rfind(',');
    const auto entry = comma == std::string_view::npos ? forwarded_for : forwarded_for.substr(comma + 1);
    forwarded_for = comma == std::string_view::npos ? std::string_view{} : forwarded_for.substr(0, comma);
    const auto parsed = parse_ip(entry);
    if (!parsed) return client;  // garbage: trust no further than the last good hop
    client = *parsed;
    if (!is_trusted(client)) return client;
  }
  return client;
}

}  // namespace claps::server
