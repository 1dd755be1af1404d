// One hiredis async connection to the Redis master with what hiredis 0.14
// lacks: deadlines on connecting and on every request, Sentinel discovery,
// ROLE verification, AUTH/SELECT, and reconnecting with backoff.
//
// Failure model: any missed deadline drops the whole connection, because a
// pipelined Redis connection cannot skip one reply. Dropping it makes hiredis
// run every outstanding callback once with a NULL reply, which is where each
// request fails (store_timeout for a missed deadline, store_disconnected
// otherwise). New links are only ever opened from a timer callback, never
// from inside a hiredis callback, so a deferred free always completes first.
#pragma once

#include <claps/redis.hpp>

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <system_error>

struct redisAsyncContext;
struct redisReply;

namespace claps::detail {

// What this folder reads out of hiredis replies, as pure functions of the
// reply (fuzzed without a connection by fuzz/redis_reply.cpp).

redis_reply convert(const redisReply& reply);

/// A subscriber connection's reply: malformed ones are ignored outright;
/// `message` sets channel and payload (views into the reply).
enum class pubsub_reply { malformed, message, subscribed, other };
pubsub_reply read_pubsub(const redisReply& reply, std::string_view& channel, std::string_view& payload);

/// A sentinel's answer to SENTINEL get-master-addr-by-name: true with the
/// master's address, false for nil (unknown name), an error, an address with
/// an empty host or a port that is not a number 1-65535, or anything else.
bool read_master_address(const redisReply& reply, redis_endpoint& master);

/// The article a bus channel names (`prefix` + "{" + article + "}", never
/// an empty article), or false.
bool channel_article(std::string_view prefix, std::string_view channel, std::string_view& article) noexcept;

struct connection_events {
  /// Ready: handshake done, ROLE is master.
  std::function<void()> ready;
  /// A ready link was lost; reconnecting follows by itself.
  std::function<void(std::error_code)> lost;
  /// Subscriber mode: a message on `channel`.
  std::function<void(std::string_view channel, std::string_view payload)> message;
};

/// Raw completion: reply is null exactly when ec is set.
using raw_handler = std::function<void(std::error_code, redisReply* reply)>;

class connection {
public:
  /// `keepalive_channel` non-empty makes this a subscriber connection: it
  /// stays subscribed to that channel and re-SUBSCRIBEs it as its keepalive.
  /// `role` is what ROLE must answer ("master"; "sentinel" for a watcher of
  /// a sentinel's +switch-master channel; empty: any role, for a cluster
  /// seed asked for the slot map).
  connection(uv_loop_t* loop, redis_options options, connection_events events,
             std::string keepalive_channel = {}, std::string role = "master");
  connection(const connection&) = delete;
  connection& operator=(const connection&) = delete;

  /// Drops the link (outstanding requests fail with store_disconnected),
  /// closes the timers and deletes this from their close callbacks.
  void close();

  /// Command mode: sends args; `done` runs exactly once unless an error is returned.
  std::error_code send(std::span<const std::string_view> args, raw_handler done);
  /// Subscriber mode: SUBSCRIBE or UNSUBSCRIBE channels in one command.
  /// SUBSCRIBE confirmations are awaited with the request deadline.
  std::error_code subscribe_many(std::string_view verb, std::span<const std::string_view> channels);

  bool ready() const noexcept { return state_ == state::ready; }
  /// Drops a ready link and rediscovers (the master moved).
  void reconnect();
  const redis_endpoint& master() const noexcept { return master_; }
  const redis_options& options() const noexcept { return options_; }
  redis_client_stats stats;

private:
  enum class state : std::uint8_t { idle, resolving, connecting, handshaking, ready, waiting, closing };
  enum class purpose : std::uint8_t { sentinel, master };
  struct request;
  struct resolve_request;

  ~connection() = default;
  void begin_attempt();
  void open_link(const redis_endpoint& endpoint, purpose why);
  void connect_resolved(const std::string& ip);
  void on_connected();
  void on_sentinel_answer(redisReply* reply);
  void handshake();
  void send_auth(const std::string& username, const std::string& password);
  raw_handler step_check();
  void become_ready();
  void attempt_failed();
  void drop_link(std::error_code reason, bool hiredis_frees);
  void lose_ready_link(std::error_code reason);
  void schedule(std::uint64_t delay_ms);
  void arm_deadline();
  void on_deadline();
  std::error_code send_internal(std::span<const std::string_view> args, raw_handler done,
                                std::uint64_t deadline);
  void keepalive();

  static void on_connect_cb(const redisAsyncContext* ac, int status);
  static void on_disconnect_cb(const redisAsyncContext* ac, int status);
  static void on_reply_cb(redisAsyncContext* ac, void* reply, void* privdata);
  static void on_pubsub_cb(redisAsyncContext* ac, void* reply, void* privdata);
  static void on_timer_closed(uv_handle_t* handle);

  uv_loop_t* loop_;
  redis_options options_;
  connection_events events_;
  std::string keepalive_channel_;
  std::string role_;

  state state_ = state::idle;
  purpose purpose_ = purpose::master;
  redisAsyncContext* ac_ = nullptr;
  resolve_request* resolving_ = nullptr;
  std::error_code link_error_;               // what outstanding requests fail with
  std::uint64_t connect_deadline_ = 0;       // uv_now ms while connecting/handshaking
  std::uint64_t last_activity_ = 0;          // uv_now ms of the last reply
  std::deque<request*> requests_;            // FIFO, as hiredis answers them
  std::deque<std::uint64_t> confirmations_;  // deadlines of awaited (UN)SUBSCRIBE replies
  std::size_t next_sentinel_ = 0;            // whom to ask next
  std::size_t sentinels_asked_ = 0;          // in this round
  std::uint64_t retry_delay_ = 0;
  redis_endpoint target_;        // endpoint of the current link
  redis_endpoint master_;        // when ready
  redis_endpoint named_master_;  // what a sentinel just answered
  bool have_named_master_ = false;
  uv_timer_t deadline_timer_{};
  uv_timer_t retry_timer_{};
  int open_handles_ = 0;
};

}  // namespace claps::detail
