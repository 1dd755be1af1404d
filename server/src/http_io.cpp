#include "http_io.hpp"

#include "frames.hpp"
#include "route.hpp"

#include <claps/error.hpp>

#include <cstring>
#include <vector>

namespace claps::server {

std::string header_value(lws* wsi, lws_token_indexes token) {
  const int len = lws_hdr_total_length(wsi, token);
  if (len <= 0) return {};
  std::string value(static_cast<std::size_t>(len) + 1, '\0');
  const int n = lws_hdr_copy(wsi, value.data(), len + 1, token);
  if (n < 0) return {};
  value.resize(static_cast<std::size_t>(n));
  return value;
}

bool has_header(lws* wsi, lws_token_indexes token) { return lws_hdr_total_length(wsi, token) > 0; }

bool query_arg(lws* wsi, const char* name, std::string& value) {
  // Query fragments are copied one by one; the arg's length is bounded by the
  // whole query's.
  const int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
  if (total <= 0) return false;
  std::vector<char> buf(static_cast<std::size_t>(total) + 1);
  for (int i = 0;; ++i) {
    const int n =
        lws_hdr_copy_fragment(wsi, buf.data(), static_cast<int>(buf.size()), WSI_TOKEN_HTTP_URI_ARGS, i);
    if (n < 0) return false;
    std::string_view arg;
    if (query_fragment_value(std::string_view(buf.data(), static_cast<std::size_t>(n)), name, arg)) {
      value.assign(arg);
      return true;
    }
    if (n == 0 && i > 64) return false;
  }
}

int write_response(lws* wsi, unsigned status, std::string_view content_type, std::string_view body) {
  unsigned char headers[LWS_PRE + 1024];
  unsigned char* start = headers + LWS_PRE;
  unsigned char* p = start;
  unsigned char* end = headers + sizeof headers - 1;
  const std::string type(content_type);
  if (lws_add_http_common_headers(wsi, status, type.c_str(), body.size(), &p, end)) return -1;
  static constexpr char no_store[] = "no-store";
  if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_CACHE_CONTROL,
                                   reinterpret_cast<const unsigned char*>(no_store), sizeof no_store - 1, &p,
                                   end))
    return -1;
  if (lws_finalize_write_http_header(wsi, start, &p, end)) return -1;
  if (body.empty()) return 0;
  std::string frame(LWS_PRE, '\0');
  frame += body;
  const int n = lws_write(wsi, reinterpret_cast<unsigned char*>(frame.data()) + LWS_PRE, body.size(),
                          LWS_WRITE_HTTP_FINAL);
  return n < 0 ? -1 : 0;
}

int respond_and_complete(lws* wsi, unsigned status, std::string_view content_type, std::string_view body) {
  if (write_response(wsi, status, content_type, body) < 0) return -1;
  return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int respond_json(lws* wsi, unsigned status, std::string_view body) {
  return respond_and_complete(wsi, status, "application/json", body);
}

int respond_error(lws* wsi, unsigned status, std::string_view code, std::string_view message) {
  return respond_json(wsi, status, rest_error_body(code, message));
}

unsigned http_status_for(std::error_code ec) noexcept {
  if (ec.category() != error_category()) return 503;
  switch (static_cast<errc>(ec.value())) {
  case errc::bad_request:
  case errc::invalid_article:
  case errc::invalid_user:
  case errc::invalid_op_id:
  case errc::invalid_count:
  case errc::too_many_subscriptions: return 400;
  case errc::unauthorized: return 401;
  case errc::forbidden: return 403;
  case errc::message_too_large: return 413;
  case errc::rate_limited:
  case errc::too_many_op_ids: return 429;
  default: return 503;
  }
}

ip_address client_ip_of(lws* wsi, std::span<const ip_range> trusted_proxies) {
  char peer_text[64] = {};
  const char* got = lws_get_peer_simple(wsi, peer_text, sizeof peer_text);
  // A peer lws cannot name (a unix socket) is this machine.
  ip_address peer = got ? parse_ip(peer_text).value_or(ip_address{}) : ip_address{};
  if (!got || peer == ip_address{}) peer = *parse_ip("127.0.0.1");
  if (trusted_proxies.empty()) return peer;
  return client_ip(peer, header_value(wsi, WSI_TOKEN_X_FORWARDED_FOR), trusted_proxies);
}

void read_credentials(lws* wsi, request_credentials& out) {
  out.creds = {};
  out.authorization = header_value(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
  // The header wins: a token in the query string ends up in proxy and access
  // logs, so it is only the fallback for clients that cannot set headers
  // (browsers opening a WebSocket).
  if (auto bearer = bearer_token(out.authorization); !bearer.empty()) {
    out.creds.token = bearer;
    out.creds.has_token = true;
  } else if (query_arg(wsi, "token", out.token)) {
    out.creds.token = out.token;
    out.creds.has_token = true;
  }
  if (query_arg(wsi, "user", out.user_param)) {
    out.creds.user_param = out.user_param;
    out.creds.has_user_param = true;
  }
}

}  // namespace claps::server
