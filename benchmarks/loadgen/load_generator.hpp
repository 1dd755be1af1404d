// load_generator.hpp - one benchmark run: connect, subscribe, clap, measure.
//
// One thread, one epoll set, non-blocking sockets. Phases:
//   connect  open viewers (then clappers) at viewers/ramp per second, at most
//            `connect_concurrency` handshakes in flight;
//   settle   one second for the server to finish announcing viewer counts;
//   idle     (optional, `idle_window_s` > 0) everyone connected, nobody claps:
//            the sampled processes' CPU and the window hook ("idle-start",
//            "idle-end") give the background cost to set against the claps';
//   measure  `duration` seconds: clappers clap, server CPU/syscalls are sampled
//            at both ends, frames and updates are counted;
//   drain    clapping stops; wait (bounded) for outstanding acks and for every
//            viewer to see every acknowledged clap;
//   leave    (optional, `leave_s` > 0) viewers close evenly over `leave_s`
//            seconds, so the server sees a leave wave rather than one burst
//            at exit.
#pragma once

#include "latency.hpp"
#include "wire.hpp"

#include <netinet/in.h>
#include <sys/types.h>

#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

namespace claps::loadgen {

enum class distribution : std::uint8_t { uniform, hot, zipf };

/// A process sampled over the measure window (CPU, RSS, system calls).
struct probe_target {
  std::string name;  // e.g. "A", "redis"; empty for an unnamed --server-pid
  pid_t pid = 0;
};

struct run_options {
  // Viewer v connects to viewer_urls[v % size], clapper c to
  // clapper_urls[c % size] (several nodes of one cluster, or one server).
  std::vector<ws_url> viewer_urls;
  std::vector<ws_url> clapper_urls;
  wire_protocol protocol = wire_protocol::claps;
  std::uint32_t viewers = 0;
  std::uint32_t articles = 1;
  distribution spread = distribution::hot;
  std::uint32_t subscriptions_per_conn = 1;
  std::uint32_t clappers = 0;
  double clap_rate = 0;           // claps/s in total; 0 = as fast as acks return
  std::uint32_t inflight = 32;    // per clapper when clap_rate == 0
  double per_conn_rate = 19;      // cap per clapper connection when clap_rate > 0
  std::uint32_t user_claps = 45;  // claps per user per article before rotating the user
  double duration_s = 10;
  double ramp_s = 0;
  double settle_s = 1;
  double drain_s = 5;
  double leave_s = 0;             // after the drain, close the viewers over this long; 0: all at exit
  double connect_timeout_s = 60;  // after the ramp, give up on handshakes still unfinished
  std::uint32_t connect_concurrency = 256;
  double tick_ms = 25;  // for the frames-per-tick check
  std::vector<in_addr> source_ips;
  std::vector<probe_target> servers;
  // Run as `hook start` when the measure window opens and `hook end` when it
  // closes (not waited for until the run ends), e.g. to scrape /metrics.
  std::string window_hook;
  // Seconds of the idle phase (0: none), between settle and measure.
  double idle_window_s = 0;
  bool count_syscalls = true;
  bool progress = true;
  std::uint64_t seed = 1;
};

/// What one server endpoint (a distinct URL) delivered in the measure window.
struct endpoint_results {
  std::string url;
  std::uint32_t viewers = 0;
  std::uint32_t clappers = 0;
  std::uint64_t frames_received = 0;  // every WebSocket message on its connections
  std::uint64_t update_frames = 0;    // counts frames to its viewers
  std::uint64_t updates_received = 0;
  std::uint64_t acks = 0;
};

/// One sampled process over the measure window.
struct process_results {
  std::string name;
  pid_t pid = 0;
  std::optional<std::uint64_t> rss_kb_before, rss_kb;
  std::optional<double> cpu_s;
  std::optional<double> idle_cpu_s;  // over the idle phase, when there is one
  std::optional<std::uint64_t> syscalls;
  std::string syscalls_note;
};

struct run_results {
  std::uint32_t connections = 0;  // open at the end of the measure phase
  std::uint32_t connections_wanted = 0;
  std::uint64_t connect_failures = 0;
  double connect_s = 0;     // first connect to last viewer subscribed
  double connect_rate = 0;  // viewers subscribed per second
  std::uint64_t claps_sent = 0;
  std::uint64_t claps_acked = 0;
  std::uint64_t claps_accepted = 0;  // sum of accepted counts
  // Acks by their "durability" field over the whole run ("local", "cluster",
  // or "none" when absent): a node that lost Redis acks "local".
  std::map<std::string, std::uint64_t> acks_by_durability;
  std::uint64_t claps_unsent = 0;          // open-loop slots with no clapper free
  std::uint64_t claps_unacked = 0;         // still without ack or error after the drain
  std::uint64_t claps_refused_by_cap = 0;  // acks with accepted <= 0 (should stay 0)
  std::uint64_t user_rotations = 0;
  double accepted_per_s = 0;
  std::uint64_t frames_received = 0;   // every WebSocket message, measure window
  std::uint64_t update_frames = 0;     // counts frames, measure window
  std::uint64_t updates_received = 0;  // count items, measure window
  double frames_per_s = 0;
  double updates_per_s = 0;
  std::uint64_t sub_tick_pairs = 0;              // two updates on one connection < tick/2 apart
  std::uint32_t max_update_frames_per_conn = 0;  // in the window; <= ticks in it when coalesced
  std::uint64_t errors = 0;
  std::map<std::string, std::uint64_t> errors_by_kind;
  latency_histogram ack_latency;
  std::uint64_t latency_pairs_expected = 0;
  std::uint64_t latency_ring_overflows = 0;
  double window_s = 0;
  double idle_window_s = 0;  // measured length of the idle phase (0: none)
  // Sums over every sampled process (one server: exactly its figures).
  std::optional<std::uint64_t> server_rss_kb_before, server_rss_kb;
  std::optional<double> server_cpu_s;
  std::optional<std::uint64_t> server_syscalls;
  std::string syscalls_note;
  std::vector<endpoint_results> endpoints;
  std::vector<process_results> processes;
  double loadgen_cpu_s = 0;
};

class load_generator {
public:
  explicit load_generator(run_options options);
  ~load_generator();
  load_generator(const load_generator&) = delete;
  load_generator& operator=(const load_generator&) = delete;

  /// Runs all phases; false when the run could not start at all.
  bool run(run_results& results);
  const latency_tracker& latency() const noexcept { return tracker_; }

private:
  enum class conn_state : std::uint8_t { idle, connecting, handshaking, opening, subscribing, ready, closed };
  enum class conn_role : std::uint8_t { viewer, clapper };
  struct connection {
    int fd = -1;
    conn_state state = conn_state::idle;
    conn_role role = conn_role::viewer;
    bool dirty = false;            // has bytes in `out` queued this iteration
    bool want_out = false;         // registered for EPOLLOUT
    bool rotating = false;         // clapper waits for its acks, then reconnects as a new user
    std::uint32_t index = 0;       // viewer or clapper number
    std::uint32_t endpoint = 0;    // index into endpoints_
    std::uint32_t generation = 0;  // user rotation count
    std::uint32_t inflight = 0;
    std::uint32_t last_update_us = 0;
    std::uint32_t window_updates = 0;  // update frames in the measure window
    double tokens = 0;
    std::uint32_t tokens_at_us = 0;
    std::string in;
    std::string out;
    std::string fragments;
    std::vector<std::pair<std::uint32_t, latency_tracker::sub_id>> subs;  // (article, sub)
    std::unordered_map<std::uint32_t, std::uint32_t> user_claps;          // article -> claps of this user
  };
  struct outstanding_clap {
    std::uint32_t sent_us;
    std::uint32_t article;
    std::uint32_t conn;
  };
  enum class phase : std::uint8_t { connect, settle, idle, measure, drain, leave, done };

  std::uint32_t now_us() const;
  std::uint32_t pick_article();
  void open_connection(std::uint32_t conn);
  void close_connection(std::uint32_t conn, std::string_view error_kind);
  void on_event(std::uint32_t conn, std::uint32_t events);
  void on_connected(std::uint32_t conn);
  void on_readable(std::uint32_t conn);
  bool on_handshake_bytes(std::uint32_t conn);
  bool on_frames(std::uint32_t conn);
  void on_message(std::uint32_t conn, std::string_view payload);
  void on_decoded(std::uint32_t conn);
  void on_open(std::uint32_t conn);  // WebSocket (and Socket.IO namespace) is up
  void send_message(std::uint32_t conn, std::string_view payload, ws_opcode opcode = ws_opcode::text);
  void flush(std::uint32_t conn);
  void flush_dirty();
  bool try_clap(std::uint32_t conn);
  void clap_open_loop();
  void fill_closed_loop(std::uint32_t conn);
  void finish_rotation(std::uint32_t conn);
  void count_error(std::string_view kind);
  void print_progress(phase current, double elapsed_s);
  bool all_settled() const;

  run_options options_;
  run_results* results_ = nullptr;
  int epoll_fd_ = -1;
  struct endpoint {
    ws_url url;
    sockaddr_in addr{};
  };
  bool add_endpoint(const ws_url& url, std::uint32_t& index);
  std::vector<endpoint> endpoints_;
  std::vector<connection> conns_;
  std::vector<std::uint32_t> dirty_;
  std::vector<std::vector<std::string>> viewer_articles_;
  std::vector<std::string> article_names_;
  std::vector<double> zipf_cdf_;
  latency_tracker tracker_;
  message_decoder decoder_;
  decoded_message message_;
  std::string scratch_;
  std::unordered_map<std::uint64_t, outstanding_clap> outstanding_;
  std::mt19937_64 rng_;
  std::uint64_t next_op_seq_ = 1;
  std::uint64_t start_ns_ = 0;
  std::uint32_t viewers_ready_ = 0;
  std::uint32_t clappers_ready_ = 0;
  std::uint32_t handshakes_in_flight_ = 0;
  std::uint32_t next_clapper_ = 0;
  phase phase_ = phase::connect;
  bool counting_ = false;  // inside the measure window
  bool clapping_ = false;
  std::uint32_t first_connect_us_ = 0;
  std::uint32_t last_viewer_ready_us_ = 0;
  std::uint64_t frames_total_ = 0;
  std::uint64_t accepted_in_window_ = 0;
  std::uint32_t measure_start_us_ = 0;
  std::uint64_t claps_scheduled_ = 0;
  std::uint64_t progress_frames_ = 0;
  double progress_at_s_ = 0;
  std::string clap_payload_;
};

}  // namespace claps::loadgen
