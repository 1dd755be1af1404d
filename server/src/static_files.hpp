// static_files.hpp - maps demo-app URLs to files, with no path traversal.
//
//   /                        -> WEB_ROOT/index.html
//   /articles/{id}           -> WEB_ROOT/article.html
//   /static/<path>           -> WEB_ROOT/static/<path>
//   /client/<path>           -> CLIENT_ROOT/<path> (the JS client)
//   /api/openapi.json        -> WEB_ROOT/api/openapi.json (the REST and SSE API)
#pragma once

#include <string>
#include <string_view>

namespace claps::server {

struct static_file {
  std::string path;  // absolute, canonical
  std::string_view content_type;
};

class static_files {
public:
  static_files(std::string web_root, std::string client_root);
  /// True when `url_path` names an existing regular file inside a root.
  bool resolve(std::string_view url_path, static_file& out) const;

private:
  bool resolve_under(const std::string& root, std::string_view relative, static_file& out) const;
  std::string web_root_;
  std::string client_root_;
};

/// The Content-Type for a file name, by extension.
std::string_view content_type_for(std::string_view path) noexcept;

}  // namespace claps::server
