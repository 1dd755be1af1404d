// clapsd's JSON log lines (--log-format json): escaping, the timestamp and the fields.
#include "log.hpp"

#include <doctest/doctest.h>
#include <simdjson.h>

#include <chrono>
#include <string>

using claps::server::json_log_line;

namespace {

// Parses one line (without its newline) with simdjson's DOM parser.
simdjson::dom::object parse(simdjson::dom::parser& parser, const std::string& line) {
  REQUIRE(!line.empty());
  REQUIRE(line.back() == '\n');
  REQUIRE(line.find('\n') == line.size() - 1);  // one line, whatever the message held
  simdjson::dom::object object;
  REQUIRE(parser.parse(line.data(), line.size() - 1).get(object) == simdjson::SUCCESS);
  return object;
}

std::string field(simdjson::dom::object& object, const char* key) {
  std::string_view v;
  REQUIRE(object[key].get(v) == simdjson::SUCCESS);
  return std::string(v);
}

}  // namespace

TEST_CASE("a JSON log line carries ts (RFC 3339, UTC, ms), level and msg") {
  // 2026-12-03T18:33:15.042Z
  const auto ts = std::chrono::system_clock::time_point(std::chrono::milliseconds(1796322795042LL));
  simdjson::dom::parser parser;
  const auto line = json_log_line(ts, "warn", "store short of space");
  auto object = parse(parser, line);
  CHECK(field(object, "ts") == "2026-12-03T18:33:15.042Z");
  CHECK(field(object, "level") == "warn");
  CHECK(field(object, "msg") == "store short of space");
  CHECK(object["node"].error() == simdjson::NO_SUCH_FIELD);
  CHECK(object["source"].error() == simdjson::NO_SUCH_FIELD);
}

TEST_CASE("quotes, backslashes, newlines and control characters are escaped") {
  simdjson::dom::parser parser;
  const std::string message = "dir 'a\"b\\c\nd\te\r\x01\x1f' \xc3\xa9t\xc3\xa9";
  const auto line = json_log_line(std::chrono::system_clock::now(), "info", message, "node-\"7\"", "lws");
  auto object = parse(parser, line);
  CHECK(field(object, "msg") == message);
  CHECK(field(object, "node") == "node-\"7\"");
  CHECK(field(object, "source") == "lws");
}

TEST_CASE("bytes that are not UTF-8 become U+FFFD so the line still parses") {
  simdjson::dom::parser parser;
  const auto line = json_log_line(std::chrono::system_clock::now(), "error", "bad \xff\xfe path \"x\"");
  auto object = parse(parser, line);
  CHECK(field(object, "msg") == "bad \xef\xbf\xbd\xef\xbf\xbd path \"x\"");
}
