// redis_store's journal side: versions from durable blocks, the keys Redis
// may lack (dirty after a failed write, recent ones after a reconnect), and
// the full walk of the local store that a missing marker, or a start, calls
// for. Everything here is background work, paced by pump().
#include "cluster_router.hpp"
#include "store_impl.hpp"

#include <algorithm>
#include <climits>
#include <cstdint>

namespace claps {

// Versions only have to grow per node, across restarts and clock steps:
// they come from blocks the local store reserves durably.
std::error_code redis_store::impl::next_version(std::uint64_t& out) {
  if (next_version_ >= version_end_) {
    std::uint64_t first = 0;
    if (auto ec = local.reserve_versions(options.version_block, first)) return ec;
    next_version_ = first;
    version_end_ = first + options.version_block;
  }
  out = next_version_++;
  return {};
}

// Redis held a version of ours at least `seen` (a journal restored from an
// older copy, or data from before versions were reserved): skip past it, so
// the next write wins, and write again what was refused.
void redis_store::impl::move_versions_past(std::uint64_t seen) {
  if (seen < next_version_) return;
  const std::uint64_t need = seen - next_version_ + 1 + options.version_block;
  std::uint64_t first = 0;
  if (local.reserve_versions(need, first)) return;  // tried again on the next stale write
  next_version_ = first + need - options.version_block;
  version_end_ = first + need;
  walk_pending = true;  // what Redis refused is written again with the new versions
}

// Past max_remembered_keys a key is forgotten (counted), and the journal is
// walked in full instead once Redis is reachable.
void redis_store::impl::remember_dirty(std::unordered_set<std::string>& keys, const std::string& key) {
  if (keys.size() < options.max_remembered_keys || keys.count(key) != 0) {
    keys.insert(key);
    return;
  }
  ++stats.forgotten_keys;
  walk_pending = true;
}

void redis_store::impl::remember_dirty_op(owned_op op) {
  if (dirty_ops.size() < options.max_remembered_keys) {
    dirty_ops.push_back(std::move(op));
    return;
  }
  ++stats.forgotten_keys;
  walk_pending = true;
}

void redis_store::impl::remember_recent_article(const std::string& article) {
  const std::uint64_t now = uv_now(loop);
  prune_recent(now);
  const auto [it, fresh] = recent_articles.insert_or_assign(article, now);
  if (fresh) recent_order.push_back({now, recent_kind::article, &it->first});
}

void redis_store::impl::remember_recent_tally(const std::string& tkey) {
  const std::uint64_t now = uv_now(loop);
  prune_recent(now);
  const auto [it, fresh] = recent_tallies.insert_or_assign(tkey, now);
  if (fresh) recent_order.push_back({now, recent_kind::tally, &it->first});
}

void redis_store::impl::remember_recent_op(const owned_op& op) {
  const std::uint64_t now = uv_now(loop);
  prune_recent(now);
  const auto [it, fresh] =
      recent_ops.insert_or_assign(detail::op_key(op.user, op.article, op.op_id), std::pair{op, now});
  if (fresh) recent_order.push_back({now, recent_kind::op, &it->first});
}

void redis_store::impl::prune_recent(std::uint64_t now) {
  const auto window = static_cast<std::uint64_t>(options.reassert_window.count());
  const std::uint64_t horizon = now > window ? now - window : 0;
  while (!recent_order.empty() && recent_order.front().at < horizon) {
    recent_entry e = recent_order.front();
    recent_order.pop_front();
    // Every entry's key is in its map: keys leave only here or all at once below.
    std::uint64_t at = 0;
    switch (e.kind) {
    case recent_kind::article: {
      const auto it = recent_articles.find(*e.key);
      at = it->second;
      if (at < horizon) recent_articles.erase(it);
      break;
    }
    case recent_kind::tally: {
      const auto it = recent_tallies.find(*e.key);
      at = it->second;
      if (at < horizon) recent_tallies.erase(it);
      break;
    }
    case recent_kind::op: {
      const auto it = recent_ops.find(*e.key);
      at = it->second.second;
      if (at < horizon) recent_ops.erase(it);
      break;
    }
    }
    if (at >= horizon) recent_order.push_back({at, e.kind, e.key});  // written again since
  }
  if (recent_articles.size() + recent_tallies.size() >= options.max_remembered_keys ||
      recent_ops.size() >= options.max_remembered_keys) {
    // Still too many to remember: forget them all and walk the journal
    // instead after the next reconnect.
    recent_articles.clear();
    recent_tallies.clear();
    recent_ops.clear();
    recent_order.clear();
    walk_pending = true;
  }
}

void redis_store::impl::set_remote_tally(const std::string& tkey, std::int32_t others) {
  if (others == 0) {
    remote_tallies.erase(tkey);
    return;
  }
  if (remote_tallies.size() >= options.max_remembered_keys) remote_tallies.clear();
  remote_tallies[tkey] = others;
}

// A re-assertion's reply says how many claps of the user other nodes hold:
// kept for the step-1 rule, and counted when the user is over the cap in sum
// (two nodes accepted during an outage).
void redis_store::impl::note_remote_tally(const std::string& tkey, std::int32_t mine, std::int32_t others) {
  set_remote_tally(tkey, others);
  // `others` comes from Redis: summed in 64 bits, so a corrupt value cannot overflow.
  const std::int64_t over64 = std::int64_t{mine} + others - options.clap_cap;
  const std::int32_t over = static_cast<std::int32_t>(std::min<std::int64_t>(over64, INT32_MAX));
  if (over > 0) {
    if (overshoot_counted.size() >= options.max_remembered_keys) overshoot_counted.clear();
    std::int32_t& counted = overshoot_counted[tkey];
    if (over > counted) {
      stats.cap_overshoot += static_cast<std::uint64_t>(over - counted);
      counted = over;
    }
  }
}

// Sends one article's total (if any) and tallies at `version`; settles `state`.
void redis_store::impl::send_article(std::string_view article, const std::int64_t* total,
                                     const std::vector<std::pair<std::string_view, std::int32_t>>& tallies,
                                     std::uint64_t version, const std::shared_ptr<write_state>& state) {
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
  for (const auto& [user, claps] : tallies) owned.emplace_back(detail::tally_key(user, article), claps);
  const std::error_code ec = client.eval(
      detail::scripts::write_article, 1 + tallies.size(), args,
      [this, alive = token(), state, owned = std::move(owned)](std::error_code ec, const redis_reply& r) {
        if (alive.expired()) return;
        background_done();
        if (ec || r.type != redis_reply::kind::array || r.elements.size() != owned.size() + 2) {
          state->failed = true;
        } else {
          stats.stale_writes += static_cast<std::uint64_t>(detail::reply_int(r.elements[0]));
          move_versions_past(static_cast<std::uint64_t>(detail::reply_int(r.elements[1])));
          for (std::size_t i = 0; i < owned.size(); ++i)
            note_remote_tally(owned[i].first, owned[i].second,
                              static_cast<std::int32_t>(detail::reply_int(r.elements[i + 2])));
        }
        settle(state);
      });
  track(ec, state, true);
}

// Writes an op record from the journal, confirmed; settles `state`.
void redis_store::impl::send_op(const owned_op& op, timestamp now,
                                const std::shared_ptr<write_state>& state) {
  const auto ttl = std::chrono::duration_cast<millis>(op.expires_at - now).count();
  if (ttl <= 0) return;  // expired: nothing left to protect
  std::string value = options.node_id;
  value.append("|C|").append(std::to_string(op.accepted)).append("|").append(std::to_string(op.mine));
  const std::string args[] = {key("o", op.article, op.user, op.op_id), value, std::to_string(ttl),
                              options.node_id};
  const std::error_code ec =
      client.eval(detail::scripts::record_op, 1, args,
                  [this, alive = token(), state](std::error_code ec, const redis_reply& r) {
                    if (alive.expired()) return;
                    background_done();
                    if (ec || r.type != redis_reply::kind::integer) state->failed = true;
                    else if (r.integer == 0) ++stats.remote_op_conflicts;
                    settle(state);
                  });
  track(ec, state, true);
}

namespace {

timestamp wall_now() {
  return timestamp{std::chrono::duration_cast<millis>(std::chrono::system_clock::now().time_since_epoch())};
}

}  // namespace

// After a reconnect: write again every key that failed and every key
// written within the window, with fresh versions and the journal's values.
void redis_store::impl::reassert() {
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
  const timestamp now = wall_now();
  for (const auto& [k, entry] : recent_ops)
    if (entry.first.expires_at > now) ops.push_back(entry.first);  // a failover may have dropped its record
  if (articles.empty() && ops.empty()) return;
  auto saved_articles = std::move(dirty_articles);
  auto saved_tallies = std::move(dirty_tallies);
  dirty_articles.clear();
  dirty_tallies.clear();

  reasserting = true;
  auto state = std::make_shared<write_state>();
  state->finish = [this, saved_articles = std::move(saved_articles), saved_tallies = std::move(saved_tallies),
                   ops](bool ok) mutable {
    reasserting = false;
    if (!ok) {
      dirty_articles.merge(saved_articles);
      dirty_tallies.merge(saved_tallies);
      for (owned_op& op : ops) dirty_ops.push_back(std::move(op));
    }
    update_degraded();
  };
  ++state->outstanding;  // held until every task is queued
  for (auto& [article, users] : articles) {
    ++state->outstanding;
    enqueue([this, state, article = article, users = std::move(users)](bool run) {
      if (run) reassert_article(article, users, state);
      else state->failed = true;
      settle(state);
    });
  }
  for (const owned_op& op : ops) {
    ++state->outstanding;
    enqueue([this, state, op](bool run) {
      if (run) {
        send_op(op, wall_now(), state);
        ++stats.reasserts;
      } else {
        state->failed = true;
      }
      settle(state);
    });
  }
  settle(state);
}

// Reads the journal's values when the paced task runs (no write is open
// then), so the version taken now is newer than anything sent before with
// older values.
void redis_store::impl::reassert_article(const std::string& article, const std::vector<std::string>& users,
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
  std::uint64_t version = 0;
  if (next_version(version)) {
    state->failed = true;
    return;
  }
  send_article(article, &total, tallies, version, state);
  stats.reasserts += 1 + tallies.size();
  // Watchers elsewhere hear of it; the next publish carries this version.
  if (const auto it = own.find(article); it != own.end()) {
    it->second.version = version;
    it->second.total = total;
    it->second.total_known = true;
    mark_publish(article);
  }
}

// On every connect: is this master holding this node's whole journal? The
// marker is written once a full walk has completed on it; a master that
// lacks it (came back empty, or a replica promoted before it got there) is
// walked in full.
//
// On Redis Cluster each master holds only its slots of the journal and can
// lose them alone (a replica promoted before it got the marker's write), so
// every master gets a marker of its own: mark:{<node>#<k>}, with the
// smallest k whose slot that master owns now ('#' is outside the id
// alphabet). A reshard that moves a marker's slot only costs a walk.
std::vector<std::string> redis_store::impl::marker_keys() const {
  if (!clustered) return {key("mark", options.node_id)};
  const detail::cluster_router* router = detail::cluster_router_of(client);
  std::vector<std::string> keys;
  for (const redis_endpoint& m : client.masters()) {
    // A master owning one slot of 16384 needs 16384 tries on average.
    for (std::uint32_t k = 0; k < (1u << 20); ++k) {
      std::string candidate = key("mark", options.node_id + "#" + std::to_string(k));
      const redis_endpoint* owner = router->master_of(redis_key_slot(candidate));
      if (owner != nullptr && owner->host == m.host && owner->port == m.port) {
        keys.push_back(std::move(candidate));
        break;
      }
    }
  }
  return keys;
}

void redis_store::impl::check_marker() {
  if (walk_pending) {
    walk_journal();
    return;
  }
  struct check {
    std::size_t outstanding = 0;
    bool missing = false;
    bool failed = false;
  };
  auto state = std::make_shared<check>();
  const std::string expected = options.owner + "|" + options.node_id;
  for (const std::string& k : marker_keys()) {
    const std::string_view args[] = {"GET", k};
    const std::error_code sent = client.command(
        args, [this, alive = token(), state, expected](std::error_code ec, const redis_reply& r) {
          if (alive.expired()) return;
          if (ec) state->failed = true;  // a failed request reconnects, and checks again
          else if (r.type != redis_reply::kind::string || r.str != expected) state->missing = true;
          if (--state->outstanding != 0 || state->failed || !state->missing) return;
          walk_pending = true;
          walk_journal();
        });
    if (!sent) ++state->outstanding;
  }
}

// Writes every total, tally and op record of the journal, a page at a time.
void redis_store::impl::walk_journal() {
  if (!writable() || walking) return;
  walking = true;
  walk_pending = false;
  const std::uint64_t generation = ++walk_generation;
  auto state = std::make_shared<write_state>();
  state->finish = [this, generation](bool ok) {
    if (generation != walk_generation) return;
    walking = false;
    if (!ok || !writable()) {
      walk_pending = true;  // tried again on the next heartbeat or connect
      update_degraded();
      return;
    }
    const std::string v = options.owner + "|" + options.node_id;
    for (const std::string& k : marker_keys()) {
      const std::string_view args[] = {"SET", k, v};
      (void)client.command(args, [](std::error_code, const redis_reply&) {});
    }
    ++stats.journal_walks;
    update_degraded();
  };
  ++state->outstanding;  // held by the walk's steps until the last one
  enqueue([this, generation, state](bool run) {
    if (!run) {
      state->failed = true;
      settle(state);
      return;
    }
    walk_step(journal_table::totals, {}, generation, state);
  });
  update_degraded();
}

// One page of the journal: read when the paced task runs, written at once;
// the next page is queued behind it.
void redis_store::impl::walk_step(journal_table table, std::string after, std::uint64_t generation,
                                  const std::shared_ptr<write_state>& state) {
  std::vector<journal_row> rows;
  std::string next;
  if (local.read_journal(table, after, options.reassert_page, rows, next)) {
    state->failed = true;
    settle(state);
    return;
  }
  const timestamp now = wall_now();
  std::size_t i = 0;
  while (i < rows.size()) {
    // Rows of one article are contiguous: one write per article.
    std::size_t j = i;
    while (j < rows.size() && rows[j].article == rows[i].article) ++j;
    if (table == journal_table::ops) {
      for (std::size_t k = i; k < j; ++k) {
        const journal_row& r = rows[k];
        if (r.expires_at <= now) continue;
        send_op({r.user, r.article, r.op_id, r.accepted, r.mine, r.expires_at}, now, state);
        ++stats.reasserts;
      }
    } else {
      std::uint64_t version = 0;
      if (next_version(version)) {
        state->failed = true;
        break;
      }
      std::vector<std::pair<std::string_view, std::int32_t>> tallies;
      const std::int64_t* total = nullptr;
      if (table == journal_table::totals) {
        total = &rows[i].value;
      } else {
        for (std::size_t k = i; k < j; ++k)
          tallies.emplace_back(rows[k].user, static_cast<std::int32_t>(rows[k].value));
      }
      send_article(rows[i].article, total, tallies, version, state);
      stats.reasserts += j - i;
    }
    i = j;
  }
  if (next.empty()) {
    if (table == journal_table::ops) {
      settle(state);  // the walk's own hold: done once the last page answers
      return;
    }
    table = table == journal_table::totals ? journal_table::tallies : journal_table::ops;
  }
  enqueue([this, table, next = std::move(next), generation, state](bool run) mutable {
    if (generation != walk_generation) return;
    if (!run) {
      state->failed = true;
      settle(state);
      return;
    }
    walk_step(table, std::move(next), generation, state);
  });
}

}  // namespace claps
