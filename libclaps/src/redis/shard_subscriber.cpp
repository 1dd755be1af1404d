#include "shard_subscriber.hpp"

#include <claps/error.hpp>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <strings.h>

namespace claps::detail {

namespace {

std::uint64_t to_ms(millis m) { return m.count() > 0 ? static_cast<std::uint64_t>(m.count()) : 0; }

bool is(const redisReply* r, const char* text) {
  return r->type == REDIS_REPLY_STRING && r->str != nullptr && strcasecmp(r->str, text) == 0;
}

}  // namespace

sharded_reply read_sharded(const redisReply& r, std::string_view& channel, std::string_view& payload) {
  switch (r.type) {
  case REDIS_REPLY_ERROR: return sharded_reply::error;
  case REDIS_REPLY_STATUS:
    return r.str != nullptr && strcasecmp(r.str, "PONG") == 0 ? sharded_reply::pong : sharded_reply::status;
  case REDIS_REPLY_ARRAY: break;
  default: return sharded_reply::other;
  }
  if (r.elements < 2 || r.element[0]->type != REDIS_REPLY_STRING) return sharded_reply::malformed;
  const redisReply* kind = r.element[0];
  if (r.elements == 2) return is(kind, "pong") ? sharded_reply::pong : sharded_reply::malformed;
  if (r.elements != 3 || r.element[1]->type != REDIS_REPLY_STRING) return sharded_reply::malformed;
  channel = std::string_view(r.element[1]->str, r.element[1]->len);
  if (is(kind, "smessage")) {
    if (r.element[2]->type != REDIS_REPLY_STRING) return sharded_reply::malformed;
    payload = std::string_view(r.element[2]->str, r.element[2]->len);
    return sharded_reply::message;
  }
  if (r.element[2]->type != REDIS_REPLY_INTEGER) return sharded_reply::malformed;
  if (is(kind, "ssubscribe")) return sharded_reply::subscribed;
  if (is(kind, "sunsubscribe")) return sharded_reply::unsubscribed;
  return sharded_reply::other;
}

// One connection attempt's socket and reader; frees itself once libuv has
// closed the handle, so the subscriber can be destroyed at any time.
struct shard_subscriber::socket {
  uv_tcp_t tcp;
  uv_connect_t connect;
  shard_subscriber* owner = nullptr;  // null once abandoned
  redisReader* reader = nullptr;
  char buffer[16384];

  void abandon() {
    owner = nullptr;
    uv_read_stop(reinterpret_cast<uv_stream_t*>(&tcp));
    if (uv_is_closing(reinterpret_cast<uv_handle_t*>(&tcp)) == 0)
      uv_close(reinterpret_cast<uv_handle_t*>(&tcp), [](uv_handle_t* h) {
        auto* s = static_cast<socket*>(h->data);
        if (s->reader != nullptr) redisReaderFree(s->reader);
        delete s;
      });
  }
};

shard_subscriber::shard_subscriber(uv_loop_t* loop, redis_endpoint endpoint, const redis_options& options,
                                   events e)
    : loop_(loop),
      endpoint_(std::move(endpoint)),
      options_(options),
      events_(std::move(e)),
      retry_timer_(loop, [this] { connect(); }),
      deadline_timer_(loop, [this] { on_deadline(); }) {
  retry_delay_ = std::max<std::uint64_t>(to_ms(options_.reconnect_min), 1);
  retry_timer_.start(0);  // from the loop, not from the constructor's caller
}

shard_subscriber::~shard_subscriber() {
  if (socket_ != nullptr) socket_->abandon();
  socket_ = nullptr;
}

void shard_subscriber::connect() {
  sockaddr_storage addr{};
  if (uv_ip4_addr(endpoint_.host.c_str(), endpoint_.port, reinterpret_cast<sockaddr_in*>(&addr)) != 0 &&
      uv_ip6_addr(endpoint_.host.c_str(), endpoint_.port, reinterpret_cast<sockaddr_in6*>(&addr)) != 0) {
    fail(make_error_code(errc::store_disconnected));
    return;
  }
  auto* s = new socket{};
  s->owner = this;
  s->reader = redisReaderCreate();
  uv_tcp_init(loop_, &s->tcp);
  s->tcp.data = s;
  s->connect.data = s;
  socket_ = s;
  state_ = state::connecting;
  connect_deadline_ = uv_now(loop_) + to_ms(options_.connect_timeout);
  arm_deadline();
  const int rc = uv_tcp_connect(&s->connect, &s->tcp, reinterpret_cast<const sockaddr*>(&addr),
                                [](uv_connect_t* req, int status) {
                                  auto* s = static_cast<socket*>(req->data);
                                  if (s->owner != nullptr) s->owner->on_connected(status);
                                });
  if (rc != 0) fail(make_error_code(errc::store_disconnected));
}

void shard_subscriber::on_connected(int status) {
  if (status != 0) {
    fail(make_error_code(errc::store_disconnected));
    return;
  }
  state_ = state::handshaking;
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&socket_->tcp),
      [](uv_handle_t* h, std::size_t, uv_buf_t* buf) {
        auto* s = static_cast<socket*>(h->data);
        *buf = uv_buf_init(s->buffer, sizeof s->buffer);
      },
      [](uv_stream_t* stream, ssize_t n, const uv_buf_t* buf) {
        auto* s = static_cast<socket*>(stream->data);
        if (s->owner == nullptr) return;
        if (n < 0) {
          s->owner->fail(make_error_code(errc::store_disconnected));
          return;
        }
        if (n > 0) s->owner->on_read(buf->base, static_cast<std::size_t>(n));
      });
  if (!options_.password.empty()) {
    std::vector<std::string> auth{"AUTH"};
    if (!options_.username.empty()) auth.push_back(options_.username);
    auth.push_back(options_.password);
    send(command_kind::auth, auth, 1, {});
  }
  send(command_kind::ping, {"PING"}, 1, {});
}

void shard_subscriber::send(command_kind kind, const std::vector<std::string>& args, std::size_t replies,
                            std::vector<std::string> channels) {
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const std::string& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  char* command = nullptr;
  const long long len =
      redisFormatCommandArgv(&command, static_cast<int>(argv.size()), argv.data(), lens.data());
  if (len < 0 || command == nullptr) return;
  auto* req = new uv_write_t{};
  req->data = command;
  uv_buf_t buf = uv_buf_init(command, static_cast<unsigned>(len));
  if (uv_write(req, reinterpret_cast<uv_stream_t*>(&socket_->tcp), &buf, 1, [](uv_write_t* w, int) {
        redisFreeCommand(static_cast<char*>(w->data));
        delete w;
      }) != 0) {
    redisFreeCommand(command);
    delete req;
    fail(make_error_code(errc::store_disconnected));
    return;
  }
  pending_.push_back({kind, replies, std::move(channels), uv_now(loop_) + to_ms(options_.request_timeout)});
  if (pending_.size() == 1) arm_deadline();
}

void shard_subscriber::on_read(const char* data, std::size_t size) {
  if (redisReaderFeed(socket_->reader, data, size) != REDIS_OK) {
    fail(make_error_code(errc::store_disconnected));
    return;
  }
  const std::weak_ptr<bool> alive = alive_;
  socket* s = socket_;
  while (!alive.expired() && socket_ == s) {
    void* raw = nullptr;
    if (redisReaderGetReply(s->reader, &raw) != REDIS_OK) {
      fail(make_error_code(errc::store_disconnected));
      return;
    }
    if (raw == nullptr) break;
    last_activity_ = uv_now(loop_);
    on_reply(*static_cast<redisReply*>(raw));
    freeReplyObject(raw);
  }
  if (!alive.expired() && socket_ == s) arm_deadline();
}

void shard_subscriber::on_reply(const redisReply& reply) {
  std::string_view channel, payload;
  const sharded_reply what = read_sharded(reply, channel, payload);
  const auto front_is = [&](command_kind k) { return !pending_.empty() && pending_.front().kind == k; };
  const auto settle_front = [&] {
    if (!pending_.empty() && --pending_.front().replies == 0) pending_.pop_front();
  };
  switch (what) {
  case sharded_reply::message:
    if (events_.message) events_.message(channel, payload);
    return;
  case sharded_reply::subscribed:
    if (front_is(command_kind::subscribe)) settle_front();
    return;
  case sharded_reply::unsubscribed: {
    const std::string name(channel);
    if (leaving_.erase(name) != 0) {
      if (front_is(command_kind::unsubscribe)) settle_front();
      return;
    }
    // Unsolicited: the slot left this master (a reshard or a failover).
    if (channels_.erase(name) != 0 && events_.dropped) events_.dropped(name);
    return;
  }
  case sharded_reply::pong:
  case sharded_reply::status:
    if (front_is(command_kind::ping) && state_ == state::handshaking) {
      pending_.pop_front();
      state_ = state::ready;
      retry_delay_ = std::max<std::uint64_t>(to_ms(options_.reconnect_min), 1);
      subscribe_grouped(std::vector<std::string>(channels_.begin(), channels_.end()));
      if (events_.ready) events_.ready();
      return;
    }
    if (!pending_.empty()) pending_.pop_front();
    return;
  case sharded_reply::error:
    if (pending_.empty() || state_ != state::ready) {
      fail(make_error_code(errc::store_disconnected));  // AUTH refused, or LOADING
      return;
    }
    if (front_is(command_kind::subscribe)) {
      // MOVED (the slot is elsewhere) or CROSSSLOT: none of its channels is held.
      const std::vector<std::string> refused = std::move(pending_.front().channels);
      pending_.pop_front();
      for (const std::string& c : refused)
        if (channels_.erase(c) != 0 && events_.dropped) events_.dropped(c);
      return;
    }
    pending_.pop_front();
    return;
  default: return;
  }
}

// One SSUBSCRIBE per slot, as Redis requires.
void shard_subscriber::subscribe_grouped(const std::vector<std::string>& channels) {
  std::map<std::uint16_t, std::vector<std::string>> by_slot;
  for (const std::string& c : channels) by_slot[redis_key_slot(c)].push_back(c);
  for (auto& [slot, group] : by_slot) {
    std::vector<std::string> args{"SSUBSCRIBE"};
    args.insert(args.end(), group.begin(), group.end());
    ++subscribe_commands;
    const std::size_t n = group.size();
    send(command_kind::subscribe, args, n, std::move(group));
    if (state_ != state::ready) return;  // the write failed
  }
}

void shard_subscriber::add(const std::string& channel) {
  if (!channels_.insert(channel).second) return;
  if (state_ == state::ready) subscribe_grouped({channel});
}

void shard_subscriber::remove(const std::string& channel) {
  if (channels_.erase(channel) == 0) return;
  if (state_ != state::ready) return;
  leaving_.insert(channel);
  ++unsubscribe_commands;
  send(command_kind::unsubscribe, {"SUNSUBSCRIBE", channel}, 1, {channel});
}

void shard_subscriber::fail(std::error_code why) {
  const bool was_ready = state_ == state::ready;
  if (socket_ != nullptr) socket_->abandon();
  socket_ = nullptr;
  pending_.clear();
  leaving_.clear();
  deadline_timer_.stop();
  state_ = state::waiting;
  if (was_ready) {
    retry_delay_ = std::max<std::uint64_t>(to_ms(options_.reconnect_min), 1);
    retry_timer_.start(0);
    if (events_.lost) events_.lost(why);
    return;
  }
  const std::uint64_t delay = retry_delay_;
  retry_delay_ =
      std::min<std::uint64_t>(retry_delay_ * 2, std::max<std::uint64_t>(to_ms(options_.reconnect_max), 1));
  retry_timer_.start(delay);
}

void shard_subscriber::arm_deadline() {
  std::uint64_t next = UINT64_MAX;
  if (state_ == state::connecting || state_ == state::handshaking) next = connect_deadline_;
  if (!pending_.empty()) next = std::min(next, pending_.front().deadline);
  if (state_ == state::ready && pending_.empty())
    next = last_activity_ + std::max<std::uint64_t>(to_ms(options_.request_timeout) / 2, 50);
  if (next == UINT64_MAX) {
    deadline_timer_.stop();
    return;
  }
  const std::uint64_t now = uv_now(loop_);
  deadline_timer_.start(next > now ? next - now : 0);
}

void shard_subscriber::on_deadline() {
  const std::uint64_t now = uv_now(loop_);
  if ((state_ == state::connecting || state_ == state::handshaking) && now >= connect_deadline_) {
    fail(make_error_code(errc::store_timeout));
    return;
  }
  if (!pending_.empty() && now >= pending_.front().deadline) {
    fail(make_error_code(errc::store_timeout));
    return;
  }
  if (state_ == state::ready && pending_.empty()) {
    // Idle: a PING shows a stopped or partitioned master within request_timeout.
    last_activity_ = now;
    send(command_kind::ping, {"PING"}, 1, {});
  }
  arm_deadline();
}

}  // namespace claps::detail
