// server_probe.hpp - what the load generator reads about the server process.
//
// CPU time is the sum of the process's threads' run time from
// /proc/<pid>/task/*/schedstat (ns; the same total /proc/<pid>/stat gives as
// utime + stime in 10 ms ticks, which it falls back to), memory
// from VmRSS in /proc/<pid>/status. System calls are counted by `perf stat -e
// raw_syscalls:sys_enter -p <pid>` when perf can attach here: a tracepoint
// counter, far less intrusive than `strace -c`, which stops the server on
// every call.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>

namespace claps::loadgen {

/// CPU seconds (user + system) the process has used so far.
std::optional<double> process_cpu_seconds(pid_t pid);
/// Resident set size in KiB.
std::optional<std::uint64_t> process_rss_kb(pid_t pid);
/// This process's own CPU seconds (getrusage).
double own_cpu_seconds();

/// Counts the server's system calls between start() and stop().
class syscall_counter {
public:
  syscall_counter() = default;
  ~syscall_counter();
  syscall_counter(const syscall_counter&) = delete;
  syscall_counter& operator=(const syscall_counter&) = delete;

  /// Starts `perf stat`; false (and a reason in why()) when perf is unusable.
  /// perf needs a moment to attach: call attached() after a pause of about
  /// 200 ms (one pause for all counters started together).
  bool start(pid_t pid);
  /// False (and a reason in why()) when perf exited instead of attaching.
  bool attached();
  /// Stops perf and returns the count, if it produced one.
  std::optional<std::uint64_t> stop();
  const std::string& why() const noexcept { return why_; }

private:
  pid_t perf_pid_ = -1;
  std::string output_path_;
  std::string why_;
};

/// Starts `path argument` (an executable, no shell); -1 when it cannot start.
pid_t spawn_hook(const std::string& path, const char* argument);
/// Waits (bounded) for a hook; true when it exited with status 0.
bool reap_hook(pid_t pid, double timeout_s);

}  // namespace claps::loadgen
