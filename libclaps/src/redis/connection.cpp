#include "connection.hpp"
#include "uv_hiredis_adapter.hpp"

#include <claps/error.hpp>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include <arpa/inet.h>

#include <algorithm>
#include <cassert>
#include <charconv>
#include <cstring>
#include <limits>
#include <vector>

namespace claps::detail {

struct connection::request {
  connection* owner;
  raw_handler done;
  std::uint64_t deadline;
};

struct connection::resolve_request {
  uv_getaddrinfo_t req;  // first member: the callback casts back
  connection* owner;     // null once cancelled
};

redis_reply convert(const redisReply& r) {
  redis_reply out;
  switch (r.type) {
  case REDIS_REPLY_STRING: out.type = redis_reply::kind::string; break;
  case REDIS_REPLY_STATUS: out.type = redis_reply::kind::status; break;
  case REDIS_REPLY_ERROR: out.type = redis_reply::kind::error; break;
  case REDIS_REPLY_INTEGER: out.type = redis_reply::kind::integer; break;
  case REDIS_REPLY_ARRAY: out.type = redis_reply::kind::array; break;
  default: out.type = redis_reply::kind::nil; break;
  }
  out.integer = r.integer;
  if (r.str != nullptr) out.str.assign(r.str, static_cast<std::size_t>(r.len));
  if (r.type == REDIS_REPLY_ARRAY) {
    out.elements.reserve(r.elements);
    for (std::size_t i = 0; i < r.elements; ++i) out.elements.push_back(convert(*r.element[i]));
  }
  return out;
}

pubsub_reply read_pubsub(const redisReply& r, std::string_view& channel, std::string_view& payload) {
  if (r.type != REDIS_REPLY_ARRAY || r.elements < 3 || r.element[0]->type != REDIS_REPLY_STRING)
    return pubsub_reply::malformed;
  const redisReply* kind = r.element[0];
  if (strcasecmp(kind->str, "message") == 0) {
    const redisReply* c = r.element[1];
    const redisReply* p = r.element[2];
    if (c->type != REDIS_REPLY_STRING || p->type != REDIS_REPLY_STRING) return pubsub_reply::other;
    channel = std::string_view(c->str, c->len);
    payload = std::string_view(p->str, p->len);
    return pubsub_reply::message;
  }
  if (strcasecmp(kind->str, "subscribe") == 0) return pubsub_reply::subscribed;
  return pubsub_reply::other;
}

bool read_master_address(const redisReply& r, redis_endpoint& master) {
  if (r.type != REDIS_REPLY_ARRAY || r.elements != 2 || r.element[0]->type != REDIS_REPLY_STRING ||
      r.element[1]->type != REDIS_REPLY_STRING || r.element[0]->len == 0)
    return false;
  // Not atoi: "abc" would be port 0 and "70000" another port.
  const char* port = r.element[1]->str;
  const char* end = port + r.element[1]->len;
  unsigned value = 0;
  const auto [stop, ec] = std::from_chars(port, end, value);
  if (ec != std::errc{} || stop != end || value < 1 || value > 65535) return false;
  master =
      redis_endpoint{std::string(r.element[0]->str, r.element[0]->len), static_cast<std::uint16_t>(value)};
  return true;
}

bool channel_article(std::string_view prefix, std::string_view channel, std::string_view& article) noexcept {
  if (channel.size() < prefix.size() + 3 || channel.substr(0, prefix.size()) != prefix ||
      channel[prefix.size()] != '{' || channel.back() != '}')
    return false;
  article = channel.substr(prefix.size() + 1, channel.size() - prefix.size() - 2);
  return true;
}

namespace {

constexpr std::uint64_t no_deadline = std::numeric_limits<std::uint64_t>::max();

bool is_numeric_ip(const std::string& host) {
  unsigned char buf[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, host.c_str(), buf) == 1 || inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::uint64_t to_ms(millis m) { return m.count() > 0 ? static_cast<std::uint64_t>(m.count()) : 0; }

bool reply_is(const redisReply* r, const char* text) {
  return r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) &&
         r->str != nullptr && strcasecmp(r->str, text) == 0;
}

}  // namespace

connection::connection(uv_loop_t* loop, redis_options options, connection_events events,
                       std::string keepalive_channel, std::string role)
    : loop_(loop),
      options_(std::move(options)),
      events_(std::move(events)),
      keepalive_channel_(std::move(keepalive_channel)),
      role_(std::move(role)) {
  uv_timer_init(loop_, &deadline_timer_);
  uv_timer_init(loop_, &retry_timer_);
  deadline_timer_.data = this;
  retry_timer_.data = this;
  open_handles_ = 2;
  retry_delay_ = std::max<std::uint64_t>(to_ms(options_.reconnect_min), 1);
  schedule(0);  // connect from the loop, not from the constructor's caller
}

void connection::close() {
  if (state_ == state::closing) return;
  state_ = state::closing;
  if (resolving_ != nullptr) {
    resolving_->owner = nullptr;
    uv_cancel(reinterpret_cast<uv_req_t*>(&resolving_->req));
    resolving_ = nullptr;
  }
  drop_link(make_error_code(errc::store_disconnected), false);
  uv_close(reinterpret_cast<uv_handle_t*>(&deadline_timer_), on_timer_closed);
  uv_close(reinterpret_cast<uv_handle_t*>(&retry_timer_), on_timer_closed);
}

void connection::on_timer_closed(uv_handle_t* handle) {
  auto* self = static_cast<connection*>(handle->data);
  if (--self->open_handles_ == 0) delete self;
}

void connection::schedule(std::uint64_t delay_ms) {
  if (state_ == state::closing) return;
  state_ = state::waiting;
  uv_timer_start(
      &retry_timer_, [](uv_timer_t* t) { static_cast<connection*>(t->data)->begin_attempt(); }, delay_ms, 0);
}

// With Sentinel: ask each sentinel in turn (starting with the one that
// answered last), connect to the address it names, and accept it only if
// ROLE says master. Without: connect to the configured address.
void connection::begin_attempt() {
  if (state_ == state::closing) return;
  if (options_.sentinels.empty()) {
    open_link(options_.address, purpose::master);
    return;
  }
  if (have_named_master_) {
    have_named_master_ = false;
    open_link(named_master_, purpose::master);
    return;
  }
  if (sentinels_asked_ >= options_.sentinels.size()) sentinels_asked_ = 0;
  const std::size_t index = next_sentinel_ % options_.sentinels.size();
  ++sentinels_asked_;
  open_link(options_.sentinels[index], purpose::sentinel);
}

void connection::open_link(const redis_endpoint& endpoint, purpose why) {
  target_ = endpoint;
  purpose_ = why;
  link_error_ = make_error_code(errc::store_disconnected);
  connect_deadline_ = uv_now(loop_) + to_ms(options_.connect_timeout);
  if (is_numeric_ip(endpoint.host)) {
    connect_resolved(endpoint.host);
    return;
  }
  // hiredis would resolve names with a blocking getaddrinfo(); do it off-loop.
  state_ = state::resolving;
  auto* rr = new resolve_request{};
  rr->owner = this;
  resolving_ = rr;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  const int rc = uv_getaddrinfo(
      loop_, &rr->req,
      [](uv_getaddrinfo_t* req, int status, addrinfo* res) {
        auto* rr = reinterpret_cast<resolve_request*>(req);
        connection* self = rr->owner;
        std::string ip;
        if (status == 0 && res != nullptr) {
          char buf[64] = {};
          if (res->ai_family == AF_INET6)
            uv_ip6_name(reinterpret_cast<sockaddr_in6*>(res->ai_addr), buf, sizeof buf);
          else uv_ip4_name(reinterpret_cast<sockaddr_in*>(res->ai_addr), buf, sizeof buf);
          ip = buf;
        }
        if (res != nullptr) uv_freeaddrinfo(res);
        delete rr;
        if (self == nullptr) return;
        self->resolving_ = nullptr;
        if (ip.empty()) {
          self->attempt_failed();
        } else {
          self->connect_resolved(ip);
        }
      },
      endpoint.host.c_str(), nullptr, &hints);
  if (rc != 0) {
    delete rr;
    resolving_ = nullptr;
    attempt_failed();
    return;
  }
  arm_deadline();
}

void connection::connect_resolved(const std::string& ip) {
  state_ = state::connecting;
  redisAsyncContext* ac = redisAsyncConnect(ip.c_str(), target_.port);
  if (ac == nullptr) {
    attempt_failed();
    return;
  }
  if (ac->err != 0 || !attach_uv_adapter(ac, loop_)) {
    redisAsyncFree(ac);
    attempt_failed();
    return;
  }
  ac->data = this;
  redisAsyncSetConnectCallback(ac, on_connect_cb);
  redisAsyncSetDisconnectCallback(ac, on_disconnect_cb);
  ac_ = ac;
  arm_deadline();
}

void connection::on_connect_cb(const redisAsyncContext* ac, int status) {
  auto* self = static_cast<connection*>(ac->data);
  if (self == nullptr || ac != self->ac_) return;
  if (status != REDIS_OK) {
    // hiredis frees the context itself after this callback.
    self->drop_link(make_error_code(errc::store_disconnected), true);
    self->attempt_failed();
    return;
  }
  self->on_connected();
}

void connection::on_disconnect_cb(const redisAsyncContext* ac, int /*status*/) {
  auto* self = static_cast<connection*>(ac->data);
  if (self == nullptr || ac != self->ac_) return;  // we dropped it ourselves
  const bool was_ready = self->state_ == state::ready;
  self->drop_link(make_error_code(errc::store_disconnected), true);
  if (was_ready) {
    ++self->stats.disconnects;
    self->retry_delay_ = std::max<std::uint64_t>(to_ms(self->options_.reconnect_min), 1);
    self->schedule(0);
    if (self->events_.lost) self->events_.lost(make_error_code(errc::store_disconnected));
  } else {
    self->attempt_failed();
  }
}

void connection::on_connected() {
  state_ = state::handshaking;
  if (purpose_ == purpose::sentinel) {
    send_auth(options_.sentinel_username, options_.sentinel_password);
    const std::string_view args[] = {"SENTINEL", "get-master-addr-by-name", options_.master_name};
    send_internal(
        args,
        [this](std::error_code ec, redisReply* r) {
          if (!ec) on_sentinel_answer(r);
        },
        connect_deadline_);
    return;
  }
  handshake();
}

void connection::on_sentinel_answer(redisReply* r) {
  if (redis_endpoint named; read_master_address(*r, named)) {
    // This sentinel knows the master: ask it first next time too.
    drop_link(make_error_code(errc::store_disconnected), false);
    named_master_ = std::move(named);
    have_named_master_ = true;
    sentinels_asked_ = 0;
    schedule(0);
    return;
  }
  // Nil (unknown master name), an error or an unusable address: try the next sentinel.
  drop_link(make_error_code(errc::store_disconnected), false);
  attempt_failed();
}

// A handshake step whose error reply fails the attempt; the steps after it
// then see the dropped link.
raw_handler connection::step_check() {
  return [this](std::error_code ec, redisReply* r) {
    if (ec) return;
    if (r->type == REDIS_REPLY_ERROR) {
      drop_link(make_error_code(errc::store_disconnected), false);
      attempt_failed();
    }
  };
}

void connection::send_auth(const std::string& username, const std::string& password) {
  if (password.empty()) return;
  if (username.empty()) {
    const std::string_view args[] = {"AUTH", password};
    send_internal(args, step_check(), connect_deadline_);
  } else {
    const std::string_view args[] = {"AUTH", username, password};
    send_internal(args, step_check(), connect_deadline_);
  }
}

// AUTH, SELECT, PING, ROLE pipelined. ROLE answers while the server is
// still loading its data, PING does not (-LOADING): without it the link was
// ready, lost at the first command, and ready again at once, in a loop for
// as long as the load took; now the attempt fails and the next one backs off.
void connection::handshake() {
  send_auth(options_.username, options_.password);
  if (options_.database != 0) {
    const std::string db = std::to_string(options_.database);
    const std::string_view args[] = {"SELECT", db};
    send_internal(args, step_check(), connect_deadline_);
  }
  const std::string_view ping[] = {"PING"};
  send_internal(ping, step_check(), connect_deadline_);
  const std::string_view role[] = {"ROLE"};
  send_internal(
      role,
      [this](std::error_code ec, redisReply* r) {
        if (ec || ac_ == nullptr) return;  // an earlier step failed the attempt
        if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 &&
            (role_.empty() || reply_is(r->element[0], role_.c_str()))) {
          become_ready();
          return;
        }
        // A demoted old master or a replica: ask the sentinels again later.
        ++stats.not_master;
        drop_link(make_error_code(errc::store_disconnected), false);
        attempt_failed();
      },
      connect_deadline_);
}

void connection::become_ready() {
  state_ = state::ready;
  master_ = target_;
  retry_delay_ = std::max<std::uint64_t>(to_ms(options_.reconnect_min), 1);
  sentinels_asked_ = 0;
  last_activity_ = uv_now(loop_);
  ++stats.connects;
  if (!keepalive_channel_.empty()) {
    const std::string_view channels[] = {keepalive_channel_};
    subscribe_many("SUBSCRIBE", channels);
  }
  arm_deadline();
  if (events_.ready) events_.ready();
}

void connection::attempt_failed() {
  if (state_ == state::closing) return;
  if (purpose_ == purpose::sentinel) {
    ++next_sentinel_;
    if (sentinels_asked_ < options_.sentinels.size()) {
      schedule(0);
      return;
    }
    sentinels_asked_ = 0;
  }
  const std::uint64_t delay = retry_delay_;
  retry_delay_ =
      std::min<std::uint64_t>(retry_delay_ * 2, std::max<std::uint64_t>(to_ms(options_.reconnect_max), 1));
  schedule(delay);
}

void connection::drop_link(std::error_code reason, bool hiredis_frees) {
  if (state_ != state::closing) state_ = state::waiting;
  confirmations_.clear();
  uv_timer_stop(&deadline_timer_);
  if (ac_ == nullptr) return;
  redisAsyncContext* ac = ac_;
  ac_ = nullptr;
  link_error_ = reason;
  master_ = {};
  // Runs every outstanding callback with a NULL reply: each request fails
  // once with link_error_. Inside a hiredis callback the free is deferred
  // until that callback returns.
  if (!hiredis_frees) redisAsyncFree(ac);
}

void connection::arm_deadline() {
  if (state_ == state::closing) return;
  std::uint64_t next = no_deadline;
  if (state_ == state::resolving || state_ == state::connecting || state_ == state::handshaking)
    next = connect_deadline_;
  if (!requests_.empty()) next = std::min(next, requests_.front()->deadline);
  if (!confirmations_.empty()) next = std::min(next, confirmations_.front());
  if (state_ == state::ready && requests_.empty() && confirmations_.empty())
    next = std::min(next, last_activity_ + std::max<std::uint64_t>(to_ms(options_.request_timeout) / 2, 50));
  if (next == no_deadline) {
    uv_timer_stop(&deadline_timer_);
    return;
  }
  const std::uint64_t now = uv_now(loop_);
  uv_timer_start(
      &deadline_timer_, [](uv_timer_t* t) { static_cast<connection*>(t->data)->on_deadline(); },
      next > now ? next - now : 0, 0);
}

void connection::on_deadline() {
  const std::uint64_t now = uv_now(loop_);
  const bool attempting =
      state_ == state::resolving || state_ == state::connecting || state_ == state::handshaking;
  if (attempting && now >= connect_deadline_) {
    ++stats.timeouts;
    if (resolving_ != nullptr) {
      resolving_->owner = nullptr;
      uv_cancel(reinterpret_cast<uv_req_t*>(&resolving_->req));
      resolving_ = nullptr;
    }
    drop_link(make_error_code(errc::store_timeout), false);
    attempt_failed();
    return;
  }
  if (state_ == state::ready) {
    const bool late = (!requests_.empty() && now >= requests_.front()->deadline) ||
                      (!confirmations_.empty() && now >= confirmations_.front());
    if (late) {
      ++stats.timeouts;
      lose_ready_link(make_error_code(errc::store_timeout));
      return;
    }
    if (requests_.empty() && confirmations_.empty()) keepalive();
  }
  arm_deadline();
}

void connection::reconnect() {
  if (state_ == state::ready) lose_ready_link(make_error_code(errc::store_disconnected));
}

void connection::lose_ready_link(std::error_code reason) {
  ++stats.disconnects;
  drop_link(reason, false);
  retry_delay_ = std::max<std::uint64_t>(to_ms(options_.reconnect_min), 1);
  schedule(0);
  if (events_.lost) events_.lost(reason);
}

// An idle link is probed so that a stopped master is noticed within
// request_timeout even when nothing else is sent.
void connection::keepalive() {
  last_activity_ = uv_now(loop_);
  if (!keepalive_channel_.empty()) {
    const std::string_view channels[] = {keepalive_channel_};
    subscribe_many("SUBSCRIBE", channels);
    return;
  }
  const std::string_view args[] = {"PING"};
  send_internal(
      args, [](std::error_code, redisReply*) {}, uv_now(loop_) + to_ms(options_.request_timeout));
}

std::error_code connection::send(std::span<const std::string_view> args, raw_handler done) {
  if (state_ != state::ready) return make_error_code(errc::store_disconnected);
  return send_internal(args, std::move(done), uv_now(loop_) + to_ms(options_.request_timeout));
}

std::error_code connection::send_internal(std::span<const std::string_view> args, raw_handler done,
                                          std::uint64_t deadline) {
  if (ac_ == nullptr) return make_error_code(errc::store_disconnected);
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  argv.reserve(args.size());
  lens.reserve(args.size());
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* req = new request{this, std::move(done), deadline};
  if (redisAsyncCommandArgv(ac_, on_reply_cb, req, static_cast<int>(argv.size()), argv.data(), lens.data()) !=
      REDIS_OK) {
    delete req;
    return make_error_code(errc::store_disconnected);
  }
  ++stats.requests;
  requests_.push_back(req);
  if (requests_.size() == 1) arm_deadline();
  return {};
}

void connection::on_reply_cb(redisAsyncContext* ac, void* reply, void* privdata) {
  auto* req = static_cast<request*>(privdata);
  connection* self = req->owner;
  assert(!self->requests_.empty() && self->requests_.front() == req);
  self->requests_.pop_front();
  auto* r = static_cast<redisReply*>(reply);
  if (r != nullptr) {
    self->last_activity_ = uv_now(self->loop_);
    bool demoted = false;
    if (r->type == REDIS_REPLY_ERROR) {
      ++self->stats.failed_requests;
      // The server we hold is no longer a writable master (demoted by a
      // failover, or still loading): rediscover instead of failing forever.
      demoted =
          r->str != nullptr && (strncmp(r->str, "READONLY", 8) == 0 ||
                                strncmp(r->str, "MASTERDOWN", 10) == 0 || strncmp(r->str, "LOADING", 7) == 0);
    }
    req->done({}, r);
    if (demoted && ac == self->ac_ && self->state_ == state::ready) {
      ++self->stats.not_master;
      delete req;
      self->lose_ready_link(make_error_code(errc::store_disconnected));
      return;
    }
  } else {
    ++self->stats.failed_requests;
    req->done(self->link_error_, nullptr);
  }
  delete req;
  if (ac == self->ac_) self->arm_deadline();
}

std::error_code connection::subscribe_many(std::string_view verb,
                                           std::span<const std::string_view> channels) {
  if (state_ != state::ready || ac_ == nullptr) return make_error_code(errc::store_disconnected);
  if (channels.empty()) return {};
  std::vector<const char*> argv{verb.data()};
  std::vector<std::size_t> lens{verb.size()};
  for (std::string_view c : channels) {
    argv.push_back(c.data());
    lens.push_back(c.size());
  }
  if (redisAsyncCommandArgv(ac_, on_pubsub_cb, this, static_cast<int>(argv.size()), argv.data(),
                            lens.data()) != REDIS_OK)
    return make_error_code(errc::store_disconnected);
  // Only SUBSCRIBE confirmations are awaited: hiredis 0.14 may drop the
  // callback of an UNSUBSCRIBE reply whose channel it already forgot.
  if (strcasecmp(std::string(verb).c_str(), "SUBSCRIBE") == 0) {
    const std::uint64_t deadline = uv_now(loop_) + to_ms(options_.request_timeout);
    for (std::size_t i = 0; i < channels.size(); ++i) confirmations_.push_back(deadline);
    arm_deadline();
  }
  return {};
}

void connection::on_pubsub_cb(redisAsyncContext* ac, void* reply, void* privdata) {
  auto* self = static_cast<connection*>(privdata);
  auto* r = static_cast<redisReply*>(reply);
  if (r == nullptr || ac != self->ac_) return;
  std::string_view channel, payload;
  const pubsub_reply what = read_pubsub(*r, channel, payload);
  if (what == pubsub_reply::malformed) return;
  self->last_activity_ = uv_now(self->loop_);
  if (what == pubsub_reply::message) {
    if (self->events_.message) self->events_.message(channel, payload);
  } else if (what == pubsub_reply::subscribed && !self->confirmations_.empty()) {
    self->confirmations_.pop_front();
    self->arm_deadline();
  }
}

}  // namespace claps::detail
