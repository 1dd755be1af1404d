// frames.hpp - outbound JSON of protocol v1 (docs/protocol.md).
//
// Outbound frames have fixed shapes and ids are restricted to a safe
// alphabet, so they are written directly. Every frame builder writes
// LWS_PRE bytes of headroom first, because lws_write() puts the WebSocket
// header in front of the payload: the payload starts at data() + LWS_PRE.
#pragma once

#include <claps/engine.hpp>

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace claps::server {

/// Headroom lws_write() needs before a payload (LWS_PRE).
extern const std::size_t frame_headroom;

inline constexpr std::string_view counts_prefix = R"({"type":"counts","counts":[)";
inline constexpr std::string_view counts_suffix = "]}";
/// Several replies to one connection in one frame (only for clients that
/// connected with ?batch=1): {"type":"batch","messages":[{...},{...}]}, each
/// message exactly the frame it would have been alone, in order.
inline constexpr std::string_view batch_prefix = R"({"type":"batch","messages":[)";
inline constexpr std::string_view batch_suffix = "]}";

/// Clears `out` to just the headroom.
void begin_frame(std::string& out);
/// The payload of a frame built with begin_frame().
inline std::string_view payload(std::string_view frame) { return frame.substr(frame_headroom); }

/// {"article":"a1","total":160,"viewers":4}
void append_count_item(std::string& out, std::string_view article, std::int64_t total, std::uint32_t viewers);

/// The complete one-article tick frame with headroom:
/// {"type":"counts","counts":[{"article":"a1","total":160,"viewers":4}]}
void encode_update_frame(const article_update& update, std::string& out);
/// The item inside a frame made by encode_update_frame().
std::string_view update_item(std::string_view encoded) noexcept;

/// {"type":"hello","protocol":1,"user":"alice","tick_ms":25,"cap":50,"node":"host-3"}
/// ("node" only when `node` is not empty: the --node-id of this process).
void encode_hello(std::string& out, std::string_view user, int tick_ms, int cap, std::string_view node = {});

/// Snapshot reply: {"type":"counts","id":"s1","snapshot":true,"counts":[{...,"mine":3}]}
void encode_snapshot(std::string& out, std::span<const snapshot> snapshots, std::string_view id);

/// {"type":"ack","id":"op-1","article":"a1","accepted":3,"total":159,"mine":10,
///  "durability":"local"} ("id" only when the op had one, "replayed":true on a replay)
void encode_ack(std::string& out, const op_result& result, std::string_view op_id);

/// {"type":"error","code":"bad_request","message":"...","id":"op-1"}, with
/// "reason" after "code" when `reason` is not empty (claps::wire_reason()).
void encode_error(std::string& out, std::string_view code, std::string_view message, std::string_view id,
                  std::string_view reason = {});

// ---- REST bodies (no headroom) ----

/// {"article":"a1","accepted":2,"total":158,"mine":2,"durability":"local"}
std::string rest_result_body(const op_result& result);
/// {"code":"...","message":"..."}, with "reason" after "code" when not empty.
std::string rest_error_body(std::string_view code, std::string_view message, std::string_view reason = {});

/// Appends `text` as a JSON string literal with quotes and escapes.
void append_json_string(std::string& out, std::string_view text);

/// At most `max_bytes` of `text`, cut before a character that would not fit
/// whole, so that quoting client input never splits a UTF-8 sequence.
std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) noexcept;

}  // namespace claps::server
