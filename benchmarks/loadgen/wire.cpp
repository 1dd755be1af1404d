#include "wire.hpp"

#include <charconv>
#include <cstring>

namespace claps::loadgen {

bool parse_ws_url(std::string_view url, ws_url& out) {
  constexpr std::string_view scheme = "ws://";
  if (!url.starts_with(scheme)) return false;
  url.remove_prefix(scheme.size());
  const auto slash = url.find('/');
  std::string_view authority = url.substr(0, slash);
  out.path = slash == std::string_view::npos ? "/" : std::string(url.substr(slash));
  const auto colon = authority.rfind(':');
  if (colon == std::string_view::npos) {
    out.host = std::string(authority);
    out.port = 80;
  } else {
    out.host = std::string(authority.substr(0, colon));
    const auto port_text = authority.substr(colon + 1);
    unsigned port = 0;
    auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (ec != std::errc{} || end != port_text.data() + port_text.size() || port == 0 || port > 65535)
      return false;
    out.port = static_cast<std::uint16_t>(port);
  }
  return !out.host.empty();
}

std::string upgrade_request(const ws_url& url, std::string_view query) {
  std::string request = "GET ";
  request += url.path;
  if (!query.empty()) {
    request += url.path.find('?') == std::string::npos ? '?' : '&';
    request += query;
  }
  request += " HTTP/1.1\r\nHost: ";
  request += url.host;
  request += ':';
  request += std::to_string(url.port);
  // The key is fixed: the tool does not check Sec-WebSocket-Accept, only the 101.
  request +=
      "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  return request;
}

void append_client_frame(std::string& out, ws_opcode opcode, std::string_view payload) {
  char header[14];
  std::size_t n = 0;
  header[n++] = static_cast<char>(0x80 | static_cast<std::uint8_t>(opcode));
  const std::size_t len = payload.size();
  if (len < 126) {
    header[n++] = static_cast<char>(0x80 | len);
  } else if (len <= 0xffff) {
    header[n++] = static_cast<char>(0x80 | 126);
    header[n++] = static_cast<char>(len >> 8);
    header[n++] = static_cast<char>(len & 0xff);
  } else {
    header[n++] = static_cast<char>(0x80 | 127);
    for (int shift = 56; shift >= 0; shift -= 8) header[n++] = static_cast<char>((len >> shift) & 0xff);
  }
  // Masking key 0: the masked payload equals the payload.
  for (int i = 0; i < 4; ++i) header[n++] = 0;
  out.append(header, n);
  out.append(payload);
}

long parse_server_frame(std::string_view data, ws_frame& out) {
  if (data.size() < 2) return 0;
  const auto b0 = static_cast<std::uint8_t>(data[0]);
  const auto b1 = static_cast<std::uint8_t>(data[1]);
  if (b1 & 0x80) return -1;  // servers never mask
  std::size_t header = 2;
  std::uint64_t len = b1 & 0x7f;
  if (len == 126) {
    if (data.size() < 4) return 0;
    len = (std::uint64_t{static_cast<std::uint8_t>(data[2])} << 8) | static_cast<std::uint8_t>(data[3]);
    header = 4;
  } else if (len == 127) {
    if (data.size() < 10) return 0;
    len = 0;
    for (int i = 0; i < 8; ++i) len = (len << 8) | static_cast<std::uint8_t>(data[2 + i]);
    header = 10;
    if (len > (std::uint64_t{1} << 32)) return -1;
  }
  if (data.size() < header + len) return 0;
  out.fin = (b0 & 0x80) != 0;
  out.opcode = static_cast<ws_opcode>(b0 & 0x0f);
  out.payload = data.substr(header, len);
  return static_cast<long>(header + len);
}

void encode_subscribe(wire_protocol protocol, std::span<const std::string> articles, std::string& out) {
  // Ids come from this tool ("a<k>") and need no escaping.
  out.clear();
  if (protocol == wire_protocol::claps) out += R"({"type":"subscribe","reading":true,"id":"s","articles":[)";
  else out += R"(42["subscribe",{"reading":true,"articles":[)";
  for (std::size_t i = 0; i < articles.size(); ++i) {
    if (i) out += ',';
    out += '"';
    out += articles[i];
    out += '"';
  }
  out += protocol == wire_protocol::claps ? "]}" : "]}]";
}

void encode_clap(wire_protocol protocol, std::string_view article, std::uint64_t op_seq, std::string& out) {
  out.clear();
  out += protocol == wire_protocol::claps ? R"({"type":"clap","count":1,"article":")"
                                          : R"(42["clap",{"count":1,"article":")";
  out += article;
  out += R"(","id":"c)";
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, op_seq);
  (void)ec;
  out.append(digits, end);
  out += protocol == wire_protocol::claps ? "\"}" : "\"}]";
}

std::uint64_t op_seq_from_id(std::string_view id) noexcept {
  if (id.size() < 2 || id[0] != 'c') return 0;
  std::uint64_t seq = 0;
  auto [end, ec] = std::from_chars(id.data() + 1, id.data() + id.size(), seq);
  if (ec != std::errc{} || end != id.data() + id.size()) return 0;
  return seq;
}

void message_decoder::decode(wire_protocol protocol, std::string_view payload, decoded_message& out) {
  out.kind = message_kind::other;
  out.counts.clear();
  out.op_seq = 0;
  out.article = {};
  out.accepted = out.total = 0;
  out.durability = {};
  out.error_code = {};

  std::string_view json = payload;
  if (protocol == wire_protocol::socketio) {
    // Engine.IO v4 packet type, then (for "4" message) Socket.IO v5 packet type.
    if (payload.empty()) {
      out.kind = message_kind::malformed;
      return;
    }
    switch (payload[0]) {
    case '0': out.kind = message_kind::engineio_open; return;
    case '2': out.kind = message_kind::engineio_ping; return;
    case '4': break;
    default: return;
    }
    if (payload.size() < 2) {
      out.kind = message_kind::malformed;
      return;
    }
    if (payload[1] == '0') {
      out.kind = message_kind::hello;
      return;
    }  // namespace connected
    if (payload[1] == '4') {
      out.kind = message_kind::error;
      out.error_code = "connect_error";
      return;
    }
    if (payload[1] != '2') return;
    json = payload.substr(2);
  }

  padded_.reserve(json.size() + simdjson::SIMDJSON_PADDING);
  padded_.assign(json);
  simdjson::padded_string_view view(padded_.data(), padded_.size(), padded_.capacity());
  simdjson::ondemand::document doc;
  if (parser_.iterate(view).get(doc)) {
    out.kind = message_kind::malformed;
    return;
  }

  if (protocol == wire_protocol::claps) {
    simdjson::ondemand::object object;
    std::string_view type;
    if (doc.get_object().get(object) || object["type"].get_string().get(type)) {
      out.kind = message_kind::malformed;
      return;
    }
    decode_json(object, type, out);
    return;
  }
  // Socket.IO event: ["name", {...}]
  simdjson::ondemand::array array;
  if (doc.get_array().get(array)) {
    out.kind = message_kind::malformed;
    return;
  }
  auto it = array.begin();
  if (it == array.end()) {
    out.kind = message_kind::malformed;
    return;
  }
  std::string_view name;
  if ((*it).get_string().get(name)) {
    out.kind = message_kind::malformed;
    return;
  }
  ++it;
  simdjson::ondemand::object object;
  if (it == array.end() || (*it).get_object().get(object)) {
    out.kind = message_kind::malformed;
    return;
  }
  decode_json(object, name, out);
}

void message_decoder::decode_json(simdjson::ondemand::object object, std::string_view type,
                                  decoded_message& out) {
  if (type == "counts") {
    simdjson::ondemand::array items;
    if (object["counts"].get_array().get(items)) {
      out.kind = message_kind::malformed;
      return;
    }
    for (auto element : items) {
      simdjson::ondemand::object item;
      count_item c;
      if (element.get_object().get(item) || item["article"].get_string().get(c.article) ||
          item["total"].get_int64().get(c.total)) {
        out.kind = message_kind::malformed;
        return;
      }
      out.counts.push_back(c);
    }
    out.kind = message_kind::counts;
  } else if (type == "ack") {
    std::string_view id;
    if (object["id"].get_string().get(id) || object["article"].get_string().get(out.article) ||
        object["accepted"].get_int64().get(out.accepted) || object["total"].get_int64().get(out.total)) {
      out.kind = message_kind::malformed;
      return;
    }
    out.op_seq = op_seq_from_id(id);
    if (object["durability"].get_string().get(out.durability)) out.durability = {};
    out.kind = message_kind::ack;
  } else if (type == "error") {
    if (object["code"].get_string().get(out.error_code)) out.error_code = "unknown";
    std::string_view id;
    if (!object["id"].get_string().get(id)) out.op_seq = op_seq_from_id(id);
    out.kind = message_kind::error;
  } else if (type == "batch") {
    simdjson::ondemand::array items;
    if (object["messages"].get_array().get(items)) {
      out.kind = message_kind::malformed;
      return;
    }
    out.batch.clear();
    for (auto element : items) {
      simdjson::ondemand::object item;
      std::string_view raw;
      if (element.get_object().get(item) || item.raw_json().get(raw)) {
        out.kind = message_kind::malformed;
        return;
      }
      out.batch.emplace_back(raw);
    }
    out.kind = message_kind::batch;
  } else if (type == "hello") {
    out.kind = message_kind::hello;
  }
}

}  // namespace claps::loadgen
