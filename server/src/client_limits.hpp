// client_limits.hpp - the abuse limits that span connections: one token
// bucket per user, shared by WebSocket and REST; long-lived connections per
// user and per source address. An entry exists only while it holds a
// connection or a bucket that has not refilled, so minting user ids (demo
// mode) or addresses cannot grow the tables past what is active.
#pragma once

#include "client_address.hpp"
#include "token_bucket.hpp"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace claps::server {

struct client_limit_settings {
  double rate = 20;  // tokens per second per user: claps, undos, subscribes, reads
  double burst = 40;
  std::size_t connections_per_user = 32;
  std::size_t connections_per_address = 256;  // 0: no cap
  // Loopback clients (benchmarks, a TLS proxy on this host) are exempt from
  // the per-address rules unless the operator set them explicitly.
  bool address_rules_on_loopback = false;
};

class client_limits {
public:
  explicit client_limits(client_limit_settings settings) : s_(settings) {}

  enum class admission { admitted, user_full, address_full };
  /// A new long-lived connection: WebSocket (with a user) or SSE (user may
  /// be empty). Counted until release() with the same arguments.
  admission admit(std::string_view user, const ip_address& address, std::uint64_t now_ms);
  void release(std::string_view user, const ip_address& address);

  /// The user id as this table stores it, for a user admitted and not yet
  /// released: it stays put until then, so each of the user's connections
  /// can view it instead of holding a copy. An empty string for no user.
  const std::string& admitted_user(std::string_view user) const noexcept;

  /// Takes one token from the user's bucket.
  bool take(std::string_view user, std::uint64_t now_ms);
  /// For requests without a user: one token from the address's bucket where
  /// the per-address rules apply, else always true.
  bool take_anonymous(const ip_address& address, std::uint64_t now_ms);

  /// Forgets users and addresses with no connection and a full bucket.
  /// Called once a second; also when a table passes its soft bound.
  void sweep(std::uint64_t now_ms);

  std::size_t users() const noexcept { return users_.size(); }
  std::size_t addresses() const noexcept { return addresses_.size(); }
  const client_limit_settings& settings() const noexcept { return s_; }

private:
  struct entry {
    token_bucket bucket;
    std::uint32_t connections = 0;
  };
  bool address_rules_apply(const ip_address& a) const noexcept {
    return s_.address_rules_on_loopback || !a.loopback();
  }
  template <class Map>
  void forget_idle(Map& map, std::uint64_t now_ms);
  entry& user_entry(std::string_view user, std::uint64_t now_ms);

  // Looked up by string_view on every message: no key copy.
  struct user_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };

  client_limit_settings s_;
  std::unordered_map<std::string, entry, user_hash, std::equal_to<>> users_;
  std::unordered_map<ip_address, entry, ip_address_hash> addresses_;
};

}  // namespace claps::server
