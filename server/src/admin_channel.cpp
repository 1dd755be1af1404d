#include "admin_channel.hpp"

#include "frames.hpp"

#include <simdjson.h>

#include <algorithm>

namespace claps::server {

namespace {
std::string error_frame(std::string_view code, std::string_view message) {
  std::string out = R"({"type":"error","code":")";
  out += code;
  out += R"(","message":)";
  append_json_string(out, message);
  out += '}';
  return out;
}
}  // namespace

int admin_channel::established(lws* wsi, std::uint64_t now_ms) {
  client c;
  c.last_heard_ms = now_ms;
  c.last_ping_ms = now_ms;
  if (sockets() >= limits_.max_sockets) {
    // Told why, then closed (1013, try again later) once the frame is out.
    c.refused = true;
    ++refused_;
    client& added = clients_.emplace(wsi, std::move(c)).first->second;
    queue(wsi, added,
          error_frame("too_many_admin_subscribers",
                      "this node serves at most " + std::to_string(limits_.max_sockets) +
                          " admin sockets (--max-admin-subscribers); close another admin page"));
    return 0;
  }
  clients_.emplace(wsi, std::move(c));
  return 0;
}

void admin_channel::pong(lws* wsi, std::uint64_t now_ms) {
  if (client* c = find(wsi)) c->last_heard_ms = now_ms;
}

void admin_channel::sweep(std::uint64_t now_ms) {
  for (auto& [wsi, c] : clients_) {
    if (c.dropped) continue;
    const std::uint64_t silent = now_ms - std::min(now_ms, c.last_heard_ms);
    if (silent >= limits_.idle_ms) {
      c.dropped = true;
      c.pending.clear();
      lws_set_timeout(wsi, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
      // Outside lws's callbacks a new timeout is noticed at lws's next wakeup.
      lws_cancel_service(lws_get_context(wsi));
    } else if (silent >= limits_.ping_ms && now_ms - std::min(now_ms, c.last_ping_ms) >= limits_.ping_ms &&
               !lws_partial_buffered(wsi)) {
      c.last_ping_ms = now_ms;
      // A payload: lws 4.1 reports no LWS_CALLBACK_RECEIVE_PONG for an empty pong.
      unsigned char frame[LWS_PRE + 1];
      frame[LWS_PRE] = 'p';
      lws_write(wsi, frame + LWS_PRE, 1, LWS_WRITE_PING);
    }
  }
}

admin_channel::client* admin_channel::find(lws* wsi) {
  const auto it = clients_.find(wsi);
  return it == clients_.end() ? nullptr : &it->second;
}

std::size_t admin_channel::subscribers() const noexcept {
  std::size_t n = 0;
  for (const auto& [wsi, c] : clients_) n += c.subscribed ? 1 : 0;
  return n;
}

std::string admin_channel::on_message(client& c, std::string_view in, lws* wsi) {
  if (c.skipping) {  // the rest of a message already refused as too large
    c.skipping = !lws_is_final_fragment(wsi);
    return {};
  }
  if (c.partial.size() + in.size() > limits_.max_message_bytes) {
    c.partial.clear();
    c.skipping = !lws_is_final_fragment(wsi);
    return error_frame("message_too_large", "admin messages are small: {\"type\":\"subscribe_admin\"}");
  }
  c.partial.append(in);
  if (!lws_is_final_fragment(wsi)) return {};
  std::string text = std::move(c.partial);
  c.partial.clear();
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string_view type;
  if (parser.parse(text).get(doc) || doc["type"].get(type))
    return error_frame("bad_request", "send {\"type\":\"subscribe_admin\"}");
  if (type == "subscribe_admin") {
    c.subscribed = true;
    return std::string(subscribed_marker);
  }
  if (type == "unsubscribe_admin") {
    c.subscribed = false;
    return {};
  }
  return error_frame("bad_request", "the admin socket takes subscribe_admin and unsubscribe_admin");
}

void admin_channel::queue(lws* wsi, client& c, std::string_view frame) {
  c.pending.assign(LWS_PRE, '\0');
  c.pending += frame;
  lws_callback_on_writable(wsi);
}

int admin_channel::writeable(lws* wsi) {
  client* c = find(wsi);
  if (c == nullptr) return 0;
  // Earlier bytes still buffered in lws: wait, keeping only the newest frame.
  if (lws_partial_buffered(wsi)) {
    if (c->pending.size() > LWS_PRE || (c->refused && !c->refused_closing)) lws_callback_on_writable(wsi);
    return 0;
  }
  if (c->pending.size() > LWS_PRE) {
    const std::size_t len = c->pending.size() - LWS_PRE;
    const int n =
        lws_write(wsi, reinterpret_cast<unsigned char*>(c->pending.data()) + LWS_PRE, len, LWS_WRITE_TEXT);
    c->pending.clear();
    if (n < 0) return -1;
    // A refused socket closes on the next call, once its error frame is out.
    if (c->refused) lws_callback_on_writable(wsi);
    return 0;
  }
  if (!c->refused || c->refused_closing) return 0;
  // lws 4.1 on libuv drops a socket without a close frame when a writeable
  // callback returns -1 (see ws_session::send_close_frame): 1013, try again
  // later, written here; lws closes when the peer answers, or at the timeout.
  static constexpr std::string_view reason = "too many admin subscribers";
  std::string frame(LWS_PRE, '\0');
  frame += static_cast<char>(1013 >> 8);
  frame += static_cast<char>(1013 & 0xff);
  frame += reason;
  lws_write(wsi, reinterpret_cast<unsigned char*>(frame.data()) + LWS_PRE, frame.size() - LWS_PRE,
            static_cast<lws_write_protocol>(4));  // LWS_WRITE_CLOSE, as ws_session writes it
  c->refused_closing = true;
  lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, 5);
  return 0;
}

void admin_channel::closed(lws* wsi) {
  const auto it = clients_.find(wsi);
  if (it == clients_.end()) return;
  if (it->second.refused) --refused_;
  clients_.erase(it);
}

void admin_channel::broadcast(const std::string& frame) {
  for (auto& [wsi, c] : clients_)
    if (c.subscribed) queue(wsi, c, frame);
}

}  // namespace claps::server
