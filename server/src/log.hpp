// log.hpp - leveled logging to stderr. stdout carries only the listening line.
// --log-format json writes one JSON object per line instead of text.
#pragma once

#include "options.hpp"

#include <chrono>
#include <string>
#include <string_view>
#include <utility>

namespace claps::server {

/// One log line as JSON with its newline: {"ts":"2026-12-03T18:33:15.123Z",
/// "level":"info","msg":"...","node":"n1"} ("node" only when not empty, then
/// "source" when not empty). `message` is escaped; bytes that are not UTF-8
/// become U+FFFD so that every line parses.
std::string json_log_line(std::chrono::system_clock::time_point ts, std::string_view level,
                          std::string_view message, std::string_view node = {}, std::string_view source = {});

class logger {
public:
  logger(log_level threshold, log_format format = log_format::text, std::string node = {})
      : threshold_(threshold), format_(format), node_(std::move(node)) {}
  bool enabled(log_level level) const noexcept { return level >= threshold_; }
  void write(log_level level, std::string_view message) const;

  void debug(std::string_view m) const { write(log_level::debug, m); }
  void info(std::string_view m) const { write(log_level::info, m); }
  void warn(std::string_view m) const { write(log_level::warn, m); }
  void error(std::string_view m) const { write(log_level::error, m); }

  /// The lws log mask matching this threshold (lws logs through its own
  /// global emitter to stderr).
  int lws_mask() const noexcept;
  /// The emitter for lws_set_log_level: nullptr (lws's own text lines) for
  /// text, one JSON object per line ("source":"lws") for json.
  using lws_emit = void (*)(int level, const char* line);
  lws_emit lws_emitter() const noexcept;

private:
  log_level threshold_;
  log_format format_;
  std::string node_;  // --node-id, named on every JSON line
};

}  // namespace claps::server
