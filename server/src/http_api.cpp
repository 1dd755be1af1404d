#include "http_api.hpp"

#include "frames.hpp"
#include "http_io.hpp"
#include "op_submission.hpp"
#include "socket_progress.hpp"
#include "route.hpp"

#include <claps/error.hpp>
#include <claps/ids.hpp>

#include <strings.h>

namespace claps::server {
namespace {

// An answer that is known only after LWS_CALLBACK_HTTP returned: written on
// the next writeable callback.
class deferred_reply : public http_exchange {
public:
  explicit deferred_reply(lws* wsi) : wsi_(wsi) {}

  bool answered() const noexcept { return answered_; }
  void answer(unsigned status, std::string body) {
    status_ = status;
    response_ = std::move(body);
    answered_ = true;
    lws_callback_on_writable(wsi_);
  }
  void on_update(std::span<const article_update* const>, tick_scratch&) override {}
  void on_result(const op_result&, std::string_view, op_received_at) override {}
  void on_refused(std::error_code, std::string_view) override {}
  int on_writeable(bool& finished) override {
    if (!answered_) return 0;
    finished = true;
    return respond_json(wsi_, status_, response_);
  }

private:
  lws* wsi_;
  bool answered_ = false;
  unsigned status_ = 0;
  std::string response_;
};

// A REST clap or undo: answers when its batch is durable.
class rest_op final : public deferred_reply {
public:
  rest_op(lws* wsi, bool undo, std::string user, std::string article, std::size_t max_body)
      : deferred_reply(wsi),
        undo_(undo),
        user_(std::move(user)),
        article_(std::move(article)),
        max_body_(max_body) {}

  bool undo() const noexcept { return undo_; }
  const std::string& user() const noexcept { return user_; }
  const std::string& article() const noexcept { return article_; }
  std::string& body() noexcept { return body_; }
  bool append(const char* in, std::size_t len) {
    if (too_large_ || body_.size() + len > max_body_) {
      too_large_ = true;
      body_.clear();
      return false;
    }
    body_.append(in, len);
    return true;
  }
  bool too_large() const noexcept { return too_large_; }
  std::uint64_t submitted_ms = 0;

  void on_result(const op_result& result, std::string_view, op_received_at) override {
    answer(200, rest_result_body(result));
  }
  void on_refused(std::error_code ec, std::string_view) override {
    answer(http_status_for(ec), rest_error_body(wire_name(ec), ec.message(), wire_reason(ec)));
  }

private:
  bool undo_;
  std::string user_;
  std::string article_;
  std::size_t max_body_;
  std::string body_;
  bool too_large_ = false;
};

// An SSE stream of one article's counts. Like a WebSocket session it writes
// straight from the tick when the socket holds nothing unsent, and otherwise
// keeps only the newest event.
class sse_stream final : public http_exchange {
public:
  sse_stream(lws* wsi, server_metrics& metrics, ip_address address, std::uint64_t now_ms)
      : wsi_(wsi), metrics_(metrics), address_(address), progress_ms_(now_ms) {}

  const ip_address& address() const noexcept { return address_; }
  bool closing() const noexcept { return closing_; }
  /// True when bytes wait in the kernel for this peer and it has acknowledged
  /// none of them for `limit_ms`. A reader that is slow but reading moves
  /// tcpi_bytes_acked; one that stopped does not, once its window is shut.
  bool stalled(std::uint64_t now_ms, std::uint64_t limit_ms) {
    socket_progress now{};
    if (!read_socket_progress(lws_get_socket_fd(wsi_), now) || now.unsent == 0 || now.bytes_acked != acked_) {
      acked_ = now.bytes_acked;
      progress_ms_ = now_ms;
      return false;
    }
    return now_ms - progress_ms_ >= limit_ms;
  }

  static void build_event(std::string& out, std::string_view item) {
    begin_frame(out);
    out += "event: count\ndata: ";
    out += item;
    out += "\n\n";
  }
  void send(std::string& event) {
    if (closing_) return;
    if (!latest_.empty() || lws_partial_buffered(wsi_)) {
      latest_ = event;
      request_writeable();
      return;
    }
    write(event);
  }
  void on_update(std::span<const article_update* const> updates, tick_scratch& scratch) override {
    for (const auto* u : updates) {
      build_event(scratch.frame, update_item(u->encoded));
      send(scratch.frame);
    }
  }
  void on_result(const op_result&, std::string_view, op_received_at) override {}
  void on_refused(std::error_code, std::string_view) override {}
  int on_writeable(bool&) override {
    writeable_requested_ = false;
    if (closing_) return -1;
    if (lws_partial_buffered(wsi_)) {
      request_writeable();
      return 0;
    }
    if (!latest_.empty()) {
      std::string event = std::move(latest_);
      latest_.clear();
      write(event);
    }
    return 0;
  }
  /// An SSE comment line; the second write to a closed peer fails, which is
  /// how a dead stream is noticed.
  void heartbeat() {
    if (closing_ || !latest_.empty() || lws_partial_buffered(wsi_)) return;
    std::string beat;
    begin_frame(beat);
    beat += ":\n\n";
    const auto len = beat.size() - frame_headroom;
    if (lws_write(wsi_, reinterpret_cast<unsigned char*>(beat.data()) + frame_headroom, len, LWS_WRITE_HTTP) <
        0)
      close_now();
  }
  void close_now() override {
    if (closing_) return;
    closing_ = true;
    lws_set_timeout(wsi_, PENDING_TIMEOUT_KILLED_BY_PARENT, LWS_TO_KILL_ASYNC);
    lws_cancel_service(lws_get_context(wsi_));  // see ws_session::kill_soon
  }

private:
  void write(std::string& event) {
    const auto len = event.size() - frame_headroom;
    if (lws_write(wsi_, reinterpret_cast<unsigned char*>(event.data()) + frame_headroom, len,
                  LWS_WRITE_HTTP) < 0) {
      close_now();
      return;
    }
    ++metrics_.sse_events_sent;
    if (lws_partial_buffered(wsi_)) request_writeable();
  }
  void request_writeable() {
    if (writeable_requested_) return;
    writeable_requested_ = true;
    lws_callback_on_writable(wsi_);
  }
  lws* wsi_;
  server_metrics& metrics_;
  ip_address address_;
  std::string latest_;
  std::uint64_t acked_ = 0;        // tcpi_bytes_acked at the last progress
  std::uint64_t progress_ms_ = 0;  // when the peer last took bytes (or had none waiting)
  bool writeable_requested_ = false;
  bool closing_ = false;
};

}  // namespace

http_api::http_api(service_deps deps, static_files files)
    : deps_(deps), files_(std::move(files)), origins_(deps.options.allowed_origins) {}

bool http_api::identify(lws* wsi, bool required, std::string& user, int& refusal_result) {
  request_credentials request;
  read_credentials(wsi, request);
  const credentials& c = request.creds;
  if (!required && !c.has_token && !c.has_user_param) return true;  // anonymous read
  std::string why;
  if (auto ec = deps_.auth.identify(c, false, user, why)) {
    refusal_result = respond_error(wsi, http_status_for(ec), wire_name(ec), why);
    return false;
  }
  return true;
}

bool http_api::take_token(lws* wsi, const std::string& user, bool op, int& refusal_result) {
  const auto now = deps_.now_ms();
  const bool taken = user.empty()
                         ? deps_.limits.take_anonymous(client_ip_of(wsi, deps_.options.trusted_proxies), now)
                         : deps_.limits.take(user, now);
  if (taken) return true;
  if (op) deps_.metrics.reject(clap_rejection::rate_limited);
  else ++deps_.metrics.rate_limited_reads;
  refusal_result = respond_error(wsi, 429, "rate_limited",
                                 op ? "too many claps: slow down and retry shortly"
                                    : "too many requests: reads share the user's rate limit; retry shortly");
  return false;
}

int http_api::on_request(lws* wsi, const char* raw_path) {
  ++deps_.metrics.http_requests;
  drop(wsi);  // a keep-alive connection starts a new transaction
  char* uri = nullptr;
  int uri_len = 0;
  const int method = lws_http_get_uri_and_method(wsi, &uri, &uri_len);
  const std::string_view path = raw_path ? std::string_view(raw_path) : std::string_view{};

  const route r = parse_route(path);
  switch (r.kind) {
  case route_kind::healthz: return respond_json(wsi, 200, R"({"status":"ok"})");
  // Load balancers probe readiness on the port they balance.
  case route_kind::readyz: return readiness(wsi);
  case route_kind::metrics:
    // Metrics name nodes and Redis state: on their own listener when there
    // is one, else to loopback peers and holders of the admin token.
    if (deps_.options.admin_listen)
      return respond_error(wsi, 404, "not_found", "metrics are served on --admin-listen");
    if (!loopback_host(deps_.options.listen_host) && !has_admin_token(wsi))
      return respond_error(wsi, 401, "unauthorized",
                           "metrics off loopback need the admin token (--admin-token-file, "
                           "Authorization: Bearer), or use --admin-listen");
    return metrics_page(wsi);
  case route_kind::article: return article_route(wsi, method, r.article, r.resource);
  case route_kind::websocket: return respond_error(wsi, 426, "bad_request", "/ws takes a WebSocket upgrade");
  case route_kind::other: break;
  }
  if (method == LWSHUMETH_GET) return serve_file(wsi, path);
  return respond_error(wsi, 404, "not_found", "no such resource");
}

int http_api::on_admin_request(lws* wsi, const char* raw_path) {
  ++deps_.metrics.http_requests;
  const std::string_view path = raw_path ? std::string_view(raw_path) : std::string_view{};
  if (path == "/admin" || path.starts_with("/admin/")) return admin_page(wsi, path);
  if (!loopback_host(deps_.options.admin_host) && !has_admin_token(wsi))
    return respond_error(wsi, 401, "unauthorized", "send the admin token: Authorization: Bearer TOKEN");
  switch (parse_route(path).kind) {
  case route_kind::healthz: return respond_json(wsi, 200, R"({"status":"ok"})");
  case route_kind::readyz: return readiness(wsi);
  case route_kind::metrics: return metrics_page(wsi);
  default:
    return respond_error(wsi, 404, "not_found",
                         "the admin listener serves /healthz, /readyz, /metrics and /admin");
  }
}

namespace {

constexpr std::string_view admin_cookie = "claps_admin";

// The token goes into its cookie as hex: a token file may hold bytes a
// cookie value cannot.
std::string hex_of(std::string_view text) {
  static constexpr char digits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : text) {
    out += digits[c >> 4];
    out += digits[c & 15];
  }
  return out;
}

std::string unhex(std::string_view hex) {
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  std::string out;
  if (hex.size() % 2) return {};
  for (std::size_t i = 0; i < hex.size(); i += 2) {
    const int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return {};
    out += static_cast<char>(hi << 4 | lo);
  }
  return out;
}

// The claps_admin value in a Cookie header, or empty.
std::string_view cookie_value(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    const auto end = header.find(';');
    std::string_view pair = header.substr(0, end);
    while (!pair.empty() && pair.front() == ' ') pair.remove_prefix(1);
    if (pair.size() > name.size() && pair.starts_with(name) && pair[name.size()] == '=')
      return pair.substr(name.size() + 1);
    if (end == std::string_view::npos) break;
    header.remove_prefix(end + 1);
  }
  return {};
}

// 303 to /admin, setting the admin cookie: the token leaves the URL (and
// the browser's history) after one use.
int redirect_with_cookie(lws* wsi, const std::string& token) {
  unsigned char headers[LWS_PRE + 1024];
  unsigned char* start = headers + LWS_PRE;
  unsigned char* p = start;
  unsigned char* end = headers + sizeof headers - 1;
  const std::string cookie =
      std::string(admin_cookie) + "=" + hex_of(token) + "; Path=/admin; HttpOnly; SameSite=Strict";
  static constexpr char location[] = "/admin";
  static constexpr char no_store[] = "no-store";
  if (lws_add_http_common_headers(wsi, 303, "text/plain", 0, &p, end) ||
      lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_LOCATION,
                                   reinterpret_cast<const unsigned char*>(location), sizeof location - 1, &p,
                                   end) ||
      lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_SET_COOKIE,
                                   reinterpret_cast<const unsigned char*>(cookie.data()),
                                   static_cast<int>(cookie.size()), &p, end) ||
      lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                   reinterpret_cast<const unsigned char*>(no_store), sizeof no_store - 1, &p,
                                   end) ||
      lws_finalize_write_http_header(wsi, start, &p, end))
    return -1;
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

}  // namespace

bool http_api::admin_allowed(lws* wsi) const {
  if (admin_token.empty()) return true;  // only possible on loopback (options.cpp)
  if (has_admin_token(wsi)) return true;
  const std::string cookies = header_value(wsi, WSI_TOKEN_HTTP_COOKIE);
  const std::string_view value = cookie_value(cookies, admin_cookie);
  return !value.empty() && token_matches(unhex(value));
}

int http_api::admin_page(lws* wsi, std::string_view path) {
  std::string given;
  if (!admin_token.empty() && query_arg(wsi, "token", given)) {
    if (!token_matches(given)) return respond_error(wsi, 401, "unauthorized", "wrong admin token");
    return redirect_with_cookie(wsi, admin_token);
  }
  if (!admin_allowed(wsi))
    return respond_error(
        wsi, 401, "unauthorized",
        "open /admin?token=TOKEN once (it sets a cookie), or send Authorization: Bearer TOKEN");
  std::string file;
  if (path == "/admin" || path == "/admin/") file = deps_.options.web_root + "/admin.html";
  else if (path == "/admin/admin.js") file = deps_.options.web_root + "/static/js/admin.js";
  else if (path == "/admin/ws")
    return respond_error(wsi, 426, "bad_request", "/admin/ws takes a WebSocket upgrade");
  else return respond_error(wsi, 404, "not_found", "the admin page is /admin");
  const std::string type(content_type_for(file));
  const int n = lws_serve_http_file(wsi, file.c_str(), type.c_str(), nullptr, 0);
  if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi))) return -1;
  return 0;
}

int http_api::confirm_admin_upgrade(lws* wsi, const char* upgrade) {
  const std::string path = header_value(wsi, WSI_TOKEN_GET_URI);
  auto refuse = [wsi](unsigned status, std::string_view code, std::string_view message) {
    // lws completes the transaction when CONFIRM_UPGRADE returns > 0.
    return write_response(wsi, status, "application/json", rest_error_body(code, message)) < 0 ? -1 : 1;
  };
  if (upgrade == nullptr || strcasecmp(upgrade, "websocket") != 0)
    return refuse(400, "bad_request", "only WebSocket upgrades are supported");
  if (path != "/admin/ws")
    return refuse(404, "not_found", "the admin listener takes WebSockets on /admin/ws only");
  if (!admin_allowed(wsi))
    return refuse(401, "unauthorized",
                  "send the admin token (Authorization: Bearer, or the cookie /admin?token= sets)");
  // A page elsewhere (the public port included: cookies do not mind ports)
  // must not drive an admin socket with the operator's cookie.
  const std::string origin = header_value(wsi, WSI_TOKEN_ORIGIN);
  if (!origin.empty()) {
    const std::string host = header_value(wsi, WSI_TOKEN_HOST);
    if (origin != "http://" + host && origin != "https://" + host)
      return refuse(403, "forbidden", "the admin socket takes only the admin page's own origin");
  }
  return 0;
}

bool http_api::has_admin_token(lws* wsi) const {
  if (admin_token.empty()) return false;
  const std::string header = header_value(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
  return token_matches(bearer_token(header));
}

bool http_api::token_matches(std::string_view given) const {
  if (admin_token.empty()) return false;
  // Constant time in the token's content: a timing probe learns nothing.
  unsigned char diff = given.size() == admin_token.size() ? 0 : 1;
  for (std::size_t i = 0; i < admin_token.size(); ++i)
    diff |= static_cast<unsigned char>(admin_token[i] ^ (i < given.size() ? given[i] : 0));
  return diff == 0;
}

int http_api::readiness(lws* wsi) {
  // A duplicate node id is this node's own misconfiguration: drain it.
  if (deps_.cluster && deps_.cluster->node_id_taken())
    return respond_error(wsi, 503, "unavailable",
                         "--node-id " + deps_.options.node_id + " belongs to another data directory");
  // Degraded (Redis unreachable) stays 200: draining every node at once would not help.
  // So does a store short of space: reads, undos and existing users still work.
  if (ready && ready()) {
    if (store_full && store_full())
      return respond_json(wsi, 200, R"({"status":"degraded","reason":"store_full"})");
    return respond_json(wsi, 200,
                        degraded && degraded() ? R"({"status":"degraded"})" : R"({"status":"ready"})");
  }
  if (draining && draining())
    return respond_json(wsi, 503,
                        rest_error_body("unavailable", "server is draining: shutting down", "draining"));
  return respond_error(wsi, 503, "unavailable", "store is not committing");
}

int http_api::metrics_page(lws* wsi) {
  return respond_and_complete(wsi, 200, "text/plain; version=0.0.4; charset=utf-8",
                              metrics_text ? metrics_text() : std::string{});
}

int http_api::article_route(lws* wsi, int method, std::string_view article, article_resource resource) {
  if (check_article_id(article))
    return respond_error(wsi, 400, "invalid_article",
                         "invalid article id: use 1-128 characters of A-Z a-z 0-9 . _ : -");
  if (!deps_.allowlist.allows(article)) return respond_error(wsi, 404, "invalid_article", "unknown article");
  switch (resource) {
  case article_resource::counts:
    if (method != LWSHUMETH_GET) return respond_error(wsi, 405, "bad_request", "use GET");
    return read_article(wsi, article);
  case article_resource::claps:
    if (method != LWSHUMETH_POST && method != LWSHUMETH_DELETE)
      return respond_error(wsi, 405, "bad_request", "use POST to clap or DELETE to undo");
    return begin_op(wsi, method, article);
  case article_resource::events:
    if (method != LWSHUMETH_GET) return respond_error(wsi, 405, "bad_request", "use GET");
    return open_stream(wsi, article);
  case article_resource::unknown: break;
  }
  return respond_error(wsi, 404, "not_found", "no such resource");
}

int http_api::read_article(lws* wsi, std::string_view article) {
  std::string user;
  int refused = 0;
  if (!identify(wsi, false, user, refused)) return refused;
  if (!take_token(wsi, user, false, refused)) return refused;
  if (deps_.cluster == nullptr) {
    auto [status, body] = article_body(article, user);
    return respond_json(wsi, status, body);
  }
  // Another node's parts may have to come from Redis first.
  auto reply = std::make_unique<deferred_reply>(wsi);
  const auto id = deps_.registry.add(*reply);
  reply->id = id;
  const auto serial = reply->serial;
  exchanges_[wsi] = std::move(reply);
  const std::string_view articles[] = {article};
  deps_.cluster->before_read(user, articles, [this, id, serial, article = std::string(article), user] {
    auto* e = deps_.registry.find(id);
    if (e == nullptr || e->serial != serial) return;  // the client left
    auto [status, body] = article_body(article, user);
    static_cast<deferred_reply*>(e)->answer(status, std::move(body));
  });
  return 0;
}

std::pair<unsigned, std::string> http_api::article_body(std::string_view article, const std::string& user) {
  snapshot snap;
  if (auto ec = deps_.engine.read(user, article, snap))
    return {http_status_for(ec), rest_error_body(wire_name(ec), ec.message())};
  std::string body;
  append_count_item(body, article, snap.total, snap.viewers);
  if (!user.empty()) {
    body.pop_back();
    body += R"(,"mine":)" + std::to_string(snap.mine) + "}";
  }
  if (!snap.global) {
    body.pop_back();
    body += R"(,"partial":true})";
  }
  return {200, std::move(body)};
}

int http_api::begin_op(lws* wsi, int method, std::string_view article) {
  std::string user;
  int refused = 0;
  if (!identify(wsi, true, user, refused)) return refused;
  if (deps_.admission.draining) return respond_error(wsi, 503, "unavailable", "server is shutting down");
  if (!take_token(wsi, user, true, refused)) return refused;
  auto op = std::make_unique<rest_op>(wsi, method == LWSHUMETH_DELETE, std::move(user), std::string(article),
                                      deps_.options.max_message_bytes);
  rest_op& ref = *op;
  exchanges_[wsi] = std::move(op);
  // lws only reports a body when there is one; without Content-Length (and
  // without chunking) there is none, so submit now.
  const std::string length = header_value(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
  const bool chunked = has_header(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING);
  if (!chunked && (length.empty() || length == "0")) return submit_op(wsi);
  (void)ref;
  return 0;
}

int http_api::on_body(lws* wsi, const char* in, std::size_t len) {
  auto it = exchanges_.find(wsi);
  if (it == exchanges_.end()) return 0;
  if (auto* op = dynamic_cast<rest_op*>(it->second.get())) op->append(in, len);
  return 0;
}

int http_api::on_body_complete(lws* wsi) {
  auto it = exchanges_.find(wsi);
  if (it == exchanges_.end()) return 0;
  return submit_op(wsi);
}

int http_api::submit_op(lws* wsi) {
  auto it = exchanges_.find(wsi);
  auto* op = it == exchanges_.end() ? nullptr : dynamic_cast<rest_op*>(it->second.get());
  if (op == nullptr || op->id != 0) return 0;
  auto fail = [&](unsigned status, std::string_view code, std::string_view message) {
    exchanges_.erase(wsi);
    return respond_error(wsi, status, code, message);
  };
  if (op->too_large()) return fail(413, "message_too_large", "body over --max-message-bytes");
  std::int32_t count = 1;
  std::string_view op_id;
  std::string why;
  std::string query_id;
  if (op->undo()) {
    if (query_arg(wsi, "id", query_id)) {
      if (check_op_id(query_id)) return fail(400, "bad_request", "invalid op id");
      op_id = query_id;
    }
  } else if (auto ec = deps_.parser.parse_clap_body(op->body(), count, op_id, why)) {
    deps_.metrics.reject(clap_rejection::invalid);
    return fail(400, wire_name(ec), why);
  }
  op->id = deps_.registry.add(*op);
  op->submitted_ms = deps_.now_ms();
  op_request request;
  request.undo = op->undo();
  request.user = op->user();
  request.article = op->article();
  request.op_id = op_id;
  request.count = count;
  request.cookie = deps_.registry.track_op(op->id, op_id);
  claps::server::submit_op(deps_, request);  // the free function, not this member
  return 0;
}

int http_api::open_stream(lws* wsi, std::string_view article) {
  if (deps_.admission.draining) {
    deps_.metrics.refuse(refusal::draining);
    return respond_error(wsi, 503, "unavailable", "server is shutting down");
  }
  // A browser's EventSource sends Origin on cross-site requests: checked like
  // a WebSocket handshake, so other sites cannot read through a reader's browser.
  if (!origins_.allows(header_value(wsi, WSI_TOKEN_ORIGIN), header_value(wsi, WSI_TOKEN_HOST))) {
    deps_.metrics.refuse(refusal::origin);
    return respond_error(wsi, 403, "forbidden", "origin not allowed");
  }
  std::string user;
  int refused = 0;
  if (deps_.auth.auth_mode() && !deps_.options.anonymous_sse) {
    if (!identify(wsi, true, user, refused)) {
      deps_.metrics.refuse(refusal::unauthorized);
      return refused;
    }
  }
  if (!deps_.admission.has_room() || deps_.metrics.sse_streams >= deps_.options.max_sse_streams) {
    deps_.metrics.refuse(refusal::max_connections);
    return respond_error(wsi, 503, "unavailable", "connection limit reached");
  }
  if (!take_token(wsi, user, false, refused)) {
    deps_.metrics.refuse(refusal::rate_limited);
    return refused;
  }
  const ip_address address = client_ip_of(wsi, deps_.options.trusted_proxies);
  // Streams count per address only: a user is optional here, and one
  // reader's browser may hold a stream per open article.
  if (deps_.limits.admit({}, address, deps_.now_ms()) != client_limits::admission::admitted) {
    deps_.metrics.refuse(refusal::per_address);
    return respond_error(wsi, 429, "rate_limited",
                         "too many connections from " + address.to_string() + " (most " +
                             std::to_string(deps_.options.max_connections_per_ip) + "): close one first");
  }
  auto stream = std::make_unique<sse_stream>(wsi, deps_.metrics, address, deps_.now_ms());
  stream->id = deps_.registry.add(*stream);
  snapshot snap;
  if (auto ec = deps_.engine.subscribe(stream->id, {}, article, true, snap)) {
    deps_.registry.remove(stream->id);
    deps_.limits.release({}, address);
    return respond_error(wsi, http_status_for(ec), wire_name(ec), ec.message());
  }
  unsigned char headers[LWS_PRE + 512];
  unsigned char* start = headers + LWS_PRE;
  unsigned char* p = start;
  unsigned char* end = headers + sizeof headers - 1;
  static constexpr char no_cache[] = "no-cache";
  if (lws_add_http_common_headers(wsi, 200, "text/event-stream", LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end) ||
      lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                   reinterpret_cast<const unsigned char*>(no_cache), sizeof no_cache - 1, &p,
                                   end) ||
      lws_finalize_write_http_header(wsi, start, &p, end)) {
    deps_.release(stream->id);
    deps_.registry.remove(stream->id);
    deps_.limits.release({}, address);
    return -1;
  }
  // An SSE stream lives until the client goes: no HTTP timeouts apply.
  // (lws_http_mark_sse() is for h2 streams only; clapsd serves h1.)
  lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0);
  // lws 4.1's h1 server does not read during a transaction, so a readable
  // SSE socket (the client hanging up) would wake the loop forever. Stop
  // reading; heartbeats find dead clients when their writes fail.
  lws_rx_flow_control(wsi, 0);
  ++deps_.admission.open;
  ++deps_.metrics.sse_streams;
  std::string item, event;
  append_count_item(item, snap.article, snap.total, snap.viewers);
  sse_stream::build_event(event, item);
  sse_stream& ref = *stream;
  exchanges_[wsi] = std::move(stream);
  ref.send(event);
  return 0;
}

int http_api::serve_file(lws* wsi, std::string_view path) {
  static_file file;
  if (!files_.resolve(path, file)) {
    // Browsers ask for it on every page; the demo ships none.
    if (path == "/favicon.ico") return respond_and_complete(wsi, 204, "image/x-icon", {});
    return respond_error(wsi, 404, "not_found", "no such resource");
  }
  const std::string type(file.content_type);
  const int n = lws_serve_http_file(wsi, file.path.c_str(), type.c_str(), nullptr, 0);
  if (n < 0 || (n > 0 && lws_http_transaction_completed(wsi))) return -1;
  return 0;
}

int http_api::on_writeable(lws* wsi) {
  auto it = exchanges_.find(wsi);
  if (it == exchanges_.end()) return 0;
  bool finished = false;
  const int r = it->second->on_writeable(finished);
  if (finished) drop(wsi);
  return r;
}

void http_api::drop(lws* wsi) {
  auto it = exchanges_.find(wsi);
  if (it == exchanges_.end()) return;
  auto exchange = std::move(it->second);
  exchanges_.erase(it);
  if (exchange->id != 0) {
    if (auto* stream = dynamic_cast<sse_stream*>(exchange.get())) {
      deps_.limits.release({}, stream->address());
      const auto id = exchange->id;
      deps_.registry.remove(id);
      deps_.release(id, std::move(exchange));
      --deps_.metrics.sse_streams;
      deps_.admission.closed_one();
    } else {
      deps_.registry.remove(exchange->id);
    }
  }
}

void http_api::on_closed(lws* wsi) { drop(wsi); }

void http_api::sweep() {
  const auto now = deps_.now_ms();
  const auto limit = static_cast<std::uint64_t>(deps_.options.request_timeout_s) * 1000;
  const auto stall_limit = static_cast<std::uint64_t>(deps_.options.idle_timeout_s) * 1000;
  for (auto& [wsi, exchange] : exchanges_) {
    if (auto* stream = dynamic_cast<sse_stream*>(exchange.get())) {
      if (stream->stalled(now, stall_limit)) {
        ++deps_.metrics.sse_stall_drops;
        deps_.log.debug("SSE stream dropped: its reader took no bytes for --idle-timeout-s");
        stream->close_now();
      }
      continue;
    }
    auto* op = dynamic_cast<rest_op*>(exchange.get());
    if (op == nullptr || op->id == 0 || op->answered() || now - op->submitted_ms < limit) continue;
    // The store is not committing. The op may still commit later, so the
    // client must retry with the same op id to count it once.
    deps_.registry.remove(op->id);
    op->answer(503, rest_error_body("unavailable",
                                    "not committed in time (store unavailable): "
                                    "retry with the same op id"));
  }
}

void http_api::heartbeat() {
  for (auto& [wsi, exchange] : exchanges_)
    if (auto* stream = dynamic_cast<sse_stream*>(exchange.get())) stream->heartbeat();
}

std::size_t http_api::close_streams(std::size_t at_most) {
  std::size_t ended = 0;
  for (auto& [wsi, exchange] : exchanges_) {
    if (ended == at_most) break;
    auto* stream = dynamic_cast<sse_stream*>(exchange.get());
    if (stream == nullptr || stream->closing()) continue;
    stream->close_now();
    ++ended;
  }
  return ended;
}

}  // namespace claps::server
