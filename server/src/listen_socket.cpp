#include "listen_socket.hpp"

#include "log.hpp"

#include <cerrno>
#include <cstdio>
#include <utility>

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace claps::server {

// Why a uv_poll_t and not a uv_tcp_t opened on the fd: uv_accept() hands out
// uv_tcp_t streams, but lws must own the raw descriptor (it polls it itself)
// and libuv cannot detach an fd from a stream, so every connection would need
// a dup() (two descriptors each, half the connections under a nofile limit).
// libuv's own accept loop is also uncapped per wakeup and its EMFILE trick
// closes connections unseen. A poll handle gives readiness only: accept4(),
// its cap and its errors stay ours, and the fd goes straight to lws.
struct listen_socket::handles {
  uv_poll_t poll{};
  uv_timer_t resume{};
  listen_socket* owner = nullptr;
  int open = 2;  // freed once both handles are closed

  void watch() {
    uv_poll_start(&poll, UV_READABLE, [](uv_poll_t* p, int status, int) {
      auto* self = static_cast<handles*>(p->data)->owner;
      if (self && status == 0) self->on_readable();
    });
  }
};

namespace {

std::error_code last_error() { return {errno, std::system_category()}; }

bool pending_connection_failed(int error) {
  // Errors of the one connection being accepted (accept(2), "Error handling"):
  // that connection is gone, the next one may be fine.
  switch (error) {
  case EINTR:
  case ECONNABORTED:
  case EPROTO:
  case EPERM:
  case ENETDOWN:
  case ENOPROTOOPT:
  case EHOSTDOWN:
  case ENONET:
  case EHOSTUNREACH:
  case EOPNOTSUPP:
  case ENETUNREACH: return true;
  default: return false;
  }
}

void append_counter(std::string& out, const char* name, const char* help, std::uint64_t value) {
  char buf[512];
  std::snprintf(buf, sizeof buf, "# HELP %s %s\n# TYPE %s counter\n%s %llu\n", name, help, name, name,
                static_cast<unsigned long long>(value));
  out += buf;
}

}  // namespace

std::unique_ptr<listen_socket> listen_socket::open(uv_loop_t* loop, const std::string& host,
                                                   std::uint16_t port, bool share_port, const logger& log,
                                                   std::error_code& ec, std::string& step) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (getaddrinfo(host.empty() ? nullptr : host.c_str(), service.c_str(), &hints, &found) != 0 || !found) {
    if (found) freeaddrinfo(found);
    step = "resolve";
    ec = std::make_error_code(std::errc::address_not_available);
    return nullptr;
  }
  const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, &freeaddrinfo);

  step = "socket";
  const int fd =
      ::socket(found->ai_family, found->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, found->ai_protocol);
  if (fd < 0) {
    ec = last_error();
    return nullptr;
  }
  auto fail = [&](const char* what) -> std::unique_ptr<listen_socket> {
    ec = last_error();
    step = what;
    ::close(fd);
    return nullptr;
  };
  const int on = 1;
  if (::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) != 0 ||
      (share_port && ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof on) != 0))
    return fail("setsockopt");
  if (::bind(fd, found->ai_addr, found->ai_addrlen) != 0) return fail("bind");
  // The kernel caps this at net.core.somaxconn (4096 by default since 5.4).
  if (::listen(fd, 4096) != 0) return fail("listen");
  sockaddr_storage bound{};
  socklen_t length = sizeof bound;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &length) != 0) return fail("getsockname");
  const std::uint16_t bound_port =
      ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<const sockaddr_in6&>(bound).sin6_port
                                        : reinterpret_cast<const sockaddr_in&>(bound).sin_port);
  ec.clear();
  step.clear();
  return std::unique_ptr<listen_socket>(new listen_socket(loop, fd, bound_port, log));
}

listen_socket::listen_socket(uv_loop_t* loop, int fd, std::uint16_t port, const logger& log)
    : loop_(loop), fd_(fd), port_(port), log_(log) {}

listen_socket::~listen_socket() { close(); }

std::error_code listen_socket::start(accept_handler on_accept) {
  if (fd_ < 0 || handles_) return std::make_error_code(std::errc::invalid_argument);
  on_accept_ = std::move(on_accept);
  auto* h = new handles;
  h->owner = this;
  if (const int rc = uv_poll_init_socket(loop_, &h->poll, fd_); rc != 0) {
    delete h;
    return {-rc, std::system_category()};
  }
  uv_timer_init(loop_, &h->resume);
  h->poll.data = h->resume.data = h;
  handles_ = h;
  h->watch();
  return {};
}

void listen_socket::close() {
  if (handles_) {
    // Closing the poll handle takes the fd out of epoll at once, so the fd
    // may be closed right after; the memory goes when libuv is done with it.
    handles_->owner = nullptr;
    auto closed = [](uv_handle_t* handle) {
      auto* h = static_cast<handles*>(handle->data);
      if (--h->open == 0) delete h;
    };
    uv_close(reinterpret_cast<uv_handle_t*>(&handles_->poll), closed);
    uv_close(reinterpret_cast<uv_handle_t*>(&handles_->resume), closed);
    handles_ = nullptr;
  }
  if (fd_ >= 0) {
    ::close(fd_);
    fd_ = -1;
  }
}

void listen_socket::on_readable() {
  for (int i = 0; i < max_accepts_per_wakeup && fd_ >= 0; ++i) {
    const int fd = ::accept4(fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
      ++counters_.accepted;
      // What lws's own accept does (lws_plat_set_socket_options): frames are
      // small and written whole, so Nagle would only hold them back for the
      // peer's delayed ACK (tens of ms on every ack and update).
      const int on = 1;
      (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
      on_accept_(fd);
      continue;
    }
    const int error = errno;
    if (error == EAGAIN || error == EWOULDBLOCK) return;
    if (pending_connection_failed(error)) {
      if (error != EINTR) ++counters_.accept_errors;
      continue;
    }
    // Out of descriptors or memory: the socket stays readable, so retrying
    // now would spin the loop. Pause; connects wait in the backlog.
    pause_after_exhaustion(error);
    return;
  }
}

void listen_socket::pause_after_exhaustion(int error) {
  const bool exhausted = error == EMFILE || error == ENFILE || error == ENOBUFS || error == ENOMEM;
  std::uint64_t& count = exhausted ? counters_.fd_exhausted : counters_.accept_errors;
  ++count;
  if (count == 1 || count % 100 == 0) {
    const std::string reason = std::error_code(error, std::system_category()).message();
    log_.warn("accept: " + reason + ": accepting paused for " + std::to_string(exhausted_pause_ms) +
              " ms (pause " + std::to_string(count) + ")" +
              (exhausted ? "; raise the nofile limit or lower --max-connections" : ""));
  }
  uv_poll_stop(&handles_->poll);
  uv_timer_start(
      &handles_->resume,
      [](uv_timer_t* t) {
        auto* h = static_cast<handles*>(t->data);
        if (h->owner) h->watch();
      },
      exhausted_pause_ms, 0);
}

std::string listen_socket::metrics_text() const {
  std::string out;
  append_counter(out, "claps_accepts_total", "Connections accepted on the --reuse-port socket",
                 counters_.accepted);
  append_counter(out, "claps_accept_fd_exhausted_total",
                 "Times accepting paused (100 ms) for lack of file descriptors or memory (EMFILE and kin)",
                 counters_.fd_exhausted);
  append_counter(out, "claps_accept_errors_total", "Other accept errors on the --reuse-port socket",
                 counters_.accept_errors);
  return out;
}

}  // namespace claps::server
