// Fuzzes JWT verification (jwt_verifier::verify, libjwt underneath) with a
// fixed secret and clock; the input is the token.
//
// Properties:
// - a refusal is errc::unauthorized with a reason for the log;
// - an accepted token names a valid user id, and is, byte for byte, an
//   HS256 token correctly signed with the secret: "header.payload.signature"
//   whose signature is the base64url HMAC-SHA256 of "header.payload",
//   checked here with OpenSSL directly, so nothing around the signature
//   (trailing bytes, an embedded NUL, another algorithm) can slip through.
//
// The seeds are tokens for `secret` (see README.md), valid at `now` for one
// of the two verifiers or refused for one reason each.
#include "auth.hpp"
#include "check.hpp"

#include <claps/error.hpp>
#include <claps/ids.hpp>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace {

using namespace claps::server;

constexpr std::string_view secret = "claps-fuzz-secret-0123456789abcdef";
constexpr std::int64_t now = 1700000000;  // 2023-11-14T22:13:20Z

// base64url: its alphabet only. Spare low bits and '=' padding are let
// through: they change no signature byte.
std::optional<std::string> base64url_decode(std::string_view in) {
  while (!in.empty() && in.back() == '=') in.remove_suffix(1);
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    count += 6;
    if (count >= 8) {
      count -= 8;
      out.push_back(static_cast<char>((bits >> count) & 0xFF));
    }
  }
  return out;
}

bool signed_with_secret(std::string_view token) {
  const auto first = token.find('.');
  if (first == std::string_view::npos) return false;
  const auto second = token.find('.', first + 1);
  if (second == std::string_view::npos) return false;
  const auto signature = base64url_decode(token.substr(second + 1));
  if (!signature) return false;
  std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
  unsigned int mac_size = 0;
  const std::string_view signed_part = token.substr(0, second);
  if (HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
           reinterpret_cast<const unsigned char*>(signed_part.data()), signed_part.size(), mac.data(),
           &mac_size) == nullptr)
    return false;
  return std::string_view(*signature) ==
         std::string_view(reinterpret_cast<const char*>(mac.data()), mac_size);
}

void check(const jwt_verifier& verifier, std::string_view token) {
  std::string user, why;
  if (const std::error_code ec = verifier.verify(token, now, user, why)) {
    CLAPS_FUZZ_CHECK(ec == claps::errc::unauthorized);
    CLAPS_FUZZ_CHECK(!why.empty());
    return;
  }
  CLAPS_FUZZ_CHECK(!claps::check_user_id(user));
  CLAPS_FUZZ_CHECK(signed_with_secret(token));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const jwt_verifier plain{std::string(secret), jwt_rules{}};
  static const jwt_verifier strict{std::string(secret),
                                   jwt_rules{"claps-web", "https://issuer.example", 3600}};
  const std::string_view token(reinterpret_cast<const char*>(data), size);
  check(plain, token);
  check(strict, token);
  return 0;
}
