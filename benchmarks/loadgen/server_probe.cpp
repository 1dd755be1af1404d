#include "server_probe.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace claps::loadgen {

namespace {

// Every thread's run time, in ns (the first field of schedstat). /proc/<pid>/stat
// reports the same total in clock ticks (10 ms), too coarse for a process
// that uses 40 ms in a window; a thread that exits in between is skipped.
std::optional<double> schedstat_seconds(pid_t pid) {
  std::error_code ec;
  std::filesystem::directory_iterator tasks("/proc/" + std::to_string(pid) + "/task", ec);
  if (ec) return std::nullopt;
  unsigned long long ns = 0;
  bool any = false;
  for (const auto& task : tasks) {
    std::ifstream in(task.path() / "schedstat");
    unsigned long long run_ns = 0;
    if (in >> run_ns) {
      ns += run_ns;
      any = true;
    }
  }
  if (!any) return std::nullopt;
  return static_cast<double>(ns) / 1e9;
}

}  // namespace

std::optional<double> process_cpu_seconds(pid_t pid) {
  if (auto precise = schedstat_seconds(pid)) return precise;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  // The command name may hold spaces; fields are counted after its ')'.
  const auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  // After ')': state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime(14) stime(15)
  for (int index = 3; index <= 15 && fields >> field; ++index) {
    if (index == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
    if (index == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

std::optional<std::uint64_t> process_rss_kb(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::strtoull(line.c_str() + 6, nullptr, 10);
  }
  return std::nullopt;
}

double own_cpu_seconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& tv) { return static_cast<double>(tv.tv_sec) + tv.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

syscall_counter::~syscall_counter() {
  if (perf_pid_ > 0) stop();
}

bool syscall_counter::start(pid_t pid) {
  char path[] = "/tmp/claps-loadgen-perf-XXXXXX";
  const int fd = mkstemp(path);
  if (fd < 0) {
    why_ = "cannot create a temporary file";
    return false;
  }
  close(fd);
  output_path_ = path;
  const std::string pid_text = std::to_string(pid);
  const char* argv[] = {"perf", "stat",
                        "-x",   ",",
                        "-e",   "raw_syscalls:sys_enter",
                        "-p",   pid_text.c_str(),
                        "-o",   output_path_.c_str(),
                        nullptr};
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  const int rc = posix_spawnp(&perf_pid_, "perf", &actions, nullptr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) {
    perf_pid_ = -1;
    why_ = "perf is not installed";
    return false;
  }
  return true;
}

bool syscall_counter::attached() {
  if (perf_pid_ <= 0) return false;
  int status = 0;
  if (waitpid(perf_pid_, &status, WNOHANG) == perf_pid_) {
    perf_pid_ = -1;
    why_ = "perf stat exited at once (no tracepoint access?)";
    return false;
  }
  return true;
}

std::optional<std::uint64_t> syscall_counter::stop() {
  if (perf_pid_ <= 0) return std::nullopt;
  kill(perf_pid_, SIGINT);
  int status = 0;
  waitpid(perf_pid_, &status, 0);
  perf_pid_ = -1;
  std::ifstream in(output_path_);
  std::string line;
  std::optional<std::uint64_t> count;
  while (std::getline(in, line)) {
    if (line.find("raw_syscalls:sys_enter") == std::string::npos) continue;
    char* end = nullptr;
    const auto value = std::strtoull(line.c_str(), &end, 10);
    if (end != line.c_str()) count = value;
  }
  std::remove(output_path_.c_str());
  if (!count) why_ = "perf stat printed no count";
  return count;
}

pid_t spawn_hook(const std::string& path, const char* argument) {
  const char* argv[] = {path.c_str(), argument, nullptr};
  pid_t pid = -1;
  if (posix_spawn(&pid, path.c_str(), nullptr, nullptr, const_cast<char**>(argv), environ) != 0) return -1;
  return pid;
}

bool reap_hook(pid_t pid, double timeout_s) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(timeout_s);
  int status = 0;
  while (true) {
    const pid_t done = waitpid(pid, &status, WNOHANG);
    if (done == pid) return WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (done < 0) return false;
    // A hook is a short script (a few curl calls); poll it rather than block the report.
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace claps::loadgen
