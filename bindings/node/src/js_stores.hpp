// MemoryStore and LmdbStore: the JS classes that own a claps::store for an
// Engine. Everything runs on the JS thread that made them.
#pragma once

#include <claps/lmdb.hpp>
#include <claps/memory_store.hpp>
#include <claps/uv.hpp>

#include "addon.hpp"

#include <napi.h>

#include <memory>

namespace claps::node {

/// What an Engine needs of the store object it was given.
class js_store {
public:
  virtual ~js_store() = default;
  /// The store, or null once closed.
  virtual claps::store* get() noexcept = 0;
  /// Holds the loop while a commit may be in flight on a writer thread, so
  /// that its completion runs; lets it end otherwise. Nothing for stores
  /// that complete inside commit().
  virtual void hold_loop(bool /*hold*/) {}
  /// True while an Engine is open on the store: one engine per store, and
  /// the store cannot be closed under it.
  bool in_use = false;

  /// The js_store behind `value`, or null when it is no store of this addon.
  static js_store* unwrap(Napi::Env env, Napi::Value value);
};

class js_memory_store final : public Napi::ObjectWrap<js_memory_store>, public js_store {
public:
  static Napi::Function define(Napi::Env env);
  explicit js_memory_store(const Napi::CallbackInfo& info);
  claps::store* get() noexcept override { return &store_; }

private:
  Napi::Value commits(const Napi::CallbackInfo& info);
  claps::memory_store store_;
};

/// new LmdbStore(dir, {mapSize, maxMapSize, headroom, sync, maxPurgePerCommit,
/// writerThread}). With writerThread (the default) commits run on the
/// store's thread and complete on Node's loop through a uv_store_pump.
class js_lmdb_store final : public Napi::ObjectWrap<js_lmdb_store>, public js_store {
public:
  static Napi::Function define(Napi::Env env);
  explicit js_lmdb_store(const Napi::CallbackInfo& info);
  ~js_lmdb_store() override;
  claps::store* get() noexcept override { return store_.get(); }
  void hold_loop(bool hold) override;
  /// Closes the environment and the pump, and leaves the registry; for
  /// close(), the destructor and the environment's cleanup hook.
  void release_native() noexcept;

private:
  Napi::Value close(const Napi::CallbackInfo& info);
  Napi::Value closed(const Napi::CallbackInfo& info);
  Napi::Value op_count(const Napi::CallbackInfo& info);

  std::shared_ptr<live_objects> live_;
  std::unique_ptr<claps::uv_store_pump> pump_;  // made before the store: the store holds its waker
  std::unique_ptr<claps::lmdb_store> store_;
  bool holding_ = false;
};

}  // namespace claps::node
