#include "js_engine.hpp"

#include "js_args.hpp"
#include "js_errors.hpp"

#include <claps/error.hpp>

#include <cmath>
#include <limits>
#include <utility>

namespace claps::node {
namespace {

claps::subscriber_id subscriber_arg(Napi::Env env, Napi::Value value) {
  if (!value.IsNumber()) throw make_type_error(env, "subscriber must be a number");
  const double v = value.As<Napi::Number>().DoubleValue();
  if (!(v >= 0) || v != std::floor(v) || v > 9007199254740991.0) {
    Napi::RangeError error = Napi::RangeError::New(env, "subscriber must be an integer from 0 to 2^53-1");
    error.Set("code", Napi::String::New(env, "ERR_OUT_OF_RANGE"));
    throw error;
  }
  return static_cast<claps::subscriber_id>(v);
}

// A user argument: a string, or "" for undefined/null (no user: mine is 0).
std::string user_arg(Napi::Env env, Napi::Value value) {
  if (value.IsUndefined() || value.IsNull()) return {};
  return string_arg(env, value, "user");
}

Napi::Object snapshot_object(Napi::Env env, const claps::snapshot& s) {
  Napi::Object o = Napi::Object::New(env);
  o.Set("article", Napi::String::New(env, std::string(s.article)));
  o.Set("total", Napi::Number::New(env, static_cast<double>(s.total)));
  o.Set("viewers", Napi::Number::New(env, s.viewers));
  o.Set("mine", Napi::Number::New(env, s.mine));
  o.Set("global", Napi::Boolean::New(env, s.global));
  return o;
}

// Hands an exception thrown by a JS callback to Node as an uncaught
// exception ('uncaughtException'; without a handler the process ends), as
// any event callback's would be. The engine is not inside a call by then.
void report_uncaught(Napi::Env env, const Napi::Error& error) { napi_fatal_exception(env, error.Value()); }

}  // namespace

Napi::Function js_engine::define(Napi::Env env) {
  return DefineClass(
      env, "Engine",
      {InstanceMethod<&js_engine::clap>("clap"), InstanceMethod<&js_engine::undo>("undo"),
       InstanceMethod<&js_engine::subscribe>("subscribe"),
       InstanceMethod<&js_engine::unsubscribe>("unsubscribe"),
       InstanceMethod<&js_engine::unsubscribe_all>("unsubscribeAll"),
       InstanceMethod<&js_engine::read>("read"), InstanceMethod<&js_engine::stats>("stats"),
       InstanceMethod<&js_engine::close>("close"), InstanceAccessor<&js_engine::closed>("closed")});
}

js_engine::js_engine(const Napi::CallbackInfo& info)
    : Napi::ObjectWrap<js_engine>(info),
      env_(info.Env()),
      live_(addon_data::of(info.Env()).live),
      async_context_(info.Env(), "claps.Engine") {
  Napi::Env env = info.Env();
  store_ = js_store::unwrap(env, info[0]);
  if (!store_) throw make_type_error(env, "Engine: the first argument must be a MemoryStore or an LmdbStore");
  if (!store_->get()) throw make_error(env, claps::errc::unavailable, "Engine: the store is closed");
  if (store_->in_use) {
    Napi::Error error =
        Napi::Error::New(env, "Engine: another Engine is open on this store (one engine per store)");
    error.Set("code", Napi::String::New(env, "ERR_CLAPS_STORE_IN_USE"));
    throw error;
  }

  Napi::Object o = options_arg(env, info[1], "options");
  claps::engine_options options;
  options.tick = claps::millis(static_cast<std::int64_t>(optional_count(o, "tickMs", options.tick.count())));
  const std::uint64_t cap = optional_count(o, "clapCap", static_cast<std::uint64_t>(options.clap_cap));
  options.clap_cap = cap > static_cast<std::uint64_t>(std::numeric_limits<std::int32_t>::max())
                         ? std::numeric_limits<std::int32_t>::max()
                         : static_cast<std::int32_t>(cap);
  options.op_id_window = claps::millis(
      static_cast<std::int64_t>(optional_count(o, "opIdWindowMs", options.op_id_window.count())));
  options.max_op_ids_per_user = optional_count(o, "maxOpIdsPerUser", options.max_op_ids_per_user);
  options.max_pending_ops = optional_count(o, "maxPendingOps", options.max_pending_ops);
  options.max_subscriptions = optional_count(o, "maxSubscriptions", options.max_subscriptions);
  // The default seed does not fit a JS number: keep it unless one is given.
  if (!o.Get("hashSeed").IsUndefined()) options.hash_seed = optional_count(o, "hashSeed", 0);
  std::string why;
  if (const std::error_code ec = claps::validate(options, why)) {
    Napi::Error error = make_error(env, ec, "Engine options");
    error.Set("message", Napi::String::New(env, "Engine options: " + why));
    throw error;
  }
  Napi::Value on_update = o.Get("onUpdate");
  if (!on_update.IsUndefined()) {
    if (!on_update.IsFunction()) throw make_type_error(env, "onUpdate must be a function");
    on_update_ = Napi::Persistent(on_update.As<Napi::Function>());
  }

  uv_loop_t* loop = nullptr;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok || !loop)
    throw Napi::Error::New(env, "Engine: no libuv loop in this environment");

  claps::engine_callbacks callbacks;
  callbacks.result = [this](const claps::op_result& r) { on_result(r); };
  callbacks.deliver = [this](claps::subscriber_id sub,
                             std::span<const claps::article_update* const> updates) {
    on_deliver(sub, updates);
  };
  engine_ =
      std::make_unique<claps::engine>(*store_->get(), options, std::move(callbacks), claps::uv_driver::now());
  driver_ = std::make_unique<claps::uv_driver>(loop, *engine_);
  driver_->unref();  // ref'd again only while an op or a close waits (hold_loop)
  dispatch_ = new dispatch_handle{};
  dispatch_->owner = this;
  uv_idle_init(loop, &dispatch_->idle);
  dispatch_->idle.data = dispatch_;
  store_->in_use = true;
  store_object_ = Napi::Persistent(info[0].As<Napi::Object>());
  live_->engines.insert(this);
  hold_loop();
}

js_engine::~js_engine() { release_native(); }

void js_engine::release_native() noexcept {
  live_->engines.erase(this);
  if (dispatch_) {
    dispatch_->owner = nullptr;
    uv_idle_stop(&dispatch_->idle);
    uv_close(reinterpret_cast<uv_handle_t*>(&dispatch_->idle),
             [](uv_handle_t* h) { delete static_cast<dispatch_handle*>(h->data); });
    dispatch_ = nullptr;
  }
  driver_.reset();
  engine_.reset();
  if (!closed_ && store_) {
    store_->in_use = false;
    store_->hold_loop(false);
  }
  store_ = nullptr;
  closed_ = true;
}

// ---- claps ----

Napi::Value js_engine::clap(const Napi::CallbackInfo& info) { return submit(info, false); }
Napi::Value js_engine::undo(const Napi::CallbackInfo& info) { return submit(info, true); }

Napi::Value js_engine::submit(const Napi::CallbackInfo& info, bool undo) {
  Napi::Env env = info.Env();
  const char* what = undo ? "undo()" : "clap()";
  if (!info[0].IsObject())
    throw make_type_error(
        env, std::string(what) + " takes one object: {user, article, " + (undo ? "" : "count, ") + "opId}");
  Napi::Object o = info[0].As<Napi::Object>();
  std::string user = string_arg(env, o.Get("user"), "user");
  std::string article = string_arg(env, o.Get("article"), "article");
  std::string op_id = optional_string(o, "opId");
  std::int32_t count = 1;
  bool count_in_range = true;
  if (!undo) {
    Napi::Value c = o.Get("count");
    if (!c.IsUndefined()) {
      if (!c.IsNumber()) throw make_type_error(env, "count must be a number");
      const double d = c.As<Napi::Number>().DoubleValue();
      count_in_range = d == std::floor(d) && d >= std::numeric_limits<std::int32_t>::min() &&
                       d <= std::numeric_limits<std::int32_t>::max();
      if (count_in_range) count = static_cast<std::int32_t>(d);
    }
  }

  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  std::error_code ec;
  std::string context = what;
  const std::uint64_t cookie = next_cookie_++;
  if (closing_ || closed_) {
    ec = claps::errc::unavailable;
    context += ": the engine is closed";
  } else if (!count_in_range) {
    ec = claps::errc::invalid_count;
  } else if (undo) {
    claps::undo_request r;
    r.user = user;
    r.article = article;
    r.op_id = op_id;
    r.cookie = cookie;
    ec = engine_->undo(r);
  } else {
    claps::clap_request r;
    r.user = user;
    r.article = article;
    r.count = count;
    r.op_id = op_id;
    r.cookie = cookie;
    ec = engine_->clap(r);
  }
  Napi::Promise promise = deferred.Promise();
  if (ec) {
    deferred.Reject(make_error(env, ec, context).Value());
    return promise;
  }
  pending_.emplace(cookie, pending_op{deferred, std::move(user), std::move(article), std::move(op_id)});
  hold_loop();
  return promise;
}

// ---- rooms and queries ----

void js_engine::throw_if_closed(Napi::Env env, const char* what) const {
  if (closing_ || closed_)
    throw make_error(env, claps::errc::unavailable, std::string(what) + ": the engine is closed");
}

Napi::Value js_engine::subscribe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const claps::subscriber_id sub = subscriber_arg(env, info[0]);
  const std::string user = user_arg(env, info[1]);
  bool reading = true;
  if (!info[3].IsUndefined()) {
    if (!info[3].IsBoolean()) throw make_type_error(env, "reading must be a boolean");
    reading = info[3].As<Napi::Boolean>().Value();
  }
  if (info[2].IsArray()) {
    // Several articles: all or nothing (engine::subscribe's span overload).
    Napi::Array list = info[2].As<Napi::Array>();
    std::vector<std::string> articles;
    articles.reserve(list.Length());
    for (std::uint32_t i = 0; i < list.Length(); ++i)
      articles.push_back(string_arg(env, list.Get(i), "article"));
    throw_if_closed(env, "subscribe()");
    const std::vector<std::string_view> views(articles.begin(), articles.end());
    std::vector<claps::snapshot> snaps;
    if (const std::error_code ec = engine_->subscribe(sub, user, views, reading, snaps))
      throw make_error(env, ec, "subscribe()");
    Napi::Array out = Napi::Array::New(env, snaps.size());
    for (std::size_t i = 0; i < snaps.size(); ++i)
      out.Set(static_cast<std::uint32_t>(i), snapshot_object(env, snaps[i]));
    return out;
  }
  const std::string article = string_arg(env, info[2], "article");
  throw_if_closed(env, "subscribe()");
  claps::snapshot snap;
  if (const std::error_code ec = engine_->subscribe(sub, user, article, reading, snap))
    throw make_error(env, ec, "subscribe()");
  return snapshot_object(env, snap);
}

Napi::Value js_engine::unsubscribe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const claps::subscriber_id sub = subscriber_arg(env, info[0]);
  const std::string article = string_arg(env, info[1], "article");
  if (engine_) engine_->unsubscribe(sub, article);
  return env.Undefined();
}

Napi::Value js_engine::unsubscribe_all(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const claps::subscriber_id sub = subscriber_arg(env, info[0]);
  if (engine_) engine_->unsubscribe_all(sub);
  return env.Undefined();
}

Napi::Value js_engine::read(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const std::string user = user_arg(env, info[0]);
  const std::string article = string_arg(env, info[1], "article");
  throw_if_closed(env, "read()");
  claps::snapshot snap;
  if (const std::error_code ec = engine_->read(user, article, snap)) throw make_error(env, ec, "read()");
  return snapshot_object(env, snap);
}

Napi::Value js_engine::stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  throw_if_closed(env, "stats()");
  const claps::engine_stats s = engine_->stats();
  Napi::Object o = Napi::Object::New(env);
  auto set = [&](const char* key, double value) { o.Set(key, Napi::Number::New(env, value)); };
  set("ticks", static_cast<double>(s.ticks));
  set("commits", static_cast<double>(s.commits));
  set("commitFailures", static_cast<double>(s.commit_failures));
  set("clapsRequested", static_cast<double>(s.claps_requested));
  set("clapsAccepted", static_cast<double>(s.claps_accepted));
  set("clapsOverCap", static_cast<double>(s.claps_over_cap));
  set("undos", static_cast<double>(s.undos));
  set("replays", static_cast<double>(s.replays));
  set("updates", static_cast<double>(s.updates));
  set("deliveries", static_cast<double>(s.deliveries));
  set("pendingOps", static_cast<double>(s.pending_ops));
  set("subscribers", static_cast<double>(s.subscribers));
  set("subscriptions", static_cast<double>(s.subscriptions));
  return o;
}

// ---- close ----

Napi::Value js_engine::close(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Promise::Deferred deferred = Napi::Promise::Deferred::New(env);
  Napi::Promise promise = deferred.Promise();
  if (closed_) {
    deferred.Resolve(env.Undefined());
    return promise;
  }
  close_waiters_.push_back(deferred);
  if (!closing_) {
    closing_ = true;
    hold_loop();
    // engine::close() commits everything pending now; the driver ticks, the
    // store completes, and `done` runs once every op has its result (from a
    // loop callback, never inside an engine call).
    driver_->close([this] {
      driver_done_ = true;
      schedule_dispatch();
    });
  }
  schedule_dispatch();
  return promise;
}

Napi::Value js_engine::closed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), closed_);
}

bool js_engine::close_finished() const { return driver_done_ && pending_.empty() && queue_.empty(); }

void js_engine::finish_close() {
  // Not inside the engine: this runs from dispatch(), on the loop.
  driver_.reset();
  engine_.reset();
  closed_ = true;
  closing_ = false;
  store_->in_use = false;
  store_->hold_loop(false);
  store_object_.Reset();
  for (Napi::Promise::Deferred& waiter : close_waiters_) waiter.Resolve(env_.Undefined());
  close_waiters_.clear();
}

// ---- from the engine to JS ----

void js_engine::on_result(const claps::op_result& r) {
  queued_result q;
  q.cookie = r.cookie;
  q.error = r.error;
  q.accepted = r.accepted;
  q.total = r.total;
  q.mine = r.mine;
  q.replayed = r.replayed;
  q.level = r.level;
  queue_.emplace_back(q);
  schedule_dispatch();
}

void js_engine::on_deliver(claps::subscriber_id sub, std::span<const claps::article_update* const> updates) {
  if (on_update_.IsEmpty()) return;
  queued_delivery d;
  d.subscriber = sub;
  d.updates.reserve(updates.size());
  for (const claps::article_update* u : updates)
    d.updates.push_back(queued_update{std::string(u->article), u->total, u->viewers});
  queue_.emplace_back(std::move(d));
  schedule_dispatch();
}

void js_engine::schedule_dispatch() {
  if (!dispatch_ || uv_is_active(reinterpret_cast<uv_handle_t*>(&dispatch_->idle))) return;
  uv_idle_start(&dispatch_->idle, [](uv_idle_t* h) {
    auto* d = static_cast<dispatch_handle*>(h->data);
    uv_idle_stop(h);
    if (d->owner) d->owner->dispatch();
  });
}

void js_engine::dispatch() {
  // In the engine's order: a tick's results come before its deliveries. Each
  // run of results, and each run of deliveries, gets its own callback scope:
  // promise reactions (then, await) and process.nextTick callbacks run when
  // it closes, so the code awaiting a tick's results runs before that tick's
  // onUpdate calls (a server sends its acks before the update frame, as
  // docs/protocol.md says clapsd does).
  while (!queue_.empty()) {
    Napi::HandleScope scope(env_);
    Napi::CallbackScope callback_scope(env_, async_context_);
    const bool results = std::holds_alternative<queued_result>(queue_.front());
    while (!queue_.empty() && std::holds_alternative<queued_result>(queue_.front()) == results) {
      auto item = std::move(queue_.front());
      queue_.pop_front();
      try {
        if (auto* r = std::get_if<queued_result>(&item)) {
          auto it = pending_.find(r->cookie);
          if (it == pending_.end()) continue;
          pending_op op = std::move(it->second);
          pending_.erase(it);
          settle(op, *r);
        } else {
          deliver(std::get<queued_delivery>(item));
        }
      } catch (const Napi::Error& e) {
        report_uncaught(env_, e);
      }
    }
  }
  if (closing_ && close_finished()) {
    Napi::HandleScope scope(env_);
    Napi::CallbackScope callback_scope(env_, async_context_);
    finish_close();
  }
  hold_loop();
}

void js_engine::settle(pending_op& op, const queued_result& r) {
  Napi::Object o = Napi::Object::New(env_);
  o.Set("user", Napi::String::New(env_, op.user));
  o.Set("article", Napi::String::New(env_, op.article));
  o.Set("opId", op.op_id.empty() ? env_.Null() : Napi::String::New(env_, op.op_id));
  o.Set("accepted", Napi::Number::New(env_, r.accepted));
  o.Set("total", Napi::Number::New(env_, static_cast<double>(r.total)));
  o.Set("mine", Napi::Number::New(env_, r.mine));
  o.Set("replayed", Napi::Boolean::New(env_, r.replayed));
  o.Set("durability", Napi::String::New(env_, r.level == claps::durability::cluster ? "cluster" : "local"));
  if (r.error) {
    Napi::Error error =
        make_error(env_, r.error, "op " + (op.op_id.empty() ? std::string("without id") : op.op_id));
    error.Set("result", o);
    op.deferred.Reject(error.Value());
  } else {
    op.deferred.Resolve(o);
  }
}

void js_engine::deliver(const queued_delivery& d) {
  if (on_update_.IsEmpty()) return;
  Napi::Array updates = Napi::Array::New(env_, d.updates.size());
  for (std::size_t i = 0; i < d.updates.size(); ++i) {
    Napi::Object u = Napi::Object::New(env_);
    u.Set("article", Napi::String::New(env_, d.updates[i].article));
    u.Set("total", Napi::Number::New(env_, static_cast<double>(d.updates[i].total)));
    u.Set("viewers", Napi::Number::New(env_, d.updates[i].viewers));
    updates.Set(static_cast<std::uint32_t>(i), u);
  }
  on_update_.Call({Napi::Number::New(env_, static_cast<double>(d.subscriber)), updates});
}

// While an op waits for its result, or a close for its end, the engine keeps
// the process alive (its JS object too); otherwise it holds nothing.
void js_engine::hold_loop() {
  const bool hold = !pending_.empty() || closing_;
  if (hold == holding_) return;
  holding_ = hold;
  if (hold) Ref();
  else Unref();
  if (closed_) return;
  store_->hold_loop(hold);
  if (hold) driver_->ref();
  else driver_->unref();
}

}  // namespace claps::node
