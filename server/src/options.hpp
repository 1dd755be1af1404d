// options.hpp - clapsd's configuration: command-line flags with CLAPS_*
// environment variable fallbacks (a flag on the command line wins).
#pragma once

#include "client_address.hpp"

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace claps::server {

enum class store_kind { lmdb, memory };
enum class log_level { trace, debug, info, warn, error };
/// What a log line on stderr looks like: `clapsd info: message`, or one JSON
/// object per line ({"ts","level","msg"}, "node" with --node-id).
enum class log_format { text, json };

struct server_options {
  std::string listen_host = "127.0.0.1";
  std::uint16_t listen_port = 8080;
  // clapsd binds the port itself with SO_REUSEPORT (listen_socket.hpp), so
  // one process per core can share it.
  bool reuse_port = false;
  // This process's own operations listener (/metrics, /readyz, /healthz):
  // per process, so readiness means something behind --reuse-port.
  bool admin_listen = false;
  std::string admin_host;
  std::uint16_t admin_port = 0;
  std::string admin_token_file;  // Bearer token for the admin endpoints
  std::string data_dir = "data";
  store_kind store = store_kind::lmdb;
  int tick_ms = 25;
  int clap_cap = 50;
  std::string auth_secret_file;                     // empty: demo mode
  std::string jwt_audience;                         // required `aud` when set
  std::string jwt_issuer;                           // required `iss` when set
  std::int64_t jwt_max_lifetime_s = 7 * 24 * 3600;  // 0: no limit
  // Demo mode on an address other than loopback lets anyone act as any user:
  // refused unless asked for.
  bool allow_anonymous = false;
  std::vector<std::string> allowed_origins;
  std::size_t max_connections = 19000;
  // SSE streams, counted among max_connections too, have a cap of their own so
  // that readers who never read cannot take every connection from WebSockets.
  std::size_t max_sse_streams = 1000;
  // WebSocket connections one user may hold at once (a user can otherwise
  // multiply the per-connection limits by opening more connections).
  std::size_t max_connections_per_user = 32;
  // WebSocket + SSE connections from one client address (0: no cap). Loopback
  // clients are exempt unless the flag was given: behind a proxy on this
  // host every client is 127.0.0.1 (see trusted_proxies).
  std::size_t max_connections_per_ip = 256;
  bool per_ip_on_loopback = false;
  // Proxies whose X-Forwarded-For names the client.
  std::vector<ip_range> trusted_proxies;
  // Live op ids per user (engine_options::max_op_ids_per_user).
  std::size_t max_op_ids_per_user = 1000;
  // Fan-out slicing and the hot-room viewer-count throttle (engine_options).
  std::size_t deliveries_per_slice = 256;
  bool direct_writes = true;  // ws_session frames and sends text frames itself
  double viewer_updates_per_s = 4;
  std::size_t viewer_throttle_room = 100;
  // In auth mode SSE streams need a token too, unless readers may be anonymous.
  bool anonymous_sse = false;
  double rate_limit = 20;  // per-user requests per second (WebSocket + REST)
  double rate_burst = 40;
  std::size_t max_message_bytes = 4096;
  std::size_t max_subscriptions = 256;
  std::size_t max_admin_subscribers = 16;  // admin sockets (/admin/ws) at once
  std::size_t slow_client_bytes = 256 * 1024;
  std::size_t lmdb_map_size = std::size_t{1} << 30;  // initial (address space); grows by itself
  std::size_t lmdb_max_size = std::size_t{4} << 30;  // the most it grows to
  int op_id_window_s = 900;                          // how long an op id is remembered for replays
  bool lmdb_sync = true;
  std::string articles_file;
  log_level level = log_level::info;
  log_format log_output = log_format::text;
  std::string web_root;
  std::string client_root;
  // Protocol timers; flags so tests can shrink them.
  int ping_interval_s = 25;
  int idle_timeout_s = 35;
  int handshake_timeout_s = 5;
  int shutdown_timeout_s = 15;  // SIGTERM to exit at the latest; holds grace + spread
  // The drain (see drain_schedule.hpp): readiness 503 while still accepting,
  // then closes spread over a window.
  int drain_grace_s = 5;
  int drain_spread_s = 5;
  /// The grace actually waited: none with --reuse-port, whose siblings take
  /// new connects the moment this listener closes.
  std::uint64_t drain_grace_ms() const noexcept {
    return reuse_port ? 0 : static_cast<std::uint64_t>(drain_grace_s) * 1000;
  }
  int request_timeout_s = 10;
  // lws allocates this much receive buffer per connection.
  std::size_t rx_buffer_bytes = 256;
  // Several nodes sharing Redis (see cluster.hpp). All empty: one node on LMDB.
  std::string redis_url;  // redis://[[user]:password@]HOST:PORT[/db]
  std::string sentinels;  // HOST:PORT,HOST:PORT (with sentinel_master)
  std::string sentinel_master;
  std::string redis_cluster;           // HOST:PORT,HOST:PORT: seed nodes of a Redis Cluster
  std::string node_id;                 // required with either; stable per data dir
  std::string redis_password_file;     // AUTH password for Redis, kept out of ps and the URL
  std::string sentinel_password_file;  // AUTH password for the sentinels
  int redis_timeout_ms = 2000;         // connect and request deadline
  int op_pending_s = 30;               // redis_store_options::pending_ttl
  bool clustered() const noexcept {
    return !redis_url.empty() || !sentinels.empty() || !redis_cluster.empty();
  }
};

/// The outcome of parsing: options, or a message and exit code (0 for --help
/// and --version, 2 for bad flags).
struct parse_outcome {
  std::optional<server_options> options;
  std::string message;
  int exit_code = 0;
};

/// Parses argv with environment fallbacks read through `getenv`.
parse_outcome parse_options(int argc, const char* const* argv, const char* (*getenv)(const char*));

std::string_view to_string(log_level level) noexcept;

/// 127.0.0.0/8, ::1 and localhost: reachable from this machine only.
bool loopback_host(std::string_view host) noexcept;

}  // namespace claps::server
