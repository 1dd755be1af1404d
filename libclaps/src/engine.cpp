// The engine: rooms, cap and op-id checks at intake, and the per-tick
// coalescer that commits one batch and then fans out one update per changed
// article. See docs/architecture.md for the model.
#include <claps/engine.hpp>
#include <claps/ids.hpp>

#include "id_index.hpp"
#include "string_map.hpp"

#include <algorithm>
#include <cassert>
#include <deque>
#include <memory>
#include <limits>
#include <unordered_map>

namespace claps {

std::error_code validate(const engine_options& o) noexcept {
  if (o.tick < millis(1) || o.tick > millis(1000)) return make_error_code(errc::bad_request);
  if (o.clap_cap < 1) return make_error_code(errc::bad_request);
  if (o.op_id_window < millis(0)) return make_error_code(errc::bad_request);
  if (o.max_pending_ops < 1) return make_error_code(errc::bad_request);
  return {};
}

namespace {

constexpr std::uint32_t no_slot = std::numeric_limits<std::uint32_t>::max();
// In-memory op records beyond this are evicted oldest first once committed;
// the store still answers for them until they expire.
constexpr std::size_t op_cache_limit = 1'000'000;

enum class stage : std::uint8_t { accumulating, in_flight, committed };

struct room_entry {
  std::uint32_t sub;      // subscriber slot
  std::uint32_t sub_pos;  // index in that subscriber's `watching`
};

struct watch_entry {
  std::uint32_t article;  // article slot
  std::uint32_t room_pos; // index in that article's `room`
  bool reading;
};

struct tally_state {
  std::int32_t value = 0;      // including what is not yet durable
  std::int32_t committed = 0;  // durable
  std::int32_t in_flight_value = 0;
  bool dirty = false;
  bool in_flight = false;
};

// One user's tally on one article. Each article keeps its own tallies, keyed
// by user: a clap hashes the article id and the user id separately instead of
// building and hashing "user/article".
struct tally_entry {
  std::string user;
  tally_state state;
};

struct article_state {
  std::string id;
  std::int64_t total = 0;       // including what is not yet durable
  std::int64_t committed = 0;   // durable
  std::int64_t in_flight_total = 0;
  std::int64_t emitted_total = 0;
  std::uint32_t viewers = 0;
  std::uint32_t emitted_viewers = 0;
  std::int64_t remote_total = 0;    // other nodes' part (cluster stores)
  std::uint32_t remote_viewers = 0;
  std::uint32_t result_refs = 0;  // pending results naming this article
  std::vector<room_entry> room;
  // Dirty or in-flight tallies imply dirty or in_flight here.
  std::vector<tally_entry> tallies;
  detail::id_index tally_index;
  bool live = false;
  bool dirty = false;      // total changed since the last batch was built
  bool in_flight = false;  // part of the commit in flight
  bool changed = false;    // on the changed list for the next emission
};


struct op_state {
  std::string article;
  std::int32_t accepted = 0;
  std::int32_t mine = 0;
  timestamp expires_at{};
  std::uint32_t user_len = 0;  // key is user + '/' + op_id
  stage at = stage::accumulating;
};

struct subscriber_state {
  subscriber_id id = 0;
  std::vector<watch_entry> watching;
  std::vector<const article_update*> batch;  // reused every tick
  bool live = false;
};

struct pending_result {
  std::uint64_t cookie;
  std::uint32_t article;
  std::int32_t accepted;
  std::int32_t mine;
  bool replayed;
};

using op_map = detail::string_map<op_state>;

struct tally_ref {
  std::uint32_t article;
  std::uint32_t index;  // in that article's `tallies`
};

} // namespace

struct engine::impl {
  store& st;
  engine_options opt;
  engine_callbacks cb;
  timestamp now;
  timestamp next_tick;

  // Each article lives in its own allocation so ids stay put while a batch
  // or an update holds views of them (and indexing stays one load).
  std::vector<std::unique_ptr<article_state>> articles;
  std::vector<std::uint32_t> free_articles;
  detail::id_index article_index;
  std::size_t tally_count = 0;
  std::size_t live_articles = 0;

  std::vector<subscriber_state> subs;
  std::vector<std::uint32_t> free_subs;
  std::unordered_map<subscriber_id, std::uint32_t> sub_index;
  std::size_t subscriptions = 0;

  op_map ops;
  std::deque<std::pair<timestamp, const std::string*>> op_fifo;  // insertion order = expiry order

  // What the next batch will carry.
  std::vector<std::uint32_t> dirty_articles;
  std::vector<tally_ref> dirty_tallies;
  std::vector<op_map::value_type*> dirty_ops;
  std::vector<pending_result> accumulating_results;

  // The commit in flight and what it carries.
  bool committing = false;
  bool completed_inline = false;
  std::vector<std::uint32_t> flight_articles;
  std::vector<tally_ref> flight_tallies;
  std::vector<op_map::value_type*> flight_ops;
  std::vector<pending_result> flight_results;
  std::vector<article_total> batch_totals;
  std::vector<user_tally> batch_tallies;
  std::vector<op_record> batch_ops;

  std::vector<pending_result> ready_results;  // replays of committed ops
  std::vector<std::uint32_t> changed_articles;

  // Emission scratch, reused every tick.
  std::vector<article_update> updates;
  std::vector<std::uint32_t> update_slots;
  std::vector<std::string> encoded;
  std::vector<std::uint32_t> touched_subs;

  // Op ids stored by an earlier process may be live until one window after
  // this engine started; ids evicted from memory for size, until they expire.
  timestamp ops_complete_from;
  timestamp early_evictions_expire{};

  std::error_code last_error;
  engine_stats stats;
  int callback_depth = 0;
  std::string key_buf;

  impl(store& s, engine_options o, engine_callbacks c, timestamp t)
      : st(s), opt(o), cb(std::move(c)), now(t), next_tick(t + o.tick),
        article_index(o.hash_seed),
        ops(detail::make_string_map<op_state>(o.hash_seed)),
        ops_complete_from(t + o.op_id_window) {}

  struct callback_scope {
    impl& e;
    explicit callback_scope(impl& i) : e(i) { ++e.callback_depth; }
    ~callback_scope() { --e.callback_depth; }
  };
  void assert_not_in_callback() const {
    assert(callback_depth == 0 && "claps::engine: mutating call from inside a callback");
  }

  const std::string& make_key(std::string_view a, std::string_view b) {
    key_buf.clear();
    key_buf.append(a).push_back('/');
    key_buf.append(b);
    return key_buf;
  }

  // ---- articles ----

  struct article_key {
    const std::vector<std::unique_ptr<article_state>>* articles;
    std::string_view operator()(std::uint32_t slot) const { return (*articles)[slot]->id; }
  };
  article_key article_key_of() const { return {&articles}; }

  std::error_code find_or_load_article(std::string_view id, std::uint32_t& slot) {
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
    article_state& a = (*articles[slot]);
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

  std::uint32_t find_article(std::string_view id) const {
    return article_index.find(id, article_index.hash(id), article_key_of());
  }

  void mark_changed(std::uint32_t slot) {
    article_state& a = (*articles[slot]);
    if (!a.changed) {
      a.changed = true;
      changed_articles.push_back(slot);
    }
  }

  void mark_dirty(std::uint32_t slot) {
    article_state& a = (*articles[slot]);
    if (!a.dirty) {
      a.dirty = true;
      dirty_articles.push_back(slot);
    }
  }

  bool evictable(const article_state& a) const {
    return a.live && a.room.empty() && !a.dirty && !a.in_flight && !a.changed &&
           a.result_refs == 0;
  }

  void evict_idle_articles() {
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

  // ---- tallies ----

  // The index of `user`'s tally in the article's `tallies`, loading it from
  // the store when it is not cached. Indices stay valid until eviction.
  std::error_code find_or_load_tally(std::string_view user, std::uint32_t slot,
                                     std::uint32_t& out) {
    article_state& a = (*articles[slot]);
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
  // case right after a commit) may indices be dropped, so then all go at once.
  void evict_clean_tallies() {
    if (tally_count <= opt.tally_cache) return;
    if (!dirty_tallies.empty() || !flight_tallies.empty()) return;
    for (auto& a_ptr : articles) {
      article_state& a = *a_ptr;
      a.tallies.clear();
      a.tally_index.clear();
    }
    tally_count = 0;
  }

  // ---- op ids ----

  // Finds a live op record, in memory or in the store. Null when unused.
  std::error_code find_op(std::string_view user, std::string_view op_id,
                          op_map::value_type*& out) {
    out = nullptr;
    const std::string& key = make_key(user, op_id);
    if (auto it = ops.find(std::string_view(key)); it != ops.end()) {
      if (it->second.expires_at > now || it->second.at != stage::committed) out = &*it;
      return {};
    }
    // Once every live op id was made by this engine and none was evicted
    // early, a miss in memory is a miss in the store: skip the read.
    if (now >= ops_complete_from && now >= early_evictions_expire) return {};
    stored_op rec;
    bool found = false;
    if (auto ec = st.read_op(user, op_id, rec, found)) return ec;
    if (!found || rec.expires_at <= now) return {};
    op_state o;
    o.article = std::move(rec.article);
    o.accepted = rec.accepted;
    o.mine = rec.mine;
    o.expires_at = rec.expires_at;
    o.user_len = static_cast<std::uint32_t>(user.size());
    o.at = stage::committed;
    auto* node = &*ops.try_emplace(make_key(user, op_id)).first;
    node->second = std::move(o);
    op_fifo.emplace_back(node->second.expires_at, &node->first);
    out = node;
    return {};
  }

  void forget_old_ops() {
    while (!op_fifo.empty()) {
      auto [expires, key] = op_fifo.front();
      auto it = ops.find(std::string_view(*key));
      assert(it != ops.end());
      if (it->second.expires_at != expires) {  // superseded by a reuse of the key
        op_fifo.pop_front();
        continue;
      }
      bool expired = expires <= now;
      bool over = ops.size() > op_cache_limit;
      if ((!expired && !over) || it->second.at != stage::committed) break;
      if (!expired) early_evictions_expire = std::max(early_evictions_expire, expires);
      ops.erase(it);
      op_fifo.pop_front();
      ++stats.ops_purged;
    }
  }

  // ---- results ----

  std::vector<pending_result>& results_for(stage s) {
    switch (s) {
    case stage::accumulating: return accumulating_results;
    case stage::in_flight: return flight_results;
    case stage::committed: break;
    }
    return ready_results;
  }

  void complete(std::vector<pending_result>& results, durability level) {
    if (results.empty()) return;
    callback_scope scope(*this);
    for (const pending_result& r : results) {
      article_state& a = (*articles[r.article]);
      --a.result_refs;
      if (cb.result) {
        op_result out;
        out.cookie = r.cookie;
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

  // ---- intake ----

  std::error_code apply(std::string_view user, std::string_view article,
                        std::int32_t count, bool is_undo, std::string_view op_id,
                        std::uint64_t cookie) {
    if (auto ec = check_user_id(user)) return ec;
    if (auto ec = check_article_id(article)) return ec;
    if (!op_id.empty())
      if (auto ec = check_op_id(op_id)) return ec;
    if (!is_undo && (count < 1 || count > opt.clap_cap)) return make_error_code(errc::invalid_count);
    if (stats.pending_ops >= opt.max_pending_ops) {
      ++stats.refused_unavailable;
      return make_error_code(errc::unavailable);
    }
    if (!op_id.empty()) {
      op_map::value_type* op = nullptr;
      if (auto ec = find_op(user, op_id, op)) return ec;
      if (op) return replay(*op, cookie);
    }
    std::uint32_t slot = 0;
    if (auto ec = find_or_load_article(article, slot)) return ec;
    std::uint32_t tally = 0;
    if (auto ec = find_or_load_tally(user, slot, tally)) return ec;

    tally_state& t = (*articles[slot]).tallies[tally].state;
    // Claps this user made through other nodes count against the cap too;
    // an undo here removes only this node's part of them.
    const std::int32_t remote = st.remote_tally(user, article);
    std::int32_t accepted;
    if (is_undo) {
      accepted = -t.value;
      ++stats.undos;
    } else {
      accepted = std::min(count, std::max(0, opt.clap_cap - t.value - remote));
      stats.claps_requested += static_cast<std::uint64_t>(count);
      stats.claps_accepted += static_cast<std::uint64_t>(accepted);
      stats.claps_over_cap += static_cast<std::uint64_t>(count - accepted);
    }
    article_state& a = (*articles[slot]);
    if (accepted != 0) {
      t.value += accepted;
      a.total += accepted;
      mark_dirty(slot);
      if (!t.dirty) {
        t.dirty = true;
        dirty_tallies.push_back({slot, tally});
      }
    }
    if (!op_id.empty()) {
      op_state o;
      o.article.assign(article);
      o.accepted = accepted;
      o.mine = t.value + remote;
      o.expires_at = now + opt.op_id_window;
      o.user_len = static_cast<std::uint32_t>(user.size());
      // An expired record may still sit under this key: reuse its node.
      auto* node = &*ops.try_emplace(make_key(user, op_id)).first;
      node->second = std::move(o);
      op_fifo.emplace_back(node->second.expires_at, &node->first);
      dirty_ops.push_back(node);
    }
    ++a.result_refs;
    accumulating_results.push_back({cookie, slot, accepted, t.value + remote, false});
    ++stats.pending_ops;
    return {};
  }

  std::error_code replay(const op_map::value_type& op, std::uint64_t cookie) {
    std::uint32_t slot = 0;
    if (auto ec = find_or_load_article(op.second.article, slot)) return ec;
    ++stats.replays;
    ++(*articles[slot]).result_refs;
    results_for(op.second.at).push_back({cookie, slot, op.second.accepted, op.second.mine, true});
    ++stats.pending_ops;
    return {};
  }

  // ---- the tick ----

  void tick(timestamp t) {
    now = std::max(now, t);
    next_tick = next_tick + opt.tick;
    if (next_tick <= now) next_tick = now + opt.tick;
    ++stats.ticks;
    if (!committing) start_commit();
    // Replays of durable ops need no commit.
    stats.pending_ops -= ready_results.size();
    complete(ready_results, last_error ? durability::local : last_level);
    emit();
    if (!committing) {
      forget_old_ops();
      evict_clean_tallies();
      evict_idle_articles();
    }
  }

  durability last_level = durability::local;

  void start_commit() {
    if (dirty_articles.empty() && dirty_tallies.empty() && dirty_ops.empty()) {
      // Nothing to make durable; results can only be zero-effect ops without
      // op ids (e.g. an undo with nothing to undo, a clap at the cap).
      stats.pending_ops -= accumulating_results.size();
      complete(accumulating_results, last_level);
      return;
    }
    batch_totals.clear();
    batch_tallies.clear();
    batch_ops.clear();
    for (std::uint32_t slot : dirty_articles) {
      article_state& a = (*articles[slot]);
      a.dirty = false;
      a.in_flight = true;
      a.in_flight_total = a.total;
      batch_totals.push_back({a.id, a.total});
    }
    for (tally_ref ref : dirty_tallies) {
      article_state& a = (*articles[ref.article]);
      tally_entry& e = a.tallies[ref.index];
      e.state.dirty = false;
      e.state.in_flight = true;
      e.state.in_flight_value = e.state.value;
      batch_tallies.push_back({e.user, a.id, e.state.value});
    }
    for (auto* node : dirty_ops) {
      op_state& o = node->second;
      o.at = stage::in_flight;
      std::string_view key = node->first;
      batch_ops.push_back({key.substr(0, o.user_len), key.substr(o.user_len + 1), o.article,
                           o.accepted, o.mine, o.expires_at});
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
    st.commit(batch, [this](std::error_code ec, durability level) { finish_commit(ec, level); });
  }

  tally_state& tally_of(tally_ref ref) { return (*articles[ref.article]).tallies[ref.index].state; }

  void finish_commit(std::error_code ec, durability level) {
    assert(committing);
    committing = false;
    if (ec) {
      ++stats.commit_failures;
      for (std::uint32_t slot : flight_articles) {
        (*articles[slot]).in_flight = false;
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
      for (auto* node : flight_ops) {
        node->second.at = stage::accumulating;
        dirty_ops.push_back(node);
      }
      flight_results.insert(flight_results.end(), accumulating_results.begin(),
                            accumulating_results.end());
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
      return;
    }
    ++stats.commits;
    last_level = level;
    for (std::uint32_t slot : flight_articles) {
      article_state& a = (*articles[slot]);
      a.in_flight = false;
      a.committed = a.in_flight_total;
      mark_changed(slot);
    }
    for (tally_ref ref : flight_tallies) {
      tally_state& t = tally_of(ref);
      t.in_flight = false;
      t.committed = t.in_flight_value;
    }
    for (auto* node : flight_ops) node->second.at = stage::committed;
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
    // rather than a tick later.
    if (!in_tick) emit();
  }

  bool in_tick = false;

  void emit() {
    if (changed_articles.empty()) return;
    updates.clear();
    update_slots.clear();
    for (std::uint32_t slot : changed_articles) {
      article_state& a = (*articles[slot]);
      a.changed = false;
      const std::int64_t total = a.committed + a.remote_total;
      const std::uint32_t viewers = a.viewers + a.remote_viewers;
      if (total == a.emitted_total && viewers == a.emitted_viewers) continue;
      a.emitted_total = total;
      a.emitted_viewers = viewers;
      if (a.room.empty()) continue;  // nobody to tell
      updates.push_back({a.id, total, viewers, {}, a.viewers});
      update_slots.push_back(slot);
    }
    changed_articles.clear();
    if (updates.empty()) return;
    callback_scope scope(*this);
    if (cb.encode) {
      if (encoded.size() < updates.size()) encoded.resize(updates.size());
      for (std::size_t i = 0; i < updates.size(); ++i) {
        encoded[i].clear();
        cb.encode(updates[i], encoded[i]);
        updates[i].encoded = encoded[i];
      }
    }
    stats.updates += updates.size();
    if (cb.tick_updates) cb.tick_updates(updates);
    if (!cb.deliver) return;
    for (std::size_t i = 0; i < updates.size(); ++i) {
      for (const room_entry& r : articles[update_slots[i]]->room) {
        subscriber_state& s = subs[r.sub];
        if (s.batch.empty()) touched_subs.push_back(r.sub);
        s.batch.push_back(&updates[i]);
      }
    }
    for (std::uint32_t slot : touched_subs) {
      subscriber_state& s = subs[slot];
      cb.deliver(s.id, s.batch);
      s.batch.clear();
    }
    stats.deliveries += touched_subs.size();
    touched_subs.clear();
  }

  // ---- rooms ----

  std::uint32_t find_or_add_subscriber(subscriber_id id) {
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
    subs[slot].live = true;
    sub_index.emplace(id, slot);
    return slot;
  }

  bool watches(std::uint32_t sub_slot, std::uint32_t article_slot) const {
    for (const watch_entry& w : subs[sub_slot].watching)
      if (w.article == article_slot) return true;
    return false;
  }

  void add_watch(std::uint32_t sub_slot, std::uint32_t article_slot, bool reading) {
    subscriber_state& s = subs[sub_slot];
    article_state& a = (*articles[article_slot]);
    s.watching.push_back({article_slot, static_cast<std::uint32_t>(a.room.size()), reading});
    a.room.push_back({sub_slot, static_cast<std::uint32_t>(s.watching.size() - 1)});
    ++subscriptions;
    if (reading) {
      ++a.viewers;
      mark_changed(article_slot);
    }
  }

  // Removes watching[pos] of a subscriber, swap-removing on both sides.
  void remove_watch(std::uint32_t sub_slot, std::uint32_t pos) {
    subscriber_state& s = subs[sub_slot];
    watch_entry w = s.watching[pos];
    article_state& a = (*articles[w.article]);
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
      (*articles[moved.article]).room[moved.room_pos].sub_pos = pos;
    }
    s.watching.pop_back();
    --subscriptions;
    if (w.reading) {
      --a.viewers;
      mark_changed(w.article);
    }
  }

  void drop_subscriber_if_empty(std::uint32_t slot) {
    subscriber_state& s = subs[slot];
    if (!s.watching.empty()) return;
    sub_index.erase(s.id);
    s.live = false;
    s.batch.clear();
    free_subs.push_back(slot);
  }

  std::error_code committed_mine(std::string_view user, std::uint32_t slot, std::int32_t& mine) {
    mine = 0;
    if (user.empty()) return {};
    std::uint32_t tally = 0;
    if (auto ec = find_or_load_tally(user, slot, tally)) return ec;
    const article_state& a = *articles[slot];
    mine = a.tallies[tally].state.committed + st.remote_tally(user, a.id);
    return {};
  }

  // Validates an article and optional user and loads what a snapshot needs.
  std::error_code load_for_snapshot(std::string_view article, std::string_view user,
                                    std::uint32_t& slot, std::int32_t& mine) {
    if (auto ec = check_article_id(article)) return ec;
    if (!user.empty())
      if (auto ec = check_user_id(user)) return ec;
    if (auto ec = find_or_load_article(article, slot)) return ec;
    return committed_mine(user, slot, mine);
  }

  void fill_snapshot(std::uint32_t slot, std::int32_t mine, snapshot& out) const {
    const article_state& a = (*articles[slot]);
    out.article = a.id;
    out.total = a.committed + a.remote_total;
    out.viewers = a.viewers + a.remote_viewers;
    out.mine = mine;
  }
};

engine::engine(store& s, engine_options options, engine_callbacks callbacks, timestamp now)
    : impl_(std::make_unique<impl>(s, options, std::move(callbacks), now)) {
  assert(!validate(options) && "claps::engine: options fail validate()");
}

engine::~engine() = default;

std::error_code engine::subscribe(subscriber_id sub, std::string_view article, bool reading,
                                  std::string_view user, snapshot& out) {
  impl& e = *impl_;
  e.assert_not_in_callback();
  std::uint32_t slot = 0;
  std::int32_t mine = 0;
  if (auto ec = e.load_for_snapshot(article, user, slot, mine)) return ec;
  std::uint32_t sub_slot = e.find_or_add_subscriber(sub);
  if (!e.watches(sub_slot, slot)) {
    if (e.opt.max_subscriptions && e.subs[sub_slot].watching.size() >= e.opt.max_subscriptions) {
      e.drop_subscriber_if_empty(sub_slot);
      return make_error_code(errc::too_many_subscriptions);
    }
    e.add_watch(sub_slot, slot, reading);
  }
  e.fill_snapshot(slot, mine, out);
  return {};
}

std::error_code engine::subscribe(subscriber_id sub, std::span<const std::string_view> list,
                                  bool reading, std::string_view user,
                                  std::vector<snapshot>& out) {
  impl& e = *impl_;
  e.assert_not_in_callback();
  if (!user.empty())
    if (auto ec = check_user_id(user)) return ec;
  for (std::string_view article : list)
    if (auto ec = check_article_id(article)) return ec;
  // Load everything first so a store error leaves nothing half done.
  std::vector<std::uint32_t> slots;
  std::vector<std::int32_t> mines;
  slots.reserve(list.size());
  mines.reserve(list.size());
  for (std::string_view article : list) {
    std::uint32_t slot = 0;
    if (auto ec = e.find_or_load_article(article, slot)) return ec;
    std::int32_t mine = 0;
    if (auto ec = e.committed_mine(user, slot, mine)) return ec;
    slots.push_back(slot);
    mines.push_back(mine);
  }
  auto it = e.sub_index.find(sub);
  std::size_t have = it == e.sub_index.end() ? 0 : e.subs[it->second].watching.size();
  std::size_t adding = 0;
  for (std::size_t i = 0; i < slots.size(); ++i) {
    bool dup = std::find(slots.begin(), slots.begin() + static_cast<std::ptrdiff_t>(i), slots[i]) !=
               slots.begin() + static_cast<std::ptrdiff_t>(i);
    if (!dup && !(it != e.sub_index.end() && e.watches(it->second, slots[i]))) ++adding;
  }
  if (e.opt.max_subscriptions && have + adding > e.opt.max_subscriptions)
    return make_error_code(errc::too_many_subscriptions);
  if (slots.empty()) return {};
  std::uint32_t sub_slot = e.find_or_add_subscriber(sub);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    if (!e.watches(sub_slot, slots[i])) e.add_watch(sub_slot, slots[i], reading);
    snapshot snap;
    e.fill_snapshot(slots[i], mines[i], snap);
    out.push_back(snap);
  }
  return {};
}

void engine::unsubscribe(subscriber_id sub, std::string_view article) {
  impl& e = *impl_;
  e.assert_not_in_callback();
  auto it = e.sub_index.find(sub);
  if (it == e.sub_index.end()) return;
  std::uint32_t slot = e.find_article(article);
  if (slot == no_slot) return;
  auto& watching = e.subs[it->second].watching;
  for (std::uint32_t pos = 0; pos < watching.size(); ++pos) {
    if (watching[pos].article == slot) {
      std::uint32_t sub_slot = it->second;
      e.remove_watch(sub_slot, pos);
      e.drop_subscriber_if_empty(sub_slot);
      return;
    }
  }
}

void engine::unsubscribe_all(subscriber_id sub) {
  impl& e = *impl_;
  e.assert_not_in_callback();
  auto it = e.sub_index.find(sub);
  if (it == e.sub_index.end()) return;
  std::uint32_t sub_slot = it->second;
  while (!e.subs[sub_slot].watching.empty())
    e.remove_watch(sub_slot, static_cast<std::uint32_t>(e.subs[sub_slot].watching.size() - 1));
  e.drop_subscriber_if_empty(sub_slot);
}

std::error_code engine::clap(const clap_request& r) {
  impl_->assert_not_in_callback();
  return impl_->apply(r.user, r.article, r.count, false, r.op_id, r.cookie);
}

std::error_code engine::undo(std::string_view user, std::string_view article,
                             std::string_view op_id, std::uint64_t cookie) {
  impl_->assert_not_in_callback();
  return impl_->apply(user, article, 0, true, op_id, cookie);
}

void engine::advance(timestamp now) {
  impl& e = *impl_;
  e.assert_not_in_callback();
  if (now < e.next_tick) {
    e.now = std::max(e.now, now);
    return;
  }
  flush(now);
}

void engine::flush(timestamp now) {
  impl& e = *impl_;
  e.assert_not_in_callback();
  e.in_tick = true;
  e.tick(now);
  e.in_tick = false;
}

void engine::set_remote(std::string_view article, std::int64_t remote_total,
                        std::uint32_t remote_viewers) {
  impl& e = *impl_;
  e.assert_not_in_callback();
  std::uint32_t slot = e.find_article(article);
  if (slot == no_slot) return;
  article_state& a = *e.articles[slot];
  if (a.remote_total == remote_total && a.remote_viewers == remote_viewers) return;
  a.remote_total = remote_total;
  a.remote_viewers = remote_viewers;
  e.mark_changed(slot);
}

timestamp engine::next_deadline() const noexcept { return impl_->next_tick; }

std::error_code engine::read(std::string_view article, std::string_view user, snapshot& out) {
  impl& e = *impl_;
  std::uint32_t slot = 0;
  std::int32_t mine = 0;
  if (auto ec = e.load_for_snapshot(article, user, slot, mine)) return ec;
  e.fill_snapshot(slot, mine, out);
  return {};
}

std::error_code engine::store_error() const noexcept { return impl_->last_error; }

bool engine::idle() const noexcept {
  const impl& e = *impl_;
  return !e.committing && e.dirty_articles.empty() && e.dirty_tallies.empty() &&
         e.dirty_ops.empty() && e.stats.pending_ops == 0;
}

std::size_t engine::subscription_count(subscriber_id sub) const noexcept {
  auto it = impl_->sub_index.find(sub);
  return it == impl_->sub_index.end() ? 0 : impl_->subs[it->second].watching.size();
}

engine_stats engine::stats() const noexcept {
  engine_stats s = impl_->stats;
  s.subscribers = impl_->sub_index.size();
  s.subscriptions = impl_->subscriptions;
  s.articles_cached = impl_->live_articles;
  return s;
}

const engine_options& engine::options() const noexcept { return impl_->opt; }

} // namespace claps
