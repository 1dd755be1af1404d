#include "static_files.hpp"

#include <claps/ids.hpp>

#include <filesystem>
#include <system_error>

namespace claps::server {
namespace {

std::string canonical_or_empty(const std::string& path) {
  std::error_code ec;
  auto p = std::filesystem::weakly_canonical(path, ec);
  return ec ? std::string{} : p.string();
}

// Only plain names: no empty, "." or ".." segments, and a conservative
// alphabet, so nothing in the URL can step outside its root.
bool safe_relative(std::string_view rel) {
  if (rel.empty() || rel.size() > 512) return false;
  std::size_t start = 0;
  while (start <= rel.size()) {
    auto end = rel.find('/', start);
    if (end == std::string_view::npos) end = rel.size();
    auto segment = rel.substr(start, end - start);
    if (segment.empty() || segment == "." || segment == ".." || segment.front() == '.') return false;
    for (char c : segment) {
      const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
      if (!ok) return false;
    }
    start = end + 1;
  }
  return rel.back() != '/';
}

}  // namespace

static_files::static_files(std::string web_root, std::string client_root)
    : web_root_(canonical_or_empty(web_root)), client_root_(canonical_or_empty(client_root)) {}

bool static_files::resolve_under(const std::string& root, std::string_view relative, static_file& out) const {
  if (root.empty() || !safe_relative(relative)) return false;
  std::error_code ec;
  const auto full = std::filesystem::canonical(root + "/" + std::string(relative), ec);
  if (ec) return false;
  const std::string path = full.string();
  // Symlinks could still point elsewhere; the canonical path must stay inside.
  if (path.compare(0, root.size(), root) != 0 || path.size() <= root.size() || path[root.size()] != '/')
    return false;
  if (!std::filesystem::is_regular_file(full, ec)) return false;
  out.path = path;
  out.content_type = content_type_for(path);
  return true;
}

bool static_files::resolve(std::string_view url, static_file& out) const {
  if (url == "/" || url == "/index.html") return resolve_under(web_root_, "index.html", out);
  // The OpenAPI document of the REST and SSE API ships with the web app.
  if (url == "/api/openapi.json") return resolve_under(web_root_, "api/openapi.json", out);
  constexpr std::string_view articles = "/articles/";
  if (url.starts_with(articles)) {
    auto id = url.substr(articles.size());
    if (!id.empty() && id.back() == '/') id.remove_suffix(1);
    if (check_article_id(id)) return false;
    return resolve_under(web_root_, "article.html", out);
  }
  constexpr std::string_view statics = "/static/";
  if (url.starts_with(statics))
    return resolve_under(web_root_, "static/" + std::string(url.substr(statics.size())), out);
  constexpr std::string_view client = "/client/";
  if (url.starts_with(client)) return resolve_under(client_root_, url.substr(client.size()), out);
  return false;
}

std::string_view content_type_for(std::string_view path) noexcept {
  const auto dot = path.rfind('.');
  const auto ext = dot == std::string_view::npos ? std::string_view{} : path.substr(dot + 1);
  if (ext == "html" || ext == "htm") return "text/html; charset=utf-8";
  if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "json" || ext == "map") return "application/json";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "png") return "image/png";
  if (ext == "jpg" || ext == "jpeg") return "image/jpeg";
  if (ext == "gif") return "image/gif";
  if (ext == "webp") return "image/webp";
  if (ext == "ico") return "image/x-icon";
  if (ext == "txt" || ext == "md") return "text/plain; charset=utf-8";
  if (ext == "woff2") return "font/woff2";
  return "application/octet-stream";
}

}  // namespace claps::server
