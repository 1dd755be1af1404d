// redis_store's write path: each tick's ops are decided in Redis, one script
// call per article, before the engine applies them; once the local commit
// (the journal) holds them, their op records are confirmed and the new totals
// published. One round trip per tick on the way to the ack.
#include "store_impl.hpp"

#include <algorithm>
#include <cassert>

namespace claps {

namespace {

// Copies what outlives the local commit: the engine's views need not stay
// valid while Redis answers.
struct owned_batch {
  std::vector<std::pair<std::string, std::int64_t>> totals;
  std::vector<std::string> tally_keys;
  std::vector<owned_op> ops;
  timestamp now{};

  explicit owned_batch(const commit_batch& batch) : now(batch.now) {
    totals.reserve(batch.totals.size());
    for (const article_total& t : batch.totals) totals.emplace_back(std::string(t.article), t.total);
    tally_keys.reserve(batch.tallies.size());
    for (const user_tally& t : batch.tallies) tally_keys.push_back(detail::tally_key(t.user, t.article));
    ops.reserve(batch.ops.size());
    for (const op_record& op : batch.ops)
      ops.push_back({std::string(op.user), std::string(op.article), std::string(op.op_id), op.accepted,
                     op.mine, op.expires_at});
  }
};

}  // namespace

std::error_code redis_store::impl::arbitrate(std::span<const op_intent> intents, arbitrate_handler done) {
  if (!writable()) return make_error_code(errc::store_disconnected);
  std::uint64_t version = 0;
  if (auto ec = next_version(version)) return ec;

  // The ops of one article stay together and in order.
  std::vector<std::vector<std::size_t>> groups;
  std::unordered_map<std::string_view, std::size_t> group_of;
  for (std::size_t i = 0; i < intents.size(); ++i) {
    auto [it, inserted] = group_of.try_emplace(intents[i].article, groups.size());
    if (inserted) groups.emplace_back();
    groups[it->second].push_back(i);
  }

  auto call = std::make_shared<detail::arbitration>();
  call->decisions.resize(intents.size());  // kind::local until answered
  call->done = std::move(done);
  call->outstanding = 1;  // held until every script is sent
  auto settle_call = [this, call] {
    if (--call->outstanding != 0) return;
    // The engine applies the decisions and commits them from inside `done`.
    // When it had nothing to journal, no write is open any more and
    // background writes may go on.
    commit_called = false;
    call->done(call->decisions);
    if (!commit_called) {
      open = {};
      pump();
    }
  };
  // Background writes wait until the journal holds what these scripts
  // decide (see pump()).
  if (!open.open) {
    open.open = true;
    open.sent_at = uv_now(loop);
  }
  ++stats.arbitrations;

  const std::size_t per_call =
      options.max_articles_per_script == 0 ? groups.size() : options.max_articles_per_script;
  // On Redis Cluster every key of a call must share one slot: articles of
  // one slot go together, and a call ends where the slot changes.
  std::vector<std::uint16_t> slots;
  if (clustered) {
    std::vector<std::pair<std::uint16_t, std::size_t>> order;
    order.reserve(groups.size());
    for (std::size_t g = 0; g < groups.size(); ++g)
      order.emplace_back(redis_key_slot(key("t", intents[groups[g].front()].article)), g);
    std::stable_sort(order.begin(), order.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    std::vector<std::vector<std::size_t>> sorted;
    sorted.reserve(groups.size());
    for (const auto& [slot, g] : order) {
      sorted.push_back(std::move(groups[g]));
      slots.push_back(slot);
    }
    groups = std::move(sorted);
  }
  for (std::size_t from = 0; from < groups.size();) {
    std::size_t to = std::min(groups.size(), from + per_call);
    if (clustered)
      for (std::size_t g = from + 1; g < to; ++g)
        if (slots[g] != slots[from]) {
          to = g;
          break;
        }
    if (send_arbitration(intents, std::span(groups).subspan(from, to - from), version, call, settle_call)) {
      ++stats.arbitration_failures;
      --call->outstanding;  // its ops stay kind::local
    }
    from = to;
  }
  if (call->outstanding == 1) {
    // No script was sent: the caller decides every op itself, and, as a
    // failed call never runs its callback, this one never will.
    call->done = nullptr;
    if (open.articles.empty() && open.ops.empty()) open = {};
    return make_error_code(errc::store_disconnected);
  }
  settle_call();
  return {};
}

// One script call deciding the ops of `groups` (each: one article's intents).
std::error_code redis_store::impl::send_arbitration(std::span<const op_intent> intents,
                                                    std::span<const std::vector<std::size_t>> groups,
                                                    std::uint64_t version,
                                                    const std::shared_ptr<detail::arbitration>& call,
                                                    const std::function<void()>& settle_call) {
  using detail::group_owned;
  auto owned = std::make_shared<std::vector<group_owned>>();
  std::vector<std::string> keys;
  std::vector<std::string> argv{options.node_id,
                                std::to_string(version),
                                std::to_string(options.clap_cap),
                                std::to_string(options.pending_ttl.count()),
                                std::to_string(groups.size()),
                                std::to_string(options.op_id_window.count())};
  for (const auto& group : groups) {
    const op_intent& first = intents[group.front()];
    group_owned g;
    g.article.assign(first.article);
    std::vector<std::string_view> users;  // distinct, in first-seen order
    std::unordered_map<std::string_view, std::size_t> user_index;
    std::vector<std::int32_t> own;
    for (std::size_t i : group) {
      if (user_index.try_emplace(intents[i].user, users.size()).second) {
        users.push_back(intents[i].user);
        own.push_back(intents[i].own);  // the first op of a user carries its base
      }
    }
    const std::size_t t_index = keys.size() + 1;  // KEYS are 1-based
    keys.push_back(key("t", g.article));
    for (std::string_view user : users) keys.push_back(key("u", g.article, user));
    argv.push_back(std::to_string(t_index));
    argv.push_back(std::to_string(first.own_total));
    argv.push_back(std::to_string(users.size()));
    for (std::int32_t o : own) argv.push_back(std::to_string(o));
    argv.push_back(std::to_string(group.size()));
    for (std::size_t i : group) {
      const op_intent& in = intents[i];
      std::size_t op_key_index = 0;
      if (!in.op_id.empty()) {
        keys.push_back(key("o", g.article, in.user, in.op_id));
        op_key_index = keys.size();
      }
      argv.push_back(std::to_string(user_index[in.user] + 1));
      argv.push_back(std::to_string(op_key_index));
      argv.push_back(std::to_string(in.undo ? 0 : in.count));
      g.ops.push_back(i);
      g.op_keys.push_back(in.op_id.empty() ? std::string() : detail::op_key(in.user, g.article, in.op_id));
    }
    for (std::string_view u : users) g.users.emplace_back(u);
    owned->push_back(std::move(g));
  }
  const std::size_t key_count = keys.size();
  keys.insert(keys.end(), std::make_move_iterator(argv.begin()), std::make_move_iterator(argv.end()));
  ++call->outstanding;
  ++stats.arbitration_scripts;
  return client.eval(
      detail::scripts::arbitrate, key_count, keys,
      [this, alive = token(), call, owned, version, settle_call](std::error_code ec, const redis_reply& r) {
        if (alive.expired()) return;
        if (ec || !detail::arbitration_reply_fits(r, *owned)) {
          // The script may or may not have run: the ops are decided locally
          // and their keys re-asserted from the journal.
          ++stats.arbitration_failures;
          for (const group_owned& g : *owned) {
            remember_dirty_article(g.article);
            for (const std::string& u : g.users) remember_dirty_tally(detail::tally_key(u, g.article));
          }
          update_degraded();
          settle_call();
          return;
        }
        move_versions_past(static_cast<std::uint64_t>(detail::reply_int(r.elements[0])));
        for (std::size_t n = 0; n < owned->size(); ++n)
          settle_group((*owned)[n], r.elements[n + 1], version, call->decisions);
        settle_call();
      });
}

// One article's part of a script's reply: its decisions, the other nodes'
// claps of its users and their parts of its total.
void redis_store::impl::settle_group(const detail::group_owned& g, const redis_reply& r,
                                     std::uint64_t version, std::vector<op_decision>& decisions) {
  const auto stale = detail::reply_int(r.elements[0]);
  stats.stale_writes += static_cast<std::uint64_t>(stale);
  const auto& others = r.elements[1].elements;
  bool any_applied = false;
  for (std::size_t k = 0; k < g.ops.size(); ++k) {
    op_decision& d = decisions[g.ops[k]];
    d = detail::read_decision(r, k);
    if (d.what == op_decision::kind::applied) {
      any_applied = true;
      if (detail::reply_int(r.elements[3].elements[3 * k]) == 4) ++stats.op_takeovers;
      if (!g.op_keys[k].empty()) open.ops.insert(g.op_keys[k]);
    } else if (d.what == op_decision::kind::replay) {
      ++stats.cross_node_replays;
    } else {
      ++stats.op_retries;
    }
  }
  for (std::size_t u = 0; u < g.users.size(); ++u) {
    const std::string tkey = detail::tally_key(g.users[u], g.article);
    set_remote_tally(tkey, static_cast<std::int32_t>(detail::reply_int(others[u])));
    if (stale == 0) open.tallies.insert(tkey);
    else remember_dirty_tally(tkey);
  }
  // Redis kept a newer version of this node's values than ours (see
  // move_versions_past): the decisions stand, but Redis lacks the values, so
  // the batch is only locally durable until they are re-asserted.
  if (stale != 0) {
    remember_dirty_article(g.article);
  } else if (any_applied) {
    auto& entry = open.articles[g.article];
    entry.first = std::max(entry.first, version);
  }
  merge_parts(g.article, r.elements[2], nullptr);
}

void redis_store::impl::commit(const commit_batch& batch, commit_handler done) {
  commit_called = true;
  local.commit(
      batch, [this, alive = token(), batch, done = std::move(done)](std::error_code ec, durability) mutable {
        if (alive.expired()) return;
        if (ec) {
          done(ec, durability::local);  // nothing durable: the engine retries the batch
          return;
        }
        finish_commit(batch, std::move(done));
      });
}

// The journal holds the batch: confirm what Redis decided, remember what it
// lacks, publish the new totals.
void redis_store::impl::finish_commit(const commit_batch& batch, commit_handler done) {
  ++stats.commits;
  const owned_batch owned(batch);
  const bool late = uv_now(loop) - open.sent_at > static_cast<std::uint64_t>(options.pending_ttl.count()) / 2;
  bool whole = writable();
  for (const auto& [article, total] : owned.totals) {
    const auto it = open.articles.find(article);
    if (it == open.articles.end()) {
      remember_dirty_article(article);
      whole = false;
      continue;
    }
    detail::own_article& o = own[article];
    o.version = it->second.first;
    o.total = total;
    o.total_known = true;
    remember_recent_article(article);
    mark_publish(article);
  }
  for (const std::string& tkey : owned.tally_keys) {
    if (open.tallies.count(tkey) == 0) {
      remember_dirty_tally(tkey);
      whole = false;
    } else {
      remember_recent_tally(tkey);
    }
  }
  for (const owned_op& op : owned.ops) {
    if (open.ops.count(detail::op_key(op.user, op.article, op.op_id)) == 0 || !writable()) {
      remember_dirty_op(op);
      whole = false;
    } else {
      confirm_op(op, owned.now, late);
      remember_recent_op(op);
    }
  }
  open = {};
  if (whole) ++stats.cluster_commits;
  else ++stats.local_commits;
  update_degraded();
  pump();
  done({}, whole ? durability::cluster : durability::local);
}

// A pending record becomes confirmed. Within half its pending ttl no other
// node can have replaced it, so a plain SET XX does; later the record_op
// script checks that it is still this node's.
void redis_store::impl::confirm_op(const owned_op& op, timestamp now, bool late) {
  const auto ttl = std::chrono::duration_cast<millis>(op.expires_at - now).count();
  if (ttl <= 0) return;
  if (late) {
    auto state = std::make_shared<write_state>();
    state->finish = [this, op](bool ok) {
      if (!ok) remember_dirty_op(op);
    };
    ++state->outstanding;
    send_op(op, now, state);
    settle(state);
    return;
  }
  std::string value = options.node_id;
  value.append("|C|").append(std::to_string(op.accepted)).append("|").append(std::to_string(op.mine));
  const std::string k = key("o", op.article, op.user, op.op_id);
  const std::string ttl_ms = std::to_string(ttl);
  const std::string_view args[] = {"SET", k, value, "XX", "PX", ttl_ms};
  const std::error_code sent =
      client.command(args, [this, alive = token(), op](std::error_code ec, const redis_reply& r) {
        if (alive.expired()) return;
        if (ec || r.is_error()) remember_dirty_op(op);
        // A nil reply: the pending record expired or a failover lost it; the
        // journal's re-assertion writes it.
        else if (r.type == redis_reply::kind::nil) remember_dirty_op(op);
      });
  if (sent) remember_dirty_op(op);
}

}  // namespace claps
