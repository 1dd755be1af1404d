// Internal: hash maps keyed by std::string that can be searched with a
// std::string_view, so lookups on the intake path never allocate.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>

namespace claps::detail {

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept {
    return std::hash<std::string_view>{}(s);
  }
};

template <class Value>
using string_map = std::unordered_map<std::string, Value, string_hash, std::equal_to<>>;

} // namespace claps::detail
