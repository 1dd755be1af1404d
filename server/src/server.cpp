#include "server.hpp"

#include "admin_channel.hpp"
#include "admin_stats.hpp"
#include "article_allowlist.hpp"
#include "auth.hpp"
#include "cluster.hpp"
#include "data_dir_lock.hpp"
#include "drain_schedule.hpp"
#include "fanout.hpp"
#include "frames.hpp"
#include "http_io.hpp"
#include "http_api.hpp"
#include "inbound.hpp"
#include "listen_socket.hpp"
#include "log.hpp"
#include "metrics.hpp"
#include "service_deps.hpp"
#include "static_files.hpp"
#include "subscribers.hpp"
#include "timed_store.hpp"
#include "ws_service.hpp"

#include <claps/engine.hpp>
#include <claps/lmdb.hpp>
#include <claps/memory_store.hpp>
#include <claps/uv.hpp>

#include <libwebsockets.h>
#include <uv.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <limits>
#include <memory>
#include <optional>
#include <random>
#include <string>

namespace claps::server {
namespace {

class clapsd {
public:
  explicit clapsd(const server_options& options)
      : options_(options), log_(options.level, options.log_output, options.node_id) {}
  ~clapsd();
  clapsd(const clapsd&) = delete;
  clapsd& operator=(const clapsd&) = delete;

  /// Builds everything and starts listening; false (with a logged reason) on failure.
  bool start();
  /// Runs the loop until shutdown completes; returns the exit code.
  int run();

private:
  static int lws_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, std::size_t len);
  bool open_admin_listener();
  int dispatch(lws* wsi, lws_callback_reasons reason, void* user, void* in, std::size_t len);
  bool open_store();
  bool create_context();
  bool open_listener(const std::string& iface);
  void begin_shutdown(int signum);
  void end_grace();
  void close_next_batch();
  void wait_for_local_commits();
  void on_second();
  void finish();
  void finish_soon();
  std::string drain_metrics_text() const;
  void sample_admin_stats();
  std::string admin_frame() const;
  bool ready() const { return drain_ == drain_phase::serving && engine_ && !engine_->store_error(); }

  const server_options& options_;
  logger log_;
  uv_loop_t loop_{};
  bool loop_initialised_ = false;
  data_dir_lock lock_;
  std::unique_ptr<store> base_store_;
  // The LMDB store when there is one (base_store_), and the pump that runs its
  // completions on the loop: its commits run on its own writer thread.
  lmdb_store* lmdb_ = nullptr;
  std::unique_ptr<uv_store_pump> store_pump_;
  std::unique_ptr<cluster_node> cluster_;  // only with --redis / --sentinel
  server_metrics metrics_;
  std::unique_ptr<timed_store> store_;
  endpoint_registry registry_;
  fanout fanout_{registry_, log_};
  std::unique_ptr<engine> engine_;
  article_allowlist allowlist_;
  std::unique_ptr<authenticator> auth_;
  std::string admin_token_;  // --admin-token-file
  connection_admission admission_;
  std::optional<client_limits> limits_;
  std::optional<inbound_parser> parser_;
  std::unique_ptr<ws_service> ws_;
  std::unique_ptr<http_api> http_;
  lws_protocols protocols_[2]{};
  lws_retry_bo_t idle_policy_{};
  lws_context* context_ = nullptr;
  std::unique_ptr<listen_socket> listener_;
  // --admin-listen: its own socket. Its connections carry admin_mark_ as
  // lws opaque data, so a request's listener is known and the public port
  // never serves admin routes. (A second vhost would not do: lws picks a
  // vhost by Host header among those on one port, and both listen on none.)
  std::unique_ptr<listen_socket> admin_listener_;
  char admin_mark_ = 0;
  bool is_admin(lws* wsi) const { return lws_get_opaque_user_data(wsi) == &admin_mark_; }
  // The admin page's data (/admin/ws): sampled once a second.
  admin_channel admin_ws_{admin_channel::limits{4096, options_.max_admin_subscribers,
                                                static_cast<std::uint64_t>(options_.ping_interval_s) * 1000,
                                                static_cast<std::uint64_t>(options_.idle_timeout_s) * 1000}};
  article_watch articles_;
  latency_window commit_window_;
  latency_window tick_window_;
  engine_stats last_engine_{};
  std::uint64_t claps_since_sample_ = 0;
  std::uint64_t last_sample_ms_ = 0;
  std::uint64_t started_ms_ = 0;
  double ticks_per_s_ = 0;
  double commits_per_s_ = 0;
  double claps_per_s_ = 0;
  std::unique_ptr<uv_driver> driver_;
  uv_signal_t sigterm_{};
  uv_signal_t sigint_{};
  uv_check_t after_io_{};
  uv_timer_t shutdown_timer_{};  // finish(): now, on a retry, or at --shutdown-timeout-s
  uv_timer_t drain_timer_{};     // the end of the grace, then each batch of closes
  uv_timer_t heartbeat_timer_{};
  drain_phase drain_ = drain_phase::serving;
  close_schedule closes_;
  std::size_t close_batch_ = 0;  // the next batch to close
  std::uint64_t spread_ms_ = 0;
  bool handles_open_ = false;
  bool lws_failed_ = false;
  int listen_port_ = 0;
  std::uint64_t seconds_ = 0;
  bool finishing_ = false;
  int cluster_flush_waits_ = 0;
  bool store_full_ = false;  // as last logged
  int exit_code_ = 0;
};

clapsd::~clapsd() {
  // lws and the driver are gone by now (finish()); the loop has run their
  // close callbacks, so it can be closed.
  if (context_) lws_context_destroy(context_);
  // Before the loop closes: the listener's handles close on it.
  listener_.reset();
  admin_listener_.reset();
  driver_.reset();
  store_pump_.reset();  // its handle closes on the loop; wakes after it do nothing
  if (cluster_) cluster_->shutdown();
  // After a failed lws_create_context() the loop may hold handles whose close
  // callbacks live in lws's unloaded libuv plugin; the process is exiting, so
  // such a loop is left alone.
  if (loop_initialised_ && !lws_failed_) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    uv_loop_close(&loop_);
  }
}

bool clapsd::open_store() {
  if (options_.store == store_kind::memory) {
    base_store_ = std::make_unique<memory_store>();
    log_.info("store: memory (nothing survives a restart)");
    return true;
  }
  std::string error;
  lock_ = data_dir_lock::acquire(options_.data_dir, error);
  if (!lock_.held()) {
    log_.error(error);
    return false;
  }
  lmdb_options lo;
  lo.path = options_.data_dir;
  lo.map_size = options_.lmdb_map_size;
  lo.max_map_size = options_.lmdb_max_size;
  lo.sync = options_.lmdb_sync;
  // Commits (and their fsync) run on the store's writer thread, while this
  // loop fans out the tick before; their completions come back through the pump.
  store_pump_ = std::make_unique<uv_store_pump>(&loop_, [this] {
    if (lmdb_) lmdb_->run_completions();
  });
  lo.on_commit_ready = store_pump_->waker();
  std::error_code ec;
  auto lmdb = lmdb_store::open(lo, ec);
  if (!lmdb) {
    log_.error("cannot open LMDB store in '" + options_.data_dir + "': " + ec.message());
    return false;
  }
  lmdb_ = lmdb.get();
  base_store_ = std::move(lmdb);
  log_.info("store: lmdb in '" + options_.data_dir + "'" + (options_.lmdb_sync ? "" : " (no fsync)"));
  return true;
}

bool clapsd::start() {
  std::signal(SIGPIPE, SIG_IGN);
  lws_set_log_level(log_.lws_mask(), log_.lws_emitter());

  std::string error;
  if (!options_.admin_token_file.empty()) {
    std::string token;
    if (!read_secret_line(options_.admin_token_file, "--admin-token-file", token, error)) {
      log_.error(error);
      return false;
    }
    if (token.size() < 16) {
      log_.error("--admin-token-file: the token must be at least 16 bytes (it is " +
                 std::to_string(token.size()) + ")");
      return false;
    }
    admin_token_ = std::move(token);
  }
  // Behind a proxy on this host every client comes from loopback: the admin
  // page would be open to whoever reaches the proxy.
  if (options_.admin_listen && admin_token_.empty() && !options_.trusted_proxies.empty())
    log_.warn(
        "--admin-listen without --admin-token-file while --trusted-proxy is set: if the proxy forwards to "
        "the admin listener, anyone reaching it gets /admin and /metrics; give --admin-token-file");
  if (!options_.auth_secret_file.empty()) {
    std::string secret;
    if (!read_secret_file(options_.auth_secret_file, secret, error)) {
      log_.error(error);
      return false;
    }
    auth_ = std::make_unique<authenticator>(
        std::move(secret),
        jwt_rules{options_.jwt_audience, options_.jwt_issuer, options_.jwt_max_lifetime_s});
  } else {
    auth_ = std::make_unique<authenticator>();
    log_.warn(
        "demo mode: ?user= names the user, so anyone can act as anyone; run with --auth-secret-file "
        "for real users");
  }
  if (!options_.articles_file.empty()) {
    if (!allowlist_.load(options_.articles_file, error)) {
      log_.error(error);
      return false;
    }
    log_.info("article allow-list: " + std::to_string(allowlist_.size()) + " ids");
  }
  // Before the store: an LMDB store wakes the loop when a commit completes.
  if (uv_loop_init(&loop_) != 0) {
    log_.error("cannot initialise the event loop");
    return false;
  }
  loop_initialised_ = true;
  if (!open_store()) return false;

  metrics_ = server_metrics{};
  if (options_.clustered()) {
    std::string cluster_error;
    cluster_ = cluster_node::create(&loop_, *base_store_, options_, log_, cluster_error);
    if (!cluster_) {
      log_.error(cluster_error);
      return false;
    }
  }
  store_ =
      std::make_unique<timed_store>(cluster_ ? cluster_->store() : *base_store_, metrics_.commit_latency);
  engine_options eo;
  eo.tick = millis(options_.tick_ms);
  eo.clap_cap = options_.clap_cap;
  eo.max_subscriptions = options_.max_subscriptions;
  eo.max_op_ids_per_user = options_.max_op_ids_per_user;
  eo.op_id_window = millis(std::int64_t{options_.op_id_window_s} * 1000);
  eo.deliveries_per_slice = options_.deliveries_per_slice;
  if (options_.viewer_updates_per_s > 0)
    eo.viewer_update_interval = millis(static_cast<std::int64_t>(1000 / options_.viewer_updates_per_s));
  eo.viewer_throttle_min_room = options_.viewer_throttle_room;
  // Ids come from the network: a random seed keeps anyone from choosing ids
  // that all land in one hash bucket.
  std::random_device seed;
  eo.hash_seed = (static_cast<std::uint64_t>(seed()) << 32) ^ seed();
  if (auto ec = validate(eo)) {
    log_.error("engine options: " + ec.message());
    return false;
  }
  engine_ = std::make_unique<engine>(*store_, eo, fanout_.callbacks(), uv_driver::now());
  fanout_.on_refused = [this] { metrics_.reject(clap_rejection::unavailable); };
  store_->on_room_changed = [this](std::string_view article, bool watched, std::uint32_t viewers) {
    articles_.room_changed(article, watched, viewers, uv_now(&loop_));
  };
  fanout_.on_tick = [this](std::span<const article_update> updates) {
    articles_.observe(updates, uv_now(&loop_));
  };
  fanout_.on_result = [this](const op_result& r) {
    if (r.accepted > 0) claps_since_sample_ += static_cast<std::uint64_t>(r.accepted);
    articles_.accepted(r.article, r.accepted, r.total, uv_now(&loop_));
  };

  admission_.max = options_.max_connections;
  parser_.emplace(options_.max_message_bytes);
  limits_.emplace(client_limit_settings{options_.rate_limit, options_.rate_burst,
                                        options_.max_connections_per_user, options_.max_connections_per_ip,
                                        options_.per_ip_on_loopback});
  service_deps deps{*engine_,   registry_, fanout_,  metrics_, options_, allowlist_,    *auth_,
                    admission_, *parser_,  *limits_, log_,     &loop_,   cluster_.get()};
  ws_ = std::make_unique<ws_service>(deps);
  http_ = std::make_unique<http_api>(deps, static_files(options_.web_root, options_.client_root));
  http_->ready = [this] { return ready(); };
  http_->draining = [this] { return drain_ != drain_phase::serving; };
  http_->metrics_text = [this] {
    // claps_ready says what /readyz says: a duplicate node id is drained too.
    const bool ready_now = ready() && !(cluster_ && cluster_->node_id_taken());
    std::string text = render_prometheus(metrics_, engine_->stats(), ready_now);
    text += drain_metrics_text();
    text += render_limiter(limits_->users(), limits_->addresses());
    text += render_store_space(store_->space());
    if (cluster_) text += cluster_->metrics_text();
    if (listener_) text += listener_->metrics_text();
    // Behind one shared port, says which process answered.
    if (!options_.node_id.empty())
      text +=
          "# HELP claps_node_info This process's --node-id\n# TYPE claps_node_info gauge\n"
          "claps_node_info{node=\"" +
          options_.node_id + "\"} 1\n";
    return text;
  };
  http_->degraded = [this] { return cluster_ && cluster_->degraded(); };
  http_->admin_token = admin_token_;
  http_->store_full = [this] { return !store_->space().accepts_new_keys; };

  if (!create_context()) return false;

  driver_ = std::make_unique<uv_driver>(&loop_, *engine_);
  driver_->on_tick([this](std::chrono::nanoseconds took) {
    metrics_.tick_duration.observe(std::chrono::duration<double>(took).count());
  });
  uv_signal_init(&loop_, &sigterm_);
  uv_signal_init(&loop_, &sigint_);
  uv_check_init(&loop_, &after_io_);
  uv_timer_init(&loop_, &shutdown_timer_);
  uv_timer_init(&loop_, &drain_timer_);
  uv_timer_init(&loop_, &heartbeat_timer_);
  sigterm_.data = sigint_.data = after_io_.data = shutdown_timer_.data = drain_timer_.data =
      heartbeat_timer_.data = this;
  handles_open_ = true;
  started_ms_ = uv_now(&loop_);
  sample_admin_stats();  // the baseline: the first second's claps and commits count
  auto on_signal = [](uv_signal_t* h, int signum) { static_cast<clapsd*>(h->data)->begin_shutdown(signum); };
  uv_signal_start(&sigterm_, on_signal, SIGTERM);
  uv_signal_start(&sigint_, on_signal, SIGINT);
  // Connections that close while the engine is inside a callback release
  // their subscriptions here, once the tick is over.
  uv_check_start(&after_io_, [](uv_check_t* h) {
    auto* self = static_cast<clapsd*>(h->data);
    self->fanout_.run_deferred(*self->engine_);
  });
  // One timer for liveness: WebSocket pings/idle drops and SSE heartbeats.
  uv_timer_start(
      &heartbeat_timer_, [](uv_timer_t* t) { static_cast<clapsd*>(t->data)->on_second(); }, 1000, 1000);
  // Every client gone while closing: nothing more to wait for.
  admission_.on_drained = [this] { finish_soon(); };
  // IPv6 hosts in brackets, so that the line is a URL.
  auto url_host = [](const std::string& host) {
    return host.find(':') == std::string::npos ? host : "[" + host + "]";
  };
  if (admin_listener_)
    std::printf("clapsd admin on http://%s:%d\n", url_host(options_.admin_host).c_str(),
                admin_listener_->port());
  // Announced last: whoever reads this line may signal us right away.
  std::printf("clapsd listening on http://%s:%d\n", url_host(options_.listen_host).c_str(), listen_port_);
  std::fflush(stdout);
  return true;
}

bool clapsd::create_context() {
  protocols_[0].name = "claps";
  protocols_[0].callback = &clapsd::lws_callback;
  // No per-session data: a WebSocket's user pointer is set to its session.
  protocols_[0].per_session_data_size = 0;
  protocols_[0].rx_buffer_size = options_.rx_buffer_bytes;
  // lws 4.1 cuts every send() at tx_packet_size, or at rx_buffer_size + 20
  // bytes when it is 0: a 2 KB timeline frame took 5 send()s, each after a
  // writeable callback. lws allocates nothing per connection for it.
  protocols_[0].tx_packet_size = 65536;
  protocols_[1] = {};

  // Zero disables lws's validity timers (its default policy would still arm
  // one per connection); ws_service::sweep does pings and idle drops.
  idle_policy_.secs_since_valid_ping = 0;
  idle_policy_.secs_since_valid_hangup = 0;

  const std::string iface = options_.listen_host == "localhost" ? "127.0.0.1" : options_.listen_host;
  // The socket is bound first (see listen_socket.hpp), so a port that is
  // taken fails start-up before lws exists; lws then serves without listening.
  if (!open_listener(iface)) return false;
  void* loops[1] = {&loop_};
  lws_context_creation_info info{};
  info.port = CONTEXT_PORT_NO_LISTEN_SERVER;
  info.protocols = protocols_;
  info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8;
  if (iface.find(':') == std::string::npos) info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
  info.foreign_loops = loops;
  info.user = this;
  info.timeout_secs = static_cast<unsigned>(options_.handshake_timeout_s);
  info.timeout_secs_ah_idle = static_cast<unsigned>(options_.handshake_timeout_s);
  info.retry_and_idle_policy = &idle_policy_;
  info.keepalive_timeout = 5;
  // lws nulls context_ once a (two-stage, with a foreign loop) destroy is done.
  info.pcontext = &context_;
  context_ = lws_create_context(&info);
  if (!context_) {
    lws_failed_ = true;
    log_.error("cannot create the lws context");
    return false;
  }
  lws_vhost* vhost = lws_get_vhost_by_name(context_, "default");
  if (vhost == nullptr) {
    log_.error("lws created no default vhost");
    return false;
  }
  // As if lws's own listener had accepted it: HTTP first, WebSocket by upgrade,
  // the handshake deadline armed. On failure lws closes the fd itself.
  auto ec = listener_->start([vhost](int fd) {
    lws_sock_file_fd_type desc{};
    desc.sockfd = fd;
    lws_adopt_descriptor_vhost(vhost, static_cast<lws_adoption_type>(LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP), desc,
                               nullptr, nullptr);
  });
  if (ec) {
    log_.error("cannot watch the listening socket: " + ec.message());
    return false;
  }
  listen_port_ = listener_->port();
  return !options_.admin_listen || open_admin_listener();
}

bool clapsd::open_admin_listener() {
  const std::string iface = options_.admin_host == "localhost" ? "127.0.0.1" : options_.admin_host;
  std::error_code ec;
  std::string step;
  // Never shared: readiness and metrics are this process's own.
  admin_listener_ = listen_socket::open(&loop_, iface, options_.admin_port, false, log_, ec, step);
  if (!admin_listener_) {
    log_.error("cannot listen on --admin-listen " + options_.admin_host + ":" +
               std::to_string(options_.admin_port) + ": " + step + ": " + ec.message());
    return false;
  }
  lws_vhost* vhost = lws_get_vhost_by_name(context_, "default");
  ec = admin_listener_->start([vhost, mark = &admin_mark_](int fd) {
    lws_adopt_desc_t desc{};
    desc.vh = vhost;
    desc.type = static_cast<lws_adoption_type>(LWS_ADOPT_SOCKET | LWS_ADOPT_HTTP);
    desc.fd.sockfd = fd;
    desc.opaque = mark;
    lws_adopt_descriptor_vhost_via_info(&desc);
  });
  if (ec) {
    log_.error("cannot watch the admin socket: " + ec.message());
    return false;
  }
  return true;
}

bool clapsd::open_listener(const std::string& iface) {
  std::error_code ec;
  std::string step;
  listener_ = listen_socket::open(&loop_, iface, options_.listen_port, options_.reuse_port, log_, ec, step);
  if (!listener_) {
    std::string hint;
    if (ec == std::errc::address_in_use)
      hint = options_.reuse_port
                 ? " (a process without SO_REUSEPORT holds it, such as a clapsd without --reuse-port; every "
                   "process sharing a port needs --reuse-port and the same user)"
                 : " (another process listens there; processes sharing a port all need --reuse-port)";
    log_.error("cannot listen on " + options_.listen_host + ":" + std::to_string(options_.listen_port) +
               (options_.reuse_port ? " with --reuse-port: " : ": ") + step + ": " + ec.message() + hint);
    return false;
  }
  if (options_.reuse_port && !options_.clustered())
    log_.warn("--reuse-port without --redis/--sentinel: processes sharing this port do not share claps");
  return true;
}

int clapsd::run() {
  uv_run(&loop_, UV_RUN_DEFAULT);
  // The second stage of lws's destroy frees what the first left for the loop.
  if (context_) {
    lws_context_destroy(context_);
    uv_run(&loop_, UV_RUN_DEFAULT);
  }
  return exit_code_;
}

int clapsd::lws_callback(lws* wsi, lws_callback_reasons reason, void* user, void* in, std::size_t len) {
  lws_context* context = lws_get_context(wsi);
  auto* self = context ? static_cast<clapsd*>(lws_context_user(context)) : nullptr;
  if (self == nullptr || !self->ws_) return lws_callback_http_dummy(wsi, reason, user, in, len);
  return self->dispatch(wsi, reason, user, in, len);
}

int clapsd::dispatch(lws* wsi, lws_callback_reasons reason, void* user, void* in, std::size_t len) {
  switch (reason) {
  case LWS_CALLBACK_FILTER_NETWORK_CONNECTION:
    // Draining: accept nothing new.
    return admission_.draining ? 1 : 0;
  case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
    // The admin listener: /admin/ws only, under the admin page's token rule.
    if (is_admin(wsi)) return http_->confirm_admin_upgrade(wsi, static_cast<const char*>(in));
    return ws_->confirm_upgrade(wsi, static_cast<const char*>(in));
  case LWS_CALLBACK_ESTABLISHED:
    if (is_admin(wsi)) return admin_ws_.established(wsi, uv_now(&loop_));
    return ws_->established(wsi, user);
  case LWS_CALLBACK_RECEIVE:
    if (is_admin(wsi))
      return admin_ws_.receive(wsi, static_cast<const char*>(in), len, uv_now(&loop_),
                               [this] { return admin_frame(); });
    return ws_->receive(wsi, user, static_cast<const char*>(in), len);
  case LWS_CALLBACK_SERVER_WRITEABLE:
    if (is_admin(wsi)) return admin_ws_.writeable(wsi);
    return ws_->writeable(user);
  case LWS_CALLBACK_RECEIVE_PONG:
    if (is_admin(wsi)) admin_ws_.pong(wsi, uv_now(&loop_));
    else ws_->pong(user);
    return 0;
  case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
  case LWS_CALLBACK_WS_SERVER_DROP_PROTOCOL:
    if (!is_admin(wsi)) ws_->closing(user);
    break;
  case LWS_CALLBACK_CLOSED:
    if (is_admin(wsi)) {
      admin_ws_.closed(wsi);
      return 0;
    }
    ws_->closed(wsi, user);
    return 0;
  case LWS_CALLBACK_HTTP:
    if (is_admin(wsi)) return http_->on_admin_request(wsi, static_cast<const char*>(in));
    return http_->on_request(wsi, static_cast<const char*>(in));
  case LWS_CALLBACK_HTTP_BODY: return http_->on_body(wsi, static_cast<const char*>(in), len);
  case LWS_CALLBACK_HTTP_BODY_COMPLETION: return http_->on_body_complete(wsi);
  case LWS_CALLBACK_HTTP_WRITEABLE: return http_->on_writeable(wsi);
  case LWS_CALLBACK_CLOSED_HTTP: http_->on_closed(wsi); break;
  case LWS_CALLBACK_WSI_DESTROY:
    ws_->destroyed(wsi);
    http_->on_closed(wsi);
    break;
  default: break;
  }
  return lws_callback_http_dummy(wsi, reason, user, in, len);
}

void clapsd::on_second() {
  limits_->sweep(uv_now(&loop_));
  const store_space space = store_->space();
  if (space.accepts_new_keys == store_full_) {
    store_full_ = !space.accepts_new_keys;
    if (store_full_)
      log_.warn(
          "store short of space (" + std::to_string(space.used_bytes >> 20) + " of " +
          std::to_string(space.max_bytes >> 20) +
          " MiB in use): refusing new claps (store_full) until "
          "expired op ids are purged or the disk has room; raise --lmdb-max-size if this is not an attack");
    else log_.info("store has room again: accepting new claps");
  }
  ws_->sweep();
  admin_ws_.sweep(uv_now(&loop_));
  http_->sweep();
  sample_admin_stats();
  if (++seconds_ % static_cast<std::uint64_t>(options_.ping_interval_s) == 0) http_->heartbeat();
}

// The drain, in phases a load balancer can follow: /readyz turns 503 at once;
// the listener keeps serving for --drain-grace-s, so health checks take the
// node out before connects are refused; then clients are closed with 1001 in
// batches over --drain-spread-s, so their reconnects do not land as one storm.
// --shutdown-timeout-s bounds it all. SIGINT (a terminal's Ctrl-C) skips the
// grace and the spread; a second signal exits at once.
void clapsd::begin_shutdown(int signum) {
  if (drain_ != drain_phase::serving) {
    log_.warn("second signal: exiting without waiting for clients");
    finish();
    return;
  }
  const bool terminal = signum == SIGINT;
  drain_ = drain_phase::grace;
  spread_ms_ = terminal ? 0 : static_cast<std::uint64_t>(options_.drain_spread_s) * 1000;
  uv_timer_start(
      &shutdown_timer_, [](uv_timer_t* t) { static_cast<clapsd*>(t->data)->finish(); },
      static_cast<std::uint64_t>(options_.shutdown_timeout_s) * 1000, 0);
  const std::uint64_t grace_ms = terminal ? 0 : options_.drain_grace_ms();
  std::string listener = "listener serving " + std::to_string(grace_ms / 1000) + " s more (--drain-grace-s)";
  if (grace_ms == 0)
    listener = terminal              ? "no grace (SIGINT)"
               : options_.reuse_port ? "no grace (--reuse-port: the sibling processes take new connects)"
                                     : "no grace (--drain-grace-s 0)";
  log_.info(std::string("received ") + (terminal ? "SIGINT" : "SIGTERM") + ": draining: readyz 503; " +
            listener + "; then clients closed with 1001 over " + std::to_string(spread_ms_ / 1000) + " s");
  if (grace_ms == 0) {
    end_grace();
    return;
  }
  uv_timer_start(
      &drain_timer_, [](uv_timer_t* t) { static_cast<clapsd*>(t->data)->end_grace(); }, grace_ms, 0);
}

void clapsd::end_grace() {
  drain_ = drain_phase::closing;
  admission_.draining = true;
  // Closing our socket makes the kernel send new connects to the other
  // processes on the port, or refuse them when there are none.
  if (listener_) listener_->close();
  closes_ = plan_closes(admission_.open, spread_ms_);
  close_batch_ = 0;
  log_.info("drain: listener closed; closing " + std::to_string(closes_.clients) + " clients in " +
            std::to_string(closes_.batches) + " batch" + (closes_.batches == 1 ? "" : "es") +
            (closes_.batches > 1 ? ", one every " + std::to_string(closes_.interval_ms) + " ms" : ""));
  close_next_batch();
}

// A batch's sessions refuse new claps from here on, and close once their
// queued frames are out and their earlier claps are answered (ws_session
// counts them): the tick run now commits those claps at once, so no ack is cut
// off by a close, whether the store is LMDB or Redis.
void clapsd::close_next_batch() {
  if (finishing_) return;
  const bool last = close_batch_ + 1 >= closes_.batches;
  // The last batch takes whoever is left, whatever the count said.
  std::size_t quota = last ? std::numeric_limits<std::size_t>::max() : closes_.size_of(close_batch_);
  const std::size_t told = ws_->close_when_flushed(quota);
  quota -= told;
  const std::size_t ended = http_->close_streams(quota);
  driver_->flush();
  log_.debug("drain: batch " + std::to_string(close_batch_ + 1) + "/" + std::to_string(closes_.batches) +
             ": " + std::to_string(told) + " WebSockets, " + std::to_string(ended) + " SSE streams");
  ++close_batch_;
  if (!last) {
    uv_timer_start(
        &drain_timer_, [](uv_timer_t* t) { static_cast<clapsd*>(t->data)->close_next_batch(); },
        closes_.interval_ms, 0);
    return;
  }
  log_.info("drain: every client told to close; waiting for their close handshakes");
  if (admission_.open == 0) finish_soon();
}

// LMDB commits on its writer thread and completes through the loop: wait for
// it here (an fsync or two, the loop blocked meanwhile), so that the acks of
// everything pending are queued before the connections close. A commit that
// failed is left to the engine's retry on later ticks.
void clapsd::wait_for_local_commits() {
  if (lmdb_ == nullptr) return;
  for (int round = 0; round < 8; ++round) {
    if (lmdb_->wait_for_commit() == 0 && round > 0) return;  // nothing was in flight
    if (engine_->idle() || engine_->store_error()) return;
    engine_->flush(uv_driver::now());
  }
}

void clapsd::finish_soon() {
  uv_timer_start(
      &shutdown_timer_, [](uv_timer_t* t) { static_cast<clapsd*>(t->data)->finish(); }, 0, 0);
}

void clapsd::sample_admin_stats() {
  const std::uint64_t now = uv_now(&loop_);
  const engine_stats e = engine_->stats();
  if (last_sample_ms_ != 0 && now > last_sample_ms_) {
    const double seconds = static_cast<double>(now - last_sample_ms_) / 1000.0;
    ticks_per_s_ = static_cast<double>(e.ticks - last_engine_.ticks) / seconds;
    commits_per_s_ = static_cast<double>(e.commits - last_engine_.commits) / seconds;
    claps_per_s_ = static_cast<double>(claps_since_sample_) / seconds;
  }
  claps_since_sample_ = 0;
  last_engine_ = e;
  last_sample_ms_ = now;
  articles_.sample(now);
  commit_window_.sample(metrics_.commit_latency);
  tick_window_.sample(metrics_.tick_duration);
  if (admin_ws_.subscribers() > 0) admin_ws_.broadcast(admin_frame());
}

std::string clapsd::admin_frame() const {
  admin_snapshot s;
  s.node_id = options_.node_id;
  s.uptime_s = (uv_now(&loop_) - started_ms_) / 1000;
  s.ready = ready();
  s.draining = drain_ != drain_phase::serving;
  s.store_full = !store_->space().accepts_new_keys;
  s.ws = metrics_.ws_connections;
  s.sse = metrics_.sse_streams;
  const std::size_t exchanges = http_->exchanges();
  s.rest_in_flight = exchanges > metrics_.sse_streams ? exchanges - metrics_.sse_streams : 0;
  s.admin = admin_ws_.sockets();
  s.max_connections = options_.max_connections;
  s.ws_total = metrics_.ws_connections_total;
  s.metrics = metrics_;
  s.engine = engine_->stats();
  s.ticks_per_s = ticks_per_s_;
  s.commits_per_s = commits_per_s_;
  s.claps_per_s = claps_per_s_;
  s.commit_latency = commit_window_.summary();
  s.tick_duration = tick_window_.summary();
  s.latency_window_s = commit_window_.seconds();
  s.by_viewers = articles_.top_by_viewers(10);
  s.by_claps = articles_.top_by_claps(10);
  if (cluster_) {
    const auto c = cluster_->current_status();
    s.redis = redis_state{c.connected,       c.bus_healthy, c.degraded,   c.node_id_taken,
                          c.walking_journal, c.masters,     c.dirty_keys, cluster_->nodes()};
  }
  return render_admin_frame(s);
}

std::string clapsd::drain_metrics_text() const {
  std::string text =
      "# HELP claps_drain_phase 1 for the shutdown drain's current phase: serving; grace (readyz 503, "
      "still accepting); closing (listener closed, clients closed in batches)\n"
      "# TYPE claps_drain_phase gauge\n";
  for (auto phase : {drain_phase::serving, drain_phase::grace, drain_phase::closing})
    text += std::string("claps_drain_phase{phase=\"") + phase_name(phase) + "\"} " +
            (phase == drain_ ? "1\n" : "0\n");
  return text;
}

void clapsd::finish() {
  if (finishing_) return;
  if (!engine_->idle()) engine_->flush(uv_driver::now());
  wait_for_local_commits();
  // With Redis a commit completes asynchronously (at the latest after the
  // request deadline, as locally durable): wait for it, bounded.
  if (cluster_ && !engine_->idle() && !engine_->store_error() &&
      cluster_flush_waits_++ < options_.redis_timeout_ms / 10 + 100) {
    uv_timer_start(
        &shutdown_timer_, [](uv_timer_t* t) { static_cast<clapsd*>(t->data)->finish(); }, 10, 0);
    return;
  }
  finishing_ = true;
  if (!engine_->idle()) {
    log_.error("exiting with claps not committed (store failing: " + engine_->store_error().message() +
               "); none of them was acknowledged");
    exit_code_ = 1;
  }
  driver_.reset();
  listener_.reset();
  admin_listener_.reset();
  // With a foreign loop lws closes its handles asynchronously on this loop;
  // run() finishes the destroy once the loop has drained.
  lws_context_destroy(context_);
  // After lws: closing connections release their subscriptions into it.
  if (cluster_) cluster_->shutdown();
  if (handles_open_) {
    handles_open_ = false;
    uv_signal_stop(&sigterm_);
    uv_signal_stop(&sigint_);
    uv_check_stop(&after_io_);
    uv_timer_stop(&shutdown_timer_);
    uv_timer_stop(&drain_timer_);
    uv_timer_stop(&heartbeat_timer_);
    uv_close(reinterpret_cast<uv_handle_t*>(&heartbeat_timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sigterm_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&sigint_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&after_io_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&shutdown_timer_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&drain_timer_), nullptr);
  }
  // Its handle keeps the loop running. A commit started after this (none is
  // expected: the engine is idle) completes in the store's destructor.
  store_pump_.reset();
  log_.info("shut down cleanly");
}

}  // namespace

int run_server(const server_options& options) {
  clapsd server(options);
  if (!server.start()) return 1;
  return server.run();
}

}  // namespace claps::server
