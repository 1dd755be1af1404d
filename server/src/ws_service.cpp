#include "ws_service.hpp"

#include "frames.hpp"
#include "http_io.hpp"
#include "op_submission.hpp"

#include <claps/error.hpp>
#include <claps/ids.hpp>

#include <algorithm>
#include <chrono>
#include <strings.h>

namespace claps::server {

ws_service::ws_service(service_deps deps) : deps_(deps), origins_(deps.options.allowed_origins) {
  limits_.max_message_bytes = deps.options.max_message_bytes;
  limits_.slow_client_bytes = deps.options.slow_client_bytes;
  limits_.direct_writes = deps.options.direct_writes;
  flushes_.arm = [this] { arm_reply_flush(); };
}

ws_service::~ws_service() {
  // A flush armed but not run (the loop stopped first) must not call back.
  if (flush_handle_ != nullptr) flush_handle_->data = nullptr;
}

void ws_service::arm_reply_flush() {
  if (flush_handle_ != nullptr) return;
  flush_handle_ = new uv_idle_t;
  uv_idle_init(deps_.loop, flush_handle_);
  flush_handle_->data = this;
  uv_idle_start(flush_handle_, [](uv_idle_t* h) {
    if (auto* self = static_cast<ws_service*>(h->data)) {
      self->flush_handle_ = nullptr;
      self->flush_replies();
    }
    uv_idle_stop(h);
    uv_close(reinterpret_cast<uv_handle_t*>(h),
             [](uv_handle_t* closed) { delete reinterpret_cast<uv_idle_t*>(closed); });
  });
}

void ws_service::flush_replies() {
  // A session may close or reply again while others are written.
  auto ids = std::move(flushes_.ids);
  flushes_.ids.clear();
  // A session that closed meanwhile is no longer registered; an endpoint now
  // at its address may be another kind, or a new session (flushing it is harmless).
  for (auto id : ids)
    if (auto* s = dynamic_cast<ws_session*>(deps_.registry.find(id))) s->flush_replies();
  if (flushes_.ids.empty()) {
    ids.clear();
    flushes_.ids = std::move(ids);  // keep the capacity
  }
}

int ws_service::refuse(lws* wsi, refusal why, unsigned status, std::string_view code,
                       std::string_view message) {
  deps_.metrics.refuse(why);
  deps_.log.debug("handshake refused: " + std::string(message));
  // lws completes the HTTP transaction when CONFIRM_UPGRADE returns > 0.
  if (write_response(wsi, status, "application/json", rest_error_body(code, message)) < 0) return -1;
  return 1;
}

int ws_service::confirm_upgrade(lws* wsi, const char* upgrade) {
  // RFC 6455 4.2.1: the token is case-insensitive ("WebSocket" is common).
  if (upgrade == nullptr || strcasecmp(upgrade, "websocket") != 0)
    return refuse(wsi, refusal::bad_request, 400, "bad_request", "only WebSocket upgrades are supported");
  const std::string path = header_value(wsi, WSI_TOKEN_GET_URI);
  if (path != "/ws") return refuse(wsi, refusal::bad_request, 404, "not_found", "WebSocket endpoint is /ws");
  if (deps_.admission.draining)
    return refuse(wsi, refusal::draining, 503, "unavailable", "server is shutting down");
  if (!deps_.admission.has_room())
    return refuse(wsi, refusal::max_connections, 503, "unavailable", "connection limit reached");
  if (!origins_.allows(header_value(wsi, WSI_TOKEN_ORIGIN), header_value(wsi, WSI_TOKEN_HOST)))
    return refuse(wsi, refusal::origin, 403, "forbidden", "origin not allowed");

  request_credentials request;
  read_credentials(wsi, request);
  const credentials& c = request.creds;
  std::string user, why;
  if (auto ec = deps_.auth.identify(c, true, user, why)) {
    if (ec == errc::unauthorized) return refuse(wsi, refusal::unauthorized, 401, "unauthorized", why);
    return refuse(wsi, refusal::bad_request, 400, "bad_request", why);
  }
  const ip_address address = client_ip_of(wsi, deps_.options.trusted_proxies);
  switch (deps_.limits.admit(user, address, deps_.now_ms())) {
  case client_limits::admission::admitted: break;
  case client_limits::admission::user_full:
    return refuse(wsi, refusal::per_user, 429, "rate_limited",
                  "too many connections for this user (most " +
                      std::to_string(deps_.options.max_connections_per_user) + "): close one first");
  case client_limits::admission::address_full:
    return refuse(wsi, refusal::per_address, 429, "rate_limited",
                  "too many connections from " + address.to_string() + " (most " +
                      std::to_string(deps_.options.max_connections_per_ip) + "): close one first");
  }
  std::string batch;
  upgrading_[wsi] = pending_upgrade{std::move(user), address, query_arg(wsi, "batch", batch) && batch == "1"};
  ++deps_.admission.reserved;
  return 0;
}

void ws_service::destroyed(lws* wsi) {
  const auto it = upgrading_.find(wsi);
  if (it == upgrading_.end()) return;
  deps_.limits.release(it->second.user, it->second.address);
  upgrading_.erase(it);
  --deps_.admission.reserved;
}

int ws_service::established(lws* wsi, void* user) {
  auto it = upgrading_.find(wsi);
  (void)user;
  if (it == upgrading_.end()) return -1;
  auto session =
      std::make_unique<ws_session>(wsi, deps_.limits.admitted_user(it->second.user), it->second.address,
                                   limits_, deps_.metrics, flushes_, deps_.now_ms(), it->second.batch);
  upgrading_.erase(it);
  --deps_.admission.reserved;
  ++deps_.admission.open;
  ++deps_.metrics.ws_connections;
  ++deps_.metrics.ws_connections_total;
  ws_session& s = *session;
  deps_.registry.add(s);
  lws_set_wsi_user(wsi, &s);
  s.set_slot(static_cast<std::uint32_t>(sessions_.size()));
  sessions_.push_back(std::move(session));
  std::string hello;
  encode_hello(hello, s.user(), deps_.options.tick_ms, deps_.options.clap_cap, deps_.options.node_id);
  s.send_reply(std::move(hello));
  // Confirmed during the drain's grace, established once its batches began.
  if (deps_.admission.draining) s.close_when_flushed();
  return 0;
}

int ws_service::receive(lws* wsi, void* user, const char* in, std::size_t len) {
  ws_session* s = session_of(user);
  if (s == nullptr) return -1;
  s->heard(deps_.now_ms());
  if (s->closing()) return 0;
  const bool complete = lws_is_final_fragment(wsi) && lws_remaining_packet_payload(wsi) == 0;
  std::string_view message;
  switch (s->receive(in, len, complete, message)) {
  case ws_session::rx_status::partial: return 0;
  case ws_session::rx_status::too_large: {
    ++deps_.metrics.oversize_closes;
    static constexpr char reason[] = "message too large";
    lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE,
                     reinterpret_cast<unsigned char*>(const_cast<char*>(reason)), sizeof reason - 1);
    return -1;
  }
  case ws_session::rx_status::complete: break;
  }
  handle(*s, message, lws_frame_is_binary(wsi) != 0);
  s->release_message();
  return 0;
}

int ws_service::writeable(void* user) {
  ws_session* s = session_of(user);
  return s ? s->on_writeable() : 0;
}

void ws_service::pong(void* user) {
  if (ws_session* s = session_of(user)) s->heard(deps_.now_ms());
}

void ws_service::sweep() {
  const auto now = deps_.now_ms();
  const auto ping_ms = static_cast<std::uint64_t>(deps_.options.ping_interval_s) * 1000;
  const auto idle_ms = static_cast<std::uint64_t>(deps_.options.idle_timeout_s) * 1000;
  for (auto& s : sessions_) {
    const auto silent = now - std::min(now, s->last_heard_ms());
    if (silent >= idle_ms) {
      s->drop();
    } else if (silent >= ping_ms && now - std::min(now, s->last_ping_ms()) >= ping_ms) {
      s->ping(now);
    }
  }
}

void ws_service::closing(void* user) {
  if (ws_session* s = session_of(user)) s->lws_closing();
}

void ws_service::closed(lws* wsi, void* user) {
  ws_session* s = session_of(user);
  if (s == nullptr) return;
  lws_set_wsi_user(wsi, nullptr);
  const auto id = s->id();
  deps_.registry.remove(id);
  const std::uint32_t slot = s->slot();
  auto owned = std::move(sessions_[slot]);
  if (slot + 1 != sessions_.size()) {
    sessions_[slot] = std::move(sessions_.back());
    sessions_[slot]->set_slot(slot);
  }
  sessions_.pop_back();
  deps_.limits.release(owned->user(), owned->address());
  deps_.release(id, std::move(owned));
  --deps_.metrics.ws_connections;
  deps_.admission.closed_one();
}

std::size_t ws_service::close_when_flushed(std::size_t at_most) {
  std::size_t told = 0;
  for (auto& s : sessions_) {
    if (told == at_most) break;
    if (s->leaving()) continue;
    s->close_when_flushed();
    ++told;
  }
  return told;
}

void ws_service::send_error(ws_session& s, std::string_view code, std::string_view message,
                            std::string_view id) {
  ++deps_.metrics.bad_messages;
  std::string frame;
  encode_error(frame, code, message, id);
  s.send_reply(std::move(frame));
}

void ws_service::send_error(ws_session& s, std::error_code ec, std::string_view why, std::string_view id) {
  send_error(s, wire_name(ec), why.empty() ? std::string_view(ec.message()) : why, id);
}

void ws_service::handle(ws_session& s, std::string_view text, bool binary) {
  ++deps_.metrics.messages_received;
  if (binary) {
    send_error(s, "bad_request", "binary frames are not supported: send JSON text", {});
    return;
  }
  std::string why;
  if (auto ec = deps_.parser.parse_message(text, message_, why)) {
    send_error(s, ec, why, message_.id);
    return;
  }
  switch (message_.kind) {
  case message_kind::subscribe: subscribe(s); break;
  case message_kind::unsubscribe: unsubscribe(s); break;
  case message_kind::clap:
  case message_kind::undo: clap_or_undo(s); break;
  }
}

bool ws_service::take_token(ws_session& s) {
  if (deps_.limits.take(s.user(), deps_.now_ms())) return true;
  const bool op = message_.kind == message_kind::clap || message_.kind == message_kind::undo;
  if (op) deps_.metrics.reject(clap_rejection::rate_limited);
  else ++deps_.metrics.rate_limited_reads;
  send_error(s, "rate_limited",
             op ? "too many claps: slow down and retry shortly"
                : "too many requests: subscribes share the user's rate limit with claps; retry shortly",
             message_.id);
  return false;
}

void ws_service::subscribe(ws_session& s) {
  if (!take_token(s)) return;
  for (auto article : message_.articles) {
    if (check_article_id(article) || !deps_.allowlist.allows(article)) {
      send_error(s, "invalid_article",
                 "invalid or unknown article id: " + std::string(utf8_prefix(article, 128)), message_.id);
      return;
    }
  }
  if (deps_.cluster == nullptr) {
    finish_subscribe(s, message_.articles, message_.reading, message_.id);
    return;
  }
  // Across nodes the first snapshot is global: the other nodes' parts (and
  // this user's claps through them) are loaded first when not known.
  auto p = std::make_shared<pending_subscribe>();
  p->articles.assign(message_.articles.begin(), message_.articles.end());
  p->reading = message_.reading;
  p->id.assign(message_.id);
  s.add_pending_subscribe(p);
  deps_.cluster->before_read(s.user(), message_.articles, [this, p, sid = s.id(), serial = s.serial] {
    auto* e = deps_.registry.find(sid);
    if (e == nullptr || e->serial != serial) return;  // the client left meanwhile
    auto& session = static_cast<ws_session&>(*e);
    session.remove_pending_subscribe(p);
    const std::vector<std::string_view> views(p->articles.begin(), p->articles.end());
    finish_subscribe(session, views, p->reading, p->id);
  });
}

void ws_service::finish_subscribe(ws_session& s, std::span<const std::string_view> articles, bool reading,
                                  std::string_view id) {
  snapshots_.clear();
  if (auto ec = deps_.engine.subscribe(s.id(), s.user(), articles, reading, snapshots_)) {
    send_error(s, ec, {}, id);
    return;
  }
  std::string frame;
  encode_snapshot(frame, snapshots_, id);
  s.send_reply(std::move(frame));
}

void ws_service::unsubscribe(ws_session& s) {
  for (auto article : message_.articles) {
    if (check_article_id(article)) {
      send_error(s, "invalid_article", "invalid article id", message_.id);
      return;
    }
  }
  for (auto article : message_.articles) {
    for (auto& pending : s.pending_subscribes()) std::erase(pending->articles, article);
    deps_.engine.unsubscribe(s.id(), article);
  }
}

void ws_service::clap_or_undo(ws_session& s) {
  // The ack latency starts here, when the frame has been read and parsed
  // (microseconds after it was complete).
  const op_received_at received = std::chrono::steady_clock::now();
  if (!take_token(s)) return;
  // While the drain closes clients in batches, those not yet told to go clap
  // as usual; one told to go closes once its earlier ops are answered.
  if (s.leaving()) {
    deps_.metrics.reject(clap_rejection::unavailable);
    send_error(s, "unavailable", "server is shutting down: retry on another connection", message_.id);
    return;
  }
  if (check_article_id(message_.article) || !deps_.allowlist.allows(message_.article)) {
    deps_.metrics.reject(clap_rejection::invalid);
    send_error(s, "invalid_article", "invalid or unknown article id", message_.id);
    return;
  }
  op_request request;
  request.undo = message_.kind != message_kind::clap;
  request.user = s.user();
  request.article = message_.article;
  request.op_id = message_.id;
  request.count = message_.count;
  request.cookie = deps_.registry.track_op(s.id(), message_.id, received);
  s.op_submitted();
  submit_op(deps_, request);
}

}  // namespace claps::server
