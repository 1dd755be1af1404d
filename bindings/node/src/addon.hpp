// The addon's per-environment state: its class constructors.
#pragma once

#include <napi.h>

namespace claps::node {

struct addon_data {
  Napi::FunctionReference memory_store;
  Napi::FunctionReference lmdb_store;
  Napi::FunctionReference engine;
  static addon_data& of(Napi::Env env) { return *env.GetInstanceData<addon_data>(); }
};

}  // namespace claps::node
