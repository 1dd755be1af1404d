// Internal: hash maps keyed by std::string that can be searched with a
// std::string_view, so lookups on the intake path never allocate.
//
// The hash is a short multiply-mix over 8-byte words, much cheaper than
// std::hash for 5-40 byte ids. It is seeded (engine_options::hash_seed) so
// that an attacker who picks ids cannot aim them at one bucket.
#pragma once

#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace claps::detail {

__extension__ typedef unsigned __int128 uint128;

inline std::uint64_t mix(std::uint64_t a, std::uint64_t b) noexcept {
  uint128 r = static_cast<uint128>(a) * b;
  return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}

// The last n < 8 bytes as one word, without a variable-length memcpy call.
inline std::uint64_t load_tail(const char* p, std::size_t n) noexcept {
  std::uint64_t v = 0;
  if (n >= 4) {
    std::uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);
    v = (static_cast<std::uint64_t>(hi) << 32) | lo;
  } else if (n > 0) {
    v = (static_cast<std::uint64_t>(static_cast<unsigned char>(p[0])) << 16) |
        (static_cast<std::uint64_t>(static_cast<unsigned char>(p[n / 2])) << 8) |
        static_cast<unsigned char>(p[n - 1]);
  }
  return v;
}

inline std::uint64_t hash_bytes(std::string_view s, std::uint64_t seed) noexcept {
  const char* p = s.data();
  std::size_t n = s.size();
  std::uint64_t h = seed ^ (0x9E3779B97F4A7C15ull * (n + 1));
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    h = mix(h ^ v, 0xbf58476d1ce4e5b9ull);
    p += 8;
    n -= 8;
  }
  return mix(h ^ load_tail(p, n), 0x94d049bb133111ebull);
}

// Two lanes of the same mix under independent keys, for fingerprints that
// stand in for a string no longer kept (the engine's op ids): a collision
// must then happen in both lanes at once.
inline uint128 hash_bytes128(std::string_view s, std::uint64_t seed) noexcept {
  const char* p = s.data();
  std::size_t n = s.size();
  std::uint64_t a = seed ^ (0x9E3779B97F4A7C15ull * (n + 1));
  std::uint64_t b =
      mix(seed ^ 0xD6E8FEB86659FD93ull, 0xA0761D6478BD642Full) ^ (0xE7037ED1A0B428DBull * (n + 1));
  while (n >= 8) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    a = mix(a ^ v, 0xbf58476d1ce4e5b9ull);
    b = mix(b ^ v, 0x8EBC6AF09C88C6E3ull);
    p += 8;
    n -= 8;
  }
  const std::uint64_t v = load_tail(p, n);
  a = mix(a ^ v, 0x94d049bb133111ebull);
  b = mix(b ^ v, 0x589965CC75374CC3ull);
  return (static_cast<uint128>(b) << 64) | a;
}

struct string_hash {
  using is_transparent = void;
  std::uint64_t seed = 0x2545F4914F6CDD1Dull;
  std::size_t operator()(std::string_view s) const noexcept { return hash_bytes(s, seed); }
};

template <class Value>
using string_map = std::unordered_map<std::string, Value, string_hash, std::equal_to<>>;

/// An empty map that hashes with `seed`.
template <class Value>
string_map<Value> make_string_map(std::uint64_t seed) {
  return string_map<Value>(16, string_hash{seed});
}

}  // namespace claps::detail
