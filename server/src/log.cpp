#include "log.hpp"

#include <libwebsockets.h>

#include <cstdio>

namespace claps::server {

void logger::write(log_level level, std::string_view message) const {
  if (!enabled(level)) return;
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

} // namespace claps::server
