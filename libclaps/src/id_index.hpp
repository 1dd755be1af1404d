// Internal: an open-addressing index from string ids to 32-bit slots.
//
// The ids themselves live in the caller's entries (an article's id, a
// tally's user); the index holds only (hash, slot) pairs in one power-of-two
// array with linear probing, so a lookup is a multiply-mix hash, a mask and
// usually one cache line, with no division and no node to chase. Deletion
// shifts later entries back, so there are no tombstones to clean up.
#pragma once

#include "string_map.hpp"

#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

namespace claps::detail {

class id_index {
public:
  static constexpr std::uint32_t npos = std::numeric_limits<std::uint32_t>::max();

  explicit id_index(std::uint64_t seed = 0x2545F4914F6CDD1Dull) : seed_(seed) {}

  std::uint64_t hash(std::string_view key) const noexcept { return hash_bytes(key, seed_); }

  /// The slot stored for `key`, or npos. key_of(slot) returns a slot's id.
  template <class KeyOf>
  std::uint32_t find(std::string_view key, std::uint64_t h, const KeyOf& key_of) const noexcept {
    if (cells_.empty()) return npos;
    const std::uint32_t tag = static_cast<std::uint32_t>(h);
    for (std::size_t i = tag & mask_;; i = (i + 1) & mask_) {
      const cell& c = cells_[i];
      if (c.slot == npos) return npos;
      if (c.tag == tag && key_of(c.slot) == key) return c.slot;
    }
  }

  /// Adds `slot` under a hash; the key must not be present.
  void insert(std::uint64_t h, std::uint32_t slot) {
    if ((count_ + 1) * 4 > cells_.size() * 3) grow();
    place(static_cast<std::uint32_t>(h), slot);
    ++count_;
  }

  /// Removes the entry for `slot` stored under hash h, if present.
  void erase(std::uint64_t h, std::uint32_t slot) noexcept {
    if (cells_.empty()) return;
    std::size_t i = static_cast<std::uint32_t>(h) & mask_;
    while (cells_[i].slot != slot) {
      if (cells_[i].slot == npos) return;
      i = (i + 1) & mask_;
    }
    // Backward-shift: pull later members of the probe run into the hole.
    std::size_t hole = i;
    for (std::size_t j = (hole + 1) & mask_; cells_[j].slot != npos; j = (j + 1) & mask_) {
      std::size_t home = cells_[j].tag & mask_;
      // Move j into the hole unless its home lies cyclically in (hole, j].
      bool home_in_between = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!home_in_between) {
        cells_[hole] = cells_[j];
        hole = j;
      }
    }
    cells_[hole] = cell{};
    --count_;
  }

  void clear() noexcept {
    cells_.clear();
    count_ = 0;
    mask_ = 0;
  }

  std::size_t size() const noexcept { return count_; }

private:
  struct cell {
    std::uint32_t tag = 0;  // the low 32 bits of the key's hash
    std::uint32_t slot = npos;
  };

  void place(std::uint32_t tag, std::uint32_t slot) noexcept {
    std::size_t i = tag & mask_;
    while (cells_[i].slot != npos) i = (i + 1) & mask_;
    cells_[i] = cell{tag, slot};
  }

  void grow() {
    std::vector<cell> old;
    old.swap(cells_);
    cells_.assign(old.empty() ? 8 : old.size() * 2, cell{});
    mask_ = cells_.size() - 1;
    for (const cell& c : old)
      if (c.slot != npos) place(c.tag, c.slot);
  }

  std::vector<cell> cells_;
  std::size_t count_ = 0;
  std::size_t mask_ = 0;
  std::uint64_t seed_;
};

}  // namespace claps::detail
