#include "js_errors.hpp"

#include <claps/error.hpp>

#include <string>

namespace claps::node {

Napi::Error make_error(Napi::Env env, std::error_code ec, std::string_view context) {
  std::string message(context);
  if (!message.empty()) message += ": ";
  message += ec.message();
  Napi::Error error = Napi::Error::New(env, message);
  error.Set("code", Napi::String::New(env, std::string(claps::errc_name(ec))));
  error.Set("wireName", Napi::String::New(env, std::string(claps::wire_name(ec))));
  const std::string_view reason = claps::wire_reason(ec);
  if (!reason.empty()) error.Set("reason", Napi::String::New(env, std::string(reason)));
  return error;
}

Napi::TypeError make_type_error(Napi::Env env, const std::string& message) {
  Napi::TypeError error = Napi::TypeError::New(env, message);
  error.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_TYPE"));
  return error;
}

}  // namespace claps::node
