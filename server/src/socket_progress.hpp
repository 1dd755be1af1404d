// socket_progress.hpp - what the kernel knows about a peer that never talks
// back (an SSE reader): bytes waiting to be acknowledged, and bytes it has
// acknowledged so far.
#pragma once

#include <cstdint>

namespace claps::server {

struct socket_progress {
  std::uint64_t bytes_acked = 0;  // TCP_INFO tcpi_bytes_acked
  int unsent = 0;                 // SIOCOUTQ: sent or queued, not yet acknowledged
};

/// False when `fd` is not a TCP socket the kernel will describe.
bool read_socket_progress(int fd, socket_progress& out) noexcept;

}  // namespace claps::server
