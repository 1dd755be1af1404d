#include "route.hpp"

namespace claps::server {

route parse_route(std::string_view path) noexcept {
  route r;
  if (path == "/healthz") r.kind = route_kind::healthz;
  else if (path == "/readyz") r.kind = route_kind::readyz;
  else if (path == "/metrics") r.kind = route_kind::metrics;
  else if (path == "/ws") r.kind = route_kind::websocket;
  else if (path.starts_with(api_articles_prefix)) {
    r.kind = route_kind::article;
    const auto rest = path.substr(api_articles_prefix.size());
    const auto slash = rest.find('/');
    r.article = rest.substr(0, slash);
    const auto tail = slash == std::string_view::npos ? std::string_view{} : rest.substr(slash);
    if (tail.empty() || tail == "/") r.resource = article_resource::counts;
    else if (tail == "/claps") r.resource = article_resource::claps;
    else if (tail == "/events") r.resource = article_resource::events;
  }
  return r;
}

bool query_fragment_value(std::string_view fragment, std::string_view name,
                          std::string_view& value) noexcept {
  if (fragment.size() <= name.size() || fragment[name.size()] != '=' || !fragment.starts_with(name))
    return false;
  value = fragment.substr(name.size() + 1);
  return true;
}

}  // namespace claps::server
