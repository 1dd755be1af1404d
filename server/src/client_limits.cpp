#include "client_limits.hpp"

namespace claps::server {
namespace {

// Past this many entries a table is swept on insert, not only once a second.
constexpr std::size_t sweep_above = 65536;

}  // namespace

template <class Map>
void client_limits::forget_idle(Map& map, std::uint64_t now_ms) {
  std::erase_if(map, [&](const auto& kv) {
    return kv.second.connections == 0 && kv.second.bucket.full(s_.rate, s_.burst, now_ms);
  });
}

void client_limits::sweep(std::uint64_t now_ms) {
  forget_idle(users_, now_ms);
  forget_idle(addresses_, now_ms);
}

client_limits::entry& client_limits::user_entry(std::string_view user, std::uint64_t now_ms) {
  auto it = users_.find(user);
  if (it != users_.end()) return it->second;
  if (users_.size() >= sweep_above) forget_idle(users_, now_ms);
  return users_.emplace(std::string(user), entry{token_bucket(s_.burst, now_ms), 0}).first->second;
}

client_limits::admission client_limits::admit(std::string_view user, const ip_address& address,
                                              std::uint64_t now_ms) {
  const bool by_address = s_.connections_per_address != 0 && address_rules_apply(address);
  if (by_address) {
    const auto it = addresses_.find(address);
    if (it != addresses_.end() && it->second.connections >= s_.connections_per_address)
      return admission::address_full;
  }
  if (!user.empty()) {
    entry& e = user_entry(user, now_ms);
    if (e.connections >= s_.connections_per_user) return admission::user_full;
    ++e.connections;
  }
  if (by_address) {
    if (addresses_.size() >= sweep_above) forget_idle(addresses_, now_ms);
    auto [it, inserted] = addresses_.try_emplace(address, entry{token_bucket(s_.burst, now_ms), 0});
    ++it->second.connections;
  }
  return admission::admitted;
}

void client_limits::release(std::string_view user, const ip_address& address) {
  if (!user.empty())
    if (auto it = users_.find(user); it != users_.end() && it->second.connections > 0)
      --it->second.connections;
  if (s_.connections_per_address != 0 && address_rules_apply(address))
    if (auto it = addresses_.find(address); it != addresses_.end() && it->second.connections > 0)
      --it->second.connections;
}

const std::string& client_limits::admitted_user(std::string_view user) const noexcept {
  static const std::string none;
  const auto it = users_.find(user);
  return it == users_.end() ? none : it->first;
}

bool client_limits::take(std::string_view user, std::uint64_t now_ms) {
  return user_entry(user, now_ms).bucket.take(s_.rate, s_.burst, now_ms);
}

bool client_limits::take_anonymous(const ip_address& address, std::uint64_t now_ms) {
  if (!address_rules_apply(address)) return true;
  auto it = addresses_.find(address);
  if (it == addresses_.end()) {
    if (addresses_.size() >= sweep_above) forget_idle(addresses_, now_ms);
    it = addresses_.emplace(address, entry{token_bucket(s_.burst, now_ms), 0}).first;
  }
  return it->second.bucket.take(s_.rate, s_.burst, now_ms);
}

}  // namespace claps::server
