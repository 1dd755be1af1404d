#include "origin.hpp"

#include <algorithm>
#include <cctype>

namespace claps::server {
namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

// "host[:port]" with a default port -> "host:port".
std::string host_port(std::string_view authority, std::string_view default_port) {
  if (authority.empty()) return {};
  std::string a = lower(authority);
  const auto bracket = a.rfind(']');
  const auto colon = a.rfind(':');
  const bool has_port = colon != std::string::npos && (bracket == std::string::npos || colon > bracket);
  if (!has_port) return a + ":" + std::string(default_port);
  if (colon + 1 == a.size()) return a + std::string(default_port);
  return a;
}

}  // namespace

std::string normalize_origin(std::string_view origin) {
  const auto sep = origin.find("://");
  if (sep == std::string_view::npos) return {};
  const std::string scheme = lower(origin.substr(0, sep));
  auto rest = origin.substr(sep + 3);
  rest = rest.substr(0, rest.find('/'));
  const std::string_view default_port = (scheme == "https" || scheme == "wss") ? "443" : "80";
  const auto hp = host_port(rest, default_port);
  return hp.empty() ? std::string{} : scheme + "://" + hp;
}

origin_policy::origin_policy(const std::vector<std::string>& allowed) {
  for (const auto& a : allowed) {
    auto n = normalize_origin(a);
    if (!n.empty()) allowed_.push_back(std::move(n));
  }
}

bool origin_policy::allows(std::string_view origin, std::string_view host) const {
  if (origin.empty()) return true;
  const auto normalized = normalize_origin(origin);
  if (normalized.empty()) return false;  // includes the opaque "null" origin
  if (std::find(allowed_.begin(), allowed_.end(), normalized) != allowed_.end()) return true;
  const auto origin_host = normalized.substr(normalized.find("://") + 3);
  const auto scheme = normalized.substr(0, normalized.find("://"));
  return origin_host == host_port(host, scheme == "https" || scheme == "wss" ? "443" : "80");
}

}  // namespace claps::server
