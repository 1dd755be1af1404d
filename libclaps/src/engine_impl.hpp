// Internal: the engine's state and the declarations shared by its parts.
//   engine.cpp         the public API
//   engine_intake.cpp  articles, tallies and op ids: loading, caps, replays, eviction
//   engine_tick.cpp    the tick: one commit, then results and one update per change
//   engine_rooms.cpp   who watches what, with O(1) swap-removes on both sides
#pragma once

#include <claps/engine.hpp>
#include <claps/ids.hpp>

#include "id_index.hpp"
#include "op_table.hpp"
#include "string_map.hpp"

#include <algorithm>
#include <cassert>
#include <deque>
#include <limits>
#include <memory>
#include <unordered_map>

namespace claps {
namespace detail {

constexpr std::uint32_t no_slot = std::numeric_limits<std::uint32_t>::max();

struct room_entry {
  std::uint32_t sub;      // subscriber slot
  std::uint32_t sub_pos;  // index in that subscriber's `watching`
};

struct watch_entry {
  std::uint32_t article;   // article slot
  std::uint32_t room_pos;  // index in that article's `room`
  bool reading;
  bool pending = false;  // the article changed since this subscriber's last delivery
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
  std::int64_t total = 0;      // including what is not yet durable
  std::int64_t committed = 0;  // durable
  std::int64_t in_flight_total = 0;
  std::int64_t emitted_total = 0;
  std::uint32_t viewers = 0;
  std::uint32_t emitted_viewers = 0;
  std::int64_t remote_total = 0;  // other nodes' part (cluster stores)
  std::uint32_t remote_viewers = 0;
  std::uint32_t result_refs = 0;  // pending results naming this article
  timestamp last_emit{};          // when an update last went out (viewer-count throttle)
  // The newest emitted update; deliveries read it when they run, so a
  // subscriber reached late in a round gets the freshest values.
  article_update current;
  std::string encoded;  // current.encoded views this
  std::vector<room_entry> room;
  // Dirty or in-flight tallies imply dirty or in_flight here.
  std::vector<tally_entry> tallies;
  detail::id_index tally_index;
  bool live = false;
  bool dirty = false;      // total changed since the last batch was built
  bool in_flight = false;  // part of the commit in flight
  bool changed = false;    // on the changed list for the next emission
};

// An op id that is dirty or in flight: its op_table entry and, since the
// table keeps no strings, "user/article/op_id" in the engine's key buffer
// for the commit batch.
struct pending_op {
  op_table::handle op;
  std::uint32_t key_at;                           // offset in dirty_op_keys or flight_op_keys
  std::uint8_t user_len, article_len, op_id_len;  // ids are at most 128 bytes
};

struct subscriber_state {
  subscriber_id id = 0;
  std::vector<watch_entry> watching;
  std::uint32_t pending = 0;  // watching entries with `pending` set
  bool queued = false;        // in the delivery queue
};

struct pending_result {
  std::uint64_t cookie;
  std::uint32_t article;
  std::int32_t accepted;
  std::int32_t mine;
  bool replayed;
  bool unavailable = false;  // could not be decided (op_result::error)
  // The op's user and op id, at key_at in its result_list's `keys`.
  std::uint32_t key_at = 0;
  std::uint8_t user_len = 0, op_id_len = 0;  // ids are at most 128 bytes
};

// Results waiting for one event, with the users and op ids they report.
struct result_list {
  std::vector<pending_result> items;
  std::string keys;

  void push(pending_result r, std::string_view user, std::string_view op_id) {
    r.key_at = static_cast<std::uint32_t>(keys.size());
    r.user_len = static_cast<std::uint8_t>(user.size());
    r.op_id_len = static_cast<std::uint8_t>(op_id.size());
    keys.append(user).append(op_id);
    items.push_back(r);
  }
  void append(const result_list& other) {
    const auto base = static_cast<std::uint32_t>(keys.size());
    keys += other.keys;
    for (pending_result r : other.items) {
      r.key_at += base;
      items.push_back(r);
    }
  }
  std::string_view user(const pending_result& r) const {
    return std::string_view(keys).substr(r.key_at, r.user_len);
  }
  std::string_view op_id(const pending_result& r) const {
    return std::string_view(keys).substr(r.key_at + r.user_len, r.op_id_len);
  }
  bool empty() const noexcept { return items.empty(); }
  std::size_t size() const noexcept { return items.size(); }
  void clear() noexcept {
    items.clear();
    keys.clear();
  }
  void swap(result_list& other) noexcept {
    items.swap(other.items);
    keys.swap(other.keys);
  }
};

// A clap or undo waiting for a shared store's decision (store::arbitrate).
// Its article is pinned (result_refs) and its tally index kept valid (tally
// eviction waits while any intent exists).
struct intent_state {
  std::string user, op_id;    // op_id as asked (the op's result reports it)
  bool store_op_id = true;    // false: the op id is not recorded (see engine::undo)
  std::uint32_t article = 0;  // slot
  std::uint32_t tally = 0;    // index in the article's tallies
  std::int32_t count = 0;
  bool undo = false;
  std::uint64_t cookie = 0;
  op_table::handle op = op_table::npos;  // its op record, stage deciding (with an op id)
  std::vector<std::uint64_t> followers;  // cookies of the same op id sent again meanwhile
  timestamp give_up{};                   // op id held by another node: refuse after this
};

struct tally_ref {
  std::uint32_t article;
  std::uint32_t index;  // in that article's `tallies`
};

}  // namespace detail

using namespace detail;

struct engine::impl final : store_listener {
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

  op_table ops;

  // What the next batch will carry.
  std::vector<std::uint32_t> dirty_articles;
  std::vector<tally_ref> dirty_tallies;
  std::vector<pending_op> dirty_ops;
  std::string dirty_op_keys;
  result_list accumulating_results;

  // The commit in flight and what it carries.
  bool committing = false;
  std::vector<std::uint32_t> flight_articles;
  std::vector<tally_ref> flight_tallies;
  std::vector<pending_op> flight_ops;
  std::string flight_op_keys;  // what batch_ops views
  result_list flight_results;
  std::vector<article_total> batch_totals;
  std::vector<user_tally> batch_tallies;
  std::vector<op_record> batch_ops;
  std::string batch_users;  // the users batch_tallies views point into

  result_list ready_results;  // replays of committed ops

  // Ops waiting for the store's decision, and those in the arbitration in
  // flight (at most one, and never while a commit is in flight).
  std::vector<std::unique_ptr<intent_state>> intents;
  std::vector<std::unique_ptr<intent_state>> deciding;
  std::vector<op_intent> intent_views;
  bool arbitrating = false;
  std::vector<std::uint32_t> changed_articles;

  // Emission scratch, reused every tick.
  std::vector<article_update> updates;
  std::vector<std::uint32_t> update_slots;
  std::vector<std::uint32_t> held_articles;  // viewer-count-only changes held back

  // The delivery queue: subscribers with changed articles, in the order
  // their first change was emitted. Drained deliveries_per_slice at a time;
  // each delivery reads the articles' newest values. Entries of subscribers
  // that left (or were delivered) since are skipped.
  std::vector<std::uint32_t> delivery_queue;
  std::size_t delivery_pos = 0;
  std::vector<const article_update*> delivery_batch;
  std::vector<delivery> slice;            // deliver_slice: this slice's deliveries
  std::vector<std::uint32_t> slice_ends;  // end of each delivery's updates in delivery_batch

  // Op ids stored by an earlier process may be live until one window after
  // this engine started (or until the store says its records expire); ids
  // evicted from memory for size, until they expire.
  timestamp ops_complete_from;
  timestamp early_evictions_expire{};

  std::error_code last_error;
  engine_stats stats;
  int callback_depth = 0;
  std::string key_buf;

  // Shutdown (engine::close) and the driver's wake-up (engine::on_wake).
  bool closing = false;
  std::function<void()> wake;
  mutable timestamp deadline_told = timestamp::min();
  // What the store's callbacks reach: null once the engine is gone, so a
  // completion that arrives after the destructor does nothing.
  std::shared_ptr<impl*> self = std::make_shared<impl*>(this);

  impl(store& s, engine_options o, engine_callbacks c, timestamp t)
      : st(s),
        opt(o),
        cb(std::move(c)),
        now(t),
        next_tick(t + o.tick),
        article_index(o.hash_seed),
        ops(o.hash_seed),
        ops_complete_from(t + o.op_id_window) {
    if (timestamp stored; st.op_records_expire_by(stored))
      ops_complete_from = std::min(ops_complete_from, stored);
  }

  void remote_changed(std::string_view article, std::int64_t remote_total,
                      std::uint32_t remote_viewers) override {
    set_remote(article, remote_total, remote_viewers);
    wake_if_earlier();  // an idle engine's driver must emit it
  }
  void set_remote(std::string_view article, std::int64_t remote_total, std::uint32_t remote_viewers);

  struct callback_scope {
    impl& e;
    explicit callback_scope(impl& i) : e(i) { ++e.callback_depth; }
    ~callback_scope() { --e.callback_depth; }
  };
  // Checked in every build, not only with assertions on: a mutation from a
  // callback would corrupt the batch being emitted, silently, in production.
  void assert_not_in_callback() const {
    if (callback_depth != 0) [[unlikely]]
      reentered();
  }
  [[noreturn]] static void reentered();

  // An op id as the op table knows it: its user's slot (npos while the
  // user holds none) and the fingerprint of user '/' article '/' op_id (op
  // ids are scoped to the pair; '/' is outside the id alphabet).
  struct op_key {
    std::uint32_t user;
    op_fingerprint fingerprint;
  };
  op_key make_op_key(std::string_view user, std::string_view article, std::string_view op_id) {
    key_buf.clear();
    key_buf.append(user).push_back('/');
    key_buf.append(article).push_back('/');
    key_buf.append(op_id);
    return {ops.find_user(user), ops.fingerprint(key_buf)};
  }

  // ---- articles ----

  struct article_key {
    const std::vector<std::unique_ptr<article_state>>* articles;
    std::string_view operator()(std::uint32_t slot) const { return (*articles)[slot]->id; }
  };
  article_key article_key_of() const { return {&articles}; }

  std::error_code find_or_load_article(std::string_view id, std::uint32_t& slot);

  std::uint32_t find_article(std::string_view id) const {
    return article_index.find(id, article_index.hash(id), article_key_of());
  }

  void mark_changed(std::uint32_t slot) {
    article_state& a = *articles[slot];
    if (!a.changed) {
      a.changed = true;
      changed_articles.push_back(slot);
    }
  }

  void mark_dirty(std::uint32_t slot) {
    article_state& a = *articles[slot];
    if (!a.dirty) {
      a.dirty = true;
      dirty_articles.push_back(slot);
    }
  }

  bool evictable(const article_state& a) const {
    return a.live && a.room.empty() && !a.dirty && !a.in_flight && !a.changed && a.result_refs == 0;
  }

  void evict_idle_articles();

  // ---- tallies ----

  // The index of `user`'s tally in the article's `tallies`, loading it from
  // the store when it is not cached. Indices stay valid until eviction.
  std::error_code find_or_load_tally(std::string_view user, std::uint32_t slot, std::uint32_t& out);

  // Runs between ticks. Only when no tally is dirty or in flight (the usual
  // case right after a commit) may indices be dropped, so then all go at once.
  void evict_clean_tallies();

  // ---- op ids ----

  // Finds a live op record, in memory or in the store: its handle, npos
  // when unused. `in_memory` is set to a record under the key that is no
  // longer live (expired), to be replaced.
  std::error_code find_op(std::string_view user, std::string_view article, std::string_view op_id,
                          const op_key& key, op_table::handle& out, op_table::handle& in_memory);

  // Pops expired records (and, past engine_options::op_id_cache, the oldest
  // committed ones) from the front of the op table.
  void forget_old_ops();

  // ---- results ----

  result_list& results_for(stage s) {
    switch (s) {
    case stage::deciding:  // not reached: such an op gets its intent's answer
    case stage::gone:      // not reached: never found
    case stage::accumulating: return accumulating_results;
    case stage::in_flight: return flight_results;
    case stage::committed: break;
    }
    return ready_results;
  }

  void complete(result_list& results, durability level);
  // Gives every op still without a result errc::unavailable (the destructor).
  void settle_all_unavailable();

  // ---- deadlines ----

  // Work for advance(): see engine::next_deadline().
  bool has_work() const;
  timestamp deadline() const {
    if (!has_work()) return timestamp::max();
    return delivering() ? std::min(now, next_tick) : next_tick;
  }
  // Calls `wake` when the deadline came earlier than the one last told.
  void wake_if_earlier() {
    if (!wake) return;
    const timestamp d = deadline();
    if (d >= deadline_told) return;
    deadline_told = d;
    callback_scope scope(*this);
    wake();
  }

  // ---- intake ----

  std::error_code apply(std::string_view user, std::string_view article, std::int32_t count, bool is_undo,
                        std::string_view op_id, std::uint64_t cookie);

  std::error_code replay(const op_entry& op, std::string_view user, std::string_view article,
                         std::string_view op_id, std::uint64_t cookie);
  // The store is short of space (store::space()): counted, then refused.
  std::error_code refuse_store_full();

  // Counts a decided op: its claps, its op record (`op`, npos when none is
  // kept) and its result, which reports `op_id` (as asked). The article must already be
  // pinned (result_refs).
  void record(std::uint32_t slot, std::uint32_t tally, std::int32_t count, bool is_undo,
              std::int32_t accepted, std::int32_t mine, op_table::handle op, std::string_view op_id,
              std::uint64_t cookie);
  // Decides an op here, by the step-1 rule (the cap minus this node's claps
  // and the other nodes' last known part), and records it. Returns its
  // {accepted, mine}.
  std::pair<std::int32_t, std::int32_t> record_locally(std::uint32_t slot, std::uint32_t tally,
                                                       std::int32_t count, bool is_undo, op_table::handle op,
                                                       std::string_view op_id, std::uint64_t cookie);
  // Keeps a settled op id in memory only (its result lives elsewhere, or it
  // was never applied) until `expires_at`.
  void keep_in_memory(op_table::handle op, std::int32_t accepted, std::int32_t mine, timestamp expires_at);
  // Queues an op record for the next commit, with the strings the batch needs.
  void queue_op(op_table::handle op, std::string_view user, std::string_view article, std::string_view op_id);

  // ---- arbitration (stores shared by several nodes) ----

  void start_arbitration();
  void finish_arbitration(std::span<const op_decision> decisions);
  // True when the op got its result; false when it is asked about again.
  bool settle_intent(intent_state& in, const op_decision& d);

  // ---- the tick ----

  void tick(timestamp t);

  durability last_level = durability::local;

  void start_commit();

  tally_state& tally_of(tally_ref ref) { return articles[ref.article]->tallies[ref.index].state; }

  void finish_commit(std::error_code ec, durability level);
  commit_handler commit_done() {
    return [self = self](std::error_code ec, durability level) {
      if (*self) (*self)->finish_commit(ec, level);
    };
  }

  bool in_tick = false;
  // Updates went out since the last tick began (see finish_commit).
  bool emitted_since_tick = false;

  void emit();
  // Viewer-count-only change of a big room within the throttle interval.
  bool hold_viewer_change(const article_state& a) const {
    return opt.viewer_update_interval > millis(0) && a.room.size() >= opt.viewer_throttle_min_room &&
           now < a.last_emit + opt.viewer_update_interval;
  }
  void queue_delivery(std::uint32_t sub_slot, std::uint32_t sub_pos) {
    subscriber_state& s = subs[sub_slot];
    watch_entry& w = s.watching[sub_pos];
    if (w.pending) return;
    w.pending = true;
    ++s.pending;
    if (!s.queued) {
      s.queued = true;
      delivery_queue.push_back(sub_slot);
    }
  }
  // Delivers to up to `max` queued subscribers (0: all). Returns how many.
  std::size_t deliver_queued(std::size_t max);
  bool delivering() const noexcept { return delivery_pos < delivery_queue.size(); }

  // ---- rooms ----

  std::uint32_t find_or_add_subscriber(subscriber_id id);

  bool watches(std::uint32_t sub_slot, std::uint32_t article_slot) const {
    for (const watch_entry& w : subs[sub_slot].watching)
      if (w.article == article_slot) return true;
    return false;
  }

  void add_watch(std::uint32_t sub_slot, std::uint32_t article_slot, bool reading);

  // Removes watching[pos] of a subscriber, swap-removing on both sides.
  void remove_watch(std::uint32_t sub_slot, std::uint32_t pos);

  void drop_subscriber_if_empty(std::uint32_t slot);

  std::error_code committed_mine(std::string_view user, std::uint32_t slot, std::int32_t& mine);

  // Validates an article and optional user and loads what a snapshot needs.
  std::error_code load_for_snapshot(std::string_view article, std::string_view user, std::uint32_t& slot,
                                    std::int32_t& mine, bool& global);

  // Asks the store for the other nodes' part of an article; false when it
  // does not know it.
  bool refresh_remote(std::uint32_t slot);

  void fill_snapshot(std::uint32_t slot, std::int32_t mine, bool global, snapshot& out) const {
    const article_state& a = *articles[slot];
    out.article = a.id;
    out.total = a.committed + a.remote_total;
    out.viewers = a.viewers + a.remote_viewers;
    out.mine = mine;
    out.global = global;
  }

  void room_changed(const article_state& a) { st.room_changed(a.id, !a.room.empty(), a.viewers); }
};

}  // namespace claps
