// claps.node: the Node.js binding of libclaps. index.js wraps it.
#include "addon.hpp"

#include "js_engine.hpp"
#include "js_stores.hpp"

#include <claps/version.hpp>

namespace claps::node {

void live_objects::release_all() noexcept {
  while (!engines.empty()) (*engines.begin())->release_native();
  while (!lmdb_stores.empty()) (*lmdb_stores.begin())->release_native();
}

namespace {

// The environment's teardown (process exit, a worker thread's end): release
// every native resource, then let Node go on only after the loop has run the
// close callbacks of the handles just closed. They are code of this addon,
// which a worker unloads afterwards. The sentinel handle closes after them.
struct teardown {
  napi_async_cleanup_hook_handle hook = nullptr;
  uv_idle_t sentinel{};
};

void on_environment_teardown(napi_async_cleanup_hook_handle hook, void* arg) {
  auto* data = static_cast<addon_data*>(arg);
  data->live->release_all();
  auto* t = new teardown{hook};
  uv_idle_init(data->loop, &t->sentinel);
  t->sentinel.data = t;
  uv_idle_start(&t->sentinel, [](uv_idle_t* idle) {
    uv_close(reinterpret_cast<uv_handle_t*>(idle), [](uv_handle_t* h) {
      auto* t = static_cast<teardown*>(h->data);
      napi_remove_async_cleanup_hook(t->hook);
      delete t;
    });
  });
}

}  // namespace

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new addon_data;
  env.SetInstanceData(data);  // deleted by Node when the environment ends
  if (napi_get_uv_event_loop(env, &data->loop) != napi_ok || !data->loop)
    throw Napi::Error::New(env, "claps.node: no libuv loop in this environment");
  napi_add_async_cleanup_hook(env, on_environment_teardown, data, nullptr);
  Napi::Function memory_store = js_memory_store::define(env);
  Napi::Function lmdb_store = js_lmdb_store::define(env);
  Napi::Function engine = js_engine::define(env);
  data->memory_store = Napi::Persistent(memory_store);
  data->lmdb_store = Napi::Persistent(lmdb_store);
  data->engine = Napi::Persistent(engine);
  exports.Set("MemoryStore", memory_store);
  exports.Set("LmdbStore", lmdb_store);
  exports.Set("Engine", engine);
  exports.Set("version", Napi::String::New(env, CLAPS_VERSION_STRING));
  return exports;
}

}  // namespace claps::node

static Napi::Object init_claps_addon(Napi::Env env, Napi::Object exports) {
  return claps::node::init(env, exports);
}

NODE_API_MODULE(claps, init_claps_addon)
