// wire.hpp - what claps-loadgen puts on and reads off the socket.
//
// Client WebSocket framing is written by hand here (benchmarks only): every
// outbound frame uses the all-zero masking key, which RFC 6455 allows, so a
// payload needs no XOR pass and frames can be built once and reused.
// Inbound JSON is parsed with simdjson.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace claps::loadgen {

enum class wire_protocol : std::uint8_t { claps, socketio };

struct ws_url {
  std::string host;
  std::uint16_t port = 80;
  std::string path;  // path and query, e.g. "/ws" or "/socket.io/?EIO=4&transport=websocket"
};

/// Parses ws://host:port/path. False when it is not such a URL.
bool parse_ws_url(std::string_view url, ws_url& out);

/// The HTTP/1.1 upgrade request; `query` (e.g. "user=alice") is appended to the path.
std::string upgrade_request(const ws_url& url, std::string_view query);

enum class ws_opcode : std::uint8_t {
  continuation = 0,
  text = 1,
  binary = 2,
  close = 8,
  ping = 9,
  pong = 10,
};

/// Appends one masked (all-zero key) client frame.
void append_client_frame(std::string& out, ws_opcode opcode, std::string_view payload);

struct ws_frame {
  ws_opcode opcode = ws_opcode::text;
  bool fin = true;
  std::string_view payload;
};

/// Reads one unmasked server frame from the front of `data`. Returns the bytes
/// it used, 0 when `data` holds no whole frame yet, -1 when it is not a valid
/// server frame.
long parse_server_frame(std::string_view data, ws_frame& out);

/// Outbound message payloads (without WebSocket framing).
void encode_subscribe(wire_protocol protocol, std::span<const std::string> articles, std::string& out);
void encode_clap(wire_protocol protocol, std::string_view article, std::uint64_t op_seq, std::string& out);
/// Socket.IO's namespace connect ("40") and Engine.IO's pong ("3").
inline constexpr std::string_view socketio_connect = "40";
inline constexpr std::string_view engineio_pong = "3";

enum class message_kind : std::uint8_t {
  other,          // anything this tool does not act on
  hello,          // clapsd hello, or Socket.IO's namespace connect reply
  engineio_open,  // Engine.IO "0{...}"
  engineio_ping,  // Engine.IO "2"
  counts,         // a counts frame (snapshot or tick update)
  ack,
  error,
  batch,  // clapsd ?batch=1: several messages in one frame (raw JSON each in `batch`)
  malformed,
};

struct count_item {
  std::string_view article;
  std::int64_t total = 0;
};

/// One decoded message. Views stay valid until the next decode().
struct decoded_message {
  message_kind kind = message_kind::other;
  std::vector<count_item> counts;  // kind == counts
  std::uint64_t op_seq = 0;        // ack/error: our op id "c<seq>", 0 when absent
  std::string_view article;        // ack
  std::int64_t accepted = 0;       // ack
  std::int64_t total = 0;          // ack
  std::string_view durability;     // ack: "local", "cluster"; empty when absent
  std::string_view error_code;     // error
  std::vector<std::string> batch;  // kind == batch: each message's JSON
};

class message_decoder {
public:
  void decode(wire_protocol protocol, std::string_view payload, decoded_message& out);

private:
  void decode_json(simdjson::ondemand::object object, std::string_view type, decoded_message& out);
  simdjson::ondemand::parser parser_;
  std::string padded_;  // the payload copied with simdjson's padding
};

/// Op ids are "c<seq>"; returns 0 for anything else.
std::uint64_t op_seq_from_id(std::string_view id) noexcept;

}  // namespace claps::loadgen
