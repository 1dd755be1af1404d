#include "article_allowlist.hpp"

#include <claps/ids.hpp>

#include <simdjson.h>

#include <fstream>
#include <sstream>

namespace claps::server {

bool article_allowlist::load(const std::string& path, std::string& error) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    error = "cannot read --articles-file '" + path + "'";
    return false;
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string text = buffer.str();
  const auto first = text.find_first_not_of(" \t\r\n");
  ids_.clear();
  auto add = [&](std::string_view id) {
    if (check_article_id(id)) {
      error = "--articles-file '" + path + "': invalid article id '" + std::string(id) +
              "' (use 1-128 characters of A-Z a-z 0-9 . _ : -)";
      return false;
    }
    ids_.emplace(id);
    return true;
  };
  if (first != std::string::npos && text[first] == '[') {
    simdjson::dom::parser parser;
    simdjson::dom::array items;
    if (auto err = parser.parse(text).get(items)) {
      error = "--articles-file '" + path + "': not a JSON array: " + simdjson::error_message(err);
      return false;
    }
    for (auto item : items) {
      std::string_view id;
      if (item["id"].get(id)) {
        error = "--articles-file '" + path + "': every array element needs a string \"id\"";
        return false;
      }
      if (!add(id)) return false;
    }
  } else {
    std::istringstream lines(text);
    std::string line;
    while (std::getline(lines, line)) {
      if (auto hash = line.find('#'); hash != std::string::npos) line.erase(hash);
      const auto b = line.find_first_not_of(" \t\r");
      if (b == std::string::npos) continue;
      const auto e = line.find_last_not_of(" \t\r");
      if (!add(std::string_view(line).substr(b, e - b + 1))) return false;
    }
  }
  if (ids_.empty()) {
    error = "--articles-file '" + path + "' lists no article ids";
    return false;
  }
  active_ = true;
  return true;
}

bool article_allowlist::allows(std::string_view article) const {
  return !active_ || ids_.find(article) != ids_.end();
}

}  // namespace claps::server
