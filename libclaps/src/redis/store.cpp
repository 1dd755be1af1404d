// redis_store: local commit first, then this node's absolute, versioned
// values to Redis. See docs/design.md for why this keeps every acknowledged
// clap while Redis fails over.
#include "scripts.hpp"
#include "uv_timer.hpp"

#include <claps/error.hpp>
#include <claps/ids.hpp>
#include <claps/redis.hpp>

#include <algorithm>
#include <cassert>
#include <charconv>
#include <chrono>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace claps {

namespace {

struct node_part {
  std::uint64_t version = 0;
  std::int64_t total = 0;
  std::uint32_t viewers = 0;
};

struct remote_article {
  std::size_t watchers = 0;
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
  std::string user, op_id, article;
  std::int32_t accepted = 0, mine = 0;
  timestamp expires_at{};
};

struct owned_batch {
  std::vector<std::pair<std::string, std::int64_t>> totals;
  std::vector<std::string> tally_keys;  // tally_key(user, article)
  std::vector<owned_op> ops;
};

template <class Int> bool to_int(std::string_view s, Int& out) {
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc{} && end == s.data() + s.size();
}

// The read_article script's reply folded into `parts`: totals never move a
// part backwards; viewer fields are authoritative (absent means expired).
bool merge_article_parts(const redis_reply& r, std::unordered_map<std::string, node_part>& parts) {
  if (r.type != redis_reply::kind::array || r.elements.size() != 2) return false;
  const auto& totals = r.elements[0].elements;
  for (std::size_t i = 0; i + 2 < totals.size(); i += 3) {
    node_part& part = parts[totals[i].str];
    std::uint64_t version = 0;
    std::int64_t total = 0;
    if (!to_int(totals[i + 1].str, version) || !to_int(totals[i + 2].str, total)) continue;
    if (version >= part.version) {
      part.version = version;
      part.total = total;
    }
  }
  for (auto& [node, part] : parts) part.viewers = 0;
  const auto& viewers = r.elements[1].elements;
  for (std::size_t i = 0; i + 1 < viewers.size(); i += 2) {
    std::uint32_t n = 0;
    if (to_int(viewers[i + 1].str, n)) parts[viewers[i].str].viewers = n;
  }
  return true;
}

// HGETALL of u:{A}:<user>: the user's claps on A through every node but `node`.
std::int32_t claps_of_other_nodes(const redis_reply& r, std::string_view node) {
  std::int32_t others = 0;
  for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2) {
    if (r.elements[i].str == node) continue;
    const std::string& v = r.elements[i + 1].str;
    std::int32_t claps = 0;
    if (const auto colon = v.find(':');
        colon != std::string::npos && to_int(std::string_view(v).substr(colon + 1), claps))
      others += claps;
  }
  return others;
}

// Splits up to 4 `sep`-separated fields off `v`; returns how many.
std::size_t split_fields(std::string_view v, char sep, std::string_view (&fields)[4]) {
  std::size_t n = 0;
  while (n < 4 && !v.empty()) {
    const auto at = v.find(sep);
    fields[n++] = v.substr(0, at);
    v = at == std::string_view::npos ? std::string_view{} : v.substr(at + 1);
  }
  return n;
}

std::string tally_key(std::string_view user, std::string_view article) {
  std::string k(user);
  k.push_back('|');  // outside the id alphabet
  k.append(article);
  return k;
}

std::int64_t reply_int(const redis_reply& r) {
  if (r.type == redis_reply::kind::integer) return r.integer;
  std::int64_t v = 0;
  if (r.type == redis_reply::kind::string) to_int(r.str, v);
  return v;
}

} // namespace

struct redis_store::impl {
  uv_loop_t* loop;
  store& local;
  redis_client& client;
  redis_bus& bus;
  redis_store_options options;
  redis_store_callbacks callbacks;
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);
  std::uint64_t client_listener = 0;
  std::uint64_t bus_listener = 0;

  std::unordered_map<std::string, remote_article> remote;  // watched articles
  std::unordered_map<std::string, own_article> own;
  std::unordered_map<std::string, std::int32_t> remote_tallies;  // tally_key -> other nodes' claps
  std::unordered_map<std::string, std::int32_t> overshoot_counted;

  // Keys whose Redis write failed (re-asserted when Redis is back) and keys
  // written recently (re-asserted after every reconnect: a failover may have
  // dropped them). Values: uv_now() ms of the write.
  std::unordered_set<std::string> dirty_articles;
  std::unordered_set<std::string> dirty_tallies;  // tally_key
  std::vector<owned_op> dirty_ops;
  std::unordered_map<std::string, std::uint64_t> recent_articles;
  std::unordered_map<std::string, std::uint64_t> recent_tallies;

  std::unordered_set<std::string> publish_marks;
  std::unordered_set<std::string> viewer_marks;
  std::uint64_t last_version = 0;
  bool degraded = false;
  bool claimed = false;  // node_id is ours in Redis (see claim_then_catch_up)

  // Background requests (re-assert, refresh, heartbeat) are paced, so a burst
  // after a reconnect cannot trip the request deadline and drop the link
  // again. A task runs with run=false when Redis is not ready: it must then
  // count itself as failed.
  static constexpr std::size_t max_background_in_flight = 256;
  std::deque<std::function<void(bool run)>> background;
  std::size_t background_in_flight = 0;
  bool reasserting = false;
  redis_store_stats stats;

  detail::uv_timer flush_timer;
  detail::uv_timer heartbeat_timer;
  detail::uv_timer refresh_timer;

  impl(uv_loop_t* l, store& lo, redis_client& c, redis_bus& b, redis_store_options o,
       redis_store_callbacks cb)
      : loop(l), local(lo), client(c), bus(b), options(std::move(o)), callbacks(std::move(cb)),
        flush_timer(l, [this] { flush(); }), heartbeat_timer(l, [this] { heartbeat(); }),
        refresh_timer(l, [this] { refresh_all(); }) {}

  std::weak_ptr<bool> token() const { return alive; }

  void enqueue(std::function<void(bool run)> task) {
    background.push_back(std::move(task));
    pump();
  }
  void pump() {
    while (background_in_flight < max_background_in_flight && !background.empty()) {
      auto task = std::move(background.front());
      background.pop_front();
      task(writable());
    }
  }
  void background_done() {
    --background_in_flight;
    pump();
  }
  // Sent a paced request: its completion must call background_done().
  void background_sent() { ++background_in_flight; }

  std::string key(std::string_view kind, std::string_view tag, std::string_view rest = {}) const {
    std::string k = options.key_prefix;
    k.append(kind);
    k.append(":{");
    k.append(tag);
    k.push_back('}');
    if (!rest.empty()) {
      k.push_back(':');
      k.append(rest);
    }
    return k;
  }

  // Versions only have to grow per node; microseconds of wall clock keep them
  // growing across restarts too (a restarted node re-asserts with a newer one).
  std::uint64_t next_version() {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count();
    last_version = std::max<std::uint64_t>(static_cast<std::uint64_t>(us), last_version + 1);
    return last_version;
  }

  // Redis is written only once this node's id is known to be ours.
  bool writable() const { return client.ready() && claimed; }

  // On every connect: claim the node id, then catch up.
  void claim_then_catch_up() {
    claimed = options.owner.empty();
    if (claimed) {
      catch_up();
      return;
    }
    const std::string args[] = {key("node", options.node_id), options.owner};
    client.eval(detail::scripts::claim_node, 1, args,
                [this, alive = token()](std::error_code ec, const redis_reply& r) {
                  if (alive.expired() || ec) return;  // a failed request reconnects, and claims again
                  if (r.type == redis_reply::kind::integer && r.integer == 1) {
                    stats.node_id_taken = false;
                    claimed = true;
                    catch_up();
                    return;
                  }
                  stats.node_id_taken = true;
                  update_degraded();
                  if (callbacks.node_id_taken) callbacks.node_id_taken(r.str);
                });
    update_degraded();
  }
  void catch_up() {
    reassert();
    refresh_all();
    update_degraded();
  }

  void update_degraded() {
    // Still degraded while a re-assert is in flight: Redis lacks those keys.
    const bool now_degraded = !writable() || reasserting || !dirty_articles.empty() ||
                              !dirty_tallies.empty() || !dirty_ops.empty();
    stats.dirty_keys = dirty_articles.size() + dirty_tallies.size() + dirty_ops.size();
    if (now_degraded == degraded) return;
    degraded = now_degraded;
    if (callbacks.degraded) callbacks.degraded(degraded);
  }

  // ---- writing ----

  struct write_state {
    std::size_t outstanding = 0;
    bool failed = false;
    std::function<void(bool ok)> finish;
  };

  // Accounts for one request of `state`: sent (its completion must settle()
  // it) or refused (the write failed).
  void track(std::error_code send_error, const std::shared_ptr<write_state>& state, bool paced) {
    if (send_error) {
      state->failed = true;
      return;
    }
    ++state->outstanding;
    if (paced) background_sent();
  }
  static void settle(const std::shared_ptr<write_state>& state) {
    if (--state->outstanding == 0) state->finish(!state->failed);
  }

  // Sends one article's total (if any) and tallies; calls back into `state`.
  void send_article(std::string_view article, const std::int64_t* total,
                    const std::vector<std::pair<std::string_view, std::int32_t>>& tallies,
                    std::uint64_t version, const std::shared_ptr<write_state>& state,
                    bool paced = false) {
    std::vector<std::string> args;
    args.reserve(2 + 2 * tallies.size() + 3);
    args.push_back(key("t", article));
    for (const auto& [user, claps] : tallies) args.push_back(key("u", article, user));
    args.push_back(options.node_id);
    args.push_back(std::to_string(version));
    args.push_back(total != nullptr ? std::to_string(*total) : std::string());
    for (const auto& [user, claps] : tallies) args.push_back(std::to_string(claps));
    std::vector<std::pair<std::string, std::int32_t>> owned;
    owned.reserve(tallies.size());
    for (const auto& [user, claps] : tallies) owned.emplace_back(tally_key(user, article), claps);
    const std::error_code ec = client.eval(
        detail::scripts::write_article, 1 + tallies.size(), args,
        [this, alive = token(), state, owned = std::move(owned), paced](std::error_code ec,
                                                                         const redis_reply& r) {
          if (alive.expired()) return;
          if (paced) background_done();
          if (ec || r.type != redis_reply::kind::array || r.elements.size() != owned.size() + 1) {
            state->failed = true;
          } else {
            stats.stale_writes += static_cast<std::uint64_t>(reply_int(r.elements[0]));
            for (std::size_t i = 0; i < owned.size(); ++i)
              note_remote_tally(owned[i].first, owned[i].second,
                                static_cast<std::int32_t>(reply_int(r.elements[i + 1])));
          }
          settle(state);
        });
    track(ec, state, paced);
  }

  void send_op(const owned_op& op, timestamp now, const std::shared_ptr<write_state>& state,
               bool paced = false) {
    const auto ttl = std::chrono::duration_cast<millis>(op.expires_at - now).count();
    if (ttl <= 0) return;  // expired: nothing left to protect
    std::string value = options.node_id;
    value.append("|").append(op.article).append("|").append(std::to_string(op.accepted));
    value.append("|").append(std::to_string(op.mine));
    const std::string args[] = {key("op", op.user, op.op_id), value, std::to_string(ttl),
                                options.node_id};
    const std::error_code ec = client.eval(
        detail::scripts::record_op, 1, args,
        [this, alive = token(), state, paced](std::error_code ec, const redis_reply& r) {
          if (alive.expired()) return;
          if (paced) background_done();
          if (ec || r.type != redis_reply::kind::integer) {
            state->failed = true;
          } else if (r.integer == 0) {
            ++stats.remote_op_conflicts;  // the engine hook for this is in docs/design.md
          }
          settle(state);
        });
    track(ec, state, paced);
  }

  void note_remote_tally(const std::string& tkey, std::int32_t mine, std::int32_t others) {
    if (remote_tallies.size() >= options.max_remembered_keys) remote_tallies.clear();
    remote_tallies[tkey] = others;
    const std::int32_t over = mine + others - options.clap_cap;
    if (over > 0) {
      if (overshoot_counted.size() >= options.max_remembered_keys) overshoot_counted.clear();
      std::int32_t& counted = overshoot_counted[tkey];
      if (over > counted) {
        stats.cap_overshoot += static_cast<std::uint64_t>(over - counted);
        counted = over;
      }
    }
  }

  // Past max_remembered_keys a key is forgotten (counted): only a full
  // re-assert from LMDB would then bring it back (see docs/design.md).
  void remember_dirty(const owned_batch& batch) {
    const auto room = [&] {
      return dirty_articles.size() + dirty_tallies.size() + dirty_ops.size() <
             options.max_remembered_keys;
    };
    for (const auto& [article, total] : batch.totals) {
      if (room() || dirty_articles.count(article) != 0)
        dirty_articles.insert(article);
      else
        ++stats.forgotten_keys;
    }
    for (const std::string& k : batch.tally_keys) {
      if (room() || dirty_tallies.count(k) != 0)
        dirty_tallies.insert(k);
      else
        ++stats.forgotten_keys;
    }
    for (const owned_op& op : batch.ops) {
      if (room())
        dirty_ops.push_back(op);
      else
        ++stats.forgotten_keys;
    }
  }

  void remember_recent(const owned_batch& batch) {
    const std::uint64_t now = uv_now(loop);
    if (recent_articles.size() + recent_tallies.size() >= options.max_remembered_keys)
      prune_recent(now);
    for (const auto& [article, total] : batch.totals) recent_articles[article] = now;
    for (const std::string& k : batch.tally_keys) recent_tallies[k] = now;
  }

  void prune_recent(std::uint64_t now) {
    const auto window = static_cast<std::uint64_t>(options.reassert_window.count());
    const std::uint64_t horizon = now > window ? now - window : 0;
    std::erase_if(recent_articles, [&](const auto& e) { return e.second < horizon; });
    std::erase_if(recent_tallies, [&](const auto& e) { return e.second < horizon; });
    if (recent_articles.size() + recent_tallies.size() >= options.max_remembered_keys) {
      recent_articles.clear();  // still too many: forget the oldest generation wholesale
      recent_tallies.clear();
    }
  }

  // Copies what outlives this call: the engine's views need not stay valid
  // while Redis answers.
  static owned_batch own_copy(const commit_batch& batch) {
    owned_batch out;
    out.totals.reserve(batch.totals.size());
    for (const article_total& t : batch.totals) out.totals.emplace_back(std::string(t.article), t.total);
    out.tally_keys.reserve(batch.tallies.size());
    for (const user_tally& t : batch.tallies) out.tally_keys.push_back(tally_key(t.user, t.article));
    out.ops.reserve(batch.ops.size());
    for (const op_record& op : batch.ops)
      out.ops.push_back({std::string(op.user), std::string(op.op_id), std::string(op.article),
                         op.accepted, op.mine, op.expires_at});
    return out;
  }

  void write_batch(const commit_batch& batch, commit_handler done) {
    ++stats.commits;
    auto owned = std::make_shared<owned_batch>(own_copy(batch));
    if (!writable()) {
      remember_dirty(*owned);
      ++stats.local_commits;
      update_degraded();
      done({}, durability::local);
      return;
    }
    const std::uint64_t version = next_version();
    std::unordered_map<std::string_view, std::pair<const std::int64_t*,
                                                   std::vector<std::pair<std::string_view, std::int32_t>>>>
        by_article;
    for (const article_total& t : batch.totals) by_article[t.article].first = &t.total;
    for (const user_tally& t : batch.tallies)
      by_article[t.article].second.emplace_back(t.user, t.claps);

    auto state = std::make_shared<write_state>();
    state->finish = [this, owned, version, done = std::move(done)](bool ok) {
      if (!ok) {
        remember_dirty(*owned);
        ++stats.local_commits;
        update_degraded();
        done({}, durability::local);
        return;
      }
      remember_recent(*owned);
      for (const auto& [article, total] : owned->totals) {
        own_article& o = own[article];
        o.version = version;
        o.total = total;
        o.total_known = true;
        mark_publish(article);
      }
      ++stats.cluster_commits;
      update_degraded();
      done({}, durability::cluster);
    };
    ++state->outstanding;  // held until everything is sent
    for (const auto& [article, parts] : by_article)
      send_article(article, parts.first, parts.second, version, state);
    for (const owned_op& op : owned->ops) send_op(op, batch.now, state);
    settle(state);
  }

  // After a reconnect: write again every key that failed and every key
  // written within the window, with fresh versions and current local values.
  void reassert() {
    if (!writable() || reasserting) return;
    prune_recent(uv_now(loop));
    std::unordered_map<std::string, std::vector<std::string>> articles;  // article -> users
    auto add_tally = [&](const std::string& tkey) {
      const auto bar = tkey.find('|');
      articles[tkey.substr(bar + 1)].push_back(tkey.substr(0, bar));
    };
    for (const std::string& a : dirty_articles) articles[a];
    for (const auto& [a, t] : recent_articles) articles[a];
    for (const std::string& t : dirty_tallies) add_tally(t);
    for (const auto& [t, when] : recent_tallies)
      if (dirty_tallies.count(t) == 0) add_tally(t);
    std::vector<owned_op> ops = std::move(dirty_ops);
    dirty_ops.clear();
    if (articles.empty() && ops.empty()) return;
    auto saved_articles = std::move(dirty_articles);
    auto saved_tallies = std::move(dirty_tallies);
    dirty_articles.clear();
    dirty_tallies.clear();

    reasserting = true;
    auto state = std::make_shared<write_state>();
    state->finish = [this, saved_articles = std::move(saved_articles),
                     saved_tallies = std::move(saved_tallies), ops](bool ok) mutable {
      reasserting = false;
      if (!ok) {
        dirty_articles.merge(saved_articles);
        dirty_tallies.merge(saved_tallies);
        for (owned_op& op : ops) dirty_ops.push_back(std::move(op));
      }
      update_degraded();
    };
    ++state->outstanding;  // held until every task is queued
    auto task_done = [state] {
      if (--state->outstanding == 0) state->finish(!state->failed);
    };
    for (auto& [article, users] : articles) {
      ++state->outstanding;
      enqueue([this, state, task_done, article = article, users = std::move(users)](bool run) {
        if (run) {
          reassert_article(article, users, state);
        } else {
          state->failed = true;
        }
        task_done();
      });
    }
    const timestamp now{std::chrono::duration_cast<millis>(
        std::chrono::system_clock::now().time_since_epoch())};
    for (const owned_op& op : ops) {
      ++state->outstanding;
      enqueue([this, state, task_done, op, now](bool run) {
        if (run) {
          send_op(op, now, state, true);
          ++stats.reasserts;
        } else {
          state->failed = true;
        }
        task_done();
      });
    }
    task_done();
  }

  // Reads the current local values when the paced task runs, so the version
  // taken now is newer than anything sent before with older values.
  void reassert_article(const std::string& article, const std::vector<std::string>& users,
                        const std::shared_ptr<write_state>& state) {
    std::int64_t total = 0;
    if (local.read_total(article, total)) {
      state->failed = true;
      return;
    }
    std::vector<std::pair<std::string_view, std::int32_t>> tallies;
    for (const std::string& user : users) {
      std::int32_t claps = 0;
      if (local.read_tally(user, article, claps)) {
        state->failed = true;
        continue;
      }
      tallies.emplace_back(user, claps);
    }
    const std::uint64_t version = next_version();
    send_article(article, &total, tallies, version, state, true);
    stats.reasserts += 1 + tallies.size();
    own_article& o = own[article];
    o.version = version;
    o.total = total;
    o.total_known = true;
  }

  // ---- viewers, publishing ----

  void mark_publish(std::string_view article) {
    publish_marks.emplace(article);
    if (!flush_timer.active()) flush_timer.start(0);
  }

  void send_viewers(const std::string& article, std::uint32_t viewers, bool paced = false) {
    const std::string args[] = {key("v", article), options.node_id, std::to_string(viewers),
                                std::to_string(options.viewer_ttl.count())};
    const std::error_code ec = client.eval(
        detail::scripts::write_viewers, 1, args,
        [this, alive = token(), paced](std::error_code, const redis_reply&) {
          if (!alive.expired() && paced) background_done();
        });
    if (!ec && paced) background_sent();
  }

  // One message per changed article per loop iteration, carrying this node's
  // absolute total and viewers: "node version total viewers".
  void flush() {
    auto viewers = std::move(viewer_marks);
    auto publishes = std::move(publish_marks);
    viewer_marks.clear();
    publish_marks.clear();
    if (!writable()) return;  // heartbeat and reassert catch up after reconnecting
    for (const std::string& article : viewers) {
      const auto it = own.find(article);
      send_viewers(article, it == own.end() ? 0 : it->second.viewers);
    }
    for (const std::string& article : publishes) {
      own_article& o = own[article];
      if (!o.total_known) {
        std::int64_t total = 0;
        if (!local.read_total(article, total)) {
          o.total = total;
          o.total_known = true;
        }
      }
      std::string payload = options.node_id;
      payload.append(" ").append(std::to_string(o.version)).append(" ");
      payload.append(std::to_string(o.total)).append(" ").append(std::to_string(o.viewers));
      if (!bus.publish(article, payload)) ++stats.published;
      if (o.viewers == 0 && remote.find(article) == remote.end()) own.erase(article);
    }
  }

  // Background work is skipped while the previous round is still queued.
  bool background_busy() const { return background.size() > max_background_in_flight; }

  void heartbeat() {
    if (!writable()) return;
    if (!background_busy()) {
      for (const auto& [article, o] : own) {
        if (o.viewers == 0) continue;
        enqueue([this, article = article](bool run) {
          const auto it = own.find(article);
          if (run && it != own.end() && it->second.viewers > 0)
            send_viewers(article, it->second.viewers, true);
        });
      }
    }
    if (!dirty_articles.empty() || !dirty_tallies.empty() || !dirty_ops.empty()) reassert();
  }

  // ---- remote state ----

  void recompute(const std::string& article, remote_article& ra) {
    std::int64_t total = 0;
    std::uint32_t viewers = 0;
    for (const auto& [node, part] : ra.parts) {
      total += part.total;
      viewers += part.viewers;
    }
    if (total == ra.total && viewers == ra.viewers) return;
    ra.total = total;
    ra.viewers = viewers;
    if (callbacks.remote_changed) callbacks.remote_changed(article, total, viewers);
  }

  void refresh(const std::string& article, bool paced = false) {
    const std::string args[] = {key("t", article), key("v", article), options.node_id};
    const std::error_code sent = client.eval(
        detail::scripts::read_article, 2, args,
        [this, alive = token(), article, paced](std::error_code ec, const redis_reply& r) {
          if (alive.expired()) return;
          if (paced) background_done();
          if (!ec) apply_refresh(article, r);
        });
    if (!sent && paced) background_sent();
  }

  void apply_refresh(const std::string& article, const redis_reply& r) {
    const auto it = remote.find(article);
    if (it == remote.end()) return;  // unwatched meanwhile
    if (merge_article_parts(r, it->second.parts)) recompute(article, it->second);
  }

  void refresh_all() {
    if (!writable() || background_busy()) return;
    for (const auto& [article, ra] : remote) {
      enqueue([this, article = article](bool run) {
        if (run && remote.count(article) != 0) refresh(article, true);
      });
    }
  }

  void on_message(std::string_view article, std::string_view payload) {
    const auto it = remote.find(std::string(article));
    if (it == remote.end()) return;
    std::string_view fields[4];
    const std::size_t n = split_fields(payload, ' ', fields);
    std::uint64_t version = 0;
    std::int64_t total = 0;
    std::uint32_t viewers = 0;
    if (n != 4 || !to_int(fields[1], version) || !to_int(fields[2], total) ||
        !to_int(fields[3], viewers))
      return;
    if (fields[0] == options.node_id) return;  // our own echo
    ++stats.remote_messages;
    node_part& part = it->second.parts[std::string(fields[0])];
    if (version >= part.version) {
      part.version = version;
      part.total = total;
    }
    part.viewers = viewers;  // one publisher connection per node keeps these in order
    recompute(it->first, it->second);
  }
};

redis_store::redis_store(uv_loop_t* loop, store& local, redis_client& client, redis_bus& bus,
                         redis_store_options options, redis_store_callbacks callbacks)
    : impl_(std::make_unique<impl>(loop, local, client, bus, std::move(options),
                                   std::move(callbacks))) {
  assert(valid_id(impl_->options.node_id, max_user_id_bytes));
  impl* self = impl_.get();
  redis_client_callbacks on_client;
  on_client.connected = [self](const redis_endpoint&) { self->claim_then_catch_up(); };
  on_client.disconnected = [self](std::error_code) {
    self->claimed = self->options.owner.empty();
    self->update_degraded();
  };
  self->client_listener = client.add_listener(std::move(on_client));
  redis_bus_callbacks on_bus;
  on_bus.message = [self](std::string_view article, std::string_view payload) {
    self->on_message(article, payload);
  };
  on_bus.resubscribed = [self] { self->refresh_all(); };
  self->bus_listener = bus.add_listener(std::move(on_bus));
  self->heartbeat_timer.start(static_cast<std::uint64_t>(self->options.heartbeat_interval.count()),
                              static_cast<std::uint64_t>(self->options.heartbeat_interval.count()));
  self->refresh_timer.start(static_cast<std::uint64_t>(self->options.refresh_interval.count()),
                            static_cast<std::uint64_t>(self->options.refresh_interval.count()));
  self->claimed = self->options.owner.empty();
  self->degraded = !self->writable();
  if (client.ready() && !self->claimed) self->claim_then_catch_up();
}

redis_store::~redis_store() {
  impl_->client.remove_listener(impl_->client_listener);
  impl_->bus.remove_listener(impl_->bus_listener);
  for (const auto& [article, ra] : impl_->remote) impl_->bus.unwatch(article);
}

std::error_code redis_store::read_total(std::string_view article, std::int64_t& total) {
  return impl_->local.read_total(article, total);
}

std::error_code redis_store::read_tally(std::string_view user, std::string_view article,
                                        std::int32_t& claps) {
  return impl_->local.read_tally(user, article, claps);
}

std::error_code redis_store::read_op(std::string_view user, std::string_view article, std::string_view op_id,
                                     stored_op& out, bool& found) {
  return impl_->local.read_op(user, article, op_id, out, found);
}

void redis_store::commit(const commit_batch& batch, commit_handler done) {
  impl* self = impl_.get();
  self->local.commit(batch, [self, alive = self->token(), batch,
                             done = std::move(done)](std::error_code ec, durability) mutable {
    if (alive.expired()) return;
    if (ec) {
      done(ec, durability::local);  // nothing durable: the engine retries the batch
      return;
    }
    self->write_batch(batch, std::move(done));
  });
}

void redis_store::watch(std::string_view article) {
  auto [it, inserted] = impl_->remote.try_emplace(std::string(article));
  if (++it->second.watchers > 1) return;
  impl_->bus.watch(article);
  impl_->refresh(it->first);
}

void redis_store::unwatch(std::string_view article) {
  const auto it = impl_->remote.find(std::string(article));
  if (it == impl_->remote.end()) return;
  if (--it->second.watchers > 0) return;
  impl_->remote.erase(it);
  impl_->bus.unwatch(article);
}

void redis_store::set_local_viewers(std::string_view article, std::uint32_t viewers) {
  own_article& o = impl_->own[std::string(article)];
  if (o.viewers == viewers) return;
  o.viewers = viewers;
  impl_->viewer_marks.emplace(article);
  impl_->mark_publish(article);
}

void redis_store::prefetch_tally(std::string_view user, std::string_view article) {
  impl* self = impl_.get();
  const std::string k = self->key("u", article, user);
  self->client.command({"HGETALL", k}, [self, alive = self->token(), tkey = tally_key(user, article)](
                                           std::error_code ec, const redis_reply& r) {
    if (alive.expired() || ec || r.type != redis_reply::kind::array) return;
    self->remote_tallies[tkey] = claps_of_other_nodes(r, self->options.node_id);
  });
}

void redis_store::fetch_remote(std::string_view article, std::string_view user, remote_parts_handler done) {
  impl* self = impl_.get();
  struct fetch {
    remote_parts parts;
    std::error_code ec;
    int waiting = 0;
    remote_parts_handler done;
  };
  auto f = std::make_shared<fetch>();
  f->waiting = user.empty() ? 1 : 2;
  f->done = std::move(done);
  auto finish = [f](std::error_code ec) {
    if (ec && !f->ec) f->ec = ec;
    if (--f->waiting == 0) f->done(f->ec, f->parts);
  };
  const std::string args[] = {self->key("t", article), self->key("v", article), self->options.node_id};
  if (const std::error_code sent = self->client.eval(
          detail::scripts::read_article, 2, args,
          [alive = self->token(), f, finish](std::error_code ec, const redis_reply& r) {
            if (alive.expired()) return;
            std::unordered_map<std::string, node_part> parts;
            if (!ec && !merge_article_parts(r, parts)) ec = make_error_code(errc::store_io);
            for (const auto& [node, part] : parts) {
              f->parts.total += part.total;
              f->parts.viewers += part.viewers;
            }
            finish(ec);
          }))
    finish(sent);
  if (user.empty()) return;
  const std::string k = self->key("u", article, user);
  if (const std::error_code sent = self->client.command(
          {"HGETALL", k}, [self, alive = self->token(), f, finish, tkey = tally_key(user, article)](
                              std::error_code ec, const redis_reply& r) {
            if (alive.expired()) return;
            if (!ec && r.type != redis_reply::kind::array) ec = make_error_code(errc::store_io);
            if (!ec) {
              f->parts.user_claps = claps_of_other_nodes(r, self->options.node_id);
              self->remote_tallies[tkey] = f->parts.user_claps;
            }
            finish(ec);
          }))
    finish(sent);
}

void redis_store::claim_op(std::string_view user, std::string_view op_id, op_claim_handler done) {
  impl* self = impl_.get();
  const std::string args[] = {self->key("op", user, op_id), self->options.node_id,
                              std::to_string(self->options.claim_ttl.count())};
  auto reply = [self, alive = self->token(), done](std::error_code ec, const redis_reply& r) {
    if (alive.expired()) return;
    op_claim claim;
    if (!ec && r.type != redis_reply::kind::string) ec = make_error_code(errc::store_io);
    if (ec) {
      done(ec, claim);
      return;
    }
    // '' (claimed now), "node|" (claimed) or "node|article|accepted|mine".
    std::string_view fields[4];
    const std::size_t n = split_fields(r.str, '|', fields);
    if (n == 0 || fields[0] == self->options.node_id) {
      if (n != 0) claim.by = op_claim::holder::this_node;
      done({}, claim);
      return;
    }
    if (n == 1 || fields[1].empty()) {
      claim.by = op_claim::holder::other_node_pending;
      done({}, claim);
      return;
    }
    claim.by = op_claim::holder::other_node_done;
    claim.article.assign(fields[1]);
    if (n != 4 || !to_int(fields[2], claim.accepted) || !to_int(fields[3], claim.mine))
      ec = make_error_code(errc::store_io);
    done(ec, claim);
  };
  if (const std::error_code sent = self->client.eval(detail::scripts::claim_op, 1, args, reply))
    done(sent, op_claim{});
}

void redis_store::reserve_claps(std::string_view user, std::string_view article, std::int32_t own,
                                std::int32_t want, reserve_handler done) {
  impl* self = impl_.get();
  const std::string args[] = {self->key("u", article, user), self->key("r", article, user), self->options.node_id,
                              std::to_string(own), std::to_string(want), std::to_string(self->options.clap_cap),
                              std::to_string(self->options.claim_ttl.count())};
  auto reply = [self, alive = self->token(), done, tkey = tally_key(user, article)](std::error_code ec,
                                                                                     const redis_reply& r) {
    if (alive.expired()) return;
    std::int32_t granted = 0;
    if (!ec && (r.type != redis_reply::kind::array || r.elements.size() != 2 ||
                r.elements[0].type != redis_reply::kind::integer ||
                r.elements[1].type != redis_reply::kind::integer))
      ec = make_error_code(errc::store_io);
    if (!ec) {
      granted = static_cast<std::int32_t>(r.elements[0].integer);
      self->remote_tallies[tkey] = static_cast<std::int32_t>(r.elements[1].integer);
    }
    done(ec, granted);
  };
  if (const std::error_code sent = self->client.eval(detail::scripts::reserve_claps, 2, args, reply))
    done(sent, 0);
}

void redis_store::release_claps(std::string_view user, std::string_view article) {
  impl* self = impl_.get();
  (void)self->client.command({"HDEL", self->key("r", article, user), self->options.node_id},
                             [](std::error_code, const redis_reply&) {});
}

std::int64_t redis_store::remote_total(std::string_view article) const noexcept {
  const auto it = impl_->remote.find(std::string(article));
  return it == impl_->remote.end() ? 0 : it->second.total;
}

std::uint32_t redis_store::remote_viewers(std::string_view article) const noexcept {
  const auto it = impl_->remote.find(std::string(article));
  return it == impl_->remote.end() ? 0 : it->second.viewers;
}

std::int32_t redis_store::remote_tally(std::string_view user, std::string_view article) noexcept {
  const auto it = impl_->remote_tallies.find(tally_key(user, article));
  return it == impl_->remote_tallies.end() ? 0 : it->second;
}

bool redis_store::degraded() const noexcept { return impl_->degraded; }

redis_store_stats redis_store::stats() const noexcept {
  redis_store_stats s = impl_->stats;
  s.degraded = impl_->degraded;
  s.dirty_keys = impl_->dirty_articles.size() + impl_->dirty_tallies.size() + impl_->dirty_ops.size();
  return s;
}

} // namespace claps
