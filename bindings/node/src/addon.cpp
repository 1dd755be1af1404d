// claps.node: the Node.js binding of libclaps. index.js wraps it.
#include "addon.hpp"

#include "js_engine.hpp"
#include "js_stores.hpp"

#include <claps/version.hpp>

namespace claps::node {

Napi::Object init(Napi::Env env, Napi::Object exports) {
  auto* data = new addon_data;
  env.SetInstanceData(data);  // deleted by Node when the environment ends
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
