// Redis Cluster routing for redis_client: the slot map (CLUSTER SLOTS), one
// command connection per master, and MOVED/ASK/TRYAGAIN/CLUSTERDOWN handled
// within each request's deadline. Everything on the caller's loop.
//
// Discovery asks a ready master link, or else a probe connection to a seed
// or a node seen in an earlier map (any role), for CLUSTER SLOTS. The map is
// asked again after a redirect, when a master link is lost (a failover
// promotes a replica at another address), every 250 ms while not ready and
// every 5 s while ready (new masters).
#pragma once

#include "connection.hpp"
#include "uv_timer.hpp"

#include <claps/redis.hpp>

#include <uv.h>

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace claps::detail {

inline constexpr std::size_t cluster_slot_count = 16384;

/// One range of a CLUSTER SLOTS reply.
struct slot_range {
  std::uint16_t first = 0, last = 0;
  redis_endpoint master;
  std::vector<redis_endpoint> replicas;
};

/// Reads a CLUSTER SLOTS reply (pure; fuzzed by fuzz/redis_reply.cpp). A node
/// given with an empty host is `asked`'s host (what Redis means by it).
/// False, with `out` unchanged, for anything not of that shape: ranges
/// outside 0-16383 or reversed, ports outside 1-65535.
bool read_cluster_slots(const redis_reply& reply, const redis_endpoint& asked, std::vector<slot_range>& out);

/// What a cluster error reply asks of the client.
enum class redirect { none, moved, ask, tryagain, clusterdown };
/// Reads "MOVED <slot> <host>:<port>" and "ASK ..." (slot and `to` set),
/// "TRYAGAIN ..." and "CLUSTERDOWN ..."; anything else is `none`.
redirect read_redirect(std::string_view error, std::uint16_t& slot, redis_endpoint& to);

class cluster_router : public std::enable_shared_from_this<cluster_router> {
public:
  struct events {
    std::function<void()> ready;                // map complete and every master link ready
    std::function<void(std::error_code)> lost;  // was ready, is not any more
    std::function<void()> map_changed;          // some slot has another master now
    std::function<void()> map_checked;          // a CLUSTER SLOTS answer was read (changed or not)
  };

  static std::shared_ptr<cluster_router> create(uv_loop_t* loop, redis_options options);
  cluster_router(const cluster_router&) = delete;
  cluster_router& operator=(const cluster_router&) = delete;
  ~cluster_router();

  /// Observers: the client's (set once) and the bus's.
  std::uint64_t add_listener(events e);
  void remove_listener(std::uint64_t id);

  /// Closes every link; outstanding and parked requests fail with store_disconnected.
  void close();

  /// Sends `args` to the master of `slot`. Not ready: store_disconnected and
  /// `done` never runs; otherwise `done` runs exactly once, from the loop.
  std::error_code send(std::uint16_t slot, std::span<const std::string_view> args, raw_handler done);

  bool ready() const noexcept { return ready_; }
  /// The master owning `slot` in the current map, or null.
  const redis_endpoint* master_of(std::uint16_t slot) const noexcept;
  std::vector<redis_endpoint> masters() const;
  /// Asks for the slot map again soon (the bus after an unsolicited sunsubscribe).
  void refresh_soon();
  redis_client_stats stats() const;
  const redis_options& options() const noexcept { return options_; }

private:
  struct routed;
  struct link {
    redis_endpoint endpoint;
    connection* conn = nullptr;  // deletes itself after close()
  };

  cluster_router(uv_loop_t* loop, redis_options options);
  void start();
  link& link_to(const redis_endpoint& endpoint);
  void dispatch(const std::shared_ptr<routed>& r, const redis_endpoint* ask);
  void on_reply(const std::shared_ptr<routed>& r, std::error_code ec, redisReply* reply);
  void park(const std::shared_ptr<routed>& r, std::uint64_t delay_ms, const redis_endpoint* ask);
  void on_retry_timer();
  void on_tick();
  void ask_for_map();
  void on_map(const redis_endpoint& asked, std::error_code ec, redisReply* reply);
  void apply_map(const std::vector<slot_range>& ranges);
  void update_ready(std::error_code why);
  void close_link(const std::string& key);
  void notify(const std::function<void(const events&)>& fn);

  uv_loop_t* loop_;
  redis_options options_;
  std::map<std::uint64_t, events> listeners_;
  std::uint64_t next_listener_ = 1;
  std::map<std::string, link> links_;                     // "host:port" -> link
  std::vector<redis_endpoint> masters_;                   // index -> endpoint
  std::array<std::int16_t, cluster_slot_count> owner_{};  // slot -> index into masters_, -1 unknown
  std::vector<redis_endpoint> candidates_;                // seeds, then nodes of the last map
  std::size_t next_candidate_ = 0;
  connection* probe_ = nullptr;  // asks a seed when no master link is ready
  std::uint64_t probe_started_ = 0;
  std::uint64_t map_asked_at_ = 0;  // uv_now of the outstanding question, 0 if none
  std::uint64_t map_read_at_ = 0;
  bool refresh_wanted_ = true;
  bool ready_ = false;
  bool closed_ = false;
  std::multimap<std::uint64_t, std::pair<std::shared_ptr<routed>, redis_endpoint>> parked_;
  uv_timer tick_timer_;
  uv_timer retry_timer_;
  redis_client_stats stats_;    // router counters and transitions
  redis_client_stats retired_;  // per-link counters of closed links
};

}  // namespace claps::detail
