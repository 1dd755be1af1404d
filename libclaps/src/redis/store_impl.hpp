// Internal: redis_store's state and the declarations shared by its parts.
//   store.cpp              the public API, connecting, the node id claim, degraded mode
//   store_arbitration.cpp  the write path: arbitrate(), then commit() confirms and publishes
//   store_reassert.cpp     the journal: versions, dirty and recent keys, full walks, the marker
//   store_remote.cpp       the remote view: other nodes' parts, viewers, the bus, load()
//   store_replies.cpp      reading script replies and bus messages (pure functions)
#pragma once

#include "scripts.hpp"
#include "uv_timer.hpp"

#include <claps/error.hpp>
#include <claps/ids.hpp>
#include <claps/redis.hpp>

#include <charconv>
#include <deque>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace claps::detail {

struct node_part {
  std::uint64_t version = 0;
  std::int64_t total = 0;
  std::uint32_t viewers = 0;
};

// Other nodes' parts of an article this node watches, or loaded once for a
// read (then trusted for refresh_interval).
struct remote_article {
  bool watched = false;
  bool viewers_known = false;                        // totals alone come with every arbitration
  std::uint64_t loaded_at = 0;                       // uv_now() of the last full read
  std::unordered_map<std::string, node_part> parts;  // other nodes only
  std::int64_t total = 0;
  std::uint32_t viewers = 0;
};

struct own_article {
  std::uint64_t version = 0;
  std::int64_t total = 0;
  bool total_known = false;
  std::uint32_t viewers = 0;
};

struct owned_op {
  std::string user, article, op_id;
  std::int32_t accepted = 0, mine = 0;
  timestamp expires_at{};
};

template <class Int>
bool to_int(std::string_view s, Int& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && end == s.data() + s.size();
}

inline std::int64_t reply_int(const redis_reply& r) {
  if (r.type == redis_reply::kind::integer) return r.integer;
  std::int64_t v = 0;
  if (r.type == redis_reply::kind::string) to_int(r.str, v);
  return v;
}

// "user|article": '|' is outside the id alphabet.
inline std::string tally_key(std::string_view user, std::string_view article) {
  std::string k(user);
  k.push_back('|');
  k.append(article);
  return k;
}

// "article|user|op".
inline std::string op_key(std::string_view user, std::string_view article, std::string_view op_id) {
  std::string k(article);
  k.push_back('|');
  k.append(user).push_back('|');
  k.append(op_id);
  return k;
}

// Counts the requests of one write (a commit's confirmations, a re-assertion)
// and finishes it once all have answered.
struct write_state {
  std::size_t outstanding = 0;
  bool failed = false;
  std::function<void(bool ok)> finish;
};

// One arbitrate() call: its decisions fill in as its scripts answer.
struct arbitration {
  std::vector<op_decision> decisions;
  std::size_t outstanding = 0;
  arbitrate_handler done;
};

// One article's ops in a script call, as the reply needs them once the
// intents' views are gone.
struct group_owned {
  std::string article;
  std::vector<std::string> users;
  std::vector<std::size_t> ops;      // indices into the call's decisions
  std::vector<std::string> op_keys;  // op_key() per op with an op id, else empty
};

// ---- Reply decoding (store_replies.cpp): pure functions of what Redis
// answered, fuzzed without a connection by fuzz/redis_reply.cpp ----

/// One node's part of an article as the bus carries it:
/// "node version total viewers" (its absolute total and viewers).
struct part_message {
  std::string_view node;
  std::uint64_t version = 0;
  std::int64_t total = 0;
  std::uint32_t viewers = 0;
};
/// False when `payload` is not four fields of that shape; out.node views it.
bool read_part_message(std::string_view payload, part_message& out);
std::string part_message_payload(std::string_view node, std::uint64_t version, std::int64_t total,
                                 std::uint32_t viewers);

/// Folds a reply's parts of an article into `ra`, skipping `own_node`'s:
/// totals never move a part backwards; viewer fields, when given, are
/// authoritative (absent means expired). `totals` is either read_article's
/// {node, version, total, ...} (with `viewers`) or t:{A}'s HGETALL
/// {node, "version:total", ...}. False, changing nothing, when it is not an array.
bool fold_parts(remote_article& ra, const redis_reply& totals, const redis_reply* viewers,
                std::string_view own_node);
/// The sums of ra.parts; the total saturates at +-(2^53 - 1).
void sum_parts(const remote_article& ra, std::int64_t& total, std::uint32_t& viewers);

/// True when the arbitrate script's reply is {version, group...} with one
/// {stale, others[users], parts, decisions[3 * ops]} per group of the call.
bool arbitration_reply_fits(const redis_reply& r, std::span<const group_owned> groups);
/// Op k's decision in one group's part of a reply that fits.
op_decision read_decision(const redis_reply& group, std::size_t k);

}  // namespace claps::detail

namespace claps {

using detail::owned_op;
using detail::write_state;

struct redis_store::impl {
  uv_loop_t* loop;
  store& local;
  redis_client& client;
  redis_bus& bus;
  redis_store_options options;
  redis_store_callbacks callbacks;
  store_listener* listener = nullptr;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  std::uint64_t client_listener = 0;
  std::uint64_t bus_listener = 0;
  redis_store_stats stats;
  bool clustered = false;  // Redis Cluster: one slot per script call, one marker per master

  impl(uv_loop_t* l, store& lo, redis_client& c, redis_bus& b, redis_store_options o,
       redis_store_callbacks cb);
  std::weak_ptr<bool> token() const { return alive; }

  std::string key(std::string_view kind, std::string_view tag, std::string_view rest = {},
                  std::string_view more = {}) const;

  // ---- connection, node id, degraded mode (store.cpp) ----

  bool degraded = false;
  bool claimed = false;  // node_id is ours in Redis (see claim_then_catch_up)
  bool closed = false;   // close(): the client and bus may be gone
  // Redis is written only once this node's id is known to be ours.
  bool writable() const { return !closed && client.ready() && claimed; }
  void claim_then_catch_up();
  void catch_up();
  void update_degraded();

  // Background requests (re-assertion, refresh, heartbeat) are paced, so a
  // burst after a reconnect cannot trip the request deadline and drop the
  // link again. They never run while a write is open (decided in Redis, not
  // yet in the journal): a value read from the journal then would be older
  // than the one Redis holds, with a newer version. A task runs with
  // run=false when Redis is not ready: it must then count itself failed.
  static constexpr std::size_t max_background_in_flight = 256;
  std::deque<std::function<void(bool run)>> background;
  std::size_t background_in_flight = 0;
  void enqueue(std::function<void(bool run)> task);
  void pump();
  void background_sent() { ++background_in_flight; }
  void background_done();
  bool background_busy() const { return background.size() > max_background_in_flight; }

  void track(std::error_code send_error, const std::shared_ptr<write_state>& state, bool paced);
  static void settle(const std::shared_ptr<write_state>& state);

  // ---- the write path (store_arbitration.cpp) ----

  // What arbitrations decided in Redis since the last successful local
  // commit: its keys need no further write, only their op records a
  // confirmation once the journal holds them.
  struct open_write {
    bool open = false;
    std::uint64_t sent_at = 0;  // uv_now() of the first arbitration
    std::unordered_map<std::string, std::pair<std::uint64_t, std::int64_t>>
        articles;                             // -> version, own total
    std::unordered_set<std::string> tallies;  // tally_key
    std::unordered_set<std::string> ops;      // op_key
  } open;

  bool commit_called = false;  // commit() ran inside the last arbitrate handler
  std::error_code arbitrate(std::span<const op_intent> intents, arbitrate_handler done);
  std::error_code send_arbitration(std::span<const op_intent> intents,
                                   std::span<const std::vector<std::size_t>> groups, std::uint64_t version,
                                   const std::shared_ptr<detail::arbitration>& call,
                                   const std::function<void()>& settle_call);
  void settle_group(const detail::group_owned& g, const redis_reply& r, std::uint64_t version,
                    std::vector<op_decision>& decisions);
  void commit(const commit_batch& batch, commit_handler done);
  void finish_commit(const commit_batch& batch, commit_handler done);
  void confirm_op(const owned_op& op, timestamp now, bool late);

  // ---- the journal (store_reassert.cpp) ----

  std::uint64_t next_version_ = 0;  // versions [next_version_, version_end_) are reserved
  std::uint64_t version_end_ = 0;
  std::error_code next_version(std::uint64_t& out);
  void move_versions_past(std::uint64_t seen);

  // Keys whose Redis write failed (re-asserted when Redis is back) and keys
  // written recently (re-asserted after every reconnect). Values: uv_now().
  std::unordered_set<std::string> dirty_articles;
  std::unordered_set<std::string> dirty_tallies;  // tally_key
  std::vector<owned_op> dirty_ops;
  std::unordered_map<std::string, std::uint64_t> recent_articles;
  std::unordered_map<std::string, std::uint64_t> recent_tallies;
  std::unordered_map<std::string, std::pair<owned_op, std::uint64_t>> recent_ops;  // op_key
  // Every recent key once, oldest first, so keys older than the window are
  // forgotten as new ones come (not only at a reconnect, which may never
  // come). A key written again keeps its place; when its turn comes it moves
  // to the back with its newer time. `key` points at the map's own key.
  enum class recent_kind : std::uint8_t { article, tally, op };
  struct recent_entry {
    std::uint64_t at;
    recent_kind kind;
    const std::string* key;
  };
  std::deque<recent_entry> recent_order;
  bool reasserting = false;
  bool walk_pending = true;  // a full walk of the journal is due (at start, or the marker was missing)
  bool walking = false;
  std::uint64_t walk_generation = 0;

  void remember_dirty(std::unordered_set<std::string>& keys, const std::string& key);
  void remember_dirty_article(const std::string& article) { remember_dirty(dirty_articles, article); }
  void remember_dirty_tally(const std::string& tkey) { remember_dirty(dirty_tallies, tkey); }
  void remember_dirty_op(owned_op op);
  void note_remote_tally(const std::string& tkey, std::int32_t mine, std::int32_t others);
  // Other nodes' claps of a user on an article. Zero is not stored (remote_tally()
  // answers 0 for a missing key), so a reader who never clapped anywhere leaves
  // nothing here; the rest is bounded by max_remembered_keys.
  void set_remote_tally(const std::string& tkey, std::int32_t others);
  void remember_recent_article(const std::string& article);
  void remember_recent_tally(const std::string& tkey);
  void remember_recent_op(const owned_op& op);
  // Forgets recent keys older than the window; past max_remembered_keys, all of them.
  void prune_recent(std::uint64_t now);
  void reassert();
  void reassert_article(const std::string& article, const std::vector<std::string>& users,
                        const std::shared_ptr<write_state>& state);
  void send_article(std::string_view article, const std::int64_t* total,
                    const std::vector<std::pair<std::string_view, std::int32_t>>& tallies,
                    std::uint64_t version, const std::shared_ptr<write_state>& state);
  void send_op(const owned_op& op, timestamp now, const std::shared_ptr<write_state>& state);
  // One marker key per master (one key on a single master); see check_marker().
  std::vector<std::string> marker_keys() const;
  void check_marker();
  void walk_journal();
  void walk_step(journal_table table, std::string after, std::uint64_t generation,
                 const std::shared_ptr<write_state>& state);

  // ---- the remote view (store_remote.cpp) ----

  std::unordered_map<std::string, detail::remote_article> remote;
  std::unordered_map<std::string, detail::own_article> own;
  std::unordered_map<std::string, std::int32_t> remote_tallies;  // tally_key -> other nodes' claps
  std::unordered_map<std::string, std::int32_t> overshoot_counted;
  std::unordered_set<std::string> publish_marks;
  std::unordered_set<std::string> viewer_marks;

  void room_changed(std::string_view article, bool watched, std::uint32_t viewers);
  void mark_publish(std::string_view article);
  void send_viewers(const std::string& article, std::uint32_t viewers, bool paced = false);
  void flush();
  void heartbeat();
  // The table of nodes (hb:{nodes}): this node's heartbeat and every node's
  // age as of heard_at (uv_now()), from the last answer.
  void announce();
  std::unordered_map<std::string, std::uint64_t> node_ages;
  std::uint64_t node_ages_heard_at = 0;
  void refresh(const std::string& article, bool paced = false);
  void refresh_all();
  bool merge_parts(const std::string& article, const redis_reply& totals, const redis_reply* viewers);
  void recompute(const std::string& article, detail::remote_article& ra);
  void on_message(std::string_view article, std::string_view payload);
  void prune_loaded();

  detail::uv_timer flush_timer;
  detail::uv_timer heartbeat_timer;
  detail::uv_timer refresh_timer;
};

}  // namespace claps
