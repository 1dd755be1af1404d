// route.hpp - what a request's URL names, before anything is looked up or
// answered: the route of its path and the arguments of its query. Pure
// functions of the strings lws hands over (fuzzed by fuzz/http_route.cpp).
#pragma once

#include <string_view>

namespace claps::server {

inline constexpr std::string_view api_articles_prefix = "/api/articles/";

enum class route_kind {
  healthz,    // /healthz
  readyz,     // /readyz
  metrics,    // /metrics
  article,    // /api/articles/{article}[/...]
  websocket,  // /ws without an upgrade
  other,      // a static file on GET, else 404
};

/// What /api/articles/{article} is followed by.
enum class article_resource {
  counts,   // nothing or "/": GET reads the counts
  claps,    // "/claps": POST claps, DELETE undoes
  events,   // "/events": GET opens an SSE stream
  unknown,  // anything else: 404
};

struct route {
  route_kind kind = route_kind::other;
  std::string_view article;  // kind article: the segment after the prefix, unchecked (may be empty)
  article_resource resource = article_resource::unknown;
};

/// Routes a URL path (without its query). Views point into `path`.
route parse_route(std::string_view path) noexcept;

/// The value of a query argument fragment ("name=value", URL-decoded, as lws
/// splits a query at '&') when it names `name`; false otherwise. `value`
/// points into `fragment`.
bool query_fragment_value(std::string_view fragment, std::string_view name, std::string_view& value) noexcept;

}  // namespace claps::server
