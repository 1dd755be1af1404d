// log.hpp - leveled logging to stderr. stdout carries only the listening line.
#pragma once

#include "options.hpp"

#include <string_view>

namespace claps::server {

class logger {
public:
  explicit logger(log_level threshold) : threshold_(threshold) {}
  bool enabled(log_level level) const noexcept { return level >= threshold_; }
  void write(log_level level, std::string_view message) const;

  void debug(std::string_view m) const { write(log_level::debug, m); }
  void info(std::string_view m) const { write(log_level::info, m); }
  void warn(std::string_view m) const { write(log_level::warn, m); }
  void error(std::string_view m) const { write(log_level::error, m); }

  /// The lws log mask matching this threshold (lws logs through its own
  /// global emitter to stderr).
  int lws_mask() const noexcept;

private:
  log_level threshold_;
};

} // namespace claps::server
