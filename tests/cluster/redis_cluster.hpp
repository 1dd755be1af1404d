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

  void kill9(std::uint16_t port);   // SIGKILL and reap
  void stop(std::uint16_t port);    // SIGSTOP
  void resume(std::uint16_t port);  // SIGCONT

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

/// A Redis Cluster: `masters` masters with `replicas` replicas each
/// (redis-server --cluster-enabled yes, then redis-cli --cluster create),
/// cluster-node-timeout 1500 ms so that a failover fits a test's deadline.
/// Waits until every node says cluster_state:ok. Kills only its own pids.
/// With `password` every node requires it (requirepass, masterauth).
class redis_cluster_shards {
public:
  explicit redis_cluster_shards(int masters = 3, int replicas = 1, std::string password = {});
  ~redis_cluster_shards();
  redis_cluster_shards(const redis_cluster_shards&) = delete;
  redis_cluster_shards& operator=(const redis_cluster_shards&) = delete;

  /// "127.0.0.1:P,..." of every node (a --redis-cluster seed list).
  std::string seeds() const;
  std::vector<std::uint16_t> ports() const;
  /// Masters as the first answering live node's CLUSTER NODES says (not failed).
  std::vector<std::uint16_t> master_ports() const;
  /// The master owning `slot` by CLUSTER NODES (0 if none).
  std::uint16_t master_of_slot(std::uint16_t slot) const;
  /// Waits until every live node says cluster_state:ok and agrees that
  /// `slot`'s master is not `not_port`. False at the deadline.
  bool wait_ok(std::chrono::milliseconds deadline, std::uint16_t slot = 0, std::uint16_t not_port = 0) const;
  /// The node's id (CLUSTER MYID).
  std::string node_id(std::uint16_t port) const;
  void kill9(std::uint16_t port);
  /// Starts `redis-cli --cluster reshard` moving `slots` slots from one
  /// master to another; returns its pid (reaped by reshard_done()).
  pid_t start_reshard(std::uint16_t from, std::uint16_t to, int slots) const;
  /// Non-blocking: true once `pid` exited (reaped), `ok` when it exited 0.
  static bool reshard_done(pid_t pid, bool& ok);
  const std::filesystem::path& dir() const { return dir_; }

private:
  std::string nodes_text() const;
  std::string query(std::uint16_t port, const std::vector<std::string>& args) const {
    return redis_cluster::query(port, args, password_);
  }
  void cleanup();
  std::string password_;
  std::filesystem::path dir_;
  std::vector<redis_process> processes_;
};

}  // namespace claps::test
