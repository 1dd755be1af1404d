// admin_channel.hpp - the WebSockets of the admin listener (/admin/ws): a
// client sends {"type":"subscribe_admin"} and then gets the newest `admin`
// frame about once a second. A socket that cannot keep up keeps only the
// newest frame. Admission (the token rule) is decided before the upgrade;
// past `max_sockets` admin sockets, a new one gets an error frame and is
// closed. Silent peers are pinged and dropped like client sockets.
#pragma once

#include <libwebsockets.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>

namespace claps::server {

class admin_channel {
public:
  struct limits {
    std::size_t max_message_bytes = 4096;
    std::size_t max_sockets = 16;   // --max-admin-subscribers
    std::uint64_t ping_ms = 25000;  // --ping-interval-s
    std::uint64_t idle_ms = 35000;  // --idle-timeout-s
  };
  explicit admin_channel(limits l) : limits_(l) {}
  /// LWS_CALLBACK_ESTABLISHED / RECEIVE / RECEIVE_PONG / SERVER_WRITEABLE / CLOSED of an admin socket.
  int established(lws* wsi, std::uint64_t now_ms);
  /// `frame_now` makes the frame a new subscriber gets at once.
  template <class MakeFrame>
  int receive(lws* wsi, const char* in, std::size_t len, std::uint64_t now_ms, MakeFrame&& frame_now) {
    client* c = find(wsi);
    if (c == nullptr) return -1;
    if (c->refused) return 0;  // closing after its error frame
    c->last_heard_ms = now_ms;
    const std::string reply = on_message(*c, std::string_view(in, len), wsi);
    if (reply == subscribed_marker) queue(wsi, *c, frame_now());
    else if (!reply.empty()) queue(wsi, *c, reply);
    return 0;
  }
  void pong(lws* wsi, std::uint64_t now_ms);
  int writeable(lws* wsi);
  void closed(lws* wsi);
  /// Once a second: pings admin sockets silent for ping_ms, drops those
  /// silent for idle_ms.
  void sweep(std::uint64_t now_ms);

  /// Sends `frame` to every subscribed socket (replacing an unsent one).
  void broadcast(const std::string& frame);
  /// Admin sockets open, not counting those refused past max_sockets.
  std::size_t sockets() const noexcept { return clients_.size() - refused_; }
  std::size_t subscribers() const noexcept;

private:
  struct client {
    bool subscribed = false;
    bool refused = false;          // over max_sockets: closed once its error frame is out
    bool refused_closing = false;  // its close frame is written
    bool dropped = false;          // idle: being killed
    bool skipping = false;         // inside a message refused as too large
    std::uint64_t last_heard_ms = 0;
    std::uint64_t last_ping_ms = 0;
    std::string pending;  // LWS_PRE bytes, then the frame; empty when nothing waits
    std::string partial;  // a message arriving in fragments
  };
  static constexpr std::string_view subscribed_marker = "\x01subscribed";
  client* find(lws* wsi);
  /// The reply to a complete or partial message: empty, subscribed_marker, or an error frame.
  std::string on_message(client& c, std::string_view in, lws* wsi);
  void queue(lws* wsi, client& c, std::string_view frame);
  limits limits_;
  std::size_t refused_ = 0;
  std::unordered_map<lws*, client> clients_;
};

}  // namespace claps::server
