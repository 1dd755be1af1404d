// http_io.hpp - small helpers over lws's HTTP API: reading headers and query
// arguments, writing complete JSON responses.
#pragma once

#include "auth.hpp"
#include "client_address.hpp"

#include <libwebsockets.h>

#include <span>
#include <string>
#include <string_view>
#include <system_error>

namespace claps::server {

/// The value of a header, or empty.
std::string header_value(lws* wsi, lws_token_indexes token);
/// True when the header is present at all.
bool has_header(lws* wsi, lws_token_indexes token);
/// The URL-decoded value of query argument `name` ("user", "token").
bool query_arg(lws* wsi, const char* name, std::string& value);

/// The client's address: the peer, or what a --trusted-proxy peer says in
/// X-Forwarded-For (client_ip()).
ip_address client_ip_of(lws* wsi, std::span<const ip_range> trusted_proxies);

/// What a request says about who it is: ?token=, else Authorization: Bearer,
/// and ?user=. `creds` views the strings beside it, so fill it in place with
/// read_credentials() and do not copy or move it afterwards.
struct request_credentials {
  std::string token;
  std::string user_param;
  std::string authorization;
  credentials creds;
};
void read_credentials(lws* wsi, request_credentials& out);

/// Writes a complete response (headers, then body) on an HTTP transaction.
/// Returns 0 when the headers and body went out (lws buffers what the
/// socket did not take), -1 when the connection failed.
int write_response(lws* wsi, unsigned status, std::string_view content_type, std::string_view body);

/// write_response, then ends the transaction the way an lws HTTP callback
/// must: returns the value the callback should return.
int respond_and_complete(lws* wsi, unsigned status, std::string_view content_type, std::string_view body);
int respond_json(lws* wsi, unsigned status, std::string_view body);
int respond_error(lws* wsi, unsigned status, std::string_view code, std::string_view message);

/// The HTTP status for a claps error (400, 401, 403, 404, 413, 429, 503).
unsigned http_status_for(std::error_code ec) noexcept;

}  // namespace claps::server
