// The addon's per-environment state: its class constructors, and the live
// objects that hold native resources (uv handles, LMDB environments, the
// writer thread), which the environment's cleanup hook releases before Node
// closes its loop: at exit, or when a worker thread ends, the objects'
// finalizers would run too late and in no useful order.
#pragma once

#include <napi.h>
#include <uv.h>

#include <memory>
#include <set>

namespace claps::node {

class js_engine;
class js_lmdb_store;

/// Objects holding native resources, shared by them and the addon_data (each
/// may outlive the other while the environment is torn down).
struct live_objects {
  std::set<js_engine*> engines;
  std::set<js_lmdb_store*> lmdb_stores;
  /// Engines first (they use the stores), then the stores.
  void release_all() noexcept;
};

struct addon_data {
  Napi::FunctionReference memory_store;
  Napi::FunctionReference lmdb_store;
  Napi::FunctionReference engine;
  std::shared_ptr<live_objects> live = std::make_shared<live_objects>();
  uv_loop_t* loop = nullptr;
  static addon_data& of(Napi::Env env) { return *env.GetInstanceData<addon_data>(); }
};

}  // namespace claps::node
