// token_bucket.hpp - rate limiting counted in clap/undo messages.
#pragma once

#include <algorithm>
#include <cstdint>

namespace claps::server {

class token_bucket {
public:
  token_bucket() = default;
  token_bucket(double burst, std::uint64_t now_ms) : tokens_(static_cast<float>(burst)), last_ms_(now_ms) {}

  /// Takes one token if there is one, refilling at `rate` per second up to `burst`.
  bool take(double rate, double burst, std::uint64_t now_ms) noexcept {
    refill(rate, burst, now_ms);
    if (tokens_ < 1.0f) return false;
    tokens_ -= 1.0f;
    return true;
  }
  /// True when the bucket is full again (an idle user; its entry may go).
  bool full(double rate, double burst, std::uint64_t now_ms) const noexcept {
    const double elapsed = now_ms > last_ms_ ? static_cast<double>(now_ms - last_ms_) : 0.0;
    return static_cast<double>(tokens_) + elapsed * rate / 1000.0 >= burst;
  }

private:
  void refill(double rate, double burst, std::uint64_t now_ms) noexcept {
    if (now_ms > last_ms_) {
      const double added = static_cast<double>(now_ms - last_ms_) * rate / 1000.0;
      tokens_ = static_cast<float>(std::min(burst, static_cast<double>(tokens_) + added));
      last_ms_ = now_ms;
    }
  }
  float tokens_ = 0;  // float keeps a session small; precision is ample here
  std::uint64_t last_ms_ = 0;
};

}  // namespace claps::server
