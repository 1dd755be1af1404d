#include "options.hpp"

#include "web_roots.hpp"

#include <claps/ids.hpp>
#ifdef CLAPS_HAVE_REDIS
#include <claps/redis.hpp>
#endif
#include <claps/version.hpp>

#include <cxxopts.hpp>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <string_view>

namespace claps::server {
namespace {

cxxopts::Options make_spec() {
  const web_roots roots = default_web_roots();
  cxxopts::Options spec("clapsd",
                        "clapsd - the realtime claps server (WebSocket, REST, SSE, metrics).\n"
                        "Every flag may also be set as an environment variable: upper case, '-' -> '_',\n"
                        "prefixed CLAPS_ (e.g. CLAPS_DATA_DIR). A flag on the command line wins.\n"
                        "Repeatable flags take a comma-separated list from the environment.\n");
  spec.set_width(100);
  // clang-format off
  spec.add_options("Server")
    ("listen", "HOST:PORT to listen on; port 0 picks a free port (reported on stdout)",
     cxxopts::value<std::string>()->default_value("127.0.0.1:8080"))
    ("admin-listen", "HOST:PORT of this process's own operations listener: /metrics, /readyz, /healthz and the "
     "live admin page /admin (they then leave --listen, except /readyz and /healthz for load "
     "balancers). Off a loopback "
     "address it needs --admin-token-file", cxxopts::value<std::string>()->default_value(""))
    ("admin-token-file", "File holding the admin token (at least 16 bytes): requests to the admin "
     "endpoints send Authorization: Bearer TOKEN (/admin: also on loopback, or once as "
     "/admin?token=TOKEN, which sets a cookie); a trailing newline is ignored",
     cxxopts::value<std::string>()->default_value(""))
    ("reuse-port", "Share the --listen port with other clapsd processes (SO_REUSEPORT; one process per "
     "core, each with its own --node-id and --data-dir on one --redis): the kernel spreads new "
     "connections over them", cxxopts::value<bool>()->default_value("false"))
    ("data-dir", "Directory of the LMDB data (created if missing; locked against a second clapsd)",
     cxxopts::value<std::string>()->default_value("data"))
    ("store", "Storage backend: lmdb or memory", cxxopts::value<std::string>()->default_value("lmdb"))
    ("lmdb-map-size", "Initial LMDB map size in bytes; the map grows by itself up to --lmdb-max-size",
     cxxopts::value<std::size_t>()->default_value("1073741824"))
    ("lmdb-max-size", "Most the LMDB map may grow to, in bytes: the bound on the data file. Near it "
     "new claps are refused at once (unavailable, reason store_full) while undos still commit",
     cxxopts::value<std::size_t>()->default_value("4294967296"))
    ("lmdb-no-sync", "Do not fsync each commit (a crash of the process still loses nothing "
     "committed; power loss may)", cxxopts::value<bool>()->default_value("false"))
    ("tick-ms", "Tick length in ms (1..1000): claps are committed and fanned out once per tick",
     cxxopts::value<int>()->default_value("25"))
    ("clap-cap", "Most claps one user may give one article", cxxopts::value<int>()->default_value("50"))
    ("op-id-window-s", "Seconds an op id is remembered for replays (its record kept in the store)",
     cxxopts::value<int>()->default_value("900"))
    ("articles-file", "Optional allow-list of article ids: a JSON array of objects with \"id\" "
     "(the demo's articles.json) or one id per line ('#' starts a comment)",
     cxxopts::value<std::string>()->default_value(""))
    ("web-root", "Directory of the demo web app (index.html, article.html, static/) and of api/openapi.json. "
     "Default: <clapsd's directory>/../share/claps/web when installed there, else the source tree's server/web",
     cxxopts::value<std::string>()->default_value(roots.web))
    ("client-root", "Directory holding claps-client.js, served at /client/. Default: <clapsd's "
     "directory>/../share/claps/client when installed there, else the source tree's bindings/js",
     cxxopts::value<std::string>()->default_value(roots.client))
    ("log-level", "trace, debug, info, warn or error (logs go to stderr)",
     cxxopts::value<std::string>()->default_value("info"))
    ("log-format", "text (clapsd LEVEL: message) or json: one object per line with \"ts\" (RFC 3339, "
     "UTC, ms), \"level\", \"msg\" and, with --node-id, \"node\"",
     cxxopts::value<std::string>()->default_value("text"));
  spec.add_options("Security and limits")
    ("auth-secret-file", "File holding the HS256 secret (at least 32 bytes). When set, identity comes "
     "only from JWTs (Authorization: Bearer, or ?token=); a trailing newline is ignored",
     cxxopts::value<std::string>()->default_value(""))
    ("jwt-audience", "With --auth-secret-file: tokens must carry this aud", cxxopts::value<std::string>()->default_value(""))
    ("jwt-issuer", "With --auth-secret-file: tokens must carry this iss", cxxopts::value<std::string>()->default_value(""))
    ("jwt-max-lifetime-s", "With --auth-secret-file: refuse tokens whose exp lies further ahead (0: no limit)",
     cxxopts::value<std::int64_t>()->default_value("604800"))
    ("allow-anonymous", "Without --auth-secret-file (demo mode: ?user= names anyone), listen on an "
     "address other than loopback anyway", cxxopts::value<bool>()->default_value("false"))
    ("allowed-origin", "Origin (scheme://host[:port]) allowed besides the request's own host; "
     "repeatable", cxxopts::value<std::vector<std::string>>())
    ("max-connections", "Most WebSocket + SSE connections; extra handshakes get HTTP 503",
     cxxopts::value<std::size_t>()->default_value("19000"))
    ("max-sse-streams", "Most SSE streams (they count in --max-connections too); extra ones get HTTP 503",
     cxxopts::value<std::size_t>()->default_value("1000"))
    ("max-connections-per-user", "Most WebSocket connections one user may hold; extra handshakes get HTTP 429",
     cxxopts::value<std::size_t>()->default_value("32"))
    ("max-connections-per-ip", "Most WebSocket + SSE connections from one client address; extra handshakes "
     "get HTTP 429 (0: no cap). Loopback clients are exempt unless this flag is given",
     cxxopts::value<std::size_t>()->default_value("256"))
    ("trusted-proxy", "CIDR of a proxy in front of clapsd (e.g. 127.0.0.1/32 for a TLS proxy on this "
     "host): for its requests the client address comes from X-Forwarded-For; repeatable",
     cxxopts::value<std::vector<std::string>>())
    ("max-op-ids-per-user", "Most live op ids (each a stored record for 15 minutes) one user may hold; "
     "past it, claps with new op ids get rate_limited (0: no cap)",
     cxxopts::value<std::size_t>()->default_value("1000"))
    ("deliveries-per-slice", "Connections written per slice of a fan-out round; between slices the loop "
     "takes in commits and claps, and connections not yet reached get the newest totals (0: whole rounds)",
     cxxopts::value<std::size_t>()->default_value("256"))
    ("direct-writes", "Frame WebSocket text frames here and send() them when lws holds no unsent output "
     "(false: every frame through lws_write; for comparisons)",
     cxxopts::value<bool>()->default_value("true"))
    ("viewer-updates-per-s", "In rooms of at least --viewer-throttle-room viewers, changes of the viewer "
     "count alone go out at most this often per article (0: every tick); total changes go out at once",
     cxxopts::value<double>()->default_value("4"))
    ("viewer-throttle-room", "Local viewers from which an article's viewer-count-only changes are throttled",
     cxxopts::value<std::size_t>()->default_value("100"))
    ("anonymous-sse", "In auth mode, let SSE streams open without a token (read-only counts)",
     cxxopts::value<bool>()->default_value("false"))
    ("rate-limit", "Per-user requests per second, shared by all of a user's WebSocket connections and "
     "REST calls: claps, undos, subscribes, reads (anonymous reads: per client address)",
     cxxopts::value<double>()->default_value("20"))
    ("rate-burst", "Token bucket burst for --rate-limit", cxxopts::value<double>()->default_value("40"))
    ("max-message-bytes", "Largest inbound WebSocket message or REST body; larger closes 1009 / 413",
     cxxopts::value<std::size_t>()->default_value("4096"))
    ("max-subscriptions", "Most articles one connection may watch",
     cxxopts::value<std::size_t>()->default_value("256"))
    ("max-admin-subscribers", "Most admin sockets (/admin/ws on --admin-listen) at once; one more gets an "
     "error frame (too_many_admin_subscribers) and is closed 1013",
     cxxopts::value<std::size_t>()->default_value("16"))
    ("slow-client-bytes", "Hard bound on one client's unsent output; past it the client is "
     "closed with 1008", cxxopts::value<std::size_t>()->default_value("262144"));
  spec.add_options("Timers and tuning (defaults are the protocol's; tests shrink them)")
    ("ping-interval-s", "Seconds of peer silence before the server pings",
     cxxopts::value<int>()->default_value("25"))
    ("idle-timeout-s", "Seconds of peer silence before the connection is dropped",
     cxxopts::value<int>()->default_value("35"))
    ("handshake-timeout-s", "Seconds a new connection has to finish its HTTP/WebSocket handshake",
     cxxopts::value<int>()->default_value("5"))
    ("drain-grace-s", "Seconds after SIGTERM that /readyz answers 503 while the listener still accepts and "
     "serves, so a load balancer's health checks take the node out before connects are refused (5 s covers "
     "HAProxy's 'inter 2s fall 2', out after up to 4 s). Not used with --reuse-port: the listener closes at "
     "once and the kernel sends new connects to the other processes", cxxopts::value<int>()->default_value("5"))
    ("drain-spread-s", "Seconds over which SIGTERM closes clients (1001), in even batches every 250 ms, "
     "each client once its claps are committed and acknowledged, so their reconnects (the JS client's first "
     "retry waits 0-250 ms) reach the other nodes at a steady rate instead of as one storm; 0 closes all at once",
     cxxopts::value<int>()->default_value("5"))
    ("shutdown-timeout-s", "Seconds from SIGTERM to exit at the latest: the drain grace, the spread closes "
     "and the clients' close handshakes; must be at least --drain-grace-s + --drain-spread-s (only the spread "
     "with --reuse-port)",
     cxxopts::value<int>()->default_value("15"))
    ("request-timeout-s", "Seconds a REST clap/undo waits for its commit before answering 503 "
     "(retry with the same op id)", cxxopts::value<int>()->default_value("10"))
    ("rx-buffer-bytes", "lws receive buffer per connection (memory per connection vs. reads per "
     "event); messages larger than it are reassembled", cxxopts::value<std::size_t>()->default_value("256"));
  spec.add_options("Several nodes (Redis)")
    ("redis", "Share state with other nodes through this Redis: redis://[[user]:password@]HOST:PORT[/db] "
     "(prefer CLAPS_REDIS for a password: ps shows flags)", cxxopts::value<std::string>()->default_value(""))
    ("sentinel", "Find the Redis master through these sentinels: HOST:PORT,HOST:PORT (instead of --redis)",
     cxxopts::value<std::string>()->default_value(""))
    ("sentinel-master", "Master name the sentinels monitor (with --sentinel)",
     cxxopts::value<std::string>()->default_value(""))
    ("redis-cluster", "Share state through this Redis Cluster (7.0+): seed nodes HOST:PORT,HOST:PORT; "
     "keys are routed by slot to every master, pub/sub is sharded (instead of --redis/--sentinel)",
     cxxopts::value<std::string>()->default_value(""))
    ("node-id", "This node's id, unique and stable across restarts (1-128 of A-Z a-z 0-9 . _ : -); "
     "required with --redis, --sentinel or --redis-cluster", cxxopts::value<std::string>()->default_value(""))
    ("redis-timeout-ms", "Deadline of every Redis request and connect; a miss degrades to local acks",
     cxxopts::value<int>()->default_value("2000"))
    ("op-pending-s", "Seconds an op decided in Redis may wait for its node's journal before another node takes "
     "it over: a node killed between the two holds the op id that long, then a client's resend through another "
     "node counts once though the dead node never returns. Keep it above a commit's worst latency and a "
     "restart's length: a node that returns later with the op in its journal counts it again",
     cxxopts::value<int>()->default_value("30"))
    ("redis-password-file", "File holding the Redis password (AUTH; a trailing newline is ignored), "
     "instead of one in the --redis URL (also for --sentinel's master and --redis-cluster's nodes)",
     cxxopts::value<std::string>()->default_value(""))
    ("sentinel-password-file", "File holding the sentinels' password (their requirepass)",
     cxxopts::value<std::string>()->default_value(""));
  spec.add_options("Info")
    ("h,help", "Show this help and exit")
    ("version", "Show the version and exit");
  // clang-format on
  return spec;
}

std::string env_name(std::string_view flag) {
  std::string name = "CLAPS_";
  for (char c : flag) name += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  return name;
}

bool parse_listen(std::string_view text, std::string_view flag, std::string& host_out,
                  std::uint16_t& port_out, std::string& error) {
  auto colon = text.rfind(':');
  if (colon == std::string_view::npos || colon == 0) {
    error = std::string(flag) + " wants HOST:PORT, e.g. 127.0.0.1:8080";
    return false;
  }
  std::string_view host = text.substr(0, colon);
  std::string_view port = text.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), value);
  if (ec != std::errc{} || end != port.data() + port.size() || value > 65535 || port.empty()) {
    error = std::string(flag) + ": port must be a number 0-65535";
    return false;
  }
  host_out = std::string(host);
  port_out = static_cast<std::uint16_t>(value);
  return true;
}

}  // namespace

bool loopback_host(std::string_view host) noexcept {
  return host == "localhost" || host == "::1" || host == "[::1]" || host.starts_with("127.");
}

std::string_view to_string(log_level level) noexcept {
  switch (level) {
  case log_level::trace: return "trace";
  case log_level::debug: return "debug";
  case log_level::info: return "info";
  case log_level::warn: return "warn";
  case log_level::error: return "error";
  }
  return "info";
}

parse_outcome parse_options(int argc, const char* const* argv, const char* (*getenv)(const char*)) {
  parse_outcome outcome;
  auto spec = make_spec();
  try {
    // Pass 1 finds which flags the command line gives; pass 2 prepends the
    // environment's value for every other flag, so the command line wins.
    auto first = make_spec().parse(argc, argv);
    if (first.count("help")) {
      outcome.message = spec.help({"Server", "Security and limits",
                                   "Timers and tuning (defaults are the protocol's; tests shrink them)",
                                   "Several nodes (Redis)", "Info"});
      return outcome;
    }
    if (first.count("version")) {
      outcome.message = std::string("clapsd ") + std::string(claps::version()) + "\n";
      return outcome;
    }
    std::vector<std::string> args{argc > 0 ? argv[0] : "clapsd"};
    for (const auto& group : spec.groups()) {
      for (const auto& option : spec.group_help(group).options) {
        const std::string& flag = option.l.empty() ? option.s : option.l.front();
        if (flag == "help" || flag == "version" || first.count(flag)) continue;
        if (const char* value = getenv(env_name(flag).c_str())) args.push_back("--" + flag + "=" + value);
      }
    }
    if (!first.unmatched().empty()) {
      outcome.message = "unexpected argument '" + first.unmatched().front() + "' (see --help)";
      outcome.exit_code = 2;
      return outcome;
    }
    for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
    std::vector<const char*> argv2;
    for (const auto& a : args) argv2.push_back(a.c_str());
    auto result = spec.parse(static_cast<int>(argv2.size()), argv2.data());

    server_options o;
    std::string error;
    if (!parse_listen(result["listen"].as<std::string>(), "--listen", o.listen_host, o.listen_port, error)) {
      outcome.message = error;
      outcome.exit_code = 2;
      return outcome;
    }
    const auto admin = result["admin-listen"].as<std::string>();
    if (!admin.empty() && !parse_listen(admin, "--admin-listen", o.admin_host, o.admin_port, error)) {
      outcome.message = error;
      outcome.exit_code = 2;
      return outcome;
    }
    o.admin_listen = !admin.empty();
    o.admin_token_file = result["admin-token-file"].as<std::string>();
    if (o.admin_listen && o.admin_token_file.empty() && !loopback_host(o.admin_host))
      error = "--admin-listen " + o.admin_host +
              " is reachable from other machines: give --admin-token-file "
              "(metrics and readiness name nodes and Redis state)";
    o.reuse_port = result["reuse-port"].as<bool>();
    o.data_dir = result["data-dir"].as<std::string>();
    const auto store = result["store"].as<std::string>();
    if (store == "lmdb") o.store = store_kind::lmdb;
    else if (store == "memory") o.store = store_kind::memory;
    else error = "--store must be lmdb or memory, not '" + store + "'";
    o.lmdb_map_size = result["lmdb-map-size"].as<std::size_t>();
    o.lmdb_max_size = result["lmdb-max-size"].as<std::size_t>();
    if (o.lmdb_map_size > o.lmdb_max_size) error = "--lmdb-map-size must not exceed --lmdb-max-size";
    o.op_id_window_s = result["op-id-window-s"].as<int>();
    if (o.op_id_window_s < 1 || o.op_id_window_s > 86400) error = "--op-id-window-s must be 1..86400";
    o.lmdb_sync = !result["lmdb-no-sync"].as<bool>();
    o.tick_ms = result["tick-ms"].as<int>();
    if (o.tick_ms < 1 || o.tick_ms > 1000) error = "--tick-ms must be 1..1000";
    o.clap_cap = result["clap-cap"].as<int>();
    if (o.clap_cap < 1 || o.clap_cap > 1'000'000) error = "--clap-cap must be 1..1000000";
    o.articles_file = result["articles-file"].as<std::string>();
    o.web_root = result["web-root"].as<std::string>();
    o.client_root = result["client-root"].as<std::string>();
    const auto level = result["log-level"].as<std::string>();
    if (level == "trace") o.level = log_level::trace;
    else if (level == "debug") o.level = log_level::debug;
    else if (level == "info") o.level = log_level::info;
    else if (level == "warn") o.level = log_level::warn;
    else if (level == "error") o.level = log_level::error;
    else error = "--log-level must be trace, debug, info, warn or error";
    const auto format = result["log-format"].as<std::string>();
    if (format == "text") o.log_output = log_format::text;
    else if (format == "json") o.log_output = log_format::json;
    else error = "--log-format must be text or json, not '" + format + "'";
    o.auth_secret_file = result["auth-secret-file"].as<std::string>();
    o.allow_anonymous = result["allow-anonymous"].as<bool>();
    o.jwt_audience = result["jwt-audience"].as<std::string>();
    o.jwt_issuer = result["jwt-issuer"].as<std::string>();
    o.jwt_max_lifetime_s = result["jwt-max-lifetime-s"].as<std::int64_t>();
    if (o.jwt_max_lifetime_s < 0 || o.jwt_max_lifetime_s > 10LL * 365 * 24 * 3600)
      error = "--jwt-max-lifetime-s must be 0..315360000";
    if (result.count("allowed-origin"))
      o.allowed_origins = result["allowed-origin"].as<std::vector<std::string>>();
    o.max_connections = result["max-connections"].as<std::size_t>();
    o.max_sse_streams = result["max-sse-streams"].as<std::size_t>();
    o.max_connections_per_user = result["max-connections-per-user"].as<std::size_t>();
    if (o.max_connections_per_user < 1) error = "--max-connections-per-user must be at least 1";
    o.max_connections_per_ip = result["max-connections-per-ip"].as<std::size_t>();
    o.per_ip_on_loopback = result.count("max-connections-per-ip") > 0;
    if (result.count("trusted-proxy")) {
      for (const auto& text : result["trusted-proxy"].as<std::vector<std::string>>()) {
        if (auto range = parse_ip_range(text)) o.trusted_proxies.push_back(*range);
        else error = "--trusted-proxy '" + text + "' is not an address or CIDR (e.g. 10.0.0.0/8, ::1/128)";
      }
    }
    o.max_op_ids_per_user = result["max-op-ids-per-user"].as<std::size_t>();
    o.anonymous_sse = result["anonymous-sse"].as<bool>();
    o.deliveries_per_slice = result["deliveries-per-slice"].as<std::size_t>();
    o.direct_writes = result["direct-writes"].as<bool>();
    o.viewer_updates_per_s = result["viewer-updates-per-s"].as<double>();
    if (!(o.viewer_updates_per_s >= 0) || o.viewer_updates_per_s > 1000)
      error = "--viewer-updates-per-s must be 0..1000";
    o.viewer_throttle_room = result["viewer-throttle-room"].as<std::size_t>();
    if (o.max_connections < 1) error = "--max-connections must be at least 1";
    o.rate_limit = result["rate-limit"].as<double>();
    o.rate_burst = result["rate-burst"].as<double>();
    if (!(o.rate_limit > 0) || !(o.rate_burst >= 1)) error = "--rate-limit must be > 0 and --rate-burst >= 1";
    o.max_message_bytes = result["max-message-bytes"].as<std::size_t>();
    if (o.max_message_bytes < 64 || o.max_message_bytes > 16 * 1024 * 1024)
      error = "--max-message-bytes must be 64..16777216";
    o.max_subscriptions = result["max-subscriptions"].as<std::size_t>();
    if (o.max_subscriptions < 1) error = "--max-subscriptions must be at least 1";
    o.max_admin_subscribers = result["max-admin-subscribers"].as<std::size_t>();
    if (o.max_admin_subscribers < 1 || o.max_admin_subscribers > 10000)
      error = "--max-admin-subscribers must be 1..10000";
    o.slow_client_bytes = result["slow-client-bytes"].as<std::size_t>();
    if (o.slow_client_bytes < 256) error = "--slow-client-bytes must be at least 256";
    o.ping_interval_s = result["ping-interval-s"].as<int>();
    o.idle_timeout_s = result["idle-timeout-s"].as<int>();
    o.handshake_timeout_s = result["handshake-timeout-s"].as<int>();
    o.shutdown_timeout_s = result["shutdown-timeout-s"].as<int>();
    o.request_timeout_s = result["request-timeout-s"].as<int>();
    if (o.request_timeout_s < 1) error = "--request-timeout-s must be at least 1";
    if (o.ping_interval_s < 1 || o.idle_timeout_s <= o.ping_interval_s || o.idle_timeout_s > 65535)
      error = "--ping-interval-s must be >= 1 and below --idle-timeout-s (<= 65535)";
    if (o.handshake_timeout_s < 1 || o.shutdown_timeout_s < 0)
      error = "--handshake-timeout-s must be >= 1 and --shutdown-timeout-s >= 0";
    o.drain_grace_s = result["drain-grace-s"].as<int>();
    o.drain_spread_s = result["drain-spread-s"].as<int>();
    if (o.drain_grace_s < 0 || o.drain_spread_s < 0 || o.drain_grace_s > 3600 || o.drain_spread_s > 3600)
      error = "--drain-grace-s and --drain-spread-s must be 0..3600";
    else if (static_cast<int>(o.drain_grace_ms() / 1000) + o.drain_spread_s > o.shutdown_timeout_s)
      error = "--drain-grace-s " + std::to_string(o.drain_grace_ms() / 1000) + " + --drain-spread-s " +
              std::to_string(o.drain_spread_s) + " do not fit in --shutdown-timeout-s " +
              std::to_string(o.shutdown_timeout_s) +
              ": raise --shutdown-timeout-s (leave a few seconds for the "
              "last close handshakes) or shorten the drain";
    o.rx_buffer_bytes = result["rx-buffer-bytes"].as<std::size_t>();
    if (o.rx_buffer_bytes < 128 || o.rx_buffer_bytes > 1024 * 1024)
      error = "--rx-buffer-bytes must be 128..1048576";
    o.redis_url = result["redis"].as<std::string>();
    o.sentinels = result["sentinel"].as<std::string>();
    o.sentinel_master = result["sentinel-master"].as<std::string>();
    o.redis_cluster = result["redis-cluster"].as<std::string>();
    o.node_id = result["node-id"].as<std::string>();
    o.redis_timeout_ms = result["redis-timeout-ms"].as<int>();
    o.op_pending_s = result["op-pending-s"].as<int>();
    if (o.op_pending_s < 1 || o.op_pending_s > 3600) error = "--op-pending-s must be 1..3600";
    o.redis_password_file = result["redis-password-file"].as<std::string>();
    o.sentinel_password_file = result["sentinel-password-file"].as<std::string>();
    if (!o.clustered() && (!o.redis_password_file.empty() || !o.sentinel_password_file.empty()))
      error =
          "--redis-password-file and --sentinel-password-file only apply with --redis, --sentinel or "
          "--redis-cluster";
    if (o.auth_secret_file.empty() && !o.allow_anonymous && !loopback_host(o.listen_host))
      error = "--listen " + o.listen_host +
              " is reachable from other machines, and without --auth-secret-file "
              "anyone could act as any user: give --auth-secret-file, or --allow-anonymous for a demo";
    if (int{!o.redis_url.empty()} + int{!o.sentinels.empty()} + int{!o.redis_cluster.empty()} > 1)
      error = "give one of --redis, --sentinel and --redis-cluster";
    else if (!o.sentinels.empty() && o.sentinel_master.empty())
      error = "--sentinel needs --sentinel-master NAME";
#ifdef CLAPS_HAVE_REDIS
    else if (claps::redis_options ro;
             !o.redis_cluster.empty() && claps::parse_redis_cluster(o.redis_cluster, ro))
      error = "--redis-cluster: expected HOST:PORT,HOST:PORT (seed nodes of the cluster)";
#endif
    else if (o.clustered() && !valid_id(o.node_id, max_user_id_bytes))
      error = "--redis/--sentinel/--redis-cluster need --node-id: 1-128 characters of A-Z a-z 0-9 . _ : -";
    else if (!o.clustered() && !o.node_id.empty())
      error = "--node-id only applies with --redis, --sentinel or --redis-cluster";
    if (o.redis_timeout_ms < 50 || o.redis_timeout_ms > 60000) error = "--redis-timeout-ms must be 50..60000";
    if (!error.empty()) {
      outcome.message = error;
      outcome.exit_code = 2;
      return outcome;
    }
    outcome.options = std::move(o);
  } catch (const cxxopts::exceptions::exception& e) {
    outcome.message = std::string(e.what()) + " (see --help)";
    outcome.exit_code = 2;
  }
  return outcome;
}

}  // namespace claps::server
