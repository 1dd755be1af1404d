// inbound.hpp - parses client messages (WebSocket frames, REST bodies) with
// simdjson into plain structs. One parser per event loop, reused.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace claps::server {

enum class message_kind { subscribe, unsubscribe, clap, undo };

/// One parsed client message. Views point into the parser and stay valid
/// until its next parse.
struct client_message {
  message_kind kind = message_kind::clap;
  std::vector<std::string_view> articles;  // subscribe / unsubscribe
  bool reading = true;                     // subscribe
  std::string_view article;                // clap / undo
  std::int32_t count = 1;                  // clap
  std::string_view id;                     // optional; valid op-id alphabet when set
};

class inbound_parser {
public:
  /// `max_bytes` is the largest message the caller will pass.
  explicit inbound_parser(std::size_t max_bytes);

  /// Parses a protocol v1 message. Errors: bad_request (malformed JSON,
  /// unknown type, wrong field types, invalid id), invalid_count. `why` says
  /// what was wrong; out.id is set whenever the message had a valid "id", so
  /// errors can echo it.
  std::error_code parse_message(std::string_view text, client_message& out, std::string& why);

  /// Parses a REST clap body {"count":2,"id":"op-9"}; both optional, and an
  /// empty body means count 1 without an id.
  std::error_code parse_clap_body(std::string_view text, std::int32_t& count, std::string_view& id,
                                  std::string& why);

private:
  simdjson::dom::element load(std::string_view text, std::error_code& ec, std::string& why);

  simdjson::dom::parser parser_;
  std::string padded_;  // copy of the input with SIMDJSON_PADDING, reused
};

}  // namespace claps::server
