// http_api.hpp - everything over plain HTTP: REST, SSE, health, metrics and
// the demo app's static files.
#pragma once

#include "origin.hpp"
#include "route.hpp"
#include "service_deps.hpp"
#include "static_files.hpp"

#include <libwebsockets.h>

#include <functional>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

namespace claps::server {

/// One HTTP transaction that outlives its LWS_CALLBACK_HTTP: a REST clap or
/// undo waiting for its commit, or an SSE stream.
class http_exchange : public endpoint {
public:
  /// LWS_CALLBACK_HTTP_WRITEABLE. `finished` is set when the transaction is
  /// over and the exchange may be dropped.
  virtual int on_writeable(bool& finished) = 0;
  virtual void close_now() {}
  std::uint64_t id = 0;  // registry id
};

class http_api {
public:
  http_api(service_deps deps, static_files files);

  int on_request(lws* wsi, const char* path);  // LWS_CALLBACK_HTTP
  /// LWS_CALLBACK_HTTP on --admin-listen: /healthz, /readyz and /metrics,
  /// behind the admin token unless that listener is on loopback; and the
  /// admin page (/admin, /admin/admin.js), behind the token whenever there
  /// is one (see admin_allowed).
  int on_admin_request(lws* wsi, const char* path);
  /// LWS_CALLBACK_HTTP_CONFIRM_UPGRADE on --admin-listen (`upgrade` is the
  /// Upgrade header's token): 0 to accept a WebSocket on /admin/ws; otherwise the refusal has been written and the
  /// callback returns the value given back.
  int confirm_admin_upgrade(lws* wsi, const char* upgrade);
  int on_body(lws* wsi, const char* in, std::size_t len);  // LWS_CALLBACK_HTTP_BODY
  int on_body_complete(lws* wsi);                          // ..._BODY_COMPLETION
  int on_writeable(lws* wsi);                              // LWS_CALLBACK_HTTP_WRITEABLE
  void on_closed(lws* wsi);                                // CLOSED_HTTP / WSI_DESTROY

  /// Writes an SSE comment to every stream (every --ping-interval-s), which
  /// keeps proxies from timing out and detects clients that went away.
  void heartbeat();
  /// Once a second: answers 503 to REST claps/undos not committed within
  /// --request-timeout-s, and drops SSE streams whose peer has taken no
  /// bytes for --idle-timeout-s while output waits (a reader that stopped
  /// reading; it never sends anything, so silence proves nothing).
  void sweep();
  /// Shutdown: ends up to `at_most` SSE streams not yet ending; returns how many.
  std::size_t close_streams(std::size_t at_most);

  /// HTTP transactions in progress: SSE streams and requests awaiting an answer.
  std::size_t exchanges() const noexcept { return exchanges_.size(); }

  /// Readiness (store commits, not draining) and the metrics page.
  std::function<bool()> ready;
  /// True from the shutdown signal on: /readyz then says "draining".
  std::function<bool()> draining;
  std::function<std::string()> metrics_text;
  /// True while this node's claps are only locally durable (several nodes, Redis down).
  std::function<bool()> degraded;
  /// The admin token (--admin-token-file); empty when none is configured.
  std::string admin_token;
  /// True while the store refuses new claps for want of space (store_full).
  std::function<bool()> store_full;

private:
  int readiness(lws* wsi);
  int metrics_page(lws* wsi);
  bool has_admin_token(lws* wsi) const;
  bool token_matches(std::string_view given) const;
  /// The admin page and its socket: open when no token is configured (the
  /// admin listener is then on loopback), else for the token in an
  /// Authorization header or the claps_admin cookie. Unlike /metrics, the
  /// token is required on loopback too when one is configured: behind a
  /// proxy on the same host every client comes from loopback.
  bool admin_allowed(lws* wsi) const;
  int admin_page(lws* wsi, std::string_view path);
  int article_route(lws* wsi, int method, std::string_view article, article_resource resource);
  int read_article(lws* wsi, std::string_view article);
  std::pair<unsigned, std::string> article_body(std::string_view article, const std::string& user);
  int begin_op(lws* wsi, int method, std::string_view article);
  int submit_op(lws* wsi);
  int open_stream(lws* wsi, std::string_view article);
  int serve_file(lws* wsi, std::string_view path);
  bool identify(lws* wsi, bool required, std::string& user, int& refusal_result);
  /// One token of the user's rate limit (the address's when anonymous);
  /// false after answering 429.
  bool take_token(lws* wsi, const std::string& user, bool op, int& refusal_result);
  void drop(lws* wsi);

  service_deps deps_;
  static_files files_;
  origin_policy origins_;  // SSE handshakes are checked like WebSocket ones
  std::unordered_map<lws*, std::unique_ptr<http_exchange>> exchanges_;
};

}  // namespace claps::server
