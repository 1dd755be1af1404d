// http_api.hpp - everything over plain HTTP: REST, SSE, health, metrics and
// the demo app's static files.
#pragma once

#include "origin.hpp"
#include "route.hpp"
#include "service_deps.hpp"
#include "static_files.hpp"
#include "token_bucket.hpp"

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

  int on_request(lws* wsi, const char* path);                 // LWS_CALLBACK_HTTP
  int on_body(lws* wsi, const char* in, std::size_t len);     // LWS_CALLBACK_HTTP_BODY
  int on_body_complete(lws* wsi);                             // ..._BODY_COMPLETION
  int on_writeable(lws* wsi);                                 // LWS_CALLBACK_HTTP_WRITEABLE
  void on_closed(lws* wsi);                                   // CLOSED_HTTP / WSI_DESTROY

  /// Writes an SSE comment to every stream (every --ping-interval-s), which
  /// keeps proxies from timing out and detects clients that went away.
  void heartbeat();
  /// Answers 503 to REST claps/undos not committed within
  /// --request-timeout-s (called once a second).
  void expire_requests();
  /// Shutdown: ends every SSE stream.
  void close_streams();

  /// Readiness (store commits, not draining) and the metrics page.
  std::function<bool()> ready;
  std::function<std::string()> metrics_text;
  /// True while this node's claps are only locally durable (several nodes, Redis down).
  std::function<bool()> degraded;

private:
  int article_route(lws* wsi, int method, std::string_view article, article_resource resource);
  int read_article(lws* wsi, std::string_view article);
  std::pair<unsigned, std::string> article_body(std::string_view article, const std::string& user);
  int begin_op(lws* wsi, int method, std::string_view article);
  int submit_op(lws* wsi);
  int open_stream(lws* wsi, std::string_view article);
  int serve_file(lws* wsi, std::string_view path);
  bool identify(lws* wsi, bool required, std::string& user, int& refusal_result);
  bool take_rest_token(const std::string& user);
  void drop(lws* wsi);

  service_deps deps_;
  static_files files_;
  origin_policy origins_;  // SSE handshakes are checked like WebSocket ones
  std::unordered_map<lws*, std::unique_ptr<http_exchange>> exchanges_;
  std::unordered_map<std::string, token_bucket> rest_buckets_;
};

} // namespace claps::server
