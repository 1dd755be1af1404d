// redis_bus: one channel per article, subscribed only while watched locally.
// One master: SUBSCRIBE on one hiredis connection. Redis Cluster: sharded
// pub/sub, SSUBSCRIBE on one shard_subscriber per master, each channel on the
// master owning its slot; SPUBLISH through the client's routing.
#include "cluster_router.hpp"
#include "connection.hpp"
#include "listeners.hpp"
#include "shard_subscriber.hpp"

#include <claps/error.hpp>
#include <claps/redis.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace claps {

namespace {
// SUBSCRIBE arguments per command when resubscribing everything.
constexpr std::size_t channels_per_command = 256;
}  // namespace

struct redis_bus::impl {
  uv_loop_t* loop = nullptr;
  redis_client* publisher = nullptr;
  std::string prefix;
  detail::connection* conn = nullptr;  // deletes itself after close(); null in cluster mode
  // Cluster mode: the client's router and a subscriber per master ("host:port").
  detail::cluster_router* router = nullptr;
  std::uint64_t router_listener = 0;
  std::map<std::string, std::unique_ptr<detail::shard_subscriber>> shards;
  bool resync_due = false;  // a channel was dropped or moved: tell listeners once all is subscribed again
  bool shards_healthy = false;
  std::unordered_set<std::string> watchers;  // articles subscribed
  detail::listener_list<redis_bus_callbacks> listeners;
  redis_bus_stats stats;
  bool subscribed = false;
  std::uint64_t publisher_listener = 0;

  std::string channel(std::string_view article) const {
    std::string c = prefix;
    c.push_back('{');
    c.append(article);
    c.push_back('}');
    return c;
  }

  // ---- cluster mode ----

  static std::string endpoint_key(const redis_endpoint& e) { return e.host + ":" + std::to_string(e.port); }

  bool all_shards_ready() const {
    if (router == nullptr || !router->ready() || shards.empty()) return false;
    for (const auto& [key, s] : shards)
      if (!s->ready()) return false;
    return true;
  }

  // Puts every watched channel on the subscriber of the master that owns its
  // slot now, and keeps one subscriber per master of the map.
  void reconcile() {
    bool moved = false;
    for (const redis_endpoint& m : router->masters()) {
      const std::string key = endpoint_key(m);
      if (shards.count(key) == 0) shards.emplace(key, make_shard(m));
    }
    for (auto& [key, s] : shards) {
      std::vector<std::string> leave;
      for (const std::string& c : s->channels()) {
        std::string_view article;
        const redis_endpoint* owner = router->master_of(redis_key_slot(c));
        if (!detail::channel_article(prefix, c, article) || watchers.count(std::string(article)) == 0 ||
            owner == nullptr || endpoint_key(*owner) != key)
          leave.push_back(c);
      }
      for (const std::string& c : leave) s->remove(c);
      moved = moved || !leave.empty();
    }
    for (const std::string& article : watchers) moved = place(article) || moved;
    for (auto it = shards.begin(); it != shards.end();) {
      const auto masters = router->masters();
      const bool master = std::any_of(masters.begin(), masters.end(),
                                      [&](const redis_endpoint& m) { return endpoint_key(m) == it->first; });
      if (!master) {
        it = shards.erase(it);
        moved = true;
      } else {
        ++it;
      }
    }
    if (moved) resync_due = true;
    report();
  }

  // True when the channel was not held where it belongs.
  bool place(const std::string& article) {
    const std::string c = channel(article);
    const redis_endpoint* owner = router->master_of(redis_key_slot(c));
    if (owner == nullptr) return false;
    auto it = shards.find(endpoint_key(*owner));
    if (it == shards.end()) it = shards.emplace(endpoint_key(*owner), make_shard(*owner)).first;
    if (it->second->holds(c)) return false;
    it->second->add(c);
    return true;
  }

  // Status and resync as the shards' health changes.
  void report() {
    const bool healthy = all_shards_ready();
    if (healthy && (!shards_healthy || resync_due)) {
      if (subscribed) ++stats.resubscribes;
      subscribed = true;
      shards_healthy = true;
      resync_due = false;
      listeners.notify([](const redis_bus_callbacks& cb) {
        if (cb.status) cb.status({});
        if (cb.resubscribed) cb.resubscribed();
      });
    } else if (!healthy && shards_healthy) {
      shards_healthy = false;
      resync_due = true;
      listeners.notify([](const redis_bus_callbacks& cb) {
        if (cb.status) cb.status(make_error_code(errc::store_disconnected));
      });
    }
  }

  std::unique_ptr<detail::shard_subscriber> make_shard(const redis_endpoint& master) {
    detail::shard_subscriber::events e;
    e.ready = [this] { report(); };
    e.lost = [this](std::error_code) {
      router->refresh_soon();
      report();
    };
    e.message = [this](std::string_view c, std::string_view payload) { deliver(c, payload); };
    e.dropped = [this](std::string_view) {
      // The slot moved: find where it lives now, then subscribe there.
      resync_due = true;
      router->refresh_soon();
    };
    return std::make_unique<detail::shard_subscriber>(loop, master, publisher->options(), std::move(e));
  }

  void deliver(std::string_view channel, std::string_view payload) {
    std::string_view article;
    if (!detail::channel_article(prefix, channel, article)) return;
    // A message can still arrive between UNSUBSCRIBE and its confirmation.
    if (watchers.find(std::string(article)) == watchers.end()) return;
    ++stats.messages;
    listeners.notify([&](const redis_bus_callbacks& cb) {
      if (cb.message) cb.message(article, payload);
    });
  }

  // ---- one master ----

  void send(std::string_view verb, std::string_view article) {
    const std::string c = channel(article);
    const std::string_view channels[] = {c};
    if (!conn->subscribe_many(verb, channels)) {
      if (verb == "SUBSCRIBE") ++stats.subscribes;
      else ++stats.unsubscribes;
    }
  }

  void resubscribe_all() {
    std::vector<std::string> names;
    names.reserve(watchers.size());
    for (const auto& article : watchers) names.push_back(channel(article));
    for (std::size_t i = 0; i < names.size(); i += channels_per_command) {
      std::vector<std::string_view> chunk;
      for (std::size_t j = i; j < names.size() && j < i + channels_per_command; ++j)
        chunk.push_back(names[j]);
      if (!conn->subscribe_many("SUBSCRIBE", chunk)) ++stats.subscribes;
    }
  }
};

redis_bus::redis_bus(uv_loop_t* loop, redis_client& publisher, redis_bus_callbacks callbacks,
                     std::string channel_prefix)
    : impl_(std::make_unique<impl>()) {
  impl* self = impl_.get();
  self->loop = loop;
  self->publisher = &publisher;
  self->prefix = std::move(channel_prefix);
  if (callbacks.message || callbacks.resubscribed || callbacks.status)
    self->listeners.add(std::move(callbacks));
  if (detail::cluster_router* router = detail::cluster_router_of(publisher)) {
    self->router = router;
    detail::cluster_router::events e;
    e.ready = [self] { self->reconcile(); };
    e.lost = [self](std::error_code) { self->report(); };
    e.map_changed = [self] { self->reconcile(); };
    e.map_checked = [self] {
      if (self->resync_due) self->reconcile();  // a dropped channel, resubscribed where its slot is now
    };
    self->router_listener = router->add_listener(std::move(e));
    if (router->ready()) self->reconcile();
    return;
  }
  detail::connection_events events;
  events.ready = [self] {
    self->resubscribe_all();
    if (self->subscribed) ++self->stats.resubscribes;
    self->subscribed = true;
    self->listeners.notify([](const redis_bus_callbacks& cb) {
      if (cb.status) cb.status({});
      if (cb.resubscribed) cb.resubscribed();
    });
  };
  events.lost = [self](std::error_code ec) {
    self->listeners.notify([&](const redis_bus_callbacks& cb) {
      if (cb.status) cb.status(ec);
    });
  };
  events.message = [self](std::string_view channel, std::string_view payload) {
    self->deliver(channel, payload);
  };
  // '!' is outside the article alphabet, so this never names an article.
  self->conn =
      new detail::connection(loop, publisher.options(), std::move(events), self->prefix + "!keepalive");
  // Follow the command client: once it is on a new master, subscriptions on
  // the old one would only hear the old master's publishers.
  redis_client_callbacks follow;
  follow.connected = [self](const redis_endpoint& master) {
    const redis_endpoint& mine = self->conn->master();
    if (self->conn->ready() && (mine.host != master.host || mine.port != master.port))
      self->conn->reconnect();
  };
  self->publisher_listener = publisher.add_listener(std::move(follow));
}

redis_bus::~redis_bus() {
  if (impl_->router != nullptr) {
    impl_->router->remove_listener(impl_->router_listener);
    return;  // the shards close with impl_
  }
  impl_->publisher->remove_listener(impl_->publisher_listener);
  impl_->conn->close();
}

void redis_bus::watch(std::string_view article) {
  const auto [it, fresh] = impl_->watchers.emplace(article);
  if (!fresh) return;
  if (impl_->router != nullptr) {
    impl_->place(*it);
    return;
  }
  if (impl_->conn->ready()) impl_->send("SUBSCRIBE", article);
}

void redis_bus::unwatch(std::string_view article) {
  const auto it = impl_->watchers.find(std::string(article));
  if (it == impl_->watchers.end()) return;
  impl_->watchers.erase(it);
  if (impl_->router != nullptr) {
    const std::string c = impl_->channel(article);
    for (auto& [key, s] : impl_->shards) s->remove(c);
    return;
  }
  if (impl_->conn->ready()) impl_->send("UNSUBSCRIBE", article);
}

bool redis_bus::watching(std::string_view article) const {
  return impl_->watchers.count(std::string(article)) != 0;
}

std::uint64_t redis_bus::add_listener(redis_bus_callbacks callbacks) {
  return impl_->listeners.add(std::move(callbacks));
}

void redis_bus::remove_listener(std::uint64_t id) { impl_->listeners.remove(id); }

std::error_code redis_bus::publish(std::string_view article, std::string_view payload) {
  const std::string c = impl_->channel(article);
  // SPUBLISH is routed by its channel's slot to the master that owns it.
  const std::error_code ec =
      impl_->publisher->command({impl_->router != nullptr ? "SPUBLISH" : "PUBLISH", c, payload},
                                [](std::error_code, const redis_reply&) {});
  if (!ec) ++impl_->stats.published;
  return ec;
}

bool redis_bus::healthy() const noexcept {
  return impl_->router != nullptr ? impl_->all_shards_ready() : impl_->conn->ready();
}

redis_bus_stats redis_bus::stats() const noexcept {
  redis_bus_stats s = impl_->stats;
  for (const auto& [key, shard] : impl_->shards) {
    s.subscribes += shard->subscribe_commands;
    s.unsubscribes += shard->unsubscribe_commands;
  }
  s.channels = impl_->watchers.size();
  return s;
}

}  // namespace claps
