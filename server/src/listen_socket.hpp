// listen_socket.hpp - clapsd's own listening socket.
//
// clapsd binds its port itself rather than letting lws listen, for two
// reasons. Debian's lws 4.1.6 sets SO_REUSEPORT only with more than one
// service thread (LWS_MAX_SMP is 1), so one process per core sharing a port
// (--reuse-port) needs its own socket. And lws's listener spins on EMFILE
// (2.6 s of CPU in 3 s, one log line per attempt), where this one pauses.
// It accepts on the lws uv loop and hands every accepted fd to a callback
// (server.cpp adopts it into the lws vhost).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <system_error>

#include <uv.h>

namespace claps::server {

class logger;

class listen_socket {
public:
  /// Receives each accepted socket (non-blocking, close-on-exec, TCP_NODELAY) and owns it.
  using accept_handler = std::function<void(int fd)>;

  struct counters {
    std::uint64_t accepted = 0;
    std::uint64_t fd_exhausted = 0;   // EMFILE/ENFILE/ENOBUFS/ENOMEM: accepting paused
    std::uint64_t accept_errors = 0;  // anything else accept4() refused
  };

  /// A paused listener retries after this long: a connection that is closed
  /// frees a descriptor, and the kernel keeps new connects in the backlog meanwhile.
  static constexpr std::uint64_t exhausted_pause_ms = 100;
  /// Accepts per readiness event, so one burst cannot starve the loop (the
  /// poll is level-triggered: what is left is picked up next iteration).
  static constexpr int max_accepts_per_wakeup = 64;

  /// Creates, binds (SO_REUSEADDR, and SO_REUSEPORT with `share_port`) and listens on host:port
  /// (port 0: the kernel picks one, see port()). Does not accept yet: call
  /// start(). On failure returns null and sets `ec` (a system error) and
  /// `step` (the call that failed: "resolve", "socket", "setsockopt", "bind",
  /// "listen", "getsockname").
  static std::unique_ptr<listen_socket> open(uv_loop_t* loop, const std::string& host, std::uint16_t port,
                                             bool share_port, const logger& log, std::error_code& ec,
                                             std::string& step);

  ~listen_socket();
  listen_socket(const listen_socket&) = delete;
  listen_socket& operator=(const listen_socket&) = delete;

  /// Starts accepting on the loop given to open(); every accepted fd goes to `on_accept`.
  std::error_code start(accept_handler on_accept);
  /// Stops accepting and closes the socket now, so the kernel sends new
  /// connects to the other processes on the port. Idempotent.
  void close();

  bool open_now() const noexcept { return fd_ >= 0; }
  std::uint16_t port() const noexcept { return port_; }
  const counters& stats() const noexcept { return counters_; }
  /// Prometheus text of the counters.
  std::string metrics_text() const;

private:
  struct handles;  // uv handles, freed by their close callbacks
  listen_socket(uv_loop_t* loop, int fd, std::uint16_t port, const logger& log);
  void on_readable();
  void pause_after_exhaustion(int error);

  uv_loop_t* loop_;
  int fd_;
  std::uint16_t port_;
  const logger& log_;
  handles* handles_ = nullptr;
  accept_handler on_accept_;
  counters counters_;
};

}  // namespace claps::server
