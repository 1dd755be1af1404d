// admin_channel.hpp - the WebSockets of the admin listener (/admin/ws): a
// client sends {"type":"subscribe_admin"} and then gets the newest `admin`
// frame about once a second. A socket that cannot keep up keeps only the
// newest frame. Admission (the token rule) is decided before the upgrade.
#pragma once

#include <libwebsockets.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <unordered_map>

namespace claps::server {

class admin_channel {
public:
  explicit admin_channel(std::size_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}
  /// LWS_CALLBACK_ESTABLISHED / RECEIVE / SERVER_WRITEABLE / CLOSED of an admin socket.
  int established(lws* wsi);
  /// `frame_now` makes the frame a new subscriber gets at once.
  template <class MakeFrame>
  int receive(lws* wsi, const char* in, std::size_t len, MakeFrame&& frame_now) {
    client* c = find(wsi);
    if (c == nullptr) return -1;
    const std::string reply = on_message(*c, std::string_view(in, len), wsi);
    if (reply == subscribed_marker) queue(wsi, *c, frame_now());
    else if (!reply.empty()) queue(wsi, *c, reply);
    return 0;
  }
  int writeable(lws* wsi);
  void closed(lws* wsi);

  /// Sends `frame` to every subscribed socket (replacing an unsent one).
  void broadcast(const std::string& frame);
  std::size_t sockets() const noexcept { return clients_.size(); }
  std::size_t subscribers() const noexcept;

private:
  struct client {
    bool subscribed = false;
    std::string pending;  // LWS_PRE bytes, then the frame; empty when nothing waits
    std::string partial;  // a message arriving in fragments
  };
  static constexpr std::string_view subscribed_marker = "\x01subscribed";
  client* find(lws* wsi);
  /// The reply to a complete or partial message: empty, subscribed_marker, or an error frame.
  std::string on_message(client& c, std::string_view in, lws* wsi);
  void queue(lws* wsi, client& c, std::string_view frame);
  std::size_t max_message_bytes_;
  std::unordered_map<lws*, client> clients_;
};

}  // namespace claps::server
