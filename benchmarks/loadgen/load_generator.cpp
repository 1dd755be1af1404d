#include "load_generator.hpp"

#include "server_probe.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <thread>

namespace claps::loadgen {

namespace {

std::uint64_t monotonic_ns() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

// Articles are named by this tool, "a<k>", so the reverse lookup is a parse.
std::optional<std::uint32_t> article_index(std::string_view name, std::uint32_t articles) {
  if (name.size() < 2 || name[0] != 'a') return std::nullopt;
  std::uint32_t k = 0;
  auto [end, ec] = std::from_chars(name.data() + 1, name.data() + name.size(), k);
  if (ec != std::errc{} || end != name.data() + name.size() || k >= articles) return std::nullopt;
  return k;
}

constexpr double token_burst = 5;

// Starts one perf per sampled process, then gives them one common pause to
// attach: a counter that misses the first few ms undercounts by a negligible
// amount, but one that never attached reads 0.
void start_syscall_counters(std::vector<syscall_counter>& counters, run_results& results) {
  if (counters.empty()) return;
  for (std::size_t i = 0; i < counters.size(); ++i)
    if (!counters[i].start(results.processes[i].pid)) results.processes[i].syscalls_note = counters[i].why();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  for (std::size_t i = 0; i < counters.size(); ++i)
    if (results.processes[i].syscalls_note.empty() && !counters[i].attached())
      results.processes[i].syscalls_note = counters[i].why();
}

// The run's server figures are the sums over the sampled processes, so one
// --server-pid gives exactly that process's figures, as before several.
void sum_processes(run_results& results) {
  if (results.processes.empty()) return;
  double cpu = 0;
  std::uint64_t rss = 0, rss_before = 0, syscalls = 0;
  bool cpu_known = true, rss_known = true, rss_before_known = true, syscalls_known = true;
  for (const process_results& p : results.processes) {
    if (p.cpu_s) cpu += *p.cpu_s;
    else cpu_known = false;
    if (p.rss_kb) rss += *p.rss_kb;
    else rss_known = false;
    if (p.rss_kb_before) rss_before += *p.rss_kb_before;
    else rss_before_known = false;
    if (p.syscalls) syscalls += *p.syscalls;
    else syscalls_known = false;
    if (results.syscalls_note.empty() && !p.syscalls_note.empty()) results.syscalls_note = p.syscalls_note;
  }
  if (cpu_known) results.server_cpu_s = cpu;
  if (rss_known) results.server_rss_kb = rss;
  if (rss_before_known) results.server_rss_kb_before = rss_before;
  if (syscalls_known) results.server_syscalls = syscalls;
}

const char* state_name(auto state) {
  static constexpr const char* names[] = {"idle",      "connect", "handshake", "open",
                                          "subscribe", "ready",   "closed"};
  return names[static_cast<int>(state)];
}  // well inside clapsd's default burst of 40

}  // namespace

load_generator::load_generator(run_options options)
    : options_(std::move(options)),
      tracker_(std::max<std::uint32_t>(options_.articles, 1)),
      rng_(options_.seed) {}

load_generator::~load_generator() {
  for (auto& conn : conns_)
    if (conn.fd >= 0) close(conn.fd);
  if (epoll_fd_ >= 0) close(epoll_fd_);
}

std::uint32_t load_generator::now_us() const {
  return static_cast<std::uint32_t>((monotonic_ns() - start_ns_) / 1000);
}

std::uint32_t load_generator::pick_article() {
  switch (options_.spread) {
  case distribution::hot: return 0;
  case distribution::uniform: return static_cast<std::uint32_t>(rng_() % options_.articles);
  case distribution::zipf: {
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
    auto it = std::lower_bound(zipf_cdf_.begin(), zipf_cdf_.end(), u);
    return static_cast<std::uint32_t>(std::min<std::size_t>(it - zipf_cdf_.begin(), options_.articles - 1));
  }
  }
  return 0;
}

void load_generator::count_error(std::string_view kind) {
  ++results_->errors;
  ++results_->errors_by_kind[std::string(kind)];
}

void load_generator::open_connection(std::uint32_t id) {
  connection& conn = conns_[id];
  conn.in.clear();
  conn.out.clear();
  conn.fragments.clear();
  conn.want_out = false;
  conn.inflight = 0;
  ++handshakes_in_flight_;
  conn.state = conn_state::connecting;
  conn.fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (conn.fd < 0) {
    close_connection(id, std::string("socket: ") + std::strerror(errno));
    return;
  }
  const int one = 1;
  setsockopt(conn.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (!options_.source_ips.empty()) {
    // Defer the port choice to connect(), so ports are shared across
    // destinations and each source address has its own 28k ports.
    setsockopt(conn.fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in source{};
    source.sin_family = AF_INET;
    source.sin_addr = options_.source_ips[id % options_.source_ips.size()];
    if (bind(conn.fd, reinterpret_cast<sockaddr*>(&source), sizeof source) != 0) {
      close_connection(id, std::string("bind: ") + std::strerror(errno));
      return;
    }
  }
  epoll_event event{};
  event.events = EPOLLIN | EPOLLOUT;
  event.data.u64 = id;
  if (epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, conn.fd, &event) != 0) {
    close_connection(id, std::string("epoll: ") + std::strerror(errno));
    return;
  }
  conn.want_out = true;
  if (first_connect_us_ == 0) first_connect_us_ = std::max<std::uint32_t>(now_us(), 1);
  const sockaddr_in& server = endpoints_[conn.endpoint].addr;
  if (connect(conn.fd, reinterpret_cast<const sockaddr*>(&server), sizeof server) != 0 &&
      errno != EINPROGRESS) {
    close_connection(id, std::string("connect: ") + std::strerror(errno));
  }
}

void load_generator::close_connection(std::uint32_t id, std::string_view error_kind) {
  connection& conn = conns_[id];
  if (!error_kind.empty()) count_error(error_kind);
  if (conn.fd >= 0) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, conn.fd, nullptr);
    close(conn.fd);
    conn.fd = -1;
  }
  const bool was_ready = conn.state == conn_state::ready;
  if (conn.state != conn_state::ready && conn.state != conn_state::closed && conn.state != conn_state::idle) {
    --handshakes_in_flight_;
    ++results_->connect_failures;
  }
  if (conn.role == conn_role::viewer) {
    if (was_ready) --viewers_ready_;
    for (auto& [article, sub] : conn.subs) tracker_.drop_subscription(sub);
  } else if (was_ready) {
    --clappers_ready_;
  }
  conn.inflight = 0;
  conn.state = conn_state::closed;
  conn.in.clear();
  conn.out.clear();
}

void load_generator::on_event(std::uint32_t id, std::uint32_t events) {
  connection& conn = conns_[id];
  if (conn.fd < 0) return;
  if (conn.state == conn_state::connecting) {
    int error = 0;
    socklen_t len = sizeof error;
    getsockopt(conn.fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error != 0) {
      close_connection(id, std::string("connect: ") + std::strerror(error));
      return;
    }
    if (events & (EPOLLOUT | EPOLLIN)) on_connected(id);
    return;
  }
  if (events & EPOLLIN) {
    on_readable(id);
    if (conn.fd < 0) return;
  }
  if (events & EPOLLOUT) flush(id);
  if ((events & (EPOLLERR | EPOLLHUP)) && conn.fd >= 0 && !(events & EPOLLIN))
    close_connection(id, "socket_error");
}

void load_generator::on_connected(std::uint32_t id) {
  connection& conn = conns_[id];
  conn.state = conn_state::handshaking;
  char query[96];
  if (conn.role == conn_role::viewer)
    std::snprintf(query, sizeof query, "user=lg-%u-v%u", static_cast<unsigned>(getpid()), conn.index);
  else
    // batch=1: clapsd may send a tick's acks as one frame (docs/protocol.md).
    std::snprintf(query, sizeof query, "user=lg-%u-%u-%u&batch=1", static_cast<unsigned>(getpid()),
                  conn.index, conn.generation);
  conn.out = upgrade_request(endpoints_[conn.endpoint].url, query);
  flush(id);
}

void load_generator::flush(std::uint32_t id) {
  connection& conn = conns_[id];
  conn.dirty = false;
  if (conn.fd < 0) return;
  while (!conn.out.empty()) {
    const ssize_t n = send(conn.fd, conn.out.data(), conn.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      conn.out.erase(0, static_cast<std::size_t>(n));
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (n < 0 && errno == EINTR) continue;
    close_connection(id, "send_failed");
    return;
  }
  const bool want_out = !conn.out.empty();
  if (want_out != conn.want_out) {
    epoll_event event{};
    event.events = EPOLLIN | (want_out ? EPOLLOUT : 0u);
    event.data.u64 = id;
    epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, conn.fd, &event);
    conn.want_out = want_out;
  }
}

void load_generator::flush_dirty() {
  for (const auto id : dirty_)
    if (conns_[id].dirty) flush(id);
  dirty_.clear();
}

void load_generator::send_message(std::uint32_t id, std::string_view payload, ws_opcode opcode) {
  connection& conn = conns_[id];
  if (conn.fd < 0) return;
  append_client_frame(conn.out, opcode, payload);
  // Written once per loop iteration, so a clapper's several claps share a send().
  if (!conn.dirty) {
    conn.dirty = true;
    dirty_.push_back(id);
  }
}

void load_generator::on_readable(std::uint32_t id) {
  connection& conn = conns_[id];
  scratch_.resize(256 * 1024);
  const ssize_t n = recv(conn.fd, scratch_.data(), scratch_.size(), 0);
  if (n == 0) {
    close_connection(id, conn.state == conn_state::ready ? "closed_by_server" : "refused_by_server");
    return;
  }
  if (n < 0) {
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
    close_connection(id, std::string("recv: ") + std::strerror(errno));
    return;
  }
  conn.in.append(scratch_.data(), static_cast<std::size_t>(n));
  if (conn.state == conn_state::handshaking && !on_handshake_bytes(id)) return;
  if (conn.state != conn_state::handshaking && !on_frames(id)) return;
  if (conn.rotating && conn.inflight == 0) finish_rotation(id);
}

bool load_generator::on_handshake_bytes(std::uint32_t id) {
  connection& conn = conns_[id];
  const auto end = conn.in.find("\r\n\r\n");
  if (end == std::string::npos) {
    if (conn.in.size() > 16384) close_connection(id, "handshake_too_long");
    return false;
  }
  if (conn.in.compare(0, 12, "HTTP/1.1 101") != 0) {
    const std::string status = conn.in.size() >= 12 ? conn.in.substr(9, 3) : "???";
    close_connection(id, "handshake_http_" + status);
    return false;
  }
  conn.in.erase(0, end + 4);
  conn.state = conn_state::opening;
  return true;
}

bool load_generator::on_frames(std::uint32_t id) {
  connection& conn = conns_[id];
  std::size_t offset = 0;
  bool alive = true;
  while (alive) {
    ws_frame frame;
    const long used = parse_server_frame(std::string_view(conn.in).substr(offset), frame);
    if (used == 0) break;
    if (used < 0) {
      close_connection(id, "bad_frame");
      return false;
    }
    offset += static_cast<std::size_t>(used);
    switch (frame.opcode) {
    case ws_opcode::text:
    case ws_opcode::binary:
      if (frame.fin) {
        on_message(id, frame.payload);
      } else {
        conn.fragments.assign(frame.payload);
      }
      break;
    case ws_opcode::continuation:
      conn.fragments.append(frame.payload);
      if (frame.fin) {
        std::string message = std::move(conn.fragments);
        conn.fragments.clear();
        on_message(id, message);
      }
      break;
    case ws_opcode::ping: send_message(id, frame.payload, ws_opcode::pong); break;
    case ws_opcode::close: {
      unsigned code = 1005;
      if (frame.payload.size() >= 2)
        code =
            (static_cast<std::uint8_t>(frame.payload[0]) << 8) | static_cast<std::uint8_t>(frame.payload[1]);
      close_connection(id, "closed_" + std::to_string(code));
      return false;
    }
    default: break;
    }
    alive = conn.fd >= 0;
  }
  if (!alive) return false;
  conn.in.erase(0, offset);
  return true;
}

void load_generator::on_open(std::uint32_t id) {
  connection& conn = conns_[id];
  if (conn.role == conn_role::viewer) {
    std::string payload;
    encode_subscribe(options_.protocol, viewer_articles_[conn.index], payload);
    send_message(id, payload);
    conn.state = conn_state::subscribing;
    return;
  }
  conn.state = conn_state::ready;
  --handshakes_in_flight_;
  ++clappers_ready_;
  conn.tokens = token_burst;
  conn.tokens_at_us = now_us();
  if (clapping_ && options_.clap_rate <= 0) fill_closed_loop(id);
}

void load_generator::on_message(std::uint32_t id, std::string_view payload) {
  connection& conn = conns_[id];
  ++frames_total_;
  endpoint_results& at = results_->endpoints[conn.endpoint];
  if (counting_) {
    ++results_->frames_received;
    ++at.frames_received;
  }
  decoder_.decode(options_.protocol, payload, message_);
  if (message_.kind == message_kind::batch) {
    std::vector<std::string> parts = std::move(message_.batch);
    for (const std::string& part : parts) {
      decoder_.decode(options_.protocol, part, message_);
      if (conns_[id].fd < 0) return;
      on_decoded(id);
    }
    return;
  }
  on_decoded(id);
}

void load_generator::on_decoded(std::uint32_t id) {
  connection& conn = conns_[id];
  endpoint_results& at = results_->endpoints[conn.endpoint];
  const std::uint32_t now = now_us();
  switch (message_.kind) {
  case message_kind::engineio_open: send_message(id, socketio_connect); break;
  case message_kind::engineio_ping: send_message(id, engineio_pong); break;
  case message_kind::hello:
    if (conn.state == conn_state::opening) on_open(id);
    break;
  case message_kind::counts: {
    if (conn.role != conn_role::viewer) break;
    if (conn.state == conn_state::subscribing) {
      conn.state = conn_state::ready;
      --handshakes_in_flight_;
      ++viewers_ready_;
      last_viewer_ready_us_ = now;
    } else if (conn.state == conn_state::ready && counting_) {
      ++results_->update_frames;
      results_->updates_received += message_.counts.size();
      ++at.update_frames;
      at.updates_received += message_.counts.size();
      if (conn.last_update_us != 0 &&
          now - conn.last_update_us < static_cast<std::uint32_t>(options_.tick_ms * 500))
        ++results_->sub_tick_pairs;
      conn.last_update_us = now;
      ++conn.window_updates;
    }
    for (const count_item& item : message_.counts) {
      const auto article = article_index(item.article, options_.articles);
      if (!article) continue;
      for (const auto& [watched, sub] : conn.subs)
        if (watched == *article) tracker_.on_total(sub, item.total, now);
    }
    break;
  }
  case message_kind::ack: {
    auto it = outstanding_.find(message_.op_seq);
    if (it == outstanding_.end()) {
      count_error("unknown_ack");
      break;
    }
    const outstanding_clap clap = it->second;
    outstanding_.erase(it);
    if (conn.inflight) --conn.inflight;
    ++results_->claps_acked;
    if (counting_) ++at.acks;
    results_->claps_accepted += static_cast<std::uint64_t>(std::max<std::int64_t>(message_.accepted, 0));
    if (counting_)
      accepted_in_window_ += static_cast<std::uint64_t>(std::max<std::int64_t>(message_.accepted, 0));
    if (message_.accepted <= 0) ++results_->claps_refused_by_cap;
    ++results_->acks_by_durability[message_.durability.empty() ? std::string("none")
                                                               : std::string(message_.durability)];
    results_->ack_latency.record(now - clap.sent_us);
    if (message_.accepted > 0) tracker_.on_ack(clap.article, message_.total, clap.sent_us);
    if (clapping_ && options_.clap_rate <= 0) fill_closed_loop(id);
    break;
  }
  case message_kind::error:
    count_error("server_" + std::string(message_.error_code));
    if (message_.op_seq) {
      if (outstanding_.erase(message_.op_seq) && conn.inflight) --conn.inflight;
      if (clapping_ && options_.clap_rate <= 0) fill_closed_loop(id);
    }
    break;
  case message_kind::malformed: count_error("malformed_message"); break;
  case message_kind::other:
  case message_kind::batch: break;
  }
}

bool load_generator::try_clap(std::uint32_t id) {
  connection& conn = conns_[id];
  if (conn.state != conn_state::ready || conn.rotating) return false;
  const std::uint32_t article = pick_article();
  std::uint32_t& claps = conn.user_claps[article];
  // First users get staggered budgets, so clappers do not all rotate at once.
  const std::uint32_t budget =
      conn.generation == 0
          ? options_.user_claps - (conn.index * options_.user_claps / (options_.clappers + 1)) / 2
          : options_.user_claps;
  if (claps >= budget) {
    // This user is near the cap on that article: finish its claps, then come back as a new user.
    conn.rotating = true;
    return false;
  }
  ++claps;
  const std::uint64_t seq = next_op_seq_++;
  encode_clap(options_.protocol, article_names_[article], seq, clap_payload_);
  send_message(id, clap_payload_);
  outstanding_.emplace(seq, outstanding_clap{now_us(), article, id});
  ++conn.inflight;
  ++results_->claps_sent;
  return true;
}

void load_generator::fill_closed_loop(std::uint32_t id) {
  connection& conn = conns_[id];
  while (conn.inflight < options_.inflight && try_clap(id)) {}
}

void load_generator::finish_rotation(std::uint32_t id) {
  connection& conn = conns_[id];
  if (conn.fd >= 0) {
    epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, conn.fd, nullptr);
    close(conn.fd);
    conn.fd = -1;
  }
  if (conn.state == conn_state::ready) --clappers_ready_;
  conn.state = conn_state::idle;
  conn.rotating = false;
  conn.user_claps.clear();
  ++conn.generation;
  ++results_->user_rotations;
  open_connection(id);
}

void load_generator::clap_open_loop() {
  const std::uint32_t now = now_us();
  const std::uint32_t clappers = options_.clappers;
  while (true) {
    const double due = measure_start_us_ + static_cast<double>(claps_scheduled_) * 1e6 / options_.clap_rate;
    if (static_cast<double>(now) < due) break;
    ++claps_scheduled_;
    bool sent = false;
    for (std::uint32_t attempt = 0; attempt < clappers && !sent; ++attempt) {
      const std::uint32_t id = options_.viewers + (next_clapper_++ % clappers);
      connection& conn = conns_[id];
      if (conn.state != conn_state::ready || conn.rotating) continue;
      conn.tokens =
          std::min(token_burst, conn.tokens + (now - conn.tokens_at_us) / 1e6 * options_.per_conn_rate);
      conn.tokens_at_us = now;
      if (conn.tokens < 1) continue;
      if (try_clap(id)) {
        conn.tokens -= 1;
        sent = true;
      } else if (conn.rotating && conn.inflight == 0) {
        finish_rotation(id);
      }
    }
    if (!sent) ++results_->claps_unsent;
  }
}

bool load_generator::all_settled() const {
  return outstanding_.empty() && tracker_.pairs_seen() >= tracker_.pairs_expected();
}

void load_generator::print_progress(phase current, double elapsed_s) {
  if (!options_.progress) return;
  static constexpr const char* names[] = {"connect", "settle", "idle", "measure", "drain", "leave", "done"};
  const double frames_per_s = (frames_total_ - progress_frames_) / std::max(elapsed_s - progress_at_s_, 1e-3);
  progress_frames_ = frames_total_;
  progress_at_s_ = elapsed_s;
  std::fprintf(stderr,
               "\r[%-7s %6.1fs] viewers %u/%u clappers %u/%u claps %llu/%llu frames/s %8.0f "
               "p99 %7.1f ms errors %llu   ",
               names[static_cast<int>(current)], elapsed_s, viewers_ready_, options_.viewers, clappers_ready_,
               options_.clappers, static_cast<unsigned long long>(results_->claps_sent),
               static_cast<unsigned long long>(results_->claps_acked), frames_per_s,
               tracker_.histogram().percentile_ms(0.99), static_cast<unsigned long long>(results_->errors));
  std::fflush(stderr);
}

bool load_generator::add_endpoint(const ws_url& url, std::uint32_t& index) {
  for (std::uint32_t i = 0; i < endpoints_.size(); ++i) {
    const ws_url& known = endpoints_[i].url;
    if (known.host == url.host && known.port == url.port && known.path == url.path) {
      index = i;
      return true;
    }
  }
  endpoint e;
  e.url = url;
  e.addr.sin_family = AF_INET;
  e.addr.sin_port = htons(url.port);
  if (inet_pton(AF_INET, url.host.c_str(), &e.addr.sin_addr) != 1) {
    addrinfo hints{};
    hints.ai_family = AF_INET;
    addrinfo* found = nullptr;
    if (getaddrinfo(url.host.c_str(), nullptr, &hints, &found) != 0 || !found) {
      std::fprintf(stderr, "claps-loadgen: cannot resolve %s\n", url.host.c_str());
      return false;
    }
    e.addr.sin_addr = reinterpret_cast<sockaddr_in*>(found->ai_addr)->sin_addr;
    freeaddrinfo(found);
  }
  index = static_cast<std::uint32_t>(endpoints_.size());
  endpoints_.push_back(std::move(e));
  return true;
}

bool load_generator::run(run_results& results) {
  results_ = &results;
  results.connections_wanted = options_.viewers + options_.clappers;
  if (options_.articles == 0) options_.articles = 1;

  // Resolve the servers: one endpoint per distinct URL.
  std::vector<std::uint32_t> viewer_endpoint, clapper_endpoint;
  for (const auto& url : options_.viewer_urls) {
    if (!add_endpoint(url, viewer_endpoint.emplace_back())) return false;
  }
  for (const auto& url : options_.clapper_urls) {
    if (!add_endpoint(url, clapper_endpoint.emplace_back())) return false;
  }
  if (viewer_endpoint.empty() || clapper_endpoint.empty()) {
    std::fprintf(stderr, "claps-loadgen: no server URL\n");
    return false;
  }
  for (const auto& e : endpoints_) {
    endpoint_results& r = results.endpoints.emplace_back();
    r.url = "ws://" + e.url.host + ":" + std::to_string(e.url.port) + e.url.path;
  }

  // One fd per connection plus a few of our own.
  rlimit limit{};
  getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = limit.rlim_max;
  setrlimit(RLIMIT_NOFILE, &limit);
  if (static_cast<rlim_t>(results.connections_wanted) + 32 > limit.rlim_cur) {
    std::fprintf(stderr, "claps-loadgen: %u connections need more than the fd limit %llu\n",
                 results.connections_wanted, static_cast<unsigned long long>(limit.rlim_cur));
    return false;
  }

  epoll_fd_ = epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) return false;

  article_names_.reserve(options_.articles);
  for (std::uint32_t a = 0; a < options_.articles; ++a) article_names_.push_back("a" + std::to_string(a));
  if (options_.spread == distribution::zipf) {
    double sum = 0;
    for (std::uint32_t a = 0; a < options_.articles; ++a) sum += 1.0 / (a + 1);
    double running = 0;
    for (std::uint32_t a = 0; a < options_.articles; ++a) {
      running += 1.0 / (a + 1) / sum;
      zipf_cdf_.push_back(running);
    }
  }

  conns_.resize(results.connections_wanted);
  viewer_articles_.resize(options_.viewers);
  const std::uint32_t per_conn = std::min(options_.subscriptions_per_conn, options_.articles);
  for (std::uint32_t v = 0; v < options_.viewers; ++v) {
    connection& conn = conns_[v];
    conn.role = conn_role::viewer;
    conn.index = v;
    conn.endpoint = viewer_endpoint[v % viewer_endpoint.size()];
    ++results.endpoints[conn.endpoint].viewers;
    std::vector<std::uint32_t> chosen;
    chosen.push_back(pick_article());
    for (std::uint32_t attempt = 0; chosen.size() < per_conn; ++attempt) {
      // Later picks are uniform (hot means one hot article, not many copies of it).
      std::uint32_t a = options_.spread == distribution::zipf && attempt < per_conn * 20
                            ? pick_article()
                            : static_cast<std::uint32_t>(rng_() % options_.articles);
      if (std::find(chosen.begin(), chosen.end(), a) == chosen.end()) chosen.push_back(a);
    }
    for (const auto a : chosen) {
      viewer_articles_[v].push_back(article_names_[a]);
      conn.subs.emplace_back(a, tracker_.add_subscription(a));
    }
  }
  for (std::uint32_t c = 0; c < options_.clappers; ++c) {
    connection& conn = conns_[options_.viewers + c];
    conn.role = conn_role::clapper;
    conn.index = c;
    conn.endpoint = clapper_endpoint[c % clapper_endpoint.size()];
    ++results.endpoints[conn.endpoint].clappers;
  }

  start_ns_ = monotonic_ns();
  for (const auto& target : options_.servers) {
    process_results& p = results.processes.emplace_back();
    p.name = target.name;
    p.pid = target.pid;
    p.rss_kb_before = process_rss_kb(target.pid);
  }

  std::vector<syscall_counter> syscalls(options_.servers.size());
  std::vector<std::optional<double>> cpu_at_start(options_.servers.size());
  pid_t hook_at_start = -1, hook_at_end = -1, hook_at_idle_start = -1, hook_at_idle_end = -1;
  std::vector<std::optional<double>> cpu_at_idle(options_.servers.size());
  std::uint32_t idle_start_us = 0;
  double own_cpu_at_start = 0;
  std::uint32_t next_to_open = 0;
  std::uint32_t next_to_close = 0, leave_start_us = 0;
  std::uint32_t phase_end_us = 0;
  const auto total = results.connections_wanted;
  const auto connect_deadline_us =
      static_cast<std::uint32_t>((options_.ramp_s + options_.connect_timeout_s) * 1e6);
  std::vector<epoll_event> events(4096);
  std::uint32_t next_progress_us = 1'000'000;
  phase_ = phase::connect;

  while (phase_ != phase::done) {
    std::uint32_t now = now_us();
    int timeout_ms = 10;
    switch (phase_) {
    case phase::connect: {
      const std::uint32_t allowed =
          options_.ramp_s > 0
              ? static_cast<std::uint32_t>(std::min<double>(
                    options_.viewers, std::ceil(options_.viewers * (now / 1e6) / options_.ramp_s)))
              : options_.viewers;
      // Clappers first (they are few), so a server slow to take viewers still gets its claps.
      while (next_to_open < total && handshakes_in_flight_ < options_.connect_concurrency) {
        const std::uint32_t id = next_to_open < options_.clappers ? options_.viewers + next_to_open
                                                                  : next_to_open - options_.clappers;
        if (id < options_.viewers && id >= allowed) break;
        open_connection(id);
        ++next_to_open;
      }
      timeout_ms = 1;
      const bool opened_all = next_to_open == total && handshakes_in_flight_ == 0;
      if (opened_all || now > connect_deadline_us) {
        if (!opened_all) {
          for (std::uint32_t id = 0; id < total; ++id)
            if (conns_[id].state != conn_state::ready && conns_[id].state != conn_state::closed)
              close_connection(id, std::string("connect_timeout_in_") + state_name(conns_[id].state));
        }
        if (last_viewer_ready_us_ > first_connect_us_) {
          results.connect_s = (last_viewer_ready_us_ - first_connect_us_) / 1e6;
          results.connect_rate = viewers_ready_ / std::max(results.connect_s, 1e-6);
        }
        if (options_.progress) {
          print_progress(phase_, now / 1e6);
          std::fprintf(stderr, "\n");
        }
        phase_ = phase::settle;
        phase_end_us = now + static_cast<std::uint32_t>(options_.settle_s * 1e6);
      }
      break;
    }
    case phase::settle:
      if (now >= phase_end_us && options_.idle_window_s > 0 && idle_start_us == 0) {
        // Everyone connected, nobody claps: what the processes cost without claps.
        if (!options_.window_hook.empty())
          hook_at_idle_start = spawn_hook(options_.window_hook, "idle-start");
        for (std::size_t i = 0; i < options_.servers.size(); ++i)
          cpu_at_idle[i] = process_cpu_seconds(options_.servers[i].pid);
        idle_start_us = std::max<std::uint32_t>(now_us(), 1);
        phase_ = phase::idle;
        phase_end_us = idle_start_us + static_cast<std::uint32_t>(options_.idle_window_s * 1e6);
        break;
      }
      [[fallthrough]];
    case phase::idle:
      if (phase_ == phase::idle && now >= phase_end_us) {
        results.idle_window_s = (now_us() - idle_start_us) / 1e6;
        for (std::size_t i = 0; i < options_.servers.size(); ++i) {
          if (auto cpu = process_cpu_seconds(options_.servers[i].pid); cpu && cpu_at_idle[i])
            results.processes[i].idle_cpu_s = *cpu - *cpu_at_idle[i];
        }
        if (!options_.window_hook.empty()) hook_at_idle_end = spawn_hook(options_.window_hook, "idle-end");
      }
      if (now >= phase_end_us) {
        if (options_.count_syscalls) start_syscall_counters(syscalls, results);
        if (!options_.window_hook.empty()) hook_at_start = spawn_hook(options_.window_hook, "start");
        for (std::size_t i = 0; i < options_.servers.size(); ++i)
          cpu_at_start[i] = process_cpu_seconds(options_.servers[i].pid);
        own_cpu_at_start = own_cpu_seconds();
        now = now_us();
        measure_start_us_ = now;
        phase_end_us = now + static_cast<std::uint32_t>(options_.duration_s * 1e6);
        counting_ = true;
        clapping_ = options_.clappers > 0;
        phase_ = phase::measure;
        if (clapping_ && options_.clap_rate <= 0)
          for (std::uint32_t c = 0; c < options_.clappers; ++c) fill_closed_loop(options_.viewers + c);
      }
      break;
    case phase::measure:
      timeout_ms = 1;
      if (clapping_ && options_.clap_rate > 0) clap_open_loop();
      if (now >= phase_end_us) {
        counting_ = false;
        clapping_ = false;
        results.window_s = (now - measure_start_us_) / 1e6;
        for (std::size_t i = 0; i < options_.servers.size(); ++i) {
          if (auto cpu = process_cpu_seconds(options_.servers[i].pid); cpu && cpu_at_start[i])
            results.processes[i].cpu_s = *cpu - *cpu_at_start[i];
        }
        if (!options_.window_hook.empty()) hook_at_end = spawn_hook(options_.window_hook, "end");
        for (std::size_t i = 0; i < options_.servers.size(); ++i) {
          process_results& p = results.processes[i];
          if (options_.count_syscalls && p.syscalls_note.empty()) {
            p.syscalls = syscalls[i].stop();
            if (!p.syscalls) p.syscalls_note = syscalls[i].why();
          }
          p.rss_kb = process_rss_kb(p.pid);
        }
        sum_processes(results);
        results.loadgen_cpu_s = own_cpu_seconds() - own_cpu_at_start;
        for (std::uint32_t id = 0; id < total; ++id) {
          if (conns_[id].state == conn_state::ready) ++results.connections;
          results.max_update_frames_per_conn =
              std::max(results.max_update_frames_per_conn, conns_[id].window_updates);
        }
        if (options_.progress) {
          print_progress(phase_, now / 1e6);
          std::fprintf(stderr, "\n");
        }
        phase_ = phase::drain;
        phase_end_us = now + static_cast<std::uint32_t>(options_.drain_s * 1e6);
      }
      break;
    case phase::drain:
      if (all_settled() || now >= phase_end_us) {
        phase_ = options_.leave_s > 0 && options_.viewers > 0 ? phase::leave : phase::done;
        leave_start_us = now;
      }
      break;
    case phase::leave: {
      timeout_ms = 1;
      const double elapsed_s = (now - leave_start_us) / 1e6;
      const auto due = static_cast<std::uint32_t>(
          std::min<double>(options_.viewers, std::ceil(options_.viewers * elapsed_s / options_.leave_s)));
      // A plain close, as a browser tab going away; not an error.
      for (; next_to_close < due; ++next_to_close) close_connection(next_to_close, "");
      if (next_to_close == options_.viewers) phase_ = phase::done;
      break;
    }
    case phase::done: break;
    }
    if (phase_ == phase::done) break;

    flush_dirty();
    const int n = epoll_wait(epoll_fd_, events.data(), static_cast<int>(events.size()), timeout_ms);
    for (int i = 0; i < n; ++i) on_event(static_cast<std::uint32_t>(events[i].data.u64), events[i].events);
    flush_dirty();

    now = now_us();
    if (now >= next_progress_us) {
      print_progress(phase_, now / 1e6);
      next_progress_us += 1'000'000;
    }
  }
  if (options_.progress) {
    print_progress(phase_, now_us() / 1e6);
    std::fprintf(stderr, "\n");
  }

  // The hooks ran alongside the drain; a hook that hangs is not waited for past 10 s.
  for (const pid_t hook : {hook_at_idle_start, hook_at_idle_end, hook_at_start, hook_at_end})
    if (hook > 0 && !reap_hook(hook, 10.0)) count_error("window_hook_failed");

  results.frames_per_s = results.window_s > 0 ? results.frames_received / results.window_s : 0;
  results.updates_per_s = results.window_s > 0 ? results.updates_received / results.window_s : 0;
  results.accepted_per_s = results.window_s > 0 ? accepted_in_window_ / results.window_s : 0;
  results.latency_pairs_expected = tracker_.pairs_expected();
  results.latency_ring_overflows = tracker_.ring_overflows();
  results.claps_unacked = outstanding_.size();
  return true;
}

}  // namespace claps::loadgen
