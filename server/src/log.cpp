#include "log.hpp"

#include "frames.hpp"

#include <libwebsockets.h>
#include <simdjson.h>

#include <cstdio>
#include <ctime>

namespace claps::server {
namespace {

void append_json_text(std::string& out, std::string_view text) {
  if (simdjson::validate_utf8(text.data(), text.size())) {
    append_json_string(out, text);
    return;
  }
  // Not UTF-8 (a path from the command line, say): keep the ASCII, mark the rest.
  std::string ascii;
  ascii.reserve(text.size());
  for (char ch : text) {
    if (static_cast<unsigned char>(ch) < 0x80) ascii += ch;
    else ascii += "\xef\xbf\xbd";  // U+FFFD
  }
  append_json_string(out, ascii);
}

void write_line(std::string_view line) {
  // One fwrite per line: lines from lws's emitter and ours never interleave.
  std::fwrite(line.data(), 1, line.size(), stderr);
}

void emit_lws_json(int level, const char* line) {
  std::string_view text(line ? line : "");
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.remove_suffix(1);
  const char* name = (level & LLL_ERR)      ? "error"
                     : (level & LLL_WARN)   ? "warn"
                     : (level & LLL_NOTICE) ? "info"
                                            : "debug";
  write_line(json_log_line(std::chrono::system_clock::now(), name, text, {}, "lws"));
}

}  // namespace

std::string json_log_line(std::chrono::system_clock::time_point ts, std::string_view level,
                          std::string_view message, std::string_view node, std::string_view source) {
  using namespace std::chrono;
  const auto ms = duration_cast<milliseconds>(ts.time_since_epoch()).count();
  const std::time_t seconds = static_cast<std::time_t>(ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char stamp[32];
  const std::size_t date = std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(stamp + date, sizeof stamp - date, ".%03dZ", static_cast<int>(ms % 1000));
  std::string out = R"({"ts":")";
  out += stamp;
  out += R"(","level":)";
  append_json_text(out, level);
  out += R"(,"msg":)";
  append_json_text(out, message);
  if (!node.empty()) {
    out += R"(,"node":)";
    append_json_text(out, node);
  }
  if (!source.empty()) {
    out += R"(,"source":)";
    append_json_text(out, source);
  }
  out += "}\n";
  return out;
}

void logger::write(log_level level, std::string_view message) const {
  if (!enabled(level)) return;
  if (format_ == log_format::json) {
    write_line(json_log_line(std::chrono::system_clock::now(), to_string(level), message, node_));
    return;
  }
  std::fprintf(stderr, "clapsd %s: %.*s\n", to_string(level).data(), static_cast<int>(message.size()),
               message.data());
}

int logger::lws_mask() const noexcept {
  switch (threshold_) {
  case log_level::trace: return LLL_ERR | LLL_WARN | LLL_NOTICE | LLL_INFO | LLL_DEBUG;
  case log_level::debug: return LLL_ERR | LLL_WARN | LLL_NOTICE;
  case log_level::info: return LLL_ERR | LLL_WARN;
  case log_level::warn: return LLL_ERR | LLL_WARN;
  case log_level::error: return LLL_ERR;
  }
  return LLL_ERR;
}

logger::lws_emit logger::lws_emitter() const noexcept {
  return format_ == log_format::json ? &emit_lws_json : nullptr;
}

}  // namespace claps::server
