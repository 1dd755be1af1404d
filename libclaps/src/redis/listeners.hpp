// Observers of a client or bus (the store, the server): added and removed by
// id, notified in order. A listener may add or remove listeners while being
// notified, so notification walks a copy.
#pragma once

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

namespace claps::detail {

template <class Callbacks>
class listener_list {
public:
  std::uint64_t add(Callbacks callbacks) {
    const std::uint64_t id = next_++;
    entries_.emplace_back(id, std::move(callbacks));
    return id;
  }
  void remove(std::uint64_t id) {
    std::erase_if(entries_, [id](const auto& e) { return e.first == id; });
  }
  template <class Fn>
  void notify(Fn&& fn) const {
    const auto copy = entries_;
    for (const auto& [id, callbacks] : copy) fn(callbacks);
  }

private:
  std::vector<std::pair<std::uint64_t, Callbacks>> entries_;
  std::uint64_t next_ = 1;
};

}  // namespace claps::detail
