// One sharded pub/sub subscriber connection to one Redis Cluster master, on
// the project's own socket: hiredis 0.14's async API aborts on `smessage`
// and `ssubscribe` replies, so this connection is a uv_tcp_t whose commands
// are formatted with redisFormatCommandArgv and whose replies are parsed with
// a redisReader. It does AUTH, a connect deadline, a PING keepalive (RESP2
// allows PING on a subscribed connection), a deadline on every command, and
// reconnects with backoff, SSUBSCRIBing its channels again, grouped by slot
// (one SSUBSCRIBE may only name channels of one slot).
//
// Hosts must be IP addresses: the cluster's slot map names its nodes by IP.
#pragma once

#include "uv_timer.hpp"

#include <claps/redis.hpp>

#include <uv.h>

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

struct redisReply;

namespace claps::detail {

/// What one reply on a sharded subscriber connection is (pure; fuzzed by
/// fuzz/redis_reply.cpp). `message` ("smessage", channel, payload) and the
/// confirmations `subscribed`/`unsubscribed` ("ssubscribe"/"sunsubscribe",
/// channel, count) set channel (and payload) as views into the reply;
/// `pong` is PING's answer in or out of subscribe mode; `status` any other
/// status reply (AUTH's OK), `error` an error reply; `other` is a well-formed
/// reply of another kind, `malformed` an array of the wrong shape.
enum class sharded_reply { malformed, message, subscribed, unsubscribed, pong, status, error, other };
sharded_reply read_sharded(const redisReply& reply, std::string_view& channel, std::string_view& payload);

class shard_subscriber {
public:
  struct events {
    std::function<void()> ready;  // connected, authenticated; channels being subscribed
    std::function<void(std::error_code)> lost;
    std::function<void(std::string_view channel, std::string_view payload)> message;
    /// The server dropped `channel` (an unsolicited sunsubscribe: its slot
    /// moved) or refused it (MOVED): it is no longer held here.
    std::function<void(std::string_view channel)> dropped;
  };

  shard_subscriber(uv_loop_t* loop, redis_endpoint endpoint, const redis_options& options, events e);
  ~shard_subscriber();
  shard_subscriber(const shard_subscriber&) = delete;
  shard_subscriber& operator=(const shard_subscriber&) = delete;

  /// SSUBSCRIBE `channel` (now when ready, else after connecting). Held: nothing happens.
  void add(const std::string& channel);
  /// SUNSUBSCRIBE `channel`. Not held: nothing happens.
  void remove(const std::string& channel);
  bool holds(const std::string& channel) const { return channels_.count(channel) != 0; }
  const std::set<std::string>& channels() const { return channels_; }

  bool ready() const noexcept { return state_ == state::ready; }
  const redis_endpoint& endpoint() const noexcept { return endpoint_; }
  std::uint64_t subscribe_commands = 0;
  std::uint64_t unsubscribe_commands = 0;

private:
  enum class state : std::uint8_t { waiting, connecting, handshaking, ready };
  enum class command_kind : std::uint8_t { auth, ping, subscribe, unsubscribe };
  struct pending {
    command_kind kind;
    std::size_t replies;  // confirmations still due
    std::vector<std::string> channels;
    std::uint64_t deadline;
  };
  struct socket;

  void connect();
  void on_connected(int status);
  void on_read(const char* data, std::size_t size);
  void on_reply(const redisReply& reply);
  void send(command_kind kind, const std::vector<std::string>& args, std::size_t replies,
            std::vector<std::string> channels);
  void subscribe_grouped(const std::vector<std::string>& channels);
  void fail(std::error_code why);
  void on_deadline();
  void arm_deadline();

  uv_loop_t* loop_;
  redis_endpoint endpoint_;
  redis_options options_;
  events events_;
  state state_ = state::waiting;
  socket* socket_ = nullptr;        // closes and frees itself; null while waiting
  std::set<std::string> channels_;  // held (subscribed or to be)
  std::set<std::string> leaving_;   // SUNSUBSCRIBE sent, confirmation due
  std::deque<pending> pending_;
  std::uint64_t connect_deadline_ = 0;
  std::uint64_t last_activity_ = 0;
  std::uint64_t retry_delay_ = 0;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
  uv_timer retry_timer_;
  uv_timer deadline_timer_;
};

}  // namespace claps::detail
