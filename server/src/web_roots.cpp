#include "web_roots.hpp"

#include <filesystem>
#include <system_error>

namespace claps::server {
namespace {

web_roots default_web_roots_for(const std::string& exe) {
  namespace fs = std::filesystem;
  if (!exe.empty()) {
    // CLAPS_INSTALLED_DATA_DIR: the install's share/claps relative to its bin
    // directory, e.g. "../share/claps".
    const fs::path data = fs::path(exe).parent_path() / CLAPS_INSTALLED_DATA_DIR;
    std::error_code ec;
    if (fs::is_directory(data / "web", ec)) {
      const fs::path normal = data.lexically_normal();
      return {(normal / "web").string(), (normal / "client").string()};
    }
  }
  return {CLAPS_WEB_ROOT, CLAPS_CLIENT_ROOT};
}

}  // namespace

web_roots default_web_roots() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return default_web_roots_for(ec ? std::string() : exe.string());
}

}  // namespace claps::server
