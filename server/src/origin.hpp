// origin.hpp - the cross-site WebSocket hijacking check.
//
// A browser handshake carries Origin. It is allowed when its host:port is the
// request's Host (so both localhost and 127.0.0.1 work, each from itself) or
// it is listed by --allowed-origin. Requests without Origin (non-browser
// clients) are allowed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace claps::server {

class origin_policy {
public:
  explicit origin_policy(const std::vector<std::string>& allowed);
  bool allows(std::string_view origin, std::string_view host) const;

private:
  std::vector<std::string> allowed_;  // normalized scheme://host:port
};

/// "HTTP://Example.com/" -> "http://example.com:80"; empty when unparsable.
std::string normalize_origin(std::string_view origin);

}  // namespace claps::server
