// Internal: the op ids an engine remembers, at 32 bytes of entry plus one
// 8-byte index cell (at most 4/3 of them per entry) each, with no strings.
//
// An op id is known by (user, fingerprint): the user exactly, as a slot in a
// table of users interned while they hold op ids, and "user/article/op_id" as
// a 96-bit hash keyed by engine_options::hash_seed. A false replay therefore
// needs two live op ids of the same user whose keyed fingerprints collide:
// about n / 2^96 per lookup for a user holding n. Nobody can aim at another
// user's op ids, whatever they know about the hash.
//
// Entries sit in a ring in the order they were made, which is their expiry
// order (one window after they were made, give or take an arbitration), so
// purging pops the front. An index of (tag, position) cells finds them by
// fingerprint with linear probing and backward-shift deletion (as id_index).
// The strings a commit needs are kept by the engine only while an op is
// dirty or in flight.
#pragma once

#include <claps/time.hpp>

#include "id_index.hpp"
#include "string_map.hpp"

#include <cassert>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <vector>

namespace claps::detail {

// deciding: queued for, or in, an arbitration by a shared store; no result
// exists yet, so a retry of the same op id waits for the decision.
// gone: a hole left in the ring by an entry that was replaced.
enum class stage : std::uint8_t { deciding, accumulating, in_flight, committed, gone };

struct intent_state;

// The hash of "user/article/op_id" under the engine's seed.
struct op_fingerprint {
  std::uint64_t lo = 0;
  std::uint32_t hi = 0;
};

struct op_entry {
  std::uint64_t fingerprint_lo;
  std::uint32_t fingerprint_hi;
  std::uint32_t user;  // slot in op_table's users

  timestamp expires_at() const { return timestamp{millis{expiry_and_stage >> 3}}; }
  stage at() const { return static_cast<stage>(expiry_and_stage & 7); }
  void set_expires_at(timestamp t) {
    expiry_and_stage = (t.time_since_epoch().count() * 8) | (expiry_and_stage & 7);
  }
  void set_stage(stage s) {
    expiry_and_stage = (expiry_and_stage & ~std::int64_t{7}) | static_cast<std::int64_t>(s);
  }

  // The result while accumulating, in flight or committed; the op's intent
  // while deciding (a decision is what makes the result).
  struct outcome {
    std::int32_t accepted;
    std::int32_t mine;
  };
  union {
    outcome result;
    intent_state* intent;
  };

private:
  std::int64_t expiry_and_stage = 0;  // milliseconds * 8 + stage
};
static_assert(sizeof(op_entry) == 32);

class op_table {
public:
  // An entry's position in the ring; stays valid until the entry is popped
  // or replaced.
  using handle = std::uint32_t;
  static constexpr handle npos = 0xFFFF'FFFFu;

  explicit op_table(std::uint64_t seed) : seed_(seed), user_index_(seed) {}

  op_fingerprint fingerprint(std::string_view key) const noexcept {
    const uint128 h = hash_bytes128(key, seed_);
    return {static_cast<std::uint64_t>(h), static_cast<std::uint32_t>(h >> 64)};
  }

  // The slot of an interned user, or npos (then the user holds no op ids).
  std::uint32_t find_user(std::string_view user) const noexcept {
    return user_index_.find(user, user_index_.hash(user), user_key{&users_});
  }
  // Op ids the user holds (in memory), 0 when not interned.
  std::uint32_t ops_of(std::uint32_t user_slot) const noexcept {
    return user_slot == npos ? 0 : users_[user_slot].ops;
  }

  handle find(std::uint32_t user_slot, op_fingerprint fp) const noexcept {
    if (user_slot == npos || cells_.empty()) return npos;
    const std::uint32_t tag = tag_of(fp.lo);
    for (std::size_t i = tag & mask_;; i = (i + 1) & mask_) {
      const cell& c = cells_[i];
      if (c.tag == 0) return npos;
      if (c.tag == tag) {
        const op_entry& e = at(c.pos);
        if (e.fingerprint_lo == fp.lo && e.fingerprint_hi == fp.hi && e.user == user_slot) return c.pos;
      }
    }
  }

  op_entry& at(handle h) noexcept { return ring_[static_cast<std::uint32_t>(h - head_)]; }
  const op_entry& at(handle h) const noexcept { return ring_[static_cast<std::uint32_t>(h - head_)]; }

  // Adds an entry, which must not be present, at the back of the ring;
  // counts it against its user (interned here if new).
  handle insert(std::string_view user, op_fingerprint fp, stage s, timestamp expires_at) {
    std::uint32_t slot = find_user(user);
    if (slot == npos) slot = intern(user);
    ++users_[slot].ops;
    // npos never names an entry: a hole takes that position.
    if (static_cast<handle>(head_ + ring_.size()) == npos) {
      ring_.emplace_back();
      ring_.back().set_stage(stage::gone);
    }
    const handle h = static_cast<handle>(head_ + ring_.size());
    op_entry& e = ring_.emplace_back();
    e.fingerprint_lo = fp.lo;
    e.fingerprint_hi = fp.hi;
    e.user = slot;
    e.set_stage(s);
    e.set_expires_at(expires_at);
    e.result = {0, 0};
    if ((live_ + 1) * 4 > cells_.size() * 3) grow();
    place(tag_of(fp.lo), h);
    ++live_;
    return h;
  }

  // Leaves a hole where the entry was; it no longer counts for its user.
  void remove(handle h) noexcept {
    op_entry& e = at(h);
    unindex(e, h);
    e.set_stage(stage::gone);
  }

  bool empty() const noexcept { return ring_.empty(); }
  handle front() const noexcept { return head_; }
  // Drops the oldest entry (or hole) of the ring.
  void pop_front() noexcept {
    op_entry& e = ring_.front();
    if (e.at() != stage::gone) unindex(e, head_);
    ring_.pop_front();
    ++head_;
  }

  // Live op ids (holes excluded).
  std::size_t size() const noexcept { return live_; }

private:
  struct cell {
    std::uint32_t tag = 0;  // 0: empty
    handle pos = npos;
  };
  struct user_entry {
    std::string id;
    std::uint32_t ops = 0;  // entries that name this slot
  };
  struct user_key {
    const std::vector<user_entry>* users;
    std::string_view operator()(std::uint32_t slot) const { return (*users)[slot].id; }
  };

  // The low 31 bits of the fingerprint pick the home cell (tables stay
  // below 2^31 cells); the top bit makes a tag never 0.
  static std::uint32_t tag_of(std::uint64_t lo) noexcept {
    return static_cast<std::uint32_t>(lo) | 0x8000'0000u;
  }

  std::uint32_t intern(std::string_view user) {
    std::uint32_t slot;
    if (free_users_.empty()) {
      slot = static_cast<std::uint32_t>(users_.size());
      users_.emplace_back();
    } else {
      slot = free_users_.back();
      free_users_.pop_back();
    }
    users_[slot].id.assign(user);
    user_index_.insert(user_index_.hash(user), slot);
    return slot;
  }

  void unindex(const op_entry& e, handle h) noexcept {
    erase_cell(tag_of(e.fingerprint_lo), h);
    --live_;
    user_entry& u = users_[e.user];
    if (--u.ops == 0) {
      user_index_.erase(user_index_.hash(u.id), e.user);
      u.id = std::string();
      free_users_.push_back(e.user);
    }
  }

  void place(std::uint32_t tag, handle pos) noexcept {
    std::size_t i = tag & mask_;
    while (cells_[i].tag != 0) i = (i + 1) & mask_;
    cells_[i] = cell{tag, pos};
  }

  void erase_cell(std::uint32_t tag, handle pos) noexcept {
    std::size_t i = tag & mask_;
    while (cells_[i].pos != pos || cells_[i].tag != tag) {
      assert(cells_[i].tag != 0);
      i = (i + 1) & mask_;
    }
    // Backward-shift: pull later members of the probe run into the hole.
    std::size_t hole = i;
    for (std::size_t j = (hole + 1) & mask_; cells_[j].tag != 0; j = (j + 1) & mask_) {
      const std::size_t home = cells_[j].tag & mask_;
      const bool home_in_between = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
      if (!home_in_between) {
        cells_[hole] = cells_[j];
        hole = j;
      }
    }
    cells_[hole] = cell{};
  }

  void grow() {
    std::vector<cell> old;
    old.swap(cells_);
    cells_.assign(old.empty() ? 16 : old.size() * 2, cell{});
    mask_ = cells_.size() - 1;
    for (const cell& c : old)
      if (c.tag != 0) place(c.tag, c.pos);
  }

  std::uint64_t seed_;
  std::deque<op_entry> ring_;
  handle head_ = 0;  // position of ring_.front()
  std::size_t live_ = 0;
  std::vector<cell> cells_;
  std::size_t mask_ = 0;
  std::vector<user_entry> users_;
  std::vector<std::uint32_t> free_users_;
  id_index user_index_;
};

}  // namespace claps::detail
