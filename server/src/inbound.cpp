#include "inbound.hpp"

#include <claps/error.hpp>
#include <claps/ids.hpp>

#include <limits>

namespace claps::server {
namespace {

std::error_code bad(std::string& why, std::string_view text) {
  why = text;
  return make_error_code(errc::bad_request);
}

// Reads an optional "id" (request / op id). Absent is fine; present must be a
// 1-64 character string of the safe alphabet, because errors and acks echo it.
std::error_code read_id(simdjson::dom::object& obj, std::string_view& id, std::string& why) {
  id = {};
  simdjson::dom::element value;
  if (obj["id"].get(value) != simdjson::SUCCESS) return {};
  std::string_view text;
  if (value.get(text) != simdjson::SUCCESS) return bad(why, "\"id\" must be a string");
  if (check_op_id(text)) return bad(why, "\"id\" must be 1-64 characters of A-Z a-z 0-9 . _ : -");
  id = text;
  return {};
}

std::error_code read_count(simdjson::dom::object& obj, std::int32_t& count, std::string& why) {
  count = 1;
  simdjson::dom::element value;
  if (obj["count"].get(value) != simdjson::SUCCESS) return {};
  std::int64_t n = 0;
  if (value.get(n) != simdjson::SUCCESS) return bad(why, "\"count\" must be an integer");
  if (n < 1 || n > std::numeric_limits<std::int32_t>::max()) {
    why = "\"count\" must be from 1 to the cap";
    return make_error_code(errc::invalid_count);
  }
  count = static_cast<std::int32_t>(n);
  return {};
}

}  // namespace

inbound_parser::inbound_parser(std::size_t max_bytes) {
  padded_.reserve(max_bytes + simdjson::SIMDJSON_PADDING);
}

simdjson::dom::element inbound_parser::load(std::string_view text, std::error_code& ec, std::string& why) {
  // Copying into a reused buffer gives simdjson its padding without a
  // per-message allocation.
  padded_.assign(text);
  if (padded_.capacity() < text.size() + simdjson::SIMDJSON_PADDING)
    padded_.reserve(text.size() + simdjson::SIMDJSON_PADDING);
  simdjson::dom::element root;
  if (auto err = parser_.parse(padded_.data(), padded_.size(), false).get(root)) {
    ec = bad(why, std::string("malformed JSON: ") + simdjson::error_message(err));
    return {};
  }
  ec = {};
  return root;
}

std::error_code inbound_parser::parse_message(std::string_view text, client_message& out, std::string& why) {
  out.articles.clear();
  out.id = {};
  out.article = {};
  out.count = 1;
  out.reading = true;
  std::error_code ec;
  auto root = load(text, ec, why);
  if (ec) return ec;
  simdjson::dom::object obj;
  if (root.get(obj) != simdjson::SUCCESS) return bad(why, "a message must be a JSON object");
  if (auto e = read_id(obj, out.id, why)) return e;
  std::string_view type;
  if (obj["type"].get(type) != simdjson::SUCCESS) return bad(why, "\"type\" must be a string");

  if (type == "subscribe" || type == "unsubscribe") {
    out.kind = type == "subscribe" ? message_kind::subscribe : message_kind::unsubscribe;
    simdjson::dom::array list;
    if (obj["articles"].get(list) != simdjson::SUCCESS)
      return bad(why, "\"articles\" must be an array of article ids");
    for (auto item : list) {
      std::string_view article;
      if (item.get(article) != simdjson::SUCCESS) return bad(why, "\"articles\" must be an array of strings");
      out.articles.push_back(article);
    }
    if (out.kind == message_kind::subscribe) {
      simdjson::dom::element reading;
      if (obj["reading"].get(reading) == simdjson::SUCCESS && reading.get(out.reading) != simdjson::SUCCESS)
        return bad(why, "\"reading\" must be true or false");
    }
    return {};
  }
  if (type == "clap" || type == "undo") {
    out.kind = type == "clap" ? message_kind::clap : message_kind::undo;
    if (obj["article"].get(out.article) != simdjson::SUCCESS) return bad(why, "\"article\" must be a string");
    if (out.kind == message_kind::clap) return read_count(obj, out.count, why);
    return {};
  }
  return bad(why, "unknown \"type\": use subscribe, unsubscribe, clap or undo");
}

std::error_code inbound_parser::parse_clap_body(std::string_view text, std::int32_t& count,
                                                std::string_view& id, std::string& why) {
  count = 1;
  id = {};
  if (text.find_first_not_of(" \t\r\n") == std::string_view::npos) return {};
  std::error_code ec;
  auto root = load(text, ec, why);
  if (ec) return ec;
  simdjson::dom::object obj;
  if (root.get(obj) != simdjson::SUCCESS) return bad(why, "the body must be a JSON object");
  if (auto e = read_id(obj, id, why)) return e;
  return read_count(obj, count, why);
}

}  // namespace claps::server
