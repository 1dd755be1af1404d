// ws_service.hpp - protocol v1 over WebSocket at /ws: admission (path,
// limits, Origin, identity), sessions, and the client messages.
#pragma once

#include "origin.hpp"
#include "service_deps.hpp"
#include "ws_session.hpp"

#include <libwebsockets.h>

#include <memory>
#include <span>
#include <string_view>
#include <string>
#include <unordered_map>
#include <vector>

namespace claps::server {

class ws_service {
public:
  explicit ws_service(service_deps deps);
  ~ws_service();
  ws_service(const ws_service&) = delete;
  ws_service& operator=(const ws_service&) = delete;

  /// LWS_CALLBACK_HTTP_CONFIRM_UPGRADE: 0 to allow, 1 after writing a refusal.
  int confirm_upgrade(lws* wsi, const char* upgrade);
  int established(lws* wsi, void* user);
  int receive(lws* wsi, void* user, const char* in, std::size_t len);
  int writeable(void* user);
  /// LWS_CALLBACK_RECEIVE_PONG.
  void pong(void* user);
  /// Once a second: pings peers silent for --ping-interval-s and drops those
  /// silent for --idle-timeout-s. One O(N) walk instead of lws's per-connection
  /// validity timers, whose sorted-list inserts cost O(N) each.
  void sweep();
  /// LWS_CALLBACK_WS_PEER_INITIATED_CLOSE and LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL:
  /// lws closes the connection, but CLOSED may come seconds later (the close
  /// handshake), and until then lws would still send what the session writes
  /// and deliver the peer's messages.
  void closing(void* user);
  void closed(lws* wsi, void* user);
  /// LWS_CALLBACK_WSI_DESTROY: forget an upgrade that never completed.
  void destroyed(lws* wsi);

  /// Shutdown: up to `at_most` sessions not yet leaving close with 1001 once
  /// their queued output is out; returns how many were told to.
  std::size_t close_when_flushed(std::size_t at_most);
  std::size_t sessions() const noexcept { return sessions_.size(); }

private:
  // The wsi's user pointer is the session itself (lws_set_wsi_user), so lws
  // allocates no per-connection user space.
  static ws_session* session_of(void* user) { return static_cast<ws_session*>(user); }
  int refuse(lws* wsi, refusal why, unsigned status, std::string_view code, std::string_view message);
  void handle(ws_session& s, std::string_view text, bool binary);
  void subscribe(ws_session& s);
  void finish_subscribe(ws_session& s, std::span<const std::string_view> articles, bool reading,
                        std::string_view id);
  void unsubscribe(ws_session& s);
  void clap_or_undo(ws_session& s);
  void send_error(ws_session& s, std::string_view code, std::string_view message, std::string_view id);
  void send_error(ws_session& s, std::error_code ec, std::string_view why, std::string_view id);
  /// Arms one uv_idle for the end of this loop pass (it keeps poll from
  /// sleeping and runs before the loop next waits), then flush_replies().
  void arm_reply_flush();
  void flush_replies();

  struct pending_upgrade {
    std::string user;
    ip_address address;
    bool batch = false;  // ?batch=1
  };

  service_deps deps_;
  session_limits limits_;
  origin_policy origins_;
  std::unordered_map<lws*, pending_upgrade> upgrading_;  // identity resolved at handshake
  // A message's worth of the user's rate limit, or an error frame.
  bool take_token(ws_session& s);
  reply_flush_list flushes_;
  // The idle handle of the armed flush: made per pass and closed after it,
  // so no handle outlives the loop's last pass (clapsd closes the loop).
  uv_idle_t* flush_handle_ = nullptr;
  // Every open session; each knows its index (ws_session::slot) for an O(1)
  // swap-remove. A vector, not a map by id: 8 bytes per connection, not ~40.
  std::vector<std::unique_ptr<ws_session>> sessions_;
  client_message message_;           // reused
  std::vector<snapshot> snapshots_;  // reused
  std::string frame_;                // reused for replies built then copied
};

}  // namespace claps::server
