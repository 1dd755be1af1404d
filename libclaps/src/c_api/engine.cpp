// The engine of <claps/claps.h>: C structs in, C callbacks out.
#include "handles.hpp"

#include <claps/ids.hpp>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string_view>
#include <vector>

using claps::c_api::guarded;
using claps::c_api::to_code;

namespace {

claps::timestamp at(std::int64_t ms) { return claps::timestamp{claps::millis(ms)}; }

std::string_view view(const char* s) { return s ? std::string_view(s) : std::string_view(); }

void fill(claps_snapshot* out, const claps::snapshot& s) {
  if (!out) return;
  out->total = s.total;
  out->viewers = s.viewers;
  out->mine = s.mine;
  out->global = s.global;
}

void deliver(claps_engine& e, claps::subscriber_id sub, std::span<const claps::article_update* const> us) {
  std::size_t bytes = 0;
  for (const claps::article_update* u : us) bytes += u->article.size() + 1;
  e.arena.clear();
  e.arena.reserve(bytes);  // no reallocation below: the pointers stay valid
  e.updates.clear();
  for (const claps::article_update* u : us) {
    claps_article_update c{};
    c.article = e.arena.data() + e.arena.size();
    c.article_len = u->article.size();
    e.arena.append(u->article);
    e.arena.push_back('\0');
    c.total = u->total;
    c.viewers = u->viewers;
    e.updates.push_back(c);
  }
  e.callbacks.deliver(e.callbacks.deliver_user, sub, e.updates.data(), e.updates.size());
}

void result(claps_engine& e, const claps::op_result& r) {
  // One buffer for the three strings; claps_engine_new() reserved room for
  // the longest ids, so this never allocates (it may run in ~engine, where
  // nothing may throw) and the pointers never move.
  const std::string_view user = r.user, article = r.article, op_id = r.op_id;
  e.result_strings.clear();
  e.result_strings.reserve(user.size() + article.size() + op_id.size() + 3);  // a no-op for valid ids
  auto put = [&](std::string_view s) {
    const char* p = e.result_strings.data() + e.result_strings.size();
    e.result_strings.append(s);
    e.result_strings.push_back('\0');
    return p;
  };
  claps_op_result c{};
  c.cookie = r.cookie;
  c.user = put(user);
  c.user_len = user.size();
  c.article = put(article);
  c.article_len = article.size();
  c.op_id = put(op_id);
  c.op_id_len = op_id.size();
  c.error = to_code(r.error);
  c.accepted = r.accepted;
  c.total = r.total;
  c.mine = r.mine;
  c.replayed = r.replayed;
  c.durability = r.level == claps::durability::cluster ? CLAPS_DURABILITY_CLUSTER : CLAPS_DURABILITY_LOCAL;
  e.callbacks.result(e.callbacks.result_user, &c);
}

claps::engine_options to_options(const claps_engine_options& o) {
  claps::engine_options x;
  x.tick = claps::millis(o.tick_ms);
  x.clap_cap = o.clap_cap;
  x.op_id_window = claps::millis(o.op_id_window_ms);
  x.max_op_ids_per_user = o.max_op_ids_per_user;
  x.op_id_cache = o.op_id_cache;
  x.max_pending_ops = o.max_pending_ops;
  x.max_subscriptions = o.max_subscriptions;
  x.article_cache = o.article_cache;
  x.tally_cache = o.tally_cache;
  x.deliveries_per_slice = o.deliveries_per_slice;
  x.viewer_update_interval = claps::millis(o.viewer_update_interval_ms);
  x.viewer_throttle_min_room = o.viewer_throttle_min_room;
  x.hash_seed = o.hash_seed;
  return x;
}

}  // namespace

extern "C" {

void claps_engine_options_init(claps_engine_options* options) {
  if (!options) return;
  const claps::engine_options d;
  *options = claps_engine_options{};
  options->tick_ms = d.tick.count();
  options->clap_cap = d.clap_cap;
  options->op_id_window_ms = d.op_id_window.count();
  options->max_op_ids_per_user = d.max_op_ids_per_user;
  options->op_id_cache = d.op_id_cache;
  options->max_pending_ops = d.max_pending_ops;
  options->max_subscriptions = d.max_subscriptions;
  options->article_cache = d.article_cache;
  options->tally_cache = d.tally_cache;
  options->deliveries_per_slice = d.deliveries_per_slice;
  options->viewer_update_interval_ms = d.viewer_update_interval.count();
  options->viewer_throttle_min_room = d.viewer_throttle_min_room;
  options->hash_seed = d.hash_seed;
}

int claps_engine_options_validate(const claps_engine_options* options, char* why, size_t why_size) {
  if (why && why_size) *why = '\0';
  if (!options) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    std::string reason;
    const int code = to_code(claps::validate(to_options(*options), reason));
    if (why && why_size) {
      const std::size_t n = std::min(reason.size(), why_size - 1);
      reason.copy(why, n);
      why[n] = '\0';
    }
    return code;
  });
}

int claps_engine_new(claps_store* store, const claps_engine_options* options,
                     const claps_engine_callbacks* callbacks, int64_t now_ms, claps_engine** out) {
  if (!out) return CLAPS_E_BAD_REQUEST;
  *out = nullptr;
  if (!store || !store->store) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    claps::engine_options o;
    if (options) o = to_options(*options);
    if (auto ec = claps::validate(o)) return to_code(ec);
    auto handle = std::make_unique<claps_engine>();
    handle->result_strings.reserve(claps::max_user_id_bytes + claps::max_article_id_bytes +
                                   claps::max_op_id_bytes + 3);
    if (callbacks) handle->callbacks = *callbacks;
    claps::engine_callbacks cb;
    claps_engine* e = handle.get();
    if (e->callbacks.deliver)
      cb.deliver = [e](claps::subscriber_id sub, std::span<const claps::article_update* const> us) {
        deliver(*e, sub, us);
      };
    if (e->callbacks.result) cb.result = [e](const claps::op_result& r) { result(*e, r); };
    if (e->callbacks.store_status)
      cb.store_status = [e](std::error_code ec) {
        e->callbacks.store_status(e->callbacks.store_status_user, to_code(ec));
      };
    handle->engine = std::make_unique<claps::engine>(*store->store, o, std::move(cb), at(now_ms));
    *out = handle.release();
    return CLAPS_OK;
  });
}

int claps_engine_subscribe(claps_engine* engine, uint64_t subscriber, const char* user, const char* article,
                           bool reading, claps_snapshot* out) {
  if (!engine || !article) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    claps::snapshot s;
    if (auto ec = engine->engine->subscribe(subscriber, view(user), article, reading, s)) return to_code(ec);
    fill(out, s);
    return CLAPS_OK;
  });
}

int claps_engine_unsubscribe(claps_engine* engine, uint64_t subscriber, const char* article) {
  if (!engine || !article) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    engine->engine->unsubscribe(subscriber, article);
    return CLAPS_OK;
  });
}

int claps_engine_unsubscribe_all(claps_engine* engine, uint64_t subscriber) {
  if (!engine) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    engine->engine->unsubscribe_all(subscriber);
    return CLAPS_OK;
  });
}

int claps_engine_clap(claps_engine* engine, const char* user, const char* article, int32_t count,
                      const char* op_id, uint64_t cookie) {
  if (!engine || !user || !article) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    claps::clap_request r;
    r.user = user;
    r.article = article;
    r.count = count;
    r.op_id = view(op_id);
    r.cookie = cookie;
    return to_code(engine->engine->clap(r));
  });
}

int claps_engine_undo(claps_engine* engine, const char* user, const char* article, const char* op_id,
                      uint64_t cookie) {
  if (!engine || !user || !article) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    claps::undo_request r;
    r.user = user;
    r.article = article;
    r.op_id = view(op_id);
    r.cookie = cookie;
    return to_code(engine->engine->undo(r));
  });
}

int claps_engine_read(claps_engine* engine, const char* user, const char* article, claps_snapshot* out) {
  if (!engine || !article || !out) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    claps::snapshot s;
    if (auto ec = engine->engine->read(view(user), article, s)) return to_code(ec);
    fill(out, s);
    return CLAPS_OK;
  });
}

int claps_engine_advance(claps_engine* engine, int64_t now_ms) {
  if (!engine) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    engine->engine->advance(at(now_ms));
    return CLAPS_OK;
  });
}

int claps_engine_flush(claps_engine* engine, int64_t now_ms) {
  if (!engine) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    engine->engine->flush(at(now_ms));
    return CLAPS_OK;
  });
}

int64_t claps_engine_next_deadline(const claps_engine* engine) {
  if (!engine) return std::numeric_limits<int64_t>::max();
  return engine->engine->next_deadline().time_since_epoch().count();
}

bool claps_engine_delivering(const claps_engine* engine) { return engine && engine->engine->delivering(); }

bool claps_engine_idle(const claps_engine* engine) { return engine && engine->engine->idle(); }

int claps_engine_store_error(const claps_engine* engine) {
  return engine ? to_code(engine->engine->store_error()) : CLAPS_OK;
}

int claps_engine_stats_get(const claps_engine* engine, claps_engine_stats* out) {
  if (!engine || !out) return CLAPS_E_BAD_REQUEST;
  const claps::engine_stats s = engine->engine->stats();
  *out = claps_engine_stats{};
  out->ticks = s.ticks;
  out->commits = s.commits;
  out->commit_failures = s.commit_failures;
  out->claps_requested = s.claps_requested;
  out->claps_accepted = s.claps_accepted;
  out->claps_over_cap = s.claps_over_cap;
  out->undos = s.undos;
  out->replays = s.replays;
  out->refused_unavailable = s.refused_unavailable;
  out->refused_op_ids = s.refused_op_ids;
  out->refused_store_full = s.refused_store_full;
  out->updates = s.updates;
  out->deliveries = s.deliveries;
  out->viewer_changes_held = s.viewer_changes_held;
  out->ops_purged = s.ops_purged;
  out->pending_ops = s.pending_ops;
  out->subscribers = s.subscribers;
  out->subscriptions = s.subscriptions;
  out->articles_cached = s.articles_cached;
  out->deliveries_queued = s.deliveries_queued;
  out->tallies_cached = s.tallies_cached;
  return CLAPS_OK;
}

int claps_engine_close(claps_engine* engine, int64_t now_ms) {
  if (!engine) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    engine->engine->close(at(now_ms));
    return CLAPS_OK;
  });
}

bool claps_engine_closed(const claps_engine* engine) { return engine && engine->engine->closed(); }

void claps_engine_free(claps_engine* engine) { delete engine; }

}  // extern "C"
