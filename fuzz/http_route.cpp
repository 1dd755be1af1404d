// Fuzzes what clapsd reads from an HTTP request line and headers before it
// looks anything up: the route of the path, the query arguments, the bearer
// token, the identity in demo mode, the Origin check and the static file a
// path maps to.
//
// Input: lines separated by '\n':
//   path / Authorization / Origin / Host / query fragment / query fragment ...
// (query fragments as lws hands them over: split at '&', URL-decoded).
//
// Properties:
// - parse_route() classifies exactly: the fixed paths by equality, and an
//   article route is "/api/articles/" + article + a tail that its resource names;
// - a query argument matches only "name=" fragments, and reads their rest;
// - bearer_token() returns a trimmed part of the header, only after a
//   case-insensitive "Bearer ";
// - a demo-mode identity is always a valid user id;
// - normalize_origin() is idempotent, an origin from the request's own host is
//   allowed and an origin that does not normalize never is;
// - a static file resolves only to a regular file inside its root, never
//   through the symlink that points out of it;
// - X-Forwarded-For (the Origin line, read again as that header): the client
//   it names is the peer or one of its entries, never a trusted proxy unless
//   every entry is one; an address prints back to itself; a range holds its
//   own network address.
#include "auth.hpp"
#include "client_address.hpp"
#include "check.hpp"
#include "origin.hpp"
#include "route.hpp"
#include "static_files.hpp"

#include <claps/error.hpp>
#include <claps/ids.hpp>

#include <cctype>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace claps::server;
namespace fs = std::filesystem;

// A web root and a client root with a file each kind of URL can reach, and a
// symlink out of the web root to a file beside it.
struct roots {
  fs::path base;
  std::string web, client;

  roots() {
    char pattern[] = "/tmp/claps-fuzz-http-XXXXXX";
    const char* made = mkdtemp(pattern);
    CLAPS_FUZZ_CHECK(made != nullptr);
    base = made;
    fs::create_directories(base / "web/static/css");
    fs::create_directories(base / "client");
    for (const char* file :
         {"web/index.html", "web/article.html", "web/static/app.js", "web/static/css/site.css",
          "web/static/.hidden", "client/claps-client.js", "secret.txt"})
      std::ofstream(base / file) << "x";
    fs::create_symlink(base / "secret.txt", base / "web/static/escape.js");
    fs::create_symlink("../../../secret.txt", base / "web/static/css/up.css");
    web = fs::canonical(base / "web").string();
    client = fs::canonical(base / "client").string();
  }
  ~roots() {
    std::error_code ec;
    fs::remove_all(base, ec);
  }
};

std::vector<std::string_view> split_lines(std::string_view text) {
  std::vector<std::string_view> lines;
  while (true) {
    const auto nl = text.find('\n');
    lines.push_back(text.substr(0, nl));
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
  return lines;
}

bool inside(std::string_view part, std::string_view whole) {
  return part.empty() ||
         (part.data() >= whole.data() && part.data() + part.size() <= whole.data() + whole.size());
}

void check_route(std::string_view path) {
  const route r = parse_route(path);
  CLAPS_FUZZ_CHECK((r.kind == route_kind::healthz) == (path == "/healthz"));
  CLAPS_FUZZ_CHECK((r.kind == route_kind::readyz) == (path == "/readyz"));
  CLAPS_FUZZ_CHECK((r.kind == route_kind::metrics) == (path == "/metrics"));
  CLAPS_FUZZ_CHECK((r.kind == route_kind::websocket) == (path == "/ws"));
  CLAPS_FUZZ_CHECK((r.kind == route_kind::article) == path.starts_with(api_articles_prefix));
  if (r.kind != route_kind::article) return;
  CLAPS_FUZZ_CHECK(r.article.find('/') == std::string_view::npos);
  CLAPS_FUZZ_CHECK(r.article.data() == path.data() + api_articles_prefix.size());
  const std::string_view tail = path.substr(api_articles_prefix.size() + r.article.size());
  CLAPS_FUZZ_CHECK(tail.empty() || tail.front() == '/');
  switch (r.resource) {
  case article_resource::counts: CLAPS_FUZZ_CHECK(tail.empty() || tail == "/"); break;
  case article_resource::claps: CLAPS_FUZZ_CHECK(tail == "/claps"); break;
  case article_resource::events: CLAPS_FUZZ_CHECK(tail == "/events"); break;
  case article_resource::unknown:
    CLAPS_FUZZ_CHECK(!tail.empty() && tail != "/" && tail != "/claps" && tail != "/events");
    break;
  }
}

// query_arg()'s loop over lws's fragments: the first "name=" wins.
bool query_arg(const std::vector<std::string_view>& fragments, std::string_view name,
               std::string_view& value) {
  for (std::string_view fragment : fragments) {
    std::string_view v;
    const bool named =
        fragment.size() > name.size() && fragment.starts_with(name) && fragment[name.size()] == '=';
    CLAPS_FUZZ_CHECK(query_fragment_value(fragment, name, v) == named);
    if (!named) continue;
    CLAPS_FUZZ_CHECK(v.data() == fragment.data() + name.size() + 1 &&
                     v.size() == fragment.size() - name.size() - 1);
    value = v;
    return true;
  }
  return false;
}

void check_bearer(std::string_view header) {
  const std::string_view token = bearer_token(header);
  if (token.empty()) return;
  CLAPS_FUZZ_CHECK(header.size() > 7 && inside(token, header.substr(7)));
  for (std::size_t i = 0; i < 7; ++i)
    CLAPS_FUZZ_CHECK(std::tolower(static_cast<unsigned char>(header[i])) == "bearer "[i]);
  CLAPS_FUZZ_CHECK(token.front() != ' ' && token.back() != ' ' && token.back() != '\r');
}

void check_identity(const credentials& c) {
  static authenticator demo;
  std::string user, why;
  if (const std::error_code ec = demo.identify(c, true, user, why)) {
    CLAPS_FUZZ_CHECK(c.has_user_param && ec == claps::errc::invalid_user && !why.empty());
    return;
  }
  CLAPS_FUZZ_CHECK(!claps::check_user_id(user));
  if (c.has_user_param) CLAPS_FUZZ_CHECK(user == c.user_param);
}

void check_origin(std::string_view origin, std::string_view host) {
  static const origin_policy policy({"https://claps.example", "http://localhost:8080"});
  const std::string normalized = normalize_origin(origin);
  if (!normalized.empty()) CLAPS_FUZZ_CHECK(normalize_origin(normalized) == normalized);
  const bool allowed = policy.allows(origin, host);
  if (origin.empty()) CLAPS_FUZZ_CHECK(allowed);
  else if (normalized.empty()) CLAPS_FUZZ_CHECK(!allowed);
  // A browser on this very host sends that host as its origin.
  if (!host.empty() && host.find('/') == std::string_view::npos)
    CLAPS_FUZZ_CHECK(policy.allows("http://" + std::string(host), host));
}

void check_forwarded(std::string_view header) {
  static const std::vector<ip_range> proxies = {*parse_ip_range("127.0.0.1/32"),
                                                *parse_ip_range("10.0.0.0/8"), *parse_ip_range("fd00::/8")};
  const ip_address peer = *parse_ip("127.0.0.1");
  std::vector<ip_address> entries;
  bool untrusted_entry = false;
  for (std::string_view rest = header; !rest.empty();) {
    const auto comma = rest.find(',');
    const auto entry = rest.substr(0, comma);
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (auto a = parse_ip(entry)) {
      CLAPS_FUZZ_CHECK(parse_ip(a->to_string()) == a);
      entries.push_back(*a);
    }
  }
  const ip_address client = client_ip(peer, header, proxies);
  bool is_entry = false;
  for (const auto& e : entries) is_entry |= e == client;
  CLAPS_FUZZ_CHECK(client == peer || is_entry);
  auto trusted = [&](const ip_address& a) {
    for (const auto& r : proxies)
      if (r.contains(a)) return true;
    return false;
  };
  for (const auto& e : entries) untrusted_entry |= !trusted(e);
  // Walking right to left it stops at the first untrusted entry, unless
  // garbage stopped it first: then it is a trusted hop (or the peer).
  if (!trusted(client)) CLAPS_FUZZ_CHECK(untrusted_entry);
  // Not from a proxy, the header is ignored.
  const ip_address stranger = *parse_ip("198.51.100.1");
  CLAPS_FUZZ_CHECK(client_ip(stranger, header, proxies) == stranger);
  if (auto r = parse_ip_range(header)) CLAPS_FUZZ_CHECK(r->contains(r->network));
}

void check_static(const roots& where, std::string_view path) {
  static const static_files files(where.web, where.client);
  static_file file;
  if (!files.resolve(path, file)) return;
  const bool in_web = file.path.starts_with(where.web + "/");
  const bool in_client = file.path.starts_with(where.client + "/");
  CLAPS_FUZZ_CHECK(in_web || in_client);
  CLAPS_FUZZ_CHECK(file.path.find("secret") == std::string::npos);
  CLAPS_FUZZ_CHECK(fs::is_regular_file(fs::symlink_status(file.path)));
  CLAPS_FUZZ_CHECK(!file.content_type.empty());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const roots where;
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  const std::vector<std::string_view> lines = split_lines(text);
  auto line = [&](std::size_t i) { return i < lines.size() ? lines[i] : std::string_view{}; };
  const std::string_view path = line(0), authorization = line(1), origin = line(2), host = line(3);
  const std::vector<std::string_view> fragments(lines.begin() + std::min<std::size_t>(4, lines.size()),
                                                lines.end());

  check_route(path);
  check_static(where, path);
  check_bearer(authorization);
  check_origin(origin, host);
  check_forwarded(origin);

  // Demo mode reads ?user= (a token, if any, is not looked at).
  credentials c;
  std::string_view value;
  if (query_arg(fragments, "user", value)) {
    c.user_param = value;
    c.has_user_param = true;
  }
  c.has_token = query_arg(fragments, "token", c.token);
  check_identity(c);
  query_arg(fragments, "id", value);
  query_arg(fragments, "batch", value);
  return 0;
}
