#include "redis_cluster.hpp"

#include <hiredis/hiredis.h>

#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <signal.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <stdexcept>
#include <thread>

namespace claps::test {

namespace {

using clock = std::chrono::steady_clock;
// Between two polls of a condition that has no event to wait on (a process
// becoming ready, sentinels gossiping). Never used to wait for an outcome.
constexpr auto poll_interval = std::chrono::milliseconds(25);

std::vector<std::uint16_t> free_ports(std::size_t n) {
  std::vector<int> fds;
  std::vector<std::uint16_t> ports;
  for (std::size_t i = 0; i < n; ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0)
      throw std::runtime_error("cannot find a free loopback port");
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ports.push_back(ntohs(addr.sin_port));
    fds.push_back(fd);  // held open so the next bind picks another port
  }
  for (int fd : fds) ::close(fd);
  return ports;
}

std::string text(const redisReply* r) {
  switch (r->type) {
  case REDIS_REPLY_STRING:
  case REDIS_REPLY_STATUS:
  case REDIS_REPLY_ERROR: return std::string(r->str, r->len);
  case REDIS_REPLY_INTEGER: return std::to_string(r->integer);
  case REDIS_REPLY_NIL: return "(nil)";
  case REDIS_REPLY_ARRAY: {
    std::string out;
    for (std::size_t i = 0; i < r->elements; ++i) {
      if (i) out.push_back(' ');
      out += text(r->element[i]);
    }
    return out;
  }
  default: return {};
  }
}

template <class Pred>
bool poll_until(Pred pred, std::chrono::milliseconds deadline) {
  const auto end = clock::now() + deadline;
  while (clock::now() < end) {
    if (pred()) return true;
    std::this_thread::sleep_for(poll_interval);
  }
  return pred();
}

std::size_t count_words(const std::string& s, const std::string& word) {
  std::size_t n = 0;
  for (std::size_t pos = s.find(word); pos != std::string::npos; pos = s.find(word, pos + 1)) ++n;
  return n;
}

}  // namespace

std::string redis_cluster::ask_sentinel(std::uint16_t port, const std::vector<std::string>& args) const {
  return query(port, args, sentinel_password_);
}

std::string redis_cluster::query(std::uint16_t port, const std::vector<std::string>& args,
                                 const std::string& password) {
  timeval tv{2, 0};
  redisContext* c = redisConnectWithTimeout("127.0.0.1", port, tv);
  if (c == nullptr || c->err) {
    if (c) redisFree(c);
    return {};
  }
  redisSetTimeout(c, tv);
  if (!password.empty()) {
    auto* auth = static_cast<redisReply*>(redisCommand(c, "AUTH %s", password.c_str()));
    if (auth) freeReplyObject(auth);
  }
  std::vector<const char*> argv;
  std::vector<std::size_t> lens;
  for (const auto& a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  auto* r =
      static_cast<redisReply*>(redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  std::string out = r != nullptr ? text(r) : std::string();
  if (r) freeReplyObject(r);
  redisFree(c);
  return out;
}

redis_cluster::redis_cluster(int replicas, int sentinels, bool standalone, std::string sentinel_password)
    : sentinel_password_(std::move(sentinel_password)) {
  char tmpl[] = "/tmp/claps-redis-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  const auto ports = free_ports(static_cast<std::size_t>(1 + replicas + sentinels + (standalone ? 1 : 0)));
  std::size_t next = 0;
  const std::uint16_t master_port = ports[next];

  auto server = [&](const std::string& role, std::uint16_t port, bool replica) {
    const auto conf = dir_ / (role + "-" + std::to_string(port) + ".conf");
    std::ofstream f(conf);
    f << "port " << port << "\nbind 127.0.0.1\ndir " << dir_.string() << "\n"
      << "dbfilename dump-" << port << ".rdb\nsave \"\"\nappendonly no\n"
      << "logfile " << (dir_ / (role + "-" + std::to_string(port) + ".log")).string() << "\n";
    if (replica) f << "replicaof 127.0.0.1 " << master_port << "\n";
    f.close();
    processes_.push_back({role, port, spawn(conf, false), false});
  };
  server("master", ports[next++], false);
  for (int i = 0; i < replicas; ++i) server("replica", ports[next++], true);
  for (int i = 0; i < sentinels; ++i) {
    const std::uint16_t port = ports[next++];
    const auto conf = dir_ / ("sentinel-" + std::to_string(port) + ".conf");
    std::ofstream f(conf);
    f << "port " << port << "\nbind 127.0.0.1\ndir " << dir_.string() << "\n"
      << "logfile " << (dir_ / ("sentinel-" + std::to_string(port) + ".log")).string() << "\n"
      << "sentinel monitor " << master_name << " 127.0.0.1 " << master_port << " 2\n"
      << "sentinel down-after-milliseconds " << master_name << " 1000\n"
      << "sentinel failover-timeout " << master_name << " 3000\n"
      << "sentinel parallel-syncs " << master_name << " 1\n";
    if (!sentinel_password_.empty())
      f << "requirepass " << sentinel_password_ << "\nsentinel sentinel-pass " << sentinel_password_ << "\n";
    f.close();
    processes_.push_back({"sentinel", port, spawn(conf, true), false});
  }
  if (standalone) server("standalone", ports[next++], false);
  try {
    wait_ready();
  } catch (...) {
    cleanup();
    throw;
  }
}

namespace {

// `quiet`: stdout to /dev/null (redis-cli --cluster create reports at length).
pid_t spawn_redis(const std::vector<std::string>& args, bool quiet = false) {
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // Die with the test process, whatever kills it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    if (quiet) {
      const int null = ::open("/dev/null", O_WRONLY);
      if (null >= 0) ::dup2(null, STDOUT_FILENO);
    }
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    ::execvp(argv[0], argv.data());
    ::_exit(127);
  }
  return pid;
}

void stop_all(std::vector<redis_process>& processes) {
  for (auto& p : processes) {
    if (p.pid <= 0) continue;
    ::kill(p.pid, SIGCONT);
    ::kill(p.pid, SIGKILL);
    ::waitpid(p.pid, nullptr, 0);
    p.pid = -1;
  }
}

}  // namespace

pid_t redis_cluster::spawn(const std::filesystem::path& conf, bool sentinel) {
  if (sentinel) return spawn_redis({"redis-server", conf.string(), "--sentinel"});
  return spawn_redis({"redis-server", conf.string()});
}

void redis_cluster::wait_ready() {
  using namespace std::chrono_literals;
  for (const auto& p : processes_) {
    const std::string password = p.role == "sentinel" ? sentinel_password_ : std::string();
    if (!poll_until([&] { return query(p.port, {"PING"}, password) == "PONG"; }, 10s))
      throw std::runtime_error(p.role + " on port " + std::to_string(p.port) + " did not start");
  }
  std::size_t replicas = 0, sentinels = 0;
  for (const auto& p : processes_) {
    if (p.role == "replica") ++replicas;
    if (p.role == "sentinel") ++sentinels;
  }
  for (const auto& p : processes_) {
    if (p.role == "replica" &&
        !poll_until(
            [&] {
              return query(p.port, {"INFO", "replication"}).find("master_link_status:up") !=
                     std::string::npos;
            },
            20s))
      throw std::runtime_error("replica did not sync");
    if (p.role == "sentinel" &&
        !poll_until(
            [&] {
              // Failover needs the quorum of sentinels to know the replicas
              // and each other (they learn it by gossip, within seconds).
              const std::string r = ask_sentinel(p.port, {"SENTINEL", "replicas", master_name});
              const std::string s = ask_sentinel(p.port, {"SENTINEL", "sentinels", master_name});
              return count_words(r, "master-link-status ok") >= replicas &&
                     count_words(s, "runid") + 1 >= sentinels;
            },
            30s))
      throw std::runtime_error("sentinel did not discover replicas and peers");
  }
}

redis_cluster::~redis_cluster() { cleanup(); }

void redis_cluster::cleanup() {
  stop_all(processes_);
  std::error_code ec;
  if (!dir_.empty() && std::getenv("CLAPS_KEEP_REDIS_DIR") == nullptr) std::filesystem::remove_all(dir_, ec);
}

redis_process* redis_cluster::find(std::uint16_t port) {
  for (auto& p : processes_)
    if (p.port == port) return &p;
  return nullptr;
}

std::vector<std::uint16_t> redis_cluster::sentinel_ports() const {
  std::vector<std::uint16_t> out;
  for (const auto& p : processes_)
    if (p.role == "sentinel") out.push_back(p.port);
  return out;
}

std::uint16_t redis_cluster::standalone_port() const {
  for (const auto& p : processes_)
    if (p.role == "standalone") return p.port;
  return 0;
}

std::uint16_t redis_cluster::sentinel_master_port() const {
  for (const auto& p : processes_) {
    if (p.role != "sentinel" || p.pid <= 0) continue;
    const std::string r = ask_sentinel(p.port, {"SENTINEL", "get-master-addr-by-name", master_name});
    const auto space = r.find(' ');
    if (space != std::string::npos) return static_cast<std::uint16_t>(std::atoi(r.c_str() + space + 1));
  }
  return 0;
}

std::uint16_t redis_cluster::wait_for_new_master(std::uint16_t old_port,
                                                 std::chrono::milliseconds deadline) const {
  std::uint16_t found = 0;
  poll_until(
      [&] {
        const std::uint16_t port = sentinel_master_port();
        if (port == 0 || port == old_port) return false;
        if (query(port, {"ROLE"}).rfind("master", 0) != 0) return false;
        found = port;
        return true;
      },
      deadline);
  return found;
}

void redis_cluster::kill9(std::uint16_t port) {
  redis_process* p = find(port);
  if (p == nullptr || p->pid <= 0) return;
  ::kill(p->pid, SIGKILL);
  ::waitpid(p->pid, nullptr, 0);
  p->pid = -1;
}

void redis_cluster::stop(std::uint16_t port) {
  if (redis_process* p = find(port); p != nullptr && p->pid > 0) {
    ::kill(p->pid, SIGSTOP);
    p->stopped = true;
  }
}

void redis_cluster::resume(std::uint16_t port) {
  if (redis_process* p = find(port); p != nullptr && p->pid > 0) {
    ::kill(p->pid, SIGCONT);
    p->stopped = false;
  }
}

// ---- Redis Cluster ----

redis_cluster_shards::redis_cluster_shards(int masters, int replicas, std::string password)
    : password_(std::move(password)) {
  using namespace std::chrono_literals;
  char tmpl[] = "/tmp/claps-rcluster-XXXXXX";
  if (::mkdtemp(tmpl) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = tmpl;
  const std::size_t nodes = static_cast<std::size_t>(masters * (1 + replicas));
  // Each node's cluster bus gets a free port of its own too (cluster-port):
  // port + 10000, the default, may be taken or past 65535.
  const auto all_ports = free_ports(2 * nodes);
  const std::vector<std::uint16_t> ports(all_ports.begin(), all_ports.begin() + static_cast<long>(nodes));
  try {
    for (std::size_t i = 0; i < nodes; ++i) {
      const std::string p = std::to_string(ports[i]);
      std::vector<std::string> args{"redis-server",
                                    "--port",
                                    p,
                                    "--bind",
                                    "127.0.0.1",
                                    "--cluster-enabled",
                                    "yes",
                                    "--cluster-port",
                                    std::to_string(all_ports[nodes + i]),
                                    "--cluster-node-timeout",
                                    "1500",
                                    "--cluster-config-file",
                                    (dir_ / ("nodes-" + p + ".conf")).string(),
                                    "--dir",
                                    dir_.string(),
                                    "--save",
                                    "",
                                    "--appendonly",
                                    "no",
                                    "--logfile",
                                    (dir_ / ("node-" + p + ".log")).string()};
      if (!password_.empty())
        args.insert(args.end(), {"--requirepass", password_, "--masterauth", password_});
      processes_.push_back({"node", ports[i], spawn_redis(args), false});
    }
    for (const auto& p : processes_)
      if (!poll_until([&] { return query(p.port, {"PING"}) == "PONG"; }, 10s))
        throw std::runtime_error("cluster node on port " + std::to_string(p.port) + " did not start");
    std::vector<std::string> create{"redis-cli", "--cluster", "create"};
    for (std::uint16_t port : ports) create.push_back("127.0.0.1:" + std::to_string(port));
    create.insert(create.end(), {"--cluster-replicas", std::to_string(replicas), "--cluster-yes"});
    if (!password_.empty()) create.insert(create.end(), {"-a", password_, "--no-auth-warning"});
    const pid_t cli = spawn_redis(create, true);
    int status = 0;
    // redis-cli waits for the cluster to join by itself; bounded by the test's own timeout.
    ::waitpid(cli, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      throw std::runtime_error("redis-cli --cluster create failed");
    if (!wait_ok(30s)) throw std::runtime_error("cluster did not reach cluster_state:ok");
    // Every replica attached and in sync, so that a failover has a candidate.
    if (!poll_until(
            [&] {
              std::size_t synced = 0;
              for (const auto& p : processes_)
                if (query(p.port, {"INFO", "replication"}).find("master_link_status:up") != std::string::npos)
                  ++synced;
              return synced == static_cast<std::size_t>(masters * replicas);
            },
            30s))
      throw std::runtime_error("cluster replicas did not sync");
  } catch (...) {
    cleanup();
    throw;
  }
}

redis_cluster_shards::~redis_cluster_shards() { cleanup(); }

void redis_cluster_shards::cleanup() {
  stop_all(processes_);
  std::error_code ec;
  if (!dir_.empty() && std::getenv("CLAPS_KEEP_REDIS_DIR") == nullptr) std::filesystem::remove_all(dir_, ec);
}

std::string redis_cluster_shards::seeds() const {
  std::string out;
  for (const auto& p : processes_) {
    if (!out.empty()) out.push_back(',');
    out += "127.0.0.1:" + std::to_string(p.port);
  }
  return out;
}

std::vector<std::uint16_t> redis_cluster_shards::ports() const {
  std::vector<std::uint16_t> out;
  for (const auto& p : processes_) out.push_back(p.port);
  return out;
}

std::string redis_cluster_shards::nodes_text() const {
  for (const auto& p : processes_) {
    if (p.pid <= 0) continue;
    const std::string text = query(p.port, {"CLUSTER", "NODES"});
    if (!text.empty() && text.rfind("ERR", 0) != 0) return text;
  }
  return {};
}

namespace {

// CLUSTER NODES lines of live masters: port and slot ranges.
std::vector<std::pair<std::uint16_t, std::vector<std::pair<int, int>>>> live_masters(
    const std::string& text) {
  std::vector<std::pair<std::uint16_t, std::vector<std::pair<int, int>>>> out;
  std::size_t at = 0;
  while (at < text.size()) {
    std::size_t end = text.find('\n', at);
    if (end == std::string::npos) end = text.size();
    std::vector<std::string> f;
    std::size_t pos = at;
    while (pos < end) {
      std::size_t space = text.find(' ', pos);
      if (space == std::string::npos || space > end) space = end;
      f.push_back(text.substr(pos, space - pos));
      pos = space + 1;
    }
    at = end + 1;
    if (f.size() < 8 || f[2].find("master") == std::string::npos || f[2].find("fail") != std::string::npos)
      continue;
    const auto colon = f[1].find(':');
    const auto port = static_cast<std::uint16_t>(std::atoi(f[1].c_str() + colon + 1));
    std::vector<std::pair<int, int>> ranges;
    for (std::size_t i = 8; i < f.size(); ++i) {
      if (f[i].empty() || f[i][0] == '[') continue;
      const auto dash = f[i].find('-');
      const int first = std::atoi(f[i].c_str());
      ranges.emplace_back(first, dash == std::string::npos ? first : std::atoi(f[i].c_str() + dash + 1));
    }
    out.emplace_back(port, std::move(ranges));
  }
  return out;
}

}  // namespace

std::vector<std::uint16_t> redis_cluster_shards::master_ports() const {
  std::vector<std::uint16_t> out;
  for (const auto& [port, ranges] : live_masters(nodes_text()))
    if (!ranges.empty()) out.push_back(port);
  return out;
}

std::uint16_t redis_cluster_shards::master_of_slot(std::uint16_t slot) const {
  for (const auto& [port, ranges] : live_masters(nodes_text()))
    for (const auto& [first, last] : ranges)
      if (slot >= first && slot <= last) return port;
  return 0;
}

bool redis_cluster_shards::wait_ok(std::chrono::milliseconds deadline, std::uint16_t slot,
                                   std::uint16_t not_port) const {
  return poll_until(
      [&] {
        for (const auto& p : processes_) {
          if (p.pid <= 0) continue;
          if (query(p.port, {"CLUSTER", "INFO"}).find("cluster_state:ok") == std::string::npos) return false;
          if (not_port != 0) {
            for (const auto& [port, ranges] : live_masters(query(p.port, {"CLUSTER", "NODES"})))
              for (const auto& [first, last] : ranges)
                if (slot >= first && slot <= last && port == not_port) return false;
          }
        }
        return true;
      },
      deadline);
}

std::string redis_cluster_shards::node_id(std::uint16_t port) const {
  return query(port, {"CLUSTER", "MYID"});
}

pid_t redis_cluster_shards::start_reshard(std::uint16_t from, std::uint16_t to, int slots) const {
  std::vector<std::string> args{
      "redis-cli",       "--cluster",           "reshard",      "127.0.0.1:" + std::to_string(from),
      "--cluster-from",  node_id(from),         "--cluster-to", node_id(to),
      "--cluster-slots", std::to_string(slots), "--cluster-yes"};
  if (!password_.empty()) args.insert(args.end(), {"-a", password_, "--no-auth-warning"});
  return spawn_redis(args, true);
}

bool redis_cluster_shards::reshard_done(pid_t pid, bool& ok) {
  int status = 0;
  if (::waitpid(pid, &status, WNOHANG) != pid) return false;
  ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  return true;
}

void redis_cluster_shards::kill9(std::uint16_t port) {
  for (auto& p : processes_) {
    if (p.port != port || p.pid <= 0) continue;
    ::kill(p.pid, SIGKILL);
    ::waitpid(p.pid, nullptr, 0);
    p.pid = -1;
  }
}

}  // namespace claps::test
