// Engine: a claps::engine on Node's own libuv loop, ticked by a
// claps::uv_driver. Every method runs on the JS thread that made the engine.
//
// The engine's callbacks run inside its ticks (and the store's completions),
// where calling back into the engine is forbidden. So they only copy what
// they get into a queue; a uv_idle handle then hands the queue to JS on the
// next loop pass, outside the engine: it resolves and rejects the ops'
// promises and calls onUpdate, inside one callback scope (so promise
// reactions run right after it). A JS callback may call any Engine method.
#pragma once

#include "addon.hpp"
#include "js_stores.hpp"

#include <claps/engine.hpp>
#include <claps/uv.hpp>

#include <napi.h>

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

namespace claps::node {

class js_engine final : public Napi::ObjectWrap<js_engine> {
public:
  static Napi::Function define(Napi::Env env);
  explicit js_engine(const Napi::CallbackInfo& info);
  ~js_engine() override;
  /// Stops the driver, destroys the engine (ops still waiting get
  /// `unavailable`, never delivered to JS), closes the dispatch handle and
  /// lets go of the store; for the destructor and the environment's cleanup
  /// hook, which runs it before Node closes the loop.
  void release_native() noexcept;

private:
  // One clap()/undo() waiting for its result.
  struct pending_op {
    Napi::Promise::Deferred deferred;
    std::string user, article, op_id;
  };
  struct queued_result {
    std::uint64_t cookie = 0;
    std::error_code error;
    std::int32_t accepted = 0;
    std::int64_t total = 0;
    std::int32_t mine = 0;
    bool replayed = false;
    claps::durability level = claps::durability::local;
  };
  struct queued_update {
    std::string article;
    std::int64_t total = 0;
    std::uint32_t viewers = 0;
  };
  struct queued_delivery {
    claps::subscriber_id subscriber = 0;
    std::vector<queued_update> updates;
  };
  // The idle handle outlives this object until its close callback.
  struct dispatch_handle {
    uv_idle_t idle;
    js_engine* owner;
  };

  Napi::Value clap(const Napi::CallbackInfo& info);
  Napi::Value undo(const Napi::CallbackInfo& info);
  Napi::Value subscribe(const Napi::CallbackInfo& info);
  Napi::Value unsubscribe(const Napi::CallbackInfo& info);
  Napi::Value unsubscribe_all(const Napi::CallbackInfo& info);
  Napi::Value read(const Napi::CallbackInfo& info);
  Napi::Value stats(const Napi::CallbackInfo& info);
  Napi::Value close(const Napi::CallbackInfo& info);
  Napi::Value closed(const Napi::CallbackInfo& info);

  Napi::Value submit(const Napi::CallbackInfo& info, bool undo);
  void throw_if_closed(Napi::Env env, const char* what) const;
  // Engine callbacks: queue only.
  void on_result(const claps::op_result& result);
  void on_deliver(claps::subscriber_id sub, std::span<const claps::article_update* const> updates);
  void schedule_dispatch();
  void dispatch();
  void settle(pending_op& op, const queued_result& result);
  void deliver(const queued_delivery& delivery);
  bool close_finished() const;
  void finish_close();
  void hold_loop();

  Napi::Env env_;
  std::shared_ptr<live_objects> live_;
  Napi::AsyncContext async_context_;
  Napi::FunctionReference on_update_;
  Napi::ObjectReference store_object_;  // keeps the store alive while the engine is open
  js_store* store_ = nullptr;
  dispatch_handle* dispatch_ = nullptr;
  std::deque<std::variant<queued_result, queued_delivery>> queue_;
  std::unordered_map<std::uint64_t, pending_op> pending_;
  std::uint64_t next_cookie_ = 1;
  std::vector<Napi::Promise::Deferred> close_waiters_;
  bool closing_ = false;
  bool closed_ = false;
  bool driver_done_ = false;  // uv_driver::close()'s `done` ran: engine::closed()
  bool holding_ = false;
  // Declared last: destroyed first (the driver before the engine it ticks),
  // while the queues its callbacks write to still exist.
  std::unique_ptr<claps::engine> engine_;
  std::unique_ptr<claps::uv_driver> driver_;
};

}  // namespace claps::node
