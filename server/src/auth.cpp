#include "auth.hpp"

#include <claps/error.hpp>
#include <claps/ids.hpp>

#include <jwt.h>
#include <simdjson.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>

namespace claps::server {
namespace {

struct jwt_deleter {
  void operator()(jwt_t* j) const noexcept { jwt_free(j); }
};

// `aud` is a string or an array of strings (RFC 7519, 4.1.3).
bool audience_matches(jwt_t* jwt, const std::string& audience) {
  if (const char* aud = jwt_get_grant(jwt, "aud"); aud != nullptr) return audience == aud;
  char* json = jwt_get_grants_json(jwt, "aud");
  if (json == nullptr) return false;
  // libjwt 1.10 hands back malloc'd text (it has no jwt_free_str yet).
  const std::unique_ptr<char, decltype(&std::free)> owned(json, &std::free);
  simdjson::dom::parser parser;
  simdjson::dom::array list;
  if (parser.parse(json, std::strlen(json)).get_array().get(list)) return false;
  for (simdjson::dom::element item : list) {
    std::string_view name;
    if (!item.get_string().get(name) && name == audience) return true;
  }
  return false;
}

std::int64_t wall_seconds() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::error_code jwt_verifier::verify(std::string_view token, std::int64_t now_s, std::string& user,
                                     std::string& why) const {
  const std::error_code unauthorized = make_error_code(errc::unauthorized);
  if (token.empty() || token.size() > 8192) {
    why = "missing or oversized token";
    return unauthorized;
  }
  // libjwt reads a C string: a NUL would end the token there, and whatever
  // followed it would pass unchecked.
  if (token.find('\0') != std::string_view::npos) {
    why = "token contains a NUL byte";
    return unauthorized;
  }
  const std::string text(token);
  jwt_t* raw = nullptr;
  // jwt_decode verifies the signature with the token's own algorithm, so the
  // algorithm is checked separately below.
  if (jwt_decode(&raw, text.c_str(), reinterpret_cast<const unsigned char*>(secret_.data()),
                 static_cast<int>(secret_.size())) != 0 ||
      raw == nullptr) {
    why = "token signature or format invalid";
    return unauthorized;
  }
  std::unique_ptr<jwt_t, jwt_deleter> jwt(raw);
  const char* alg_header = jwt_get_header(jwt.get(), "alg");
  if (jwt_get_alg(jwt.get()) != JWT_ALG_HS256 ||
      (alg_header != nullptr && std::string_view(alg_header) != "HS256")) {
    why = "token alg is not HS256";
    return unauthorized;
  }
  errno = 0;
  const long exp = jwt_get_grant_int(jwt.get(), "exp");
  if (errno != 0) {
    why = "token has no numeric exp";
    return unauthorized;
  }
  // Compared so that nothing overflows: exp and nbf may be any 64-bit value.
  if (exp < now_s - jwt_leeway.count()) {
    why = "token expired";
    return unauthorized;
  }
  errno = 0;
  const long nbf = jwt_get_grant_int(jwt.get(), "nbf");
  if (errno == 0 && nbf > now_s + jwt_leeway.count()) {
    why = "token not valid yet (nbf)";
    return unauthorized;
  }
  if (rules_.max_lifetime_s > 0 && exp > now_s + rules_.max_lifetime_s + jwt_leeway.count()) {
    why = "token lives longer than --jwt-max-lifetime-s allows";
    return unauthorized;
  }
  if (!rules_.issuer.empty()) {
    const char* iss = jwt_get_grant(jwt.get(), "iss");
    if (iss == nullptr || rules_.issuer != iss) {
      why = "token iss is not --jwt-issuer";
      return unauthorized;
    }
  }
  if (!rules_.audience.empty() && !audience_matches(jwt.get(), rules_.audience)) {
    why = "token aud does not name --jwt-audience";
    return unauthorized;
  }
  const char* sub = jwt_get_grant(jwt.get(), "sub");
  if (sub == nullptr || check_user_id(sub)) {
    why = "token sub is missing or not a valid user id";
    return unauthorized;
  }
  user = sub;
  return {};
}

bool read_secret_line(const std::string& path, std::string_view flag, std::string& secret,
                      std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read --" + std::string(flag) + " '" + path + "'";
    return false;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  secret = buffer.str();
  if (!secret.empty() && secret.back() == '\n') secret.pop_back();
  if (!secret.empty() && secret.back() == '\r') secret.pop_back();
  if (secret.empty()) {
    error = "--" + std::string(flag) + " '" + path + "' is empty";
    return false;
  }
  return true;
}

bool read_secret_file(const std::string& path, std::string& secret, std::string& error) {
  if (!read_secret_line(path, "auth-secret-file", secret, error)) return false;
  if (secret.size() < min_secret_bytes) {
    error = "--auth-secret-file '" + path + "' holds " + std::to_string(secret.size()) +
            " bytes: an HS256 secret needs at least 32 bytes (for example: head -c 32 /dev/urandom | base64)";
    return false;
  }
  return true;
}

authenticator::authenticator() : verifier_(std::string{}), rng_(std::random_device{}()) {}

authenticator::authenticator(std::string secret, jwt_rules rules)
    : auth_mode_(true), verifier_(std::move(secret), std::move(rules)), rng_(std::random_device{}()) {}

std::error_code authenticator::identify(const credentials& c, bool allow_anonymous, std::string& user,
                                        std::string& why) {
  if (auth_mode_) {
    if (!c.has_token) {
      why = "no token (use ?token= or Authorization: Bearer)";
      return make_error_code(errc::unauthorized);
    }
    return verifier_.verify(c.token, wall_seconds(), user, why);
  }
  if (c.has_user_param) {
    if (check_user_id(c.user_param)) {
      why = "invalid user: use 1-128 characters of A-Z a-z 0-9 . _ : -";
      return make_error_code(errc::invalid_user);
    }
    user = c.user_param;
    return {};
  }
  if (!allow_anonymous) {
    why = "demo mode needs ?user=NAME";
    return make_error_code(errc::bad_request);
  }
  static constexpr char hex[] = "0123456789abcdef";
  std::uint64_t r = rng_();
  user = "anon-";
  // 10 hex digits keep the id within std::string's inline buffer: no
  // allocation per anonymous connection.
  for (int i = 0; i < 10; ++i, r >>= 4) user += hex[r & 15];
  return {};
}

std::string_view bearer_token(std::string_view authorization) noexcept {
  constexpr std::string_view prefix = "bearer ";
  if (authorization.size() <= prefix.size()) return {};
  // The scheme is case-insensitive; folding only letters keeps a NUL (0x00 | 0x20)
  // from passing for the space.
  for (std::size_t i = 0; i < prefix.size(); ++i) {
    const char c = authorization[i];
    if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c | 0x20) : c) != prefix[i]) return {};
  }
  auto token = authorization.substr(prefix.size());
  while (!token.empty() && token.front() == ' ') token.remove_prefix(1);
  while (!token.empty() && (token.back() == ' ' || token.back() == '\r')) token.remove_suffix(1);
  return token;
}

}  // namespace claps::server
