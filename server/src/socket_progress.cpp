#include "socket_progress.hpp"

// <linux/tcp.h>, not glibc's <netinet/tcp.h>: only the kernel's tcp_info
// has tcpi_bytes_acked (Linux 4.1+). The two headers cannot meet in one file.
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

namespace claps::server {

bool read_socket_progress(int fd, socket_progress& out) noexcept {
  if (fd < 0) return false;
  tcp_info info{};
  socklen_t len = sizeof info;
  if (ioctl(fd, SIOCOUTQ, &out.unsent) != 0) return false;
  if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) != 0) return false;
  out.bytes_acked = info.tcpi_bytes_acked;
  return true;
}

}  // namespace claps::server
