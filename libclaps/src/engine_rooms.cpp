// Rooms: who watches what, with O(1) swap-removes on both sides.
#include "engine_impl.hpp"

namespace claps {

std::uint32_t engine::impl::find_or_add_subscriber(subscriber_id id) {
  if (auto it = sub_index.find(id); it != sub_index.end()) return it->second;
  std::uint32_t slot;
  if (free_subs.empty()) {
    slot = static_cast<std::uint32_t>(subs.size());
    subs.emplace_back();
  } else {
    slot = free_subs.back();
    free_subs.pop_back();
  }
  subs[slot].id = id;
  sub_index.emplace(id, slot);
  return slot;
}

void engine::impl::add_watch(std::uint32_t sub_slot, std::uint32_t article_slot, bool reading) {
  subscriber_state& s = subs[sub_slot];
  article_state& a = *articles[article_slot];
  s.watching.push_back({article_slot, static_cast<std::uint32_t>(a.room.size()), reading});
  a.room.push_back({sub_slot, static_cast<std::uint32_t>(s.watching.size() - 1)});
  ++subscriptions;
  if (reading) {
    ++a.viewers;
    mark_changed(article_slot);
  }
  if (reading || a.room.size() == 1) room_changed(a);
}

// Removes watching[pos] of a subscriber, swap-removing on both sides.
void engine::impl::remove_watch(std::uint32_t sub_slot, std::uint32_t pos) {
  subscriber_state& s = subs[sub_slot];
  watch_entry w = s.watching[pos];
  if (w.pending) --s.pending;
  article_state& a = *articles[w.article];
  // Room side: move the last entry into the hole and fix its back-pointer.
  if (w.room_pos + 1 != a.room.size()) {
    a.room[w.room_pos] = a.room.back();
    const room_entry& moved = a.room[w.room_pos];
    subs[moved.sub].watching[moved.sub_pos].room_pos = w.room_pos;
  }
  a.room.pop_back();
  // Subscriber side, likewise.
  if (pos + 1 != s.watching.size()) {
    s.watching[pos] = s.watching.back();
    const watch_entry& moved = s.watching[pos];
    articles[moved.article]->room[moved.room_pos].sub_pos = pos;
  }
  s.watching.pop_back();
  --subscriptions;
  if (w.reading) {
    --a.viewers;
    mark_changed(w.article);
  }
  if (w.reading || a.room.empty()) room_changed(a);
}

void engine::impl::drop_subscriber_if_empty(std::uint32_t slot) {
  subscriber_state& s = subs[slot];
  if (!s.watching.empty()) return;
  sub_index.erase(s.id);
  s.pending = 0;
  s.queued = false;  // its queue entry, if any, is skipped
  free_subs.push_back(slot);
}

}  // namespace claps
