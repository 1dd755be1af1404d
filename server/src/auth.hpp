// auth.hpp - who a request is: a verified JWT in auth mode, ?user= (or an
// anonymous id) in demo mode.
//
// libjwt 1.10 verifies signatures but validates no claims, so this checks
// them: alg must be exactly HS256 (none, HS384, RS256... are refused), exp is
// required and enforced with `leeway`, nbf is honoured when present, and sub
// must be a valid user id.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <system_error>

namespace claps::server {

inline constexpr std::chrono::seconds jwt_leeway{30};
/// Shorter HS256 secrets are refused at start: they can be guessed offline
/// from any one token.
inline constexpr std::size_t min_secret_bytes = 32;

/// What a token must say besides its signature, exp, nbf and sub.
struct jwt_rules {
  std::string audience;  // when set, `aud` must be it (or an array holding it)
  std::string issuer;    // when set, `iss` must be it
  /// Tokens whose exp lies further ahead than this are refused (a stolen
  /// long-lived token is a long-lived account); 0: no limit.
  std::int64_t max_lifetime_s = 7 * 24 * 3600;
};

class jwt_verifier {
public:
  explicit jwt_verifier(std::string secret, jwt_rules rules = {})
      : secret_(std::move(secret)), rules_(std::move(rules)) {}
  /// Empty error_code and `user` = sub when the token is valid at `now_s`
  /// (Unix seconds); errc::unauthorized otherwise, with `why` for the logs.
  std::error_code verify(std::string_view token, std::int64_t now_s, std::string& user,
                         std::string& why) const;

private:
  std::string secret_;
  jwt_rules rules_;
};

/// Reads the secret file, dropping one trailing newline ("\n" or "\r\n").
bool read_secret_file(const std::string& path, std::string& secret, std::string& error);
/// Reads a one-line secret (a password) given as --`flag`: a trailing newline
/// is not part of it. False with `error` set when unreadable or empty.
bool read_secret_line(const std::string& path, std::string_view flag, std::string& secret,
                      std::string& error);

/// The credentials a request carried.
struct credentials {
  std::string_view token;       // from ?token= or Authorization: Bearer
  std::string_view user_param;  // from ?user=
  bool has_token = false;
  bool has_user_param = false;
};

class authenticator {
public:
  /// Demo mode: identity from ?user=.
  authenticator();
  /// Auth mode: identity only from tokens signed with `secret` that keep `rules`.
  explicit authenticator(std::string secret, jwt_rules rules = {});

  bool auth_mode() const noexcept { return auth_mode_; }

  /// Resolves the user of a request. In demo mode a missing user becomes
  /// anon-<random> when `allow_anonymous`, else errc::bad_request. Errors:
  /// unauthorized (auth mode, bad or missing token), invalid_user,
  /// bad_request.
  std::error_code identify(const credentials& c, bool allow_anonymous, std::string& user, std::string& why);

private:
  bool auth_mode_ = false;
  jwt_verifier verifier_;
  std::mt19937_64 rng_;
};

/// Extracts the token from an Authorization header value ("Bearer X").
std::string_view bearer_token(std::string_view authorization) noexcept;

}  // namespace claps::server
