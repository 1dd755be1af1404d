#include "js_stores.hpp"

#include "addon.hpp"
#include "js_args.hpp"
#include "js_errors.hpp"

namespace claps::node {

js_store* js_store::unwrap(Napi::Env env, Napi::Value value) {
  if (!value.IsObject()) return nullptr;
  auto& data = addon_data::of(env);
  Napi::Object object = value.As<Napi::Object>();
  if (object.InstanceOf(data.memory_store.Value())) return js_memory_store::Unwrap(object);
  if (object.InstanceOf(data.lmdb_store.Value())) return js_lmdb_store::Unwrap(object);
  return nullptr;
}

// ---- MemoryStore ----

Napi::Function js_memory_store::define(Napi::Env env) {
  return DefineClass(env, "MemoryStore", {InstanceMethod<&js_memory_store::commits>("commits")});
}

js_memory_store::js_memory_store(const Napi::CallbackInfo& info) : Napi::ObjectWrap<js_memory_store>(info) {}

Napi::Value js_memory_store::commits(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), static_cast<double>(store_.commits()));
}

// ---- LmdbStore ----

Napi::Function js_lmdb_store::define(Napi::Env env) {
  return DefineClass(
      env, "LmdbStore",
      {InstanceMethod<&js_lmdb_store::close>("close"), InstanceAccessor<&js_lmdb_store::closed>("closed"),
       InstanceMethod<&js_lmdb_store::op_count>("opCount")});
}

js_lmdb_store::js_lmdb_store(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<js_lmdb_store>(info), live_(addon_data::of(info.Env()).live) {
  Napi::Env env = info.Env();
  claps::lmdb_options options;
  options.path = string_arg(env, info[0], "dir");
  Napi::Object o = options_arg(env, info[1], "options");
  options.map_size = optional_count(o, "mapSize", options.map_size);
  options.max_map_size = optional_count(o, "maxMapSize", options.max_map_size);
  options.headroom = optional_count(o, "headroom", options.headroom);
  options.sync = optional_bool(o, "sync", options.sync);
  options.max_purge_per_commit = optional_count(o, "maxPurgePerCommit", options.max_purge_per_commit);
  if (optional_bool(o, "writerThread", true)) {
    // The pump runs the writer thread's completions on Node's loop, on this
    // thread. It stays unref'd while no commit can be in flight.
    uv_loop_t* loop = nullptr;
    if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop)
      throw Napi::Error::New(env, "LmdbStore: no libuv loop in this environment");
    pump_ = std::make_unique<claps::uv_store_pump>(loop, [this] {
      if (store_) store_->run_completions();
    });
    pump_->unref();
    options.on_commit_ready = pump_->waker();
  }
  std::error_code ec;
  store_ = claps::lmdb_store::open(options, ec);
  if (!store_) {
    pump_.reset();
    throw make_error(env, ec, "LmdbStore: cannot open " + options.path);
  }
  live_->lmdb_stores.insert(this);
}

js_lmdb_store::~js_lmdb_store() { release_native(); }

void js_lmdb_store::release_native() noexcept {
  live_->lmdb_stores.erase(this);
  // The store first: it joins its writer thread, which may call the waker
  // once more (a no-op once the pump is gone, and harmless before).
  store_.reset();
  pump_.reset();
  holding_ = false;
}

void js_lmdb_store::hold_loop(bool hold) {
  if (!pump_ || hold == holding_) return;
  holding_ = hold;
  if (hold) pump_->ref();
  else pump_->unref();
}

Napi::Value js_lmdb_store::close(const Napi::CallbackInfo& info) {
  if (in_use) {
    Napi::Error error =
        Napi::Error::New(info.Env(), "LmdbStore.close(): an Engine is open on this store; close it first");
    error.Set("code", Napi::String::New(info.Env(), "ERR_CLAPS_STORE_IN_USE"));
    throw error;
  }
  release_native();
  return info.Env().Undefined();
}

Napi::Value js_lmdb_store::closed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !store_);
}

Napi::Value js_lmdb_store::op_count(const Napi::CallbackInfo& info) {
  if (!store_)
    throw make_error(info.Env(), claps::errc::unavailable, "LmdbStore.opCount(): the store is closed");
  return Napi::Number::New(info.Env(), static_cast<double>(store_->op_count()));
}

}  // namespace claps::node
