// Intake: loading articles, tallies and op ids; the cap; replays; eviction.
#include "engine_impl.hpp"

namespace claps {

std::error_code engine::impl::find_or_load_article(std::string_view id, std::uint32_t& slot) {
  const std::uint64_t h = article_index.hash(id);
  if (std::uint32_t found = article_index.find(id, h, article_key_of()); found != no_slot) {
    slot = found;
    return {};
  }
  std::int64_t total = 0;
  if (auto ec = st.read_total(id, total)) return ec;
  if (free_articles.empty()) {
    slot = static_cast<std::uint32_t>(articles.size());
    articles.push_back(std::make_unique<article_state>());
  } else {
    slot = free_articles.back();
    free_articles.pop_back();
  }
  article_state& a = *articles[slot];
  a.id.assign(id);
  a.total = a.committed = a.emitted_total = total;
  a.viewers = a.emitted_viewers = 0;
  a.remote_total = 0;
  a.remote_viewers = 0;
  a.tallies.clear();
  a.tally_index = detail::id_index(opt.hash_seed);
  a.live = true;
  article_index.insert(h, slot);
  ++live_articles;
  return {};
}

void engine::impl::evict_idle_articles() {
  if (live_articles <= opt.article_cache) return;
  for (std::uint32_t slot = 0; slot < articles.size(); ++slot) {
    article_state& a = *articles[slot];
    if (!evictable(a)) continue;
    article_index.erase(article_index.hash(a.id), slot);
    a.live = false;
    a.id.clear();
    a.room.shrink_to_fit();
    tally_count -= a.tallies.size();
    a.tallies = {};
    a.tally_index = detail::id_index();
    free_articles.push_back(slot);
    --live_articles;
  }
}

// The index of `user`'s tally in the article's `tallies`, loading it from
// the store when it is not cached. Indices stay valid until eviction.
std::error_code engine::impl::find_or_load_tally(std::string_view user, std::uint32_t slot,
                                                 std::uint32_t& out) {
  article_state& a = *articles[slot];
  const std::uint64_t h = a.tally_index.hash(user);
  auto user_of = [&a](std::uint32_t i) { return std::string_view(a.tallies[i].user); };
  if (std::uint32_t found = a.tally_index.find(user, h, user_of); found != no_slot) {
    out = found;
    return {};
  }
  std::int32_t claps = 0;
  if (auto ec = st.read_tally(user, a.id, claps)) return ec;
  tally_entry e{std::string(user), {}};
  e.state.value = e.state.committed = claps;
  out = static_cast<std::uint32_t>(a.tallies.size());
  a.tallies.push_back(std::move(e));
  a.tally_index.insert(h, out);
  ++tally_count;
  return {};
}

// Runs between ticks. Only when no tally is dirty or in flight (the usual
// case right after a commit) may indices be dropped, so then all go at once,
// with their memory (clear() would keep each article's capacity).
void engine::impl::evict_clean_tallies() {
  if (tally_count <= opt.tally_cache) return;
  if (!dirty_tallies.empty() || !flight_tallies.empty() || !intents.empty() || !deciding.empty()) return;
  for (auto& a_ptr : articles) {
    article_state& a = *a_ptr;
    if (a.tallies.empty()) continue;
    a.tallies = {};
    a.tally_index = detail::id_index(opt.hash_seed);
  }
  tally_count = 0;
}

// Finds a live op record, in memory or in the store.
std::error_code engine::impl::find_op(std::string_view user, std::string_view article, std::string_view op_id,
                                      const op_key& key, op_table::handle& out, op_table::handle& in_memory) {
  out = in_memory = ops.find(key.user, key.fingerprint);
  if (out != op_table::npos) {
    const op_entry& e = ops.at(out);
    if (e.expires_at() <= now && e.at() == stage::committed) out = op_table::npos;
    return {};
  }
  // Once every live op id was made by this engine and none was evicted
  // early, a miss in memory is a miss in the store: skip the read.
  if (now >= ops_complete_from && now >= early_evictions_expire) return {};
  stored_op rec;
  bool found = false;
  if (auto ec = st.read_op(user, article, op_id, rec, found)) return ec;
  if (!found || rec.expires_at <= now) return {};
  out = ops.insert(user, key.fingerprint, stage::committed, rec.expires_at);
  ops.at(out).result = {rec.accepted, rec.mine};
  return {};
}

void engine::impl::forget_old_ops() {
  while (!ops.empty()) {
    const op_entry& e = ops.at(ops.front());
    if (e.at() != stage::gone) {
      const bool expired = e.expires_at() <= now;
      const bool over = ops.size() > opt.op_id_cache;
      if ((!expired && !over) || e.at() != stage::committed) break;
      if (!expired) early_evictions_expire = std::max(early_evictions_expire, e.expires_at());
      ++stats.ops_purged;
    }
    ops.pop_front();
  }
}

std::error_code engine::impl::apply(std::string_view user, std::string_view article, std::int32_t count,
                                    bool is_undo, std::string_view op_id, std::uint64_t cookie) {
  if (auto ec = check_user_id(user)) return ec;
  if (auto ec = check_article_id(article)) return ec;
  if (!op_id.empty())
    if (auto ec = check_op_id(op_id)) return ec;
  if (!is_undo && (count < 1 || count > opt.clap_cap)) return make_error_code(errc::invalid_count);
  if (closing) return make_error_code(errc::unavailable);
  if (stats.pending_ops >= opt.max_pending_ops) {
    ++stats.refused_unavailable;
    return make_error_code(errc::unavailable);
  }
  op_table::handle op = op_table::npos;
  op_table::handle expired = op_table::npos;
  op_key key{};
  if (!op_id.empty()) {
    key = make_op_key(user, article, op_id);
    if (auto ec = find_op(user, article, op_id, key, op, expired)) return ec;
    if (op != op_table::npos) {
      const op_entry& e = ops.at(op);
      if (e.at() != stage::deciding) return replay(e, user, article, op_id, cookie);
      // Sent again before the first was decided: it gets the same answer.
      ++articles[e.intent->article]->result_refs;
      e.intent->followers.push_back(cookie);
      ++stats.pending_ops;
      return {};
    }
    // Counted over the op ids in memory (an expired one until it is purged,
    // unless this op replaces it).
    if (opt.max_op_ids_per_user != 0 &&
        ops.ops_of(key.user) - (expired != op_table::npos ? 1 : 0) >= opt.max_op_ids_per_user) {
      ++stats.refused_op_ids;
      return make_error_code(errc::too_many_op_ids);
    }
  }
  // Replays above cost the store nothing; from here an op writes keys.
  const bool room = st.space().accepts_new_keys;
  bool keep_op_id = true;
  if (!room && !is_undo && !op_id.empty()) return refuse_store_full();
  std::uint32_t slot = 0;
  if (auto ec = find_or_load_article(article, slot)) return ec;
  std::uint32_t tally = 0;
  if (auto ec = find_or_load_tally(user, slot, tally)) return ec;
  if (!room) {
    const tally_state& t = articles[slot]->tallies[tally].state;
    const bool has_claps = t.value != 0 || t.committed != 0 || st.remote_tally(user, article) != 0;
    // A clap without an op id on an existing tally only rewrites keys.
    if (!is_undo && !has_claps) return refuse_store_full();
    // An undo always passes; one that removes nothing is not worth a new op
    // record while space is short (a flood of them would fill the reserve).
    if (is_undo && !has_claps) keep_op_id = false;
  }
  if (!op_id.empty() && keep_op_id) {
    // An expired record may still sit under this key: the new one replaces
    // it at the back of the table, in expiry order.
    if (expired != op_table::npos) ops.remove(expired);
    op = ops.insert(user, key.fingerprint, stage::accumulating, now + opt.op_id_window);
  }
  ++articles[slot]->result_refs;
  ++stats.pending_ops;
  if (st.arbitrates()) {
    auto in = std::make_unique<intent_state>();
    in->user.assign(user);
    in->op_id.assign(op_id);
    in->store_op_id = keep_op_id;
    in->article = slot;
    in->tally = tally;
    in->count = is_undo ? 0 : count;
    in->undo = is_undo;
    in->cookie = cookie;
    in->op = op;
    in->give_up = now + opt.op_id_wait;
    if (op != op_table::npos) {
      op_entry& e = ops.at(op);
      e.set_stage(stage::deciding);
      e.intent = in.get();
    }
    intents.push_back(std::move(in));
    return {};
  }
  record_locally(slot, tally, count, is_undo, op, op_id, cookie);
  return {};
}

std::error_code engine::impl::refuse_store_full() {
  ++stats.refused_store_full;
  return make_error_code(errc::store_full);
}

std::pair<std::int32_t, std::int32_t> engine::impl::record_locally(std::uint32_t slot, std::uint32_t tally,
                                                                   std::int32_t count, bool is_undo,
                                                                   op_table::handle op,
                                                                   std::string_view op_id,
                                                                   std::uint64_t cookie) {
  const article_state& a = *articles[slot];
  const tally_entry& e = a.tallies[tally];
  // Claps this user made through other nodes count against the cap too.
  // An undo removes all of them, wherever they were made: this node's
  // register goes below zero by the other nodes' part, so the user's claps
  // summed over nodes are 0 (a PN-counter; no node rewrites another's part).
  const std::int32_t remote = st.remote_tally(e.user, a.id);
  const std::int32_t accepted = is_undo ? -(e.state.value + remote)
                                        : std::min(count, std::max(0, opt.clap_cap - e.state.value - remote));
  const std::int32_t mine = e.state.value + accepted + remote;
  record(slot, tally, count, is_undo, accepted, mine, op, op_id, cookie);
  return {accepted, mine};
}

void engine::impl::keep_in_memory(op_table::handle op, std::int32_t accepted, std::int32_t mine,
                                  timestamp expires_at) {
  // Stays where it was made in the table: its new expiry is at most an
  // arbitration later (or now), so expiry order holds closely enough.
  op_entry& e = ops.at(op);
  e.set_stage(stage::committed);
  e.set_expires_at(expires_at);
  e.result = {accepted, mine};
}

void engine::impl::queue_op(op_table::handle op, std::string_view user, std::string_view article,
                            std::string_view op_id) {
  dirty_ops.push_back({op, static_cast<std::uint32_t>(dirty_op_keys.size()),
                       static_cast<std::uint8_t>(user.size()), static_cast<std::uint8_t>(article.size()),
                       static_cast<std::uint8_t>(op_id.size())});
  dirty_op_keys.append(user).append(article).append(op_id);
}

void engine::impl::record(std::uint32_t slot, std::uint32_t tally, std::int32_t count, bool is_undo,
                          std::int32_t accepted, std::int32_t mine, op_table::handle op,
                          std::string_view op_id, std::uint64_t cookie) {
  article_state& a = *articles[slot];
  tally_state& t = a.tallies[tally].state;
  if (is_undo) {
    ++stats.undos;
  } else {
    stats.claps_requested += static_cast<std::uint64_t>(count);
    stats.claps_accepted += static_cast<std::uint64_t>(std::max(accepted, 0));
    stats.claps_over_cap += static_cast<std::uint64_t>(count - std::max(accepted, 0));
  }
  if (accepted != 0) {
    t.value += accepted;
    a.total += accepted;
    mark_dirty(slot);
    if (!t.dirty) {
      t.dirty = true;
      dirty_tallies.push_back({slot, tally});
    }
  }
  if (op != op_table::npos) {
    op_entry& e = ops.at(op);
    e.result = {accepted, mine};
    e.set_expires_at(now + opt.op_id_window);
    e.set_stage(stage::accumulating);
    queue_op(op, a.tallies[tally].user, a.id, op_id);
  }
  accumulating_results.push({cookie, slot, accepted, mine, false}, a.tallies[tally].user, op_id);
}

std::error_code engine::impl::replay(const op_entry& op, std::string_view user, std::string_view article,
                                     std::string_view op_id, std::uint64_t cookie) {
  std::uint32_t slot = 0;
  if (auto ec = find_or_load_article(article, slot)) return ec;
  ++stats.replays;
  ++articles[slot]->result_refs;
  results_for(op.at()).push({cookie, slot, op.result.accepted, op.result.mine, true}, user, op_id);
  ++stats.pending_ops;
  return {};
}

// A reader's snapshot reads the store but caches nothing: only claps and
// undos make tallies, so a user who only watches leaves no state behind.
// A tally not cached is neither dirty nor in flight, so the store's value
// is the committed one.
std::error_code engine::impl::committed_mine(std::string_view user, std::uint32_t slot, std::int32_t& mine) {
  mine = 0;
  if (user.empty()) return {};
  const article_state& a = *articles[slot];
  std::int32_t committed = 0;
  const std::uint32_t cached = a.tally_index.find(
      user, a.tally_index.hash(user), [&a](std::uint32_t i) { return std::string_view(a.tallies[i].user); });
  if (cached != no_slot) committed = a.tallies[cached].state.committed;
  else if (auto ec = st.read_tally(user, a.id, committed)) return ec;
  mine = committed + st.remote_tally(user, a.id);
  return {};
}

bool engine::impl::refresh_remote(std::uint32_t slot) {
  article_state& a = *articles[slot];
  std::int64_t total = 0;
  std::uint32_t viewers = 0;
  // Without a view of other nodes, a store that does not arbitrate serves
  // one node: its snapshots are whole.
  if (!st.remote_part(a.id, total, viewers)) return !st.arbitrates();
  if (a.remote_total != total || a.remote_viewers != viewers) {
    a.remote_total = total;
    a.remote_viewers = viewers;
    mark_changed(slot);
  }
  return true;
}

// Validates an article and optional user and loads what a snapshot needs.
std::error_code engine::impl::load_for_snapshot(std::string_view article, std::string_view user,
                                                std::uint32_t& slot, std::int32_t& mine, bool& global) {
  if (auto ec = check_article_id(article)) return ec;
  if (!user.empty())
    if (auto ec = check_user_id(user)) return ec;
  if (auto ec = find_or_load_article(article, slot)) return ec;
  global = refresh_remote(slot);
  return committed_mine(user, slot, mine);
}

}  // namespace claps
