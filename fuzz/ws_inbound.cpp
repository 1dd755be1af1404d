// Fuzzes what a client sends over the WebSocket (inbound_parser::parse_message)
// or as a REST clap body (parse_clap_body), and the error frames that quote it.
//
// Properties:
// - a message parses to a message or to bad_request/invalid_count with a
//   non-empty reason; an id, when set, is a valid op id; a clap's count is 1..2^31-1;
// - parsing is a function of the text: the reused parser answers the same twice;
// - every error frame the server would send for it (the parser's reason, the
//   invalid-article message quoting an article, the raw input as a message)
//   is valid UTF-8 JSON whose fields read back as written;
// - utf8_prefix() cuts a prefix of at most the asked size, at a character
//   boundary of valid UTF-8.
#include "check.hpp"
#include "frames.hpp"
#include "inbound.hpp"

#include <claps/error.hpp>
#include <claps/ids.hpp>

#include <simdjson.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace claps::server;

bool valid_utf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

// Parses one JSON object and checks its string fields.
void check_json_object(std::string_view text, std::string_view code, std::string_view message,
                       std::string_view id, bool frame) {
  static simdjson::dom::parser json;
  const simdjson::padded_string padded(text);
  simdjson::dom::object obj;
  CLAPS_FUZZ_CHECK(json.parse(padded).get_object().get(obj) == simdjson::SUCCESS);
  std::string_view s;
  if (frame) CLAPS_FUZZ_CHECK(obj["type"].get(s) == simdjson::SUCCESS && s == "error");
  CLAPS_FUZZ_CHECK(obj["code"].get(s) == simdjson::SUCCESS && s == code);
  CLAPS_FUZZ_CHECK(obj["message"].get(s) == simdjson::SUCCESS);
  // Invalid UTF-8 is replaced by a fixed message, never sent.
  CLAPS_FUZZ_CHECK(valid_utf8(message) ? s == message : s == "the message quoted invalid text");
  if (!frame) return;
  if (id.empty()) {
    CLAPS_FUZZ_CHECK(obj["id"].error() == simdjson::NO_SUCH_FIELD);
  } else {
    CLAPS_FUZZ_CHECK(obj["id"].get(s) == simdjson::SUCCESS && s == id);
  }
}

// As ws_service::send_error and rest_error_body() would send it.
void check_error(std::string_view code, std::string_view message, std::string_view id) {
  std::string frame;
  encode_error(frame, code, message, id);
  CLAPS_FUZZ_CHECK(frame.size() > frame_headroom);
  check_json_object(payload(frame), code, message, id, true);
  check_json_object(rest_error_body(code, message), code, message, {}, false);
}

void check_utf8_prefix(std::string_view text, std::size_t max) {
  const std::string_view cut = utf8_prefix(text, max);
  CLAPS_FUZZ_CHECK(text.substr(0, cut.size()) == cut && cut.data() == text.data());
  if (text.size() <= max) {
    CLAPS_FUZZ_CHECK(cut.size() == text.size());
    return;
  }
  CLAPS_FUZZ_CHECK(cut.size() <= max);
  if (valid_utf8(text)) {
    CLAPS_FUZZ_CHECK(valid_utf8(cut));
    CLAPS_FUZZ_CHECK(cut.size() + 3 >= max);  // a UTF-8 character is at most 4 bytes
  }
}

// What a parse said, copied out of the parser's buffers.
struct outcome {
  std::error_code ec;
  std::string why;
  message_kind kind{};
  std::vector<std::string> articles;
  bool reading = true;
  std::string article, id;
  std::int32_t count = 0;

  bool operator==(const outcome&) const = default;
};

outcome parse(inbound_parser& parser, std::string_view text, client_message& m) {
  outcome o;
  o.ec = parser.parse_message(text, m, o.why);
  o.kind = m.kind;
  o.articles.assign(m.articles.begin(), m.articles.end());
  o.reading = m.reading;
  o.article = m.article;
  o.id = m.id;
  o.count = m.count;
  return o;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static inbound_parser parser(64 * 1024);
  const std::string_view text(reinterpret_cast<const char*>(data), size);

  client_message m;
  const outcome first = parse(parser, text, m);
  CLAPS_FUZZ_CHECK(m.id.empty() || !claps::check_op_id(m.id));
  if (first.ec) {
    CLAPS_FUZZ_CHECK(first.ec == claps::errc::bad_request || first.ec == claps::errc::invalid_count);
    CLAPS_FUZZ_CHECK(!first.why.empty());
    check_error(claps::wire_name(first.ec), first.why, m.id);
  } else {
    CLAPS_FUZZ_CHECK(first.why.empty());
    switch (m.kind) {
    case message_kind::subscribe:
    case message_kind::unsubscribe:
      for (std::string_view article : m.articles) {
        // simdjson hands out only valid UTF-8, which the cut must keep valid.
        CLAPS_FUZZ_CHECK(valid_utf8(article));
        check_utf8_prefix(article, 128);
        check_error("invalid_article",
                    "invalid or unknown article id: " + std::string(utf8_prefix(article, 128)), m.id);
      }
      break;
    case message_kind::clap:
      CLAPS_FUZZ_CHECK(m.count >= 1 && m.count <= std::numeric_limits<std::int32_t>::max());
      CLAPS_FUZZ_CHECK(valid_utf8(m.article));
      break;
    case message_kind::undo:
      CLAPS_FUZZ_CHECK(m.count == 1);
      CLAPS_FUZZ_CHECK(valid_utf8(m.article));
      break;
    }
  }
  CLAPS_FUZZ_CHECK(parse(parser, text, m) == first);

  std::int32_t count = 0;
  std::string_view id;
  std::string why;
  if (const std::error_code ec = parser.parse_clap_body(text, count, id, why)) {
    CLAPS_FUZZ_CHECK(ec == claps::errc::bad_request || ec == claps::errc::invalid_count);
    CLAPS_FUZZ_CHECK(!why.empty());
    check_error(claps::wire_name(ec), why, {});
  } else {
    CLAPS_FUZZ_CHECK(count >= 1);
    CLAPS_FUZZ_CHECK(id.empty() || !claps::check_op_id(id));
  }

  // Any text at all, quoted in an error, still makes a valid frame.
  check_error("bad_request", text, {});
  for (std::size_t max :
       {std::size_t{0}, std::size_t{1}, size / 2, size > 0 ? size - 1 : 0, std::size_t{128}})
    check_utf8_prefix(text, max);
  return 0;
}
