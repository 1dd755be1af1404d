#include "cluster.hpp"

#include "auth.hpp"
#include "data_dir_lock.hpp"

#ifdef CLAPS_HAVE_REDIS
#include <claps/redis.hpp>
#endif

#include <cstdio>
#include <cstdlib>
#include <optional>
#include <utility>

namespace claps::server {

#ifdef CLAPS_HAVE_REDIS

struct cluster_node::impl {
  uv_loop_t* loop;
  const logger& log;
  std::optional<redis_client> client;
  std::optional<redis_bus> bus;
  std::optional<redis_store> store;
  // Expires at shutdown(), so late Redis replies call nothing back.
  std::shared_ptr<bool> alive = std::make_shared<bool>(true);

  impl(uv_loop_t* l, const logger& lg) : loop(l), log(lg) {}
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
  } else if (!options.redis_cluster.empty()) {
    if (parse_redis_cluster(options.redis_cluster, ro)) {
      error = "--redis-cluster: expected HOST:PORT,HOST:PORT";
      return nullptr;
    }
  } else if (parse_redis_sentinels(options.sentinels, options.sentinel_master, ro)) {
    error = "--sentinel: expected HOST:PORT,HOST:PORT and a --sentinel-master name";
    return nullptr;
  }
  ro.connect_timeout = millis(options.redis_timeout_ms);
  ro.request_timeout = millis(options.redis_timeout_ms);
  // Passwords from files stay out of ps and of the URL.
  if (!options.redis_password_file.empty() &&
      !read_secret_line(options.redis_password_file, "redis-password-file", ro.password, error))
    return nullptr;
  if (!options.sentinel_password_file.empty() &&
      !read_secret_line(options.sentinel_password_file, "sentinel-password-file", ro.sentinel_password,
                        error))
    return nullptr;

  auto self = std::make_unique<impl>(loop, log);
  impl* p = self.get();
  redis_client_callbacks on_client;
  on_client.connected = [p](const redis_endpoint& master) {
    p->log.info("redis: connected to master " + master.host + ":" + std::to_string(master.port));
  };
  on_client.disconnected = [p](std::error_code ec) {
    p->log.warn("redis: disconnected (" + ec.message() +
                "); claps are acknowledged locally until it is back");
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
  so.op_id_window = std::chrono::seconds(options.op_id_window_s);
  so.pending_ttl = std::chrono::seconds(options.op_pending_s);
  redis_store_callbacks sc;
  sc.node_id_taken = [p, id = options.node_id, dir = options.data_dir,
                      owner = so.owner](std::string_view holder) {
    p->log.error("cluster: node id '" + id + "' belongs to another data directory (owner " +
                 std::string(holder) + "; " + dir + " is owner " + owner +
                 "): nothing is written to Redis and /readyz answers 503 " +
                 "until every node has its own --node-id");
  };
  sc.degraded = [p](bool degraded) {
    if (degraded) p->log.warn("cluster: degraded (Redis unreachable or behind): acks say durability local");
    else p->log.info("cluster: Redis holds everything again (acks say durability cluster)");
  };
  p->store.emplace(loop, local, *p->client, *p->bus, std::move(so), std::move(sc));

  if (!options.redis_url.empty())
    log.info("cluster: node '" + options.node_id + "' on Redis " + ro.address.host + ":" +
             std::to_string(ro.address.port));
  else if (!ro.cluster.empty())
    log.info("cluster: node '" + options.node_id + "' on Redis Cluster via " +
             std::to_string(ro.cluster.size()) + " seed node(s)");
  else
    log.info("cluster: node '" + options.node_id + "' on Redis master '" + options.sentinel_master +
             "' via " + std::to_string(ro.sentinels.size()) + " sentinel(s)");
  return std::unique_ptr<cluster_node>(new cluster_node(std::move(self)));
}

claps::store& cluster_node::store() noexcept { return *impl_->store; }

void cluster_node::before_read(std::string_view user, std::span<const std::string_view> articles,
                               std::function<void()> done) {
  impl& p = *impl_;
  if (!p.store || articles.empty() || p.store->loaded(user, articles)) {
    done();
    return;
  }
  auto then = [alive = std::weak_ptr<bool>(p.alive), done](std::error_code) {
    if (!alive.expired()) done();  // on an error the answer is partial, and says so
  };
  if (p.store->load(user, articles, std::move(then))) done();  // Redis unreachable
}

bool cluster_node::degraded() const noexcept { return impl_->store && impl_->store->degraded(); }

bool cluster_node::node_id_taken() const noexcept {
  return impl_->store && impl_->store->stats().node_id_taken;
}

namespace {

void metric(std::string& out, const char* name, const char* type, const char* help, double value) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "# HELP %s %s\n# TYPE %s %s\n%s %.17g\n", name, help, name, type, name,
                value);
  out += buf;
}

}  // namespace

std::string cluster_node::metrics_text() const {
  std::string out;
  const impl& p = *impl_;
  if (!p.store) return out;
  const auto s = p.store->stats();
  const auto c = p.client->stats();
  const auto b = p.bus->stats();
  auto d = [](auto v) { return static_cast<double>(v); };
  metric(out, "claps_cluster_degraded", "gauge",
         "1 while Redis lacks some of this node's claps (acks say local)", s.degraded ? 1 : 0);
  metric(out, "claps_cluster_node_id_taken", "gauge",
         "1 while another data directory holds this node's --node-id (nothing is written to Redis)",
         s.node_id_taken ? 1 : 0);
  metric(out, "claps_cluster_dirty_keys", "gauge", "Keys waiting to be written to Redis", d(s.dirty_keys));
  metric(out, "claps_cluster_recent_keys", "gauge",
         "Keys written within the re-assertion window (written again after a reconnect)", d(s.recent_keys));
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
         "Claps answered as replays of an op id another node had applied", d(s.cross_node_replays));
  metric(out, "claps_cluster_op_id_retries_total", "counter",
         "Ops whose op id another node was still applying (asked again next tick)", d(s.op_retries));
  metric(
      out, "claps_cluster_op_id_takeovers_total", "counter",
      "Ops applied after another node's pending decision passed its deadline uncommitted (its count undone)",
      d(s.op_takeovers));
  metric(out, "claps_cluster_arbitrations_total", "counter", "Ticks whose ops were decided in Redis",
         d(s.arbitrations));
  metric(
      out, "claps_cluster_arbitration_scripts_total", "counter",
      "Script calls those decisions took (one per tick on one master, up to max_articles_per_script articles each)",
      d(s.arbitration_scripts));
  metric(out, "claps_cluster_arbitration_failures_total", "counter",
         "Script calls that failed: their ops were decided on this node", d(s.arbitration_failures));
  metric(out, "claps_cluster_journal_walks_total", "counter",
         "Full re-assertions of this node's journal into Redis", d(s.journal_walks));
  metric(out, "claps_cluster_walking_journal", "gauge",
         "1 while a full re-assertion of the journal is due or running", s.walking_journal ? 1 : 0);
  metric(out, "claps_cluster_stale_writes_total", "counter",
         "Writes Redis ignored as older than what it held", d(s.stale_writes));
  metric(out, "claps_cluster_reasserts_total", "counter", "Keys re-written to Redis after a reconnect",
         d(s.reasserts));
  metric(out, "claps_cluster_forgotten_keys_total", "counter",
         "Dirty keys dropped past the bookkeeping bound", d(s.forgotten_keys));
  metric(out, "claps_cluster_published_total", "counter", "Messages published to other nodes",
         d(s.published));
  metric(out, "claps_cluster_remote_messages_total", "counter", "Messages received from other nodes",
         d(s.remote_messages));
  metric(out, "claps_redis_connected", "gauge",
         "1 while the command connection to the master is ready (Redis Cluster: to every master)",
         p.client->ready() ? 1 : 0);
  metric(out, "claps_redis_reconnects_total", "counter", "Times the client became ready", d(c.connects));
  metric(out, "claps_redis_disconnects_total", "counter", "Ready connections lost", d(c.disconnects));
  metric(out, "claps_redis_timeouts_total", "counter", "Connections dropped for a missed deadline",
         d(c.timeouts));
  metric(out, "claps_redis_requests_total", "counter", "Redis requests sent", d(c.requests));
  metric(out, "claps_redis_failed_requests_total", "counter", "Redis requests failed", d(c.failed_requests));
  metric(out, "claps_redis_not_master_total", "counter", "Servers found not (or no longer) a writable master",
         d(c.not_master));
  metric(out, "claps_redis_masters", "gauge", "Redis masters in use (Redis Cluster: masters of the slot map)",
         d(p.client->masters().size()));
  metric(out, "claps_redis_moved_total", "counter", "Redis Cluster MOVED redirects followed", d(c.moved));
  metric(out, "claps_redis_ask_total", "counter", "Redis Cluster ASK redirects followed", d(c.ask));
  metric(out, "claps_redis_tryagain_total", "counter", "Redis Cluster TRYAGAIN/CLUSTERDOWN replies retried",
         d(c.tryagain));
  metric(out, "claps_redis_slot_map_refreshes_total", "counter",
         "Redis Cluster slot maps read (CLUSTER SLOTS)", d(c.slot_map_refreshes));
  metric(out, "claps_bus_channels", "gauge", "Article channels subscribed", d(b.channels));
  metric(out, "claps_bus_healthy", "gauge", "1 while the subscription connection is subscribed",
         p.bus->healthy() ? 1 : 0);
  metric(out, "claps_bus_resubscribes_total", "counter",
         "Reconnects after which every channel was resubscribed", d(b.resubscribes));
  return out;
}

cluster_node::status cluster_node::current_status() const {
  status out;
  const impl& p = *impl_;
  if (!p.store || !p.client || !p.bus) return out;
  const auto s = p.store->stats();
  out.connected = p.client->ready();
  out.bus_healthy = p.bus->healthy();
  out.degraded = s.degraded;
  out.node_id_taken = s.node_id_taken;
  out.walking_journal = s.walking_journal;
  out.masters = p.client->masters().size();
  out.dirty_keys = s.dirty_keys;
  return out;
}

std::vector<cluster_node::known_node> cluster_node::nodes() const {
  std::vector<known_node> out;
  const impl& p = *impl_;
  if (!p.store) return out;
  for (redis_node_info& n : p.store->nodes())
    out.push_back(
        known_node{std::move(n.node_id), n.self, n.heartbeat_age_ms, n.live, n.total, n.viewers, n.articles});
  return out;
}

void cluster_node::shutdown() {
  impl& p = *impl_;
  p.alive.reset();
  // The engine keeps the store until it is destroyed (closing connections
  // still report their rooms to it); a closed store no longer touches the
  // client and bus, which go now so the loop can end.
  if (p.store) p.store->close();
  p.bus.reset();
  p.client.reset();
}

cluster_node::~cluster_node() = default;

#else  // no claps::redis in this build

struct cluster_node::impl {};

std::unique_ptr<cluster_node> cluster_node::create(uv_loop_t*, claps::store&, const server_options&,
                                                   const logger&, std::string& error) {
  error = "this clapsd was built without Redis support (CLAPS_REDIS=OFF)";
  return nullptr;
}
// create() never makes a cluster_node in this build, so nothing can call this;
// should that ever change, stop loudly instead of running undefined code.
claps::store& cluster_node::store() noexcept { std::abort(); }
void cluster_node::before_read(std::string_view, std::span<const std::string_view>,
                               std::function<void()> done) {
  done();
}
bool cluster_node::degraded() const noexcept { return false; }
bool cluster_node::node_id_taken() const noexcept { return false; }
std::string cluster_node::metrics_text() const { return {}; }
cluster_node::status cluster_node::current_status() const { return {}; }
std::vector<cluster_node::known_node> cluster_node::nodes() const { return {}; }
void cluster_node::shutdown() {}
cluster_node::~cluster_node() = default;

#endif

cluster_node::cluster_node(std::unique_ptr<impl> impl) : impl_(std::move(impl)) {}

}  // namespace claps::server
