// The tick: one commit per tick, then results and one update per changed article.
#include "engine_impl.hpp"

namespace claps {

void engine::impl::complete(result_list& results, durability level) {
  if (results.empty()) return;
  callback_scope scope(*this);
  for (const pending_result& r : results.items) {
    article_state& a = *articles[r.article];
    --a.result_refs;
    if (cb.result) {
      op_result out;
      out.cookie = r.cookie;
      if (r.unavailable) out.error = make_error_code(errc::unavailable);
      out.user = results.user(r);
      out.op_id = results.op_id(r);
      out.article = a.id;
      out.accepted = r.accepted;
      out.total = a.committed + a.remote_total;
      out.mine = r.mine;
      out.replayed = r.replayed;
      out.level = level;
      cb.result(out);
    }
  }
  results.clear();
}

void engine::impl::tick(timestamp t) {
  now = std::max(now, t);
  next_tick = next_tick + opt.tick;
  if (next_tick <= now) next_tick = now + opt.tick;
  ++stats.ticks;
  emitted_since_tick = false;
  if (!committing && !arbitrating) {
    if (intents.empty()) start_commit();
    else start_arbitration();  // commits once the ops are decided
  }
  // Replays of durable ops need no commit.
  stats.pending_ops -= ready_results.size();
  complete(ready_results, last_error ? durability::local : last_level);
  emit();
  if (!committing && !arbitrating) {
    forget_old_ops();
    evict_clean_tallies();
    evict_idle_articles();
  }
}

void engine::impl::start_arbitration() {
  deciding.swap(intents);
  intents.clear();
  intent_views.clear();
  intent_views.reserve(deciding.size());
  for (const auto& in : deciding) {
    const article_state& a = *articles[in->article];
    intent_views.push_back({in->user, a.id,
                            in->store_op_id ? std::string_view(in->op_id) : std::string_view(), in->count,
                            in->undo, a.tallies[in->tally].state.value, a.total});
  }
  arbitrating = true;
  auto done = [self = self](std::span<const op_decision> d) {
    if (*self) (*self)->finish_arbitration(d);
  };
  if (st.arbitrate(intent_views, std::move(done))) {
    // The shared store is unreachable: every op is decided here (kind::local).
    const std::vector<op_decision> all(deciding.size());
    finish_arbitration(all);
  }
}

void engine::impl::finish_arbitration(std::span<const op_decision> decisions) {
  assert(arbitrating && decisions.size() == deciding.size());
  arbitrating = false;
  // Decisions apply in the order the ops arrived, so a tally's later ops
  // build on its earlier ones.
  for (std::size_t i = 0; i < deciding.size(); ++i)
    if (settle_intent(*deciding[i], decisions[i])) deciding[i].reset();
  for (auto& in : deciding)
    if (in) intents.push_back(std::move(in));  // asked again on the next tick
  deciding.clear();
  start_commit();
  if (!in_tick) wake_if_earlier();
}

bool engine::impl::settle_intent(intent_state& in, const op_decision& d) {
  auto answer_followers = [&](std::int32_t accepted, std::int32_t mine, bool unavailable) {
    for (std::uint64_t cookie : in.followers)
      accumulating_results.push({cookie, in.article, accepted, mine, true, unavailable}, in.user, in.op_id);
    if (!unavailable) stats.replays += in.followers.size();
  };
  switch (d.what) {
  case op_decision::kind::applied:
    record(in.article, in.tally, in.count, in.undo, d.accepted, d.mine, in.op, in.op_id, in.cookie);
    answer_followers(d.accepted, d.mine, false);
    break;
  case op_decision::kind::local: {
    const auto [accepted, mine] =
        record_locally(in.article, in.tally, in.count, in.undo, in.op, in.op_id, in.cookie);
    answer_followers(accepted, mine, false);
    break;
  }
  case op_decision::kind::replay:
    // Another node applied this op id: answer its result and count nothing.
    // The record stays in memory only: it is that node's journal that holds it.
    if (in.op != op_table::npos) keep_in_memory(in.op, d.accepted, d.mine, now + opt.op_id_window);
    ++stats.replays;
    accumulating_results.push({in.cookie, in.article, d.accepted, d.mine, true}, in.user, in.op_id);
    answer_followers(d.accepted, d.mine, false);
    break;
  case op_decision::kind::retry:
    if (now < in.give_up) return false;  // kept: asked again next tick
    // Forgotten: expired at once, purged with the other expired records.
    if (in.op != op_table::npos) keep_in_memory(in.op, 0, 0, now);
    ++stats.refused_unavailable;
    accumulating_results.push({in.cookie, in.article, 0, 0, false, true}, in.user, in.op_id);
    answer_followers(0, 0, true);
    break;
  }
  return true;
}

void engine::impl::start_commit() {
  batch_totals.clear();
  batch_tallies.clear();
  batch_ops.clear();
  if (dirty_articles.empty() && dirty_tallies.empty() && dirty_ops.empty()) {
    // Nothing to make durable; results can only be zero-effect ops without
    // op ids (e.g. an undo with nothing to undo, a clap at the cap).
    stats.pending_ops -= accumulating_results.size();
    complete(accumulating_results, last_level);
    // A store short of space gets an empty batch each tick: its chance to
    // purge expired op records and find room again while new keys are refused.
    if (!st.space().accepts_new_keys) {
      committing = true;
      commit_batch batch;
      batch.now = now;
      st.commit(batch, commit_done());
    }
    return;
  }
  for (std::uint32_t slot : dirty_articles) {
    article_state& a = *articles[slot];
    a.dirty = false;
    a.in_flight = true;
    a.in_flight_total = a.total;
    batch_totals.push_back({a.id, a.total});
  }
  // A tally's user string can move when its article's tallies grow during an
  // asynchronous commit, so the batch gets its own copy of the users.
  batch_users.clear();
  for (tally_ref ref : dirty_tallies) batch_users += articles[ref.article]->tallies[ref.index].user;
  std::size_t offset = 0;
  for (tally_ref ref : dirty_tallies) {
    article_state& a = *articles[ref.article];
    tally_entry& e = a.tallies[ref.index];
    e.state.dirty = false;
    e.state.in_flight = true;
    e.state.in_flight_value = e.state.value;
    batch_tallies.push_back(
        {std::string_view(batch_users).substr(offset, e.user.size()), a.id, e.state.value});
    offset += e.user.size();
  }
  // The batch views the op keys in flight_op_keys, which nothing appends to
  // until the commit is done.
  flight_op_keys.swap(dirty_op_keys);
  dirty_op_keys.clear();
  for (const pending_op& p : dirty_ops) {
    op_entry& e = ops.at(p.op);
    e.set_stage(stage::in_flight);
    const std::string_view key = std::string_view(flight_op_keys).substr(p.key_at);
    batch_ops.push_back({key.substr(0, p.user_len), key.substr(p.user_len, p.article_len),
                         key.substr(p.user_len + p.article_len, p.op_id_len), e.result.accepted,
                         e.result.mine, e.expires_at()});
  }
  flight_articles.swap(dirty_articles);
  flight_tallies.swap(dirty_tallies);
  flight_ops.swap(dirty_ops);
  flight_results.swap(accumulating_results);
  committing = true;
  commit_batch batch;
  batch.totals = batch_totals;
  batch.tallies = batch_tallies;
  batch.ops = batch_ops;
  batch.now = now;
  st.commit(batch, commit_done());
}

void engine::impl::finish_commit(std::error_code ec, durability level) {
  assert(committing);
  committing = false;
  if (ec) {
    ++stats.commit_failures;
    for (std::uint32_t slot : flight_articles) {
      articles[slot]->in_flight = false;
      mark_dirty(slot);
    }
    for (tally_ref ref : flight_tallies) {
      tally_state& t = tally_of(ref);
      t.in_flight = false;
      if (!t.dirty) {
        t.dirty = true;
        dirty_tallies.push_back(ref);
      }
    }
    for (const pending_op& p : flight_ops) {
      ops.at(p.op).set_stage(stage::accumulating);
      const std::string_view key = std::string_view(flight_op_keys).substr(p.key_at);
      queue_op(p.op, key.substr(0, p.user_len), key.substr(p.user_len, p.article_len),
               key.substr(p.user_len + p.article_len, p.op_id_len));
    }
    flight_op_keys.clear();
    flight_results.append(accumulating_results);
    accumulating_results.swap(flight_results);
    flight_results.clear();
    flight_articles.clear();
    flight_tallies.clear();
    flight_ops.clear();
    bool was_healthy = !last_error;
    last_error = ec;
    if (was_healthy && cb.store_status) {
      callback_scope scope(*this);
      cb.store_status(ec);
    }
    if (!in_tick) wake_if_earlier();
    return;
  }
  ++stats.commits;
  last_level = level;
  for (std::uint32_t slot : flight_articles) {
    article_state& a = *articles[slot];
    a.in_flight = false;
    a.committed = a.in_flight_total;
    mark_changed(slot);
  }
  for (tally_ref ref : flight_tallies) {
    tally_state& t = tally_of(ref);
    t.in_flight = false;
    t.committed = t.in_flight_value;
  }
  for (const pending_op& p : flight_ops) ops.at(p.op).set_stage(stage::committed);
  flight_op_keys.clear();
  flight_articles.clear();
  flight_tallies.clear();
  flight_ops.clear();
  if (last_error) {
    last_error.clear();
    if (cb.store_status) {
      callback_scope scope(*this);
      cb.store_status({});
    }
  }
  stats.pending_ops -= flight_results.size();
  complete(flight_results, level);
  // A store that completes later than commit() returned emits right away,
  // rather than a tick later - unless this tick already emitted: a subscriber
  // gets at most one batch per tick, also when other nodes' parts (emitted by
  // the tick) and this node's commits (emitted here) change the same room.
  if (!in_tick && !emitted_since_tick) emit();
  if (!in_tick) wake_if_earlier();
}

void engine::impl::settle_all_unavailable() {
  auto refuse = [this](result_list& list) {
    for (pending_result& r : list.items) r.unavailable = true;
    stats.pending_ops -= list.size();
    complete(list, durability::local);
  };
  refuse(flight_results);
  for (auto* queue : {&deciding, &intents}) {
    result_list answers;
    for (const auto& in : *queue) {
      if (!in) continue;
      answers.push({in->cookie, in->article, 0, 0, false, true}, in->user, in->op_id);
      for (std::uint64_t cookie : in->followers)
        answers.push({cookie, in->article, 0, 0, true, true}, in->user, in->op_id);
    }
    queue->clear();
    refuse(answers);
  }
  refuse(accumulating_results);
  refuse(ready_results);
}

void engine::impl::emit() {
  if (changed_articles.empty()) return;
  updates.clear();
  update_slots.clear();
  held_articles.clear();
  for (std::uint32_t slot : changed_articles) {
    article_state& a = *articles[slot];
    const std::int64_t total = a.committed + a.remote_total;
    const std::uint32_t viewers = a.viewers + a.remote_viewers;
    if (total == a.emitted_total && viewers == a.emitted_viewers) {
      a.changed = false;
      continue;
    }
    if (!a.room.empty() && total == a.emitted_total && hold_viewer_change(a)) {
      // Stays on the changed list: looked at again each emission until its
      // interval has passed or its total moves.
      held_articles.push_back(slot);
      ++stats.viewer_changes_held;
      continue;
    }
    a.changed = false;
    a.emitted_total = total;
    a.emitted_viewers = viewers;
    if (a.room.empty()) continue;  // nobody to tell
    a.last_emit = now;
    a.current = {a.id, total, viewers, {}, a.viewers};
    updates.push_back(a.current);
    update_slots.push_back(slot);
  }
  changed_articles.swap(held_articles);
  if (updates.empty()) return;
  emitted_since_tick = true;
  callback_scope scope(*this);
  for (std::size_t i = 0; i < updates.size(); ++i) {
    article_state& a = *articles[update_slots[i]];
    if (cb.encode) {
      a.encoded.clear();
      cb.encode(a.current, a.encoded);
      a.current.encoded = a.encoded;
      updates[i].encoded = a.encoded;
    }
  }
  stats.updates += updates.size();
  if (cb.tick_updates) cb.tick_updates(updates);
  if (!cb.deliver && !cb.deliver_slice) return;
  for (std::uint32_t slot : update_slots)
    for (const room_entry& r : articles[slot]->room) queue_delivery(r.sub, r.sub_pos);
  // The first slice goes now, also outside advance() (a commit that
  // completed later); the caller's next advance() calls continue.
  deliver_queued(opt.deliveries_per_slice);
}

std::size_t engine::impl::deliver_queued(std::size_t max) {
  std::size_t delivered = 0;
  callback_scope scope(*this);
  const bool sliced = static_cast<bool>(cb.deliver_slice);
  delivery_batch.clear();
  slice.clear();
  slice_ends.clear();
  while (delivery_pos < delivery_queue.size() && (max == 0 || delivered < max)) {
    subscriber_state& s = subs[delivery_queue[delivery_pos++]];
    if (!s.queued) continue;  // left, or was delivered through a newer entry
    s.queued = false;
    const std::size_t first = delivery_batch.size();
    for (watch_entry& w : s.watching) {
      if (!w.pending) continue;
      w.pending = false;
      delivery_batch.push_back(&articles[w.article]->current);
      if (delivery_batch.size() - first == s.pending) break;
    }
    s.pending = 0;
    if (delivery_batch.size() == first) continue;
    ++delivered;
    if (sliced) {
      slice.push_back({s.id, {}});
      slice_ends.push_back(static_cast<std::uint32_t>(delivery_batch.size()));
    } else {
      cb.deliver(s.id, std::span<const article_update* const>(delivery_batch).subspan(first));
      delivery_batch.clear();
    }
  }
  if (sliced && !slice.empty()) {
    // Spans are made once the batch stops growing.
    std::uint32_t begin = 0;
    for (std::size_t i = 0; i < slice.size(); ++i) {
      slice[i].updates =
          std::span<const article_update* const>(delivery_batch).subspan(begin, slice_ends[i] - begin);
      begin = slice_ends[i];
    }
    cb.deliver_slice(slice);
  }
  if (delivery_pos == delivery_queue.size()) {
    delivery_queue.clear();
    delivery_pos = 0;
  } else if (delivery_pos > 4096 && delivery_pos * 2 > delivery_queue.size()) {
    delivery_queue.erase(delivery_queue.begin(),
                         delivery_queue.begin() + static_cast<std::ptrdiff_t>(delivery_pos));
    delivery_pos = 0;
  }
  stats.deliveries += delivered;
  return delivered;
}

}  // namespace claps
