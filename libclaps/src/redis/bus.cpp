// redis_bus: one channel per article, subscribed only while watched locally.
#include "connection.hpp"
#include "listeners.hpp"

#include <claps/error.hpp>
#include <claps/redis.hpp>

#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace claps {

namespace {
// SUBSCRIBE arguments per command when resubscribing everything.
constexpr std::size_t channels_per_command = 256;
} // namespace

struct redis_bus::impl {
  redis_client* publisher = nullptr;
  std::string prefix;
  detail::connection* conn = nullptr;  // deletes itself after close()
  std::unordered_set<std::string> watchers;  // articles subscribed
  detail::listener_list<redis_bus_callbacks> listeners;
  redis_bus_stats stats;
  bool subscribed = false;
  std::uint64_t publisher_listener = 0;

  std::string channel(std::string_view article) const {
    std::string c = prefix;
    c.append(article);
    return c;
  }

  void send(std::string_view verb, std::string_view article) {
    const std::string c = channel(article);
    const std::string_view channels[] = {c};
    if (!conn->subscribe_many(verb, channels)) {
      if (verb == "SUBSCRIBE") ++stats.subscribes; else ++stats.unsubscribes;
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
  self->publisher = &publisher;
  self->prefix = std::move(channel_prefix);
  if (callbacks.message || callbacks.resubscribed || callbacks.status)
    self->listeners.add(std::move(callbacks));
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
    std::string_view article;
    if (!detail::channel_article(self->prefix, channel, article)) return;
    // A message can still arrive between UNSUBSCRIBE and its confirmation.
    if (self->watchers.find(std::string(article)) == self->watchers.end()) return;
    ++self->stats.messages;
    self->listeners.notify([&](const redis_bus_callbacks& cb) {
      if (cb.message) cb.message(article, payload);
    });
  };
  // '!' is outside the article alphabet, so this never names an article.
  self->conn = new detail::connection(loop, publisher.options(), std::move(events),
                                      self->prefix + "!keepalive");
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
  impl_->publisher->remove_listener(impl_->publisher_listener);
  impl_->conn->close();
}

void redis_bus::watch(std::string_view article) {
  if (impl_->watchers.emplace(article).second && impl_->conn->ready()) impl_->send("SUBSCRIBE", article);
}

void redis_bus::unwatch(std::string_view article) {
  const auto it = impl_->watchers.find(std::string(article));
  if (it == impl_->watchers.end()) return;
  impl_->watchers.erase(it);
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
  const std::error_code ec =
      impl_->publisher->command({"PUBLISH", c, payload}, [](std::error_code, const redis_reply&) {});
  if (!ec) ++impl_->stats.published;
  return ec;
}

bool redis_bus::healthy() const noexcept { return impl_->conn->ready(); }

redis_bus_stats redis_bus::stats() const noexcept {
  redis_bus_stats s = impl_->stats;
  s.channels = impl_->watchers.size();
  return s;
}

} // namespace claps
