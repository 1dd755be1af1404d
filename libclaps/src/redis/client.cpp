// redis_client: the command connection (or, on Redis Cluster, the router
// and its connection per master), plus EVALSHA with EVAL fallback.
#include "cluster_router.hpp"
#include "connection.hpp"
#include "listeners.hpp"

#include <claps/error.hpp>
#include <claps/redis.hpp>

#include <hiredis/hiredis.h>

#include <memory>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

namespace claps {

struct redis_client::impl {
  detail::connection* conn = nullptr;              // deletes itself after close(); null in cluster mode
  std::shared_ptr<detail::cluster_router> router;  // cluster mode only
  redis_options options;
  redis_endpoint no_master;
  // Sentinel mode: one subscriber per sentinel on +switch-master, so a
  // failover that leaves the old master alive (it is demoted, not killed)
  // moves us at once instead of at our next write's READONLY.
  std::vector<detail::connection*> watchers;
  std::uint64_t switch_announcements = 0;
  detail::listener_list<redis_client_callbacks> listeners;
  std::unordered_map<std::string, std::string> shas;  // script source -> SHA1 from SCRIPT LOAD
  std::unordered_set<std::string> loading;            // SCRIPT LOAD sent, no answer yet

  // `slot` is the cluster slot to route to (ignored with one master).
  std::error_code send(std::uint16_t slot, std::span<const std::string_view> args, redis_reply_handler done) {
    auto wrap = [done = std::move(done)](std::error_code ec, redisReply* r) {
      done(ec, r != nullptr ? detail::convert(*r) : redis_reply{});
    };
    if (router) return router->send(slot, args, std::move(wrap));
    return conn->send(args, std::move(wrap));
  }
  bool ready() const { return router ? router->ready() : conn->ready(); }
};

namespace detail {
cluster_router* cluster_router_of(const redis_client& client) noexcept { return client.impl_->router.get(); }
}  // namespace detail

redis_client::redis_client(uv_loop_t* loop, redis_options options, redis_client_callbacks callbacks)
    : impl_(std::make_unique<impl>()) {
  impl* self = impl_.get();
  self->options = options;
  if (callbacks.connected || callbacks.disconnected) self->listeners.add(std::move(callbacks));
  if (!options.cluster.empty()) {
    self->router = detail::cluster_router::create(loop, std::move(options));
    detail::cluster_router::events e;
    e.ready = [self] {
      const redis_endpoint master = *self->router->master_of(0);
      self->listeners.notify([&](const redis_client_callbacks& cb) {
        if (cb.connected) cb.connected(master);
      });
    };
    e.lost = [self](std::error_code ec) {
      self->listeners.notify([&](const redis_client_callbacks& cb) {
        if (cb.disconnected) cb.disconnected(ec);
      });
    };
    self->router->add_listener(std::move(e));
    return;
  }
  detail::connection_events events;
  events.ready = [self] {
    const redis_endpoint master = self->conn->master();
    self->listeners.notify([&](const redis_client_callbacks& cb) {
      if (cb.connected) cb.connected(master);
    });
  };
  events.lost = [self](std::error_code ec) {
    self->listeners.notify([&](const redis_client_callbacks& cb) {
      if (cb.disconnected) cb.disconnected(ec);
    });
  };
  for (const redis_endpoint& sentinel : options.sentinels) {
    redis_options watch = options;
    watch.sentinels.clear();
    watch.address = sentinel;
    watch.username = options.sentinel_username;
    watch.password = options.sentinel_password;
    watch.database = 0;
    watch.reconnect_min = std::max(options.reconnect_min, millis(250));
    detail::connection_events on_switch;
    on_switch.message = [self, name = options.master_name](std::string_view, std::string_view payload) {
      // "<name> <old-ip> <old-port> <new-ip> <new-port>"
      if (payload.substr(0, name.size() + 1) != name + " ") return;
      ++self->switch_announcements;  // each sentinel announces it once
      if (!self->conn->ready()) return;
      const auto last_space = payload.rfind(' ');
      if (last_space == std::string_view::npos || last_space == 0) return;
      const auto ip_space = payload.rfind(' ', last_space - 1);
      if (ip_space == std::string_view::npos) return;
      const std::string_view ip = payload.substr(ip_space + 1, last_space - ip_space - 1);
      const std::string_view port = payload.substr(last_space + 1);
      const redis_endpoint& now = self->conn->master();
      if (ip != now.host || port != std::to_string(now.port)) self->conn->reconnect();
    };
    self->watchers.push_back(
        new detail::connection(loop, std::move(watch), std::move(on_switch), "+switch-master", "sentinel"));
  }
  self->conn = new detail::connection(loop, std::move(options), std::move(events));
}

redis_client::~redis_client() {
  for (detail::connection* w : impl_->watchers) w->close();
  if (impl_->router) impl_->router->close();
  if (impl_->conn != nullptr) impl_->conn->close();
}

std::uint64_t redis_client::add_listener(redis_client_callbacks callbacks) {
  return impl_->listeners.add(std::move(callbacks));
}

void redis_client::remove_listener(std::uint64_t id) { impl_->listeners.remove(id); }

std::error_code redis_client::command(std::span<const std::string_view> args, redis_reply_handler done) {
  if (impl_->router && args.size() < 2) return make_error_code(errc::bad_request);
  const std::uint16_t slot = impl_->router ? redis_key_slot(args[1]) : 0;
  return impl_->send(slot, args, std::move(done));
}

std::error_code redis_client::command(std::initializer_list<std::string_view> args,
                                      redis_reply_handler done) {
  return command(std::span<const std::string_view>(args.begin(), args.size()), std::move(done));
}

namespace {

std::vector<std::string_view> script_args(std::string_view verb, std::string_view body,
                                          const std::string& key_count, std::span<const std::string> rest) {
  std::vector<std::string_view> args{verb, body, key_count};
  for (const std::string& s : rest) args.push_back(s);
  return args;
}

}  // namespace

std::error_code redis_client::eval(std::string_view script, std::size_t key_count,
                                   std::span<const std::string> keys_and_args, redis_reply_handler done) {
  impl* self = impl_.get();
  if (self->router && (key_count == 0 || keys_and_args.empty())) return make_error_code(errc::bad_request);
  if (!self->ready()) return make_error_code(errc::store_disconnected);
  const std::uint16_t slot = self->router ? redis_key_slot(keys_and_args[0]) : 0;
  const std::string count = std::to_string(key_count);
  const auto known = self->shas.find(std::string(script));
  if (known == self->shas.end()) {
    // EVAL now; learn the SHA1 for next time. After a failover the new master
    // may lack the script, which NOSCRIPT below handles.
    std::string source(script);
    if (self->loading.insert(source).second) {
      const std::string_view load[] = {"SCRIPT", "LOAD", source};
      // To the master that runs this call: others learn it from NOSCRIPT.
      const std::error_code sent =
          self->send(slot, load, [self, source](std::error_code ec, const redis_reply& r) {
            self->loading.erase(source);
            if (!ec && r.type == redis_reply::kind::string) self->shas[source] = r.str;
          });
      if (sent) self->loading.erase(source);
    }
    const auto args = script_args("EVAL", script, count, keys_and_args);
    return self->send(slot, args, std::move(done));
  }
  auto fallback = std::make_shared<std::vector<std::string>>();
  fallback->reserve(keys_and_args.size() + 2);
  fallback->emplace_back(script);
  fallback->emplace_back(count);
  fallback->insert(fallback->end(), keys_and_args.begin(), keys_and_args.end());
  const auto args = script_args("EVALSHA", known->second, count, keys_and_args);
  return self->send(slot, args,
                    [self, slot, fallback, done = std::move(done)](std::error_code ec, const redis_reply& r) {
                      if (ec || !r.is_error() || r.str.rfind("NOSCRIPT", 0) != 0) {
                        done(ec, r);
                        return;
                      }
                      self->shas.erase((*fallback)[0]);
                      std::vector<std::string_view> args{"EVAL"};
                      for (const std::string& s : *fallback) args.push_back(s);
                      const std::error_code sent = self->send(slot, args, done);
                      if (sent) done(sent, redis_reply{});
                    });
}

bool redis_client::ready() const noexcept { return impl_->ready(); }
const redis_endpoint& redis_client::master() const noexcept {
  if (!impl_->router) return impl_->conn->master();
  const redis_endpoint* m = impl_->router->master_of(0);
  return m != nullptr ? *m : impl_->no_master;
}
std::vector<redis_endpoint> redis_client::masters() const {
  if (impl_->router) return impl_->router->masters();
  if (!impl_->conn->ready()) return {};
  return {impl_->conn->master()};
}
redis_client_stats redis_client::stats() const noexcept {
  if (impl_->router) return impl_->router->stats();
  redis_client_stats s = impl_->conn->stats;
  s.switch_announcements = impl_->switch_announcements;
  return s;
}
const redis_options& redis_client::options() const noexcept { return impl_->options; }

}  // namespace claps
