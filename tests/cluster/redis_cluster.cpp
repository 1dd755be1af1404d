#include "redis_cluster.hpp"

#include <hiredis/hiredis.h>

#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <signal.h>
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

template <class Pred> bool poll_until(Pred pred, std::chrono::milliseconds deadline) {
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

} // namespace

std::string redis_cluster::ask_sentinel(std::uint16_t port,
                                       const std::vector<std::string>& args) const {
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
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(argv.size()), argv.data(), lens.data()));
  std::string out = r != nullptr ? text(r) : std::string();
  if (r) freeReplyObject(r);
  redisFree(c);
  return out;
}

redis_cluster::redis_cluster(int replicas, int sentinels, bool standalone,
                             std::string sentinel_password)
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
      f << "requirepass " << sentinel_password_ << "\nsentinel sentinel-pass " << sentinel_password_
        << "\n";
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

pid_t redis_cluster::spawn(const std::filesystem::path& conf, bool sentinel) {
  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) throw std::runtime_error("fork failed");
  if (pid == 0) {
    // Die with the test process, whatever kills it.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    const std::string path = conf.string();
    if (sentinel)
      ::execlp("redis-server", "redis-server", path.c_str(), "--sentinel", static_cast<char*>(nullptr));
    else
      ::execlp("redis-server", "redis-server", path.c_str(), static_cast<char*>(nullptr));
    ::_exit(127);
  }
  return pid;
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
        !poll_until([&] {
          return query(p.port, {"INFO", "replication"}).find("master_link_status:up") != std::string::npos;
        }, 20s))
      throw std::runtime_error("replica did not sync");
    if (p.role == "sentinel" &&
        !poll_until([&] {
          // Failover needs the quorum of sentinels to know the replicas
          // and each other (they learn it by gossip, within seconds).
          const std::string r = ask_sentinel(p.port, {"SENTINEL", "replicas", master_name});
          const std::string s = ask_sentinel(p.port, {"SENTINEL", "sentinels", master_name});
          return count_words(r, "master-link-status ok") >= replicas &&
                 count_words(s, "runid") + 1 >= sentinels;
        }, 30s))
      throw std::runtime_error("sentinel did not discover replicas and peers");
  }
}

redis_cluster::~redis_cluster() { cleanup(); }

void redis_cluster::cleanup() {
  for (auto& p : processes_) {
    if (p.pid <= 0) continue;
    ::kill(p.pid, SIGCONT);
    ::kill(p.pid, SIGKILL);
    ::waitpid(p.pid, nullptr, 0);
    p.pid = -1;
  }
  std::error_code ec;
  if (!dir_.empty() && std::getenv("CLAPS_KEEP_REDIS_DIR") == nullptr)
    std::filesystem::remove_all(dir_, ec);
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
  poll_until([&] {
    const std::uint16_t port = sentinel_master_port();
    if (port == 0 || port == old_port) return false;
    if (query(port, {"ROLE"}).rfind("master", 0) != 0) return false;
    found = port;
    return true;
  }, deadline);
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

} // namespace claps::test
