#include "cluster.hpp"

#include "data_dir_lock.hpp"

#ifdef CLAPS_HAVE_REDIS
#include <claps/redis.hpp>
#endif

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <deque>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace claps::server {

#ifdef CLAPS_HAVE_REDIS

struct cluster_node::impl {
  uv_loop_t* loop;
  const logger& log;
  std::optional<redis_client> client;
  std::optional<redis_bus> bus;
  std::optional<redis_store> store;
  engine* eng = nullptr;
  std::function<bool()> in_engine_callback;
  // Which articles each subscriber watches, so a closing connection unwatches
  // exactly what it watched and the store's counts stay balanced.
  std::unordered_map<subscriber_id, std::unordered_set<std::string>> rooms;
  std::unordered_map<std::string, std::size_t> local_subscribers;
  // Articles whose last local subscriber left: the engine emits nothing for
  // an empty room, so this node's viewer count is zeroed here, after the loop
  // iteration (the engine's own unsubscribe may still be deferred till then).
  std::unordered_set<std::string> emptied;
  // set_remote() that arrived while the engine was inside a callback.
  struct remote_part {
    std::int64_t total;
    std::uint32_t viewers;
  };
  std::unordered_map<std::string, remote_part> deferred;
  uv_check_t drain{};
  bool drain_open = false;

  std::string node_id;
  std::uint64_t cross_node_replays = 0;
  // Claps and undos on their way through Redis (see before_op): one at a
  // time per (user, article), so each reservation starts from what the
  // previous op of that pair left in the engine.
  struct waiting_op {
    std::string user, article, op_id;
    bool undo = false;
    std::int32_t count = 0;
    std::function<void()> apply;
    std::function<void(const prior_op&)> replay;
    std::function<void(std::error_code)> refuse;
    int claim_attempts = 0;
  };
  std::uint64_t next_lookup = 1;
  std::unordered_map<std::uint64_t, waiting_op> lookups;
  std::unordered_map<std::string, std::deque<std::uint64_t>> chains;  // user|article -> ops, first in progress
  // Ops whose op id another node claimed but has not recorded yet: asked
  // again every claim_retry_ms, up to claim_attempts_max times.
  std::vector<std::uint64_t> claim_waiters;
  uv_timer_t claim_retry{};
  static constexpr std::uint64_t claim_retry_ms = 50;
  static constexpr int claim_attempts_max = 60;
  // Expires at shutdown(), so late Redis replies call nothing back.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  impl(uv_loop_t* l, const logger& lg) : loop(l), log(lg) {}

  void remote_changed(std::string_view article, std::int64_t total, std::uint32_t viewers) {
    if (eng == nullptr) return;
    if (in_engine_callback && in_engine_callback()) {
      deferred.insert_or_assign(std::string(article), remote_part{total, viewers});
      return;
    }
    eng->set_remote(article, total, viewers);
  }

  void watch(std::string_view article) {
    ++local_subscribers[std::string(article)];
    store->watch(article);
  }
  void unwatch(const std::string& article) {
    store->unwatch(article);
    auto it = local_subscribers.find(article);
    if (it == local_subscribers.end()) return;
    if (--it->second == 0) {
      local_subscribers.erase(it);
      emptied.insert(article);
    }
  }

  // Reads the other nodes' parts of `article` (and `user`'s claps through
  // them, which the cap and undo then count) and hands them to the engine
  // unless the article is watched: then the bus keeps them current and they
  // may be newer than this read.
  void fetch(std::string_view article, std::string_view user, std::function<void()> done) {
    store->fetch_remote(article, user,
                        [this, alive = std::weak_ptr<bool>(alive), article = std::string(article),
                         done = std::move(done)](std::error_code ec, const redis_store::remote_parts& parts) {
                          if (alive.expired()) return;
                          if (!ec && eng != nullptr && local_subscribers.count(article) == 0) {
                            snapshot loaded;  // set_remote() ignores articles the engine does not hold
                            if (!eng->read(article, {}, loaded)) eng->set_remote(article, parts.total, parts.viewers);
                          }
                          done();
                        });
  }

  bool arbitrates() const { return store && client->ready() && !store->stats().node_id_taken; }

  static std::string chain_key(const waiting_op& op) { return op.user + '|' + op.article; }

  void start(std::uint64_t id) {
    const auto it = lookups.find(id);
    if (it == lookups.end()) return;
    if (it->second.op_id.empty()) prepare(id);
    else claim(id);
  }

  // Op ids: claimed in Redis before the op is applied, so two nodes never
  // both apply one.
  void claim(std::uint64_t id) {
    waiting_op& op = lookups.at(id);
    ++op.claim_attempts;
    store->claim_op(op.user, op.op_id, [this, id, alive = std::weak_ptr<bool>(alive)](
                                           std::error_code ec, const redis_store::op_claim& c) {
      if (alive.expired() || lookups.count(id) == 0) return;
      using holder = redis_store::op_claim::holder;
      if (ec || c.by == holder::claimed_now) {
        prepare(id);  // on an error the step-1 rules of docs/design.md apply
      } else if (c.by == holder::this_node) {
        // A retry of this node's own op: the engine replays it, so no room is reserved again.
        finish(id, [](waiting_op& op) { op.apply(); });
      } else if (c.by == holder::other_node_done) {
        ++cross_node_replays;
        prior_op prior{c.article, c.accepted, c.mine};
        finish(id, [&](waiting_op& op) { op.replay(prior); });
      } else if (lookups.at(id).claim_attempts >= claim_attempts_max) {
        finish(id, [](waiting_op& op) {
          op.refuse(make_error_code(errc::unavailable));  // the client retries with the same op id
        });
      } else {
        claim_waiters.push_back(id);
        if (claim_waiters.size() == 1) uv_timer_start(&claim_retry, on_claim_retry, claim_retry_ms, 0);
      }
    });
  }
  static void on_claim_retry(uv_timer_t* t) {
    auto* p = static_cast<impl*>(t->data);
    auto ids = std::move(p->claim_waiters);
    p->claim_waiters.clear();
    for (const auto id : ids)
      if (p->lookups.count(id) != 0) {
        if (p->arbitrates()) p->claim(id);
        else p->finish(id, [](waiting_op& op) { op.apply(); });
      }
  }

  // The cap: an undo drops this node's reservation and reads the user's
  // claps through other nodes fresh; a clap reserves room in Redis first.
  void prepare(std::uint64_t id) {
    waiting_op& op = lookups.at(id);
    if (!arbitrates()) {
      finish(id, [](waiting_op& o) { o.apply(); });
      return;
    }
    auto then_apply = [this, id] { finish(id, [](waiting_op& o) { o.apply(); }); };
    if (op.undo) {
      store->release_claps(op.user, op.article);
      fetch(op.article, op.user, std::move(then_apply));
      return;
    }
    auto reserve = [this, id, alive = std::weak_ptr<bool>(alive)] {
      if (alive.expired() || lookups.count(id) == 0) return;
      waiting_op& o = lookups.at(id);
      std::int32_t own = 0;
      if (eng == nullptr || !arbitrates() || eng->own_claps(o.article, o.user, own)) {
        finish(id, [](waiting_op& w) { w.apply(); });  // the engine reports its own error
        return;
      }
      store->reserve_claps(o.user, o.article, own, o.count,
                           [this, id, alive](std::error_code, std::int32_t) {
                             if (alive.expired()) return;
                             finish(id, [](waiting_op& w) { w.apply(); });
                           });
    };
    if (local_subscribers.count(op.article) == 0) fetch(op.article, op.user, std::move(reserve));
    else reserve();
  }

  // Ends op `id` with `outcome`, then starts the next op of its pair.
  template <class Outcome> void finish(std::uint64_t id, Outcome outcome) {
    const auto it = lookups.find(id);
    if (it == lookups.end()) return;
    waiting_op op = std::move(it->second);
    lookups.erase(it);
    const std::string key = chain_key(op);
    outcome(op);
    const auto chain = chains.find(key);
    if (chain == chains.end()) return;
    if (!chain->second.empty() && chain->second.front() == id) chain->second.pop_front();
    if (chain->second.empty()) {
      chains.erase(chain);
      return;
    }
    start(chain->second.front());
  }

  void run_deferred() {
    if (!emptied.empty() && store && !(in_engine_callback && in_engine_callback())) {
      for (const std::string& article : emptied)
        if (local_subscribers.count(article) == 0) store->set_local_viewers(article, 0);
      emptied.clear();
    }
    if (deferred.empty() || eng == nullptr || (in_engine_callback && in_engine_callback())) return;
    auto parts = std::move(deferred);
    deferred.clear();
    for (const auto& [article, part] : parts) eng->set_remote(article, part.total, part.viewers);
  }
};

std::unique_ptr<cluster_node> cluster_node::create(uv_loop_t* loop, claps::store& local,
                                                   const server_options& options, const logger& log,
                                                   std::string& error) {
  redis_options ro;
  if (!options.redis_url.empty()) {
    if (parse_redis_url(options.redis_url, ro)) {
      error = "--redis: expected redis://[[user]:password@]HOST:PORT[/db]";
      return nullptr;
    }
  } else if (parse_redis_sentinels(options.sentinels, options.sentinel_master, ro)) {
    error = "--sentinel: expected HOST:PORT,HOST:PORT and a --sentinel-master name";
    return nullptr;
  }
  ro.connect_timeout = millis(options.redis_timeout_ms);
  ro.request_timeout = millis(options.redis_timeout_ms);

  auto self = std::make_unique<impl>(loop, log);
  impl* p = self.get();
  p->node_id = options.node_id;
  redis_client_callbacks on_client;
  on_client.connected = [p](const redis_endpoint& master) {
    p->log.info("redis: connected to master " + master.host + ":" + std::to_string(master.port));
  };
  on_client.disconnected = [p](std::error_code ec) {
    p->log.warn("redis: disconnected (" + ec.message() + "); claps are acknowledged locally until it is back");
  };
  p->client.emplace(loop, ro, std::move(on_client));
  p->bus.emplace(loop, *p->client);

  redis_store_options so;
  so.node_id = options.node_id;
  // Binds the node id to this data directory: this node's claps live in its
  // LMDB, so another directory writing as the same node would overwrite them.
  so.owner = data_dir_lock::owner_id(options.data_dir, error);
  if (so.owner.empty()) return nullptr;
  so.clap_cap = options.clap_cap;
  redis_store_callbacks sc;
  sc.remote_changed = [p](std::string_view article, std::int64_t total, std::uint32_t viewers) {
    p->remote_changed(article, total, viewers);
  };
  sc.node_id_taken = [p, id = options.node_id, dir = options.data_dir, owner = so.owner](std::string_view holder) {
    p->log.error("cluster: node id '" + id + "' belongs to another data directory (owner " + std::string(holder) +
                 "; " + dir + " is owner " + owner + "): nothing is written to Redis and /readyz answers 503 " +
                 "until every node has its own --node-id");
  };
  sc.degraded = [p](bool degraded) {
    if (degraded) p->log.warn("cluster: degraded (Redis unreachable or behind): acks say durability local");
    else p->log.info("cluster: Redis holds everything again (acks say durability cluster)");
  };
  p->store.emplace(loop, local, *p->client, *p->bus, std::move(so), std::move(sc));

  uv_check_init(loop, &p->drain);
  p->drain.data = p;
  uv_check_start(&p->drain, [](uv_check_t* h) { static_cast<impl*>(h->data)->run_deferred(); });
  uv_timer_init(loop, &p->claim_retry);
  p->claim_retry.data = p;
  p->drain_open = true;
  if (!options.redis_url.empty())
    log.info("cluster: node '" + options.node_id + "' on Redis " + ro.address.host + ":" +
             std::to_string(ro.address.port));
  else
    log.info("cluster: node '" + options.node_id + "' on Redis master '" + options.sentinel_master +
             "' via " + std::to_string(ro.sentinels.size()) + " sentinel(s)");
  return std::unique_ptr<cluster_node>(new cluster_node(std::move(self)));
}

claps::store& cluster_node::store() noexcept { return *impl_->store; }

void cluster_node::extend(engine_callbacks& callbacks) {
  impl* p = impl_.get();
  auto previous = std::move(callbacks.tick_updates);
  callbacks.tick_updates = [p, previous = std::move(previous)](std::span<const article_update> updates) {
    // Local viewers only: update.viewers already includes the other nodes.
    if (p->store)
      for (const article_update& u : updates) p->store->set_local_viewers(u.article, u.local_viewers);
    if (previous) previous(updates);
  };
}

void cluster_node::attach(engine& e, std::function<bool()> in_engine_callback) {
  impl_->eng = &e;
  impl_->in_engine_callback = std::move(in_engine_callback);
}

void cluster_node::subscribed(subscriber_id sub, std::string_view article, std::string_view user) {
  impl& p = *impl_;
  if (!p.store) return;
  if (p.rooms[sub].emplace(article).second) p.watch(article);
  if (!user.empty()) p.store->prefetch_tally(user, article);
}

void cluster_node::unsubscribed(subscriber_id sub, std::string_view article) {
  impl& p = *impl_;
  if (!p.store) return;
  auto it = p.rooms.find(sub);
  if (it == p.rooms.end()) return;
  const std::string key(article);
  if (it->second.erase(key) != 0) p.unwatch(key);
  if (it->second.empty()) p.rooms.erase(it);
}

void cluster_node::released(subscriber_id sub) {
  impl& p = *impl_;
  if (!p.store) return;
  auto it = p.rooms.find(sub);
  if (it == p.rooms.end()) return;
  for (const std::string& article : it->second) p.unwatch(article);
  p.rooms.erase(it);
}

void cluster_node::before_read(std::string_view article, std::string_view user, std::function<void()> done) {
  impl& p = *impl_;
  if (!p.store || !p.client->ready() || p.local_subscribers.count(std::string(article)) != 0) {
    done();
    return;
  }
  p.fetch(article, user, std::move(done));
}

void cluster_node::before_op(std::string_view user, std::string_view article, std::string_view op_id, bool undo,
                             std::int32_t count, std::function<void()> apply,
                             std::function<void(const prior_op&)> replay,
                             std::function<void(std::error_code)> refuse) {
  impl& p = *impl_;
  if (!p.arbitrates()) {
    apply();  // Redis unreachable: the step-1 rules of docs/design.md
    return;
  }
  const std::uint64_t id = p.next_lookup++;
  impl::waiting_op op{std::string(user), std::string(article), std::string(op_id), undo, count,
                      std::move(apply), std::move(replay), std::move(refuse)};
  auto& chain = p.chains[impl::chain_key(op)];
  p.lookups.emplace(id, std::move(op));
  chain.push_back(id);
  if (chain.size() == 1) p.start(id);
}

void cluster_node::settle_lookups() {
  impl& p = *impl_;
  auto waiting = std::move(p.lookups);
  p.lookups.clear();
  p.chains.clear();
  p.claim_waiters.clear();
  std::vector<std::pair<std::uint64_t, impl::waiting_op*>> in_order;
  for (auto& [id, op] : waiting) in_order.emplace_back(id, &op);
  std::sort(in_order.begin(), in_order.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (auto& [id, op] : in_order) op->apply();
}

bool cluster_node::degraded() const noexcept { return impl_->store && impl_->store->degraded(); }

bool cluster_node::node_id_taken() const noexcept { return impl_->store && impl_->store->stats().node_id_taken; }

namespace {

void metric(std::string& out, const char* name, const char* type, const char* help, double value) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name,
                value);
  out += buf;
}

} // namespace

std::string cluster_node::metrics_text() const {
  std::string out;
  const impl& p = *impl_;
  if (!p.store) return out;
  const auto s = p.store->stats();
  const auto c = p.client->stats();
  const auto b = p.bus->stats();
  auto d = [](auto v) { return static_cast<double>(v); };
  metric(out, "claps_cluster_degraded", "gauge", "1 while Redis lacks some of this node's claps (acks say local)",
         s.degraded ? 1 : 0);
  metric(out, "claps_cluster_node_id_taken", "gauge",
         "1 while another data directory holds this node's --node-id (nothing is written to Redis)",
         s.node_id_taken ? 1 : 0);
  metric(out, "claps_cluster_dirty_keys", "gauge", "Keys waiting to be written to Redis", d(s.dirty_keys));
  metric(out, "claps_cluster_commits_total", "counter", "Store commits", d(s.commits));
  metric(out, "claps_cluster_cluster_commits_total", "counter", "Commits acknowledged as durability cluster",
         d(s.cluster_commits));
  metric(out, "claps_cluster_local_commits_total", "counter", "Commits acknowledged as durability local",
         d(s.local_commits));
  metric(out, "claps_cluster_cap_overshoot_total", "counter",
         "Claps over the per-user cap across nodes (same user on two nodes during an outage)",
         d(s.cap_overshoot));
  metric(out, "claps_cluster_op_id_conflicts_total", "counter", "Op ids another node had already used",
         d(s.remote_op_conflicts));
  metric(out, "claps_cluster_op_id_replays_total", "counter",
         "Claps answered as replays of an op id another node had applied", d(p.cross_node_replays));
  metric(out, "claps_cluster_stale_writes_total", "counter", "Writes Redis ignored as older than what it held",
         d(s.stale_writes));
  metric(out, "claps_cluster_reasserts_total", "counter", "Keys re-written to Redis after a reconnect",
         d(s.reasserts));
  metric(out, "claps_cluster_forgotten_keys_total", "counter", "Dirty keys dropped past the bookkeeping bound",
         d(s.forgotten_keys));
  metric(out, "claps_cluster_published_total", "counter", "Messages published to other nodes", d(s.published));
  metric(out, "claps_cluster_remote_messages_total", "counter", "Messages received from other nodes",
         d(s.remote_messages));
  metric(out, "claps_redis_connected", "gauge", "1 while the command connection to the master is ready",
         p.client->ready() ? 1 : 0);
  metric(out, "claps_redis_reconnects_total", "counter", "Times the client became ready", d(c.connects));
  metric(out, "claps_redis_disconnects_total", "counter", "Ready connections lost", d(c.disconnects));
  metric(out, "claps_redis_timeouts_total", "counter", "Connections dropped for a missed deadline", d(c.timeouts));
  metric(out, "claps_redis_requests_total", "counter", "Redis requests sent", d(c.requests));
  metric(out, "claps_redis_failed_requests_total", "counter", "Redis requests failed", d(c.failed_requests));
  metric(out, "claps_redis_not_master_total", "counter", "Servers found not (or no longer) a writable master",
         d(c.not_master));
  metric(out, "claps_bus_channels", "gauge", "Article channels subscribed", d(b.channels));
  metric(out, "claps_bus_healthy", "gauge", "1 while the subscription connection is subscribed",
         p.bus->healthy() ? 1 : 0);
  metric(out, "claps_bus_resubscribes_total", "counter", "Reconnects after which every channel was resubscribed",
         d(b.resubscribes));
  return out;
}

void cluster_node::shutdown() {
  impl& p = *impl_;
  p.eng = nullptr;
  p.alive.reset();
  p.lookups.clear();
  p.chains.clear();
  p.claim_waiters.clear();
  p.deferred.clear();
  p.rooms.clear();
  p.emptied.clear();
  p.store.reset();
  p.bus.reset();
  p.client.reset();
  if (p.drain_open) {
    p.drain_open = false;
    uv_check_stop(&p.drain);
    uv_close(reinterpret_cast<uv_handle_t*>(&p.drain), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&p.claim_retry), nullptr);
  }
}

cluster_node::~cluster_node() {
  // shutdown() must have run (the loop has to close the handles); if the
  // process is exiting on an error path, leak rather than free live handles.
  if (impl_ && impl_->drain_open) (void)impl_.release();
}

#else // no claps::redis in this build

struct cluster_node::impl {};

std::unique_ptr<cluster_node> cluster_node::create(uv_loop_t*, claps::store&, const server_options&,
                                                   const logger&, std::string& error) {
  error = "this clapsd was built without Redis support (CLAPS_REDIS=OFF)";
  return nullptr;
}
claps::store& cluster_node::store() noexcept { __builtin_unreachable(); }
void cluster_node::extend(engine_callbacks&) {}
void cluster_node::attach(engine&, std::function<bool()>) {}
void cluster_node::subscribed(subscriber_id, std::string_view, std::string_view) {}
void cluster_node::unsubscribed(subscriber_id, std::string_view) {}
void cluster_node::released(subscriber_id) {}
void cluster_node::before_op(std::string_view, std::string_view, std::string_view, bool, std::int32_t,
                             std::function<void()> apply, std::function<void(const prior_op&)>,
                             std::function<void(std::error_code)>) {
  apply();
}
void cluster_node::before_read(std::string_view, std::string_view, std::function<void()> done) { done(); }
void cluster_node::settle_lookups() {}
bool cluster_node::degraded() const noexcept { return false; }
bool cluster_node::node_id_taken() const noexcept { return false; }
std::string cluster_node::metrics_text() const { return {}; }
void cluster_node::shutdown() {}
cluster_node::~cluster_node() = default;

#endif

cluster_node::cluster_node(std::unique_ptr<impl> impl) : impl_(std::move(impl)) {}

} // namespace claps::server
