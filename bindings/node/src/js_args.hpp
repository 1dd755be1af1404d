// Readers for the arguments and option objects JS passes in. A value of the
// wrong JS type is a programming error: they throw a TypeError at once.
#pragma once

#include "js_errors.hpp"

#include <napi.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

namespace claps::node {

/// `value` as a string; `what` names it in the error.
inline std::string string_arg(Napi::Env env, Napi::Value value, const char* what) {
  if (!value.IsString()) throw make_type_error(env, std::string(what) + " must be a string");
  return value.As<Napi::String>().Utf8Value();
}

/// `object[key]` as a string, or "" when undefined or null.
inline std::string optional_string(Napi::Object object, const char* key) {
  Napi::Value value = object.Get(key);
  if (value.IsUndefined() || value.IsNull()) return {};
  return string_arg(object.Env(), value, key);
}

/// `object[key]` as a number, or `fallback` when undefined.
inline double optional_number(Napi::Object object, const char* key, double fallback) {
  Napi::Value value = object.Get(key);
  if (value.IsUndefined()) return fallback;
  if (!value.IsNumber()) throw make_type_error(object.Env(), std::string(key) + " must be a number");
  return value.As<Napi::Number>().DoubleValue();
}

/// `object[key]` as a non-negative integer (below 2^53), or `fallback` when
/// undefined. A RangeError names the option otherwise.
inline std::uint64_t optional_count(Napi::Object object, const char* key, std::uint64_t fallback) {
  const double v = optional_number(object, key, static_cast<double>(fallback));
  if (!(v >= 0) || v != std::floor(v) || v > 9007199254740991.0) {
    Napi::RangeError error =
        Napi::RangeError::New(object.Env(), std::string(key) + " must be an integer from 0 to 2^53-1");
    error.Set("code", Napi::String::New(object.Env(), "ERR_OUT_OF_RANGE"));
    throw error;
  }
  return static_cast<std::uint64_t>(v);
}

/// `object[key]` as a boolean, or `fallback` when undefined.
inline bool optional_bool(Napi::Object object, const char* key, bool fallback) {
  Napi::Value value = object.Get(key);
  if (value.IsUndefined()) return fallback;
  if (!value.IsBoolean()) throw make_type_error(object.Env(), std::string(key) + " must be a boolean");
  return value.As<Napi::Boolean>().Value();
}

/// An options argument: an object, or {} when undefined.
inline Napi::Object options_arg(Napi::Env env, Napi::Value value, const char* what) {
  if (value.IsUndefined()) return Napi::Object::New(env);
  if (!value.IsObject()) throw make_type_error(env, std::string(what) + " must be an object");
  return value.As<Napi::Object>();
}

}  // namespace claps::node
