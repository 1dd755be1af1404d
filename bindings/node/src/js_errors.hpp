// The one way the addon turns a claps::errc into a JS Error.
#pragma once

#include <napi.h>

#include <string_view>
#include <system_error>

namespace claps::node {

/// An Error whose message is `ec.message()` (after `context`, when given),
/// with `.code` = claps::errc_name(ec) (e.g. "invalid_count": one name per
/// claps::errc), `.wireName` = claps::wire_name(ec) (what the WebSocket
/// protocol sends: "bad_request" for invalid_count) and, when the wire name
/// has one, `.reason` = claps::wire_reason(ec) (e.g. "store_full").
Napi::Error make_error(Napi::Env env, std::error_code ec, std::string_view context = {});

/// A TypeError with `.code` = "ERR_INVALID_ARG_TYPE", Node's code for a
/// value of the wrong JS type: a programming error, thrown at once.
Napi::TypeError make_type_error(Napi::Env env, const std::string& message);

}  // namespace claps::node
