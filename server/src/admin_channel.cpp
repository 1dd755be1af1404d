#include "admin_channel.hpp"

#include "frames.hpp"

#include <simdjson.h>

namespace claps::server {

int admin_channel::established(lws* wsi) {
  clients_.emplace(wsi, client{});
  return 0;
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

std::string admin_channel::on_message(client& c, std::string_view in, lws* wsi) {
  if (c.partial.size() + in.size() > max_message_bytes_) {
    c.partial.clear();
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
  if (c == nullptr || c->pending.size() <= LWS_PRE) return 0;
  // Earlier bytes still buffered in lws: wait, keeping only the newest frame.
  if (lws_partial_buffered(wsi)) {
    lws_callback_on_writable(wsi);
    return 0;
  }
  const std::size_t len = c->pending.size() - LWS_PRE;
  const int n =
      lws_write(wsi, reinterpret_cast<unsigned char*>(c->pending.data()) + LWS_PRE, len, LWS_WRITE_TEXT);
  c->pending.clear();
  return n < 0 ? -1 : 0;
}

void admin_channel::closed(lws* wsi) { clients_.erase(wsi); }

void admin_channel::broadcast(const std::string& frame) {
  for (auto& [wsi, c] : clients_)
    if (c.subscribed) queue(wsi, c, frame);
}

}  // namespace claps::server
