// A real Redis deployment for tests: one master, replicas, three sentinels
// (and optionally a standalone server nobody monitors), all redis-server
// processes on free loopback ports in a temporary directory. It waits for
// readiness by polling with deadlines, and kills only the pids it started
// (the children also die with this process: PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace claps::test {

struct redis_process {
  std::string role;  // "master", "replica", "sentinel", "standalone"
  std::uint16_t port = 0;
  pid_t pid = -1;
  bool stopped = false;
};

class redis_cluster {
public:
  static constexpr const char* master_name = "claps-test";

  /// Starts everything and waits until the sentinels agree on the master and
  /// know both replicas and each other. Throws std::runtime_error on failure.
  /// With `sentinel_password` the sentinels require it (requirepass).
  explicit redis_cluster(int replicas = 2, int sentinels = 3, bool standalone = true,
                         std::string sentinel_password = {});
  ~redis_cluster();
  redis_cluster(const redis_cluster&) = delete;
  redis_cluster& operator=(const redis_cluster&) = delete;

  std::vector<redis_process>& processes() { return processes_; }
  redis_process* find(std::uint16_t port);
  std::vector<std::uint16_t> sentinel_ports() const;
  std::uint16_t standalone_port() const;

  /// The master as the first answering sentinel names it (0 if none does).
  std::uint16_t sentinel_master_port() const;
  /// Waits until a sentinel names a master other than `old_port` and that
  /// server says ROLE master. Returns its port, or 0 at the deadline.
  std::uint16_t wait_for_new_master(std::uint16_t old_port, std::chrono::milliseconds deadline) const;

  void kill9(std::uint16_t port);     // SIGKILL and reap
  void stop(std::uint16_t port);      // SIGSTOP
  void resume(std::uint16_t port);    // SIGCONT

  /// Runs one command synchronously (test side only), returns the reply as
  /// text: strings/status/integers as is, arrays space-joined, nil as "(nil)",
  /// errors as "ERR...". Empty when the server did not answer within 2 s.
  static std::string query(std::uint16_t port, const std::vector<std::string>& args,
                           const std::string& password = {});
  /// query() to a sentinel of this deployment (with its password).
  std::string ask_sentinel(std::uint16_t port, const std::vector<std::string>& args) const;

  const std::filesystem::path& dir() const { return dir_; }

private:
  pid_t spawn(const std::filesystem::path& conf, bool sentinel);
  void wait_ready();
  void cleanup();

  std::filesystem::path dir_;
  std::string sentinel_password_;
  std::vector<redis_process> processes_;
};

} // namespace claps::test
