// article_allowlist.hpp - the optional --articles-file allow-list.
#pragma once

#include <string>
#include <string_view>
#include <system_error>
#include <unordered_set>

namespace claps::server {

class article_allowlist {
public:
  /// Accepts every valid id.
  article_allowlist() = default;

  /// Loads `path`: a JSON array of objects with an "id" (the demo's
  /// articles.json) when its first non-space byte is '[', else one id per
  /// line with '#' comments. Returns false and sets `error` on failure.
  bool load(const std::string& path, std::string& error);

  /// True when no list is loaded or `article` is on it.
  bool allows(std::string_view article) const;
  bool active() const noexcept { return active_; }
  std::size_t size() const noexcept { return ids_.size(); }

private:
  struct hash : std::hash<std::string_view> {
    using is_transparent = void;
  };
  std::unordered_set<std::string, hash, std::equal_to<>> ids_;
  bool active_ = false;
};

}  // namespace claps::server
