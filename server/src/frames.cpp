#include "frames.hpp"

#include <simdjson.h>

#include <libwebsockets.h>

#include <charconv>

namespace claps::server {

const std::size_t frame_headroom = LWS_PRE;

namespace {

void append_int(std::string& out, std::int64_t v) {
  char buf[24];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, end);
}

void append_id_field(std::string& out, std::string_view id) {
  if (id.empty()) return;
  out += R"("id":")";
  out += id;  // op and request ids are checked against the safe alphabet first
  out += "\",";
}

// Inside an open "code" string: closes it and adds "reason" (a fixed word
// from claps::wire_reason(), never client input), leaving it open.
void append_reason_field(std::string& out, std::string_view reason) {
  if (reason.empty()) return;
  out += R"(","reason":")";
  out += reason;
}

std::string_view durability_name(durability d) { return d == durability::cluster ? "cluster" : "local"; }

}  // namespace

void begin_frame(std::string& out) { out.assign(frame_headroom, '\0'); }

void append_count_item(std::string& out, std::string_view article, std::int64_t total,
                       std::uint32_t viewers) {
  out += R"({"article":")";
  out += article;
  out += R"(","total":)";
  append_int(out, total);
  out += R"(,"viewers":)";
  append_int(out, viewers);
  out += '}';
}

void encode_update_frame(const article_update& update, std::string& out) {
  begin_frame(out);
  out += counts_prefix;
  append_count_item(out, update.article, update.total, update.viewers);
  out += counts_suffix;
}

std::string_view update_item(std::string_view encoded) noexcept {
  const std::size_t skip = frame_headroom + counts_prefix.size();
  return encoded.substr(skip, encoded.size() - skip - counts_suffix.size());
}

void encode_hello(std::string& out, std::string_view user, int tick_ms, int cap, std::string_view node) {
  begin_frame(out);
  out += R"({"type":"hello","protocol":1,"user":")";
  out += user;
  out += R"(","tick_ms":)";
  append_int(out, tick_ms);
  out += R"(,"cap":)";
  append_int(out, cap);
  if (!node.empty()) {
    out += R"(,"node":")";
    out += node;  // --node-id is checked against the id alphabet at start-up
    out += '"';
  }
  out += '}';
}

void encode_snapshot(std::string& out, std::span<const snapshot> snapshots, std::string_view id) {
  begin_frame(out);
  out += R"({"type":"counts",)";
  append_id_field(out, id);
  out += R"("snapshot":true,"counts":[)";
  bool first = true;
  for (const auto& s : snapshots) {
    if (!first) out += ',';
    first = false;
    append_count_item(out, s.article, s.total, s.viewers);
    out.pop_back();
    out += R"(,"mine":)";
    append_int(out, s.mine);
    if (!s.global) out += R"(,"partial":true)";
    out += '}';
  }
  out += counts_suffix;
}

namespace {

// The fields an ack frame and a REST result share, through the closing brace.
void append_result_fields(std::string& out, const op_result& r) {
  out += R"("article":")";
  out += r.article;
  out += R"(","accepted":)";
  append_int(out, r.accepted);
  out += R"(,"total":)";
  append_int(out, r.total);
  out += R"(,"mine":)";
  append_int(out, r.mine);
  if (r.replayed) out += R"(,"replayed":true)";
  out += R"(,"durability":")";
  out += durability_name(r.level);
  out += "\"}";
}

}  // namespace

void encode_ack(std::string& out, const op_result& r, std::string_view op_id) {
  begin_frame(out);
  out += R"({"type":"ack",)";
  append_id_field(out, op_id);
  append_result_fields(out, r);
}

std::string_view utf8_prefix(std::string_view text, std::size_t max_bytes) noexcept {
  if (text.size() <= max_bytes) return text;
  std::size_t end = max_bytes;
  // Back off over continuation bytes (10xxxxxx) to the lead byte of the
  // character the cut would split, and cut before it.
  while (end > 0 && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) --end;
  return text.substr(0, end);
}

void encode_error(std::string& out, std::string_view code, std::string_view message, std::string_view id,
                  std::string_view reason) {
  begin_frame(out);
  out += R"({"type":"error","code":")";
  out += code;
  append_reason_field(out, reason);
  out += R"(","message":)";
  // A text frame must be valid UTF-8, or the client drops the connection:
  // a message that quotes input is checked once more.
  if (!simdjson::validate_utf8(message.data(), message.size())) message = "the message quoted invalid text";
  append_json_string(out, message);
  if (!id.empty()) {
    out += R"(,"id":")";
    out += id;
    out += '"';
  }
  out += '}';
}

std::string rest_result_body(const op_result& r) {
  std::string out = "{";
  append_result_fields(out, r);
  return out;
}

std::string rest_error_body(std::string_view code, std::string_view message, std::string_view reason) {
  std::string out = R"({"code":")";
  out += code;
  append_reason_field(out, reason);
  out += R"(","message":)";
  if (!simdjson::validate_utf8(message.data(), message.size())) message = "the message quoted invalid text";
  append_json_string(out, message);
  out += '}';
  return out;
}

void append_json_string(std::string& out, std::string_view text) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
    case '"': out += "\\\""; break;
    case '\\': out += "\\\\"; break;
    case '\n': out += "\\n"; break;
    case '\r': out += "\\r"; break;
    case '\t': out += "\\t"; break;
    default:
      if (c < 0x20) {
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 15];
      } else {
        out += ch;
      }
    }
  }
  out += '"';
}

}  // namespace claps::server
