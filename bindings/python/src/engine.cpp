// claps.Engine: claps::engine with Python callbacks, and the value types it
// hands out (Snapshot, Update, Result).
#include "binding.hpp"

#include <claps/engine.hpp>

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

namespace claps::python {

timestamp clock_now() noexcept {
  return std::chrono::time_point_cast<millis>(std::chrono::system_clock::now());
}

timestamp time_arg(const std::optional<std::int64_t>& now_ms) noexcept {
  return now_ms ? timestamp(millis(*now_ms)) : clock_now();
}

namespace {

struct py_snapshot {
  std::string article;
  std::int64_t total = 0;
  std::uint32_t viewers = 0;
  std::int32_t mine = 0;
  bool partial = false;
};

struct py_update {
  std::string article;
  std::int64_t total = 0;
  std::uint32_t viewers = 0;
};

struct py_result {
  py::object cookie = py::none();
  std::string user;
  std::string article;
  std::string op_id;
  std::string error;  // wire name; "" when the op was decided
  std::string message;
  std::int32_t accepted = 0;
  std::int64_t total = 0;
  std::int32_t mine = 0;
  bool replayed = false;
  std::string durability;
};

py_snapshot to_python(const snapshot& s) {
  return {std::string(s.article), s.total, s.viewers, s.mine, !s.global};
}

class py_engine final : public store_user {
public:
  py_engine(py::object store, const engine_options& options, py::object on_update, py::object on_result,
            std::optional<std::int64_t> now_ms)
      : store_object_(std::move(store)), on_update_(std::move(on_update)), on_result_(std::move(on_result)) {
    if (!py::isinstance<py_store>(store_object_)) {
      throw py::type_error("store must be a claps.MemoryStore or a claps.LmdbStore");
    }
    store_ = store_object_.cast<py_store*>();
    store_->check_thread();
    std::string why;
    if (const std::error_code ec = validate(options, why)) raise_error(ec, why);
    engine_callbacks callbacks;
    if (!on_update_.is_none()) {
      callbacks.deliver = [this](subscriber_id sub, std::span<const article_update* const> updates) {
        deliver(sub, updates);
      };
    }
    callbacks.result = [this](const op_result& r) { result(r); };
    store_->attach(this);
    try {
      engine_ = std::make_unique<engine>(store_->get(), options, std::move(callbacks), time_arg(now_ms));
    } catch (...) {
      store_->detach(this);
      throw;
    }
    engine_->on_wake([this] { wake(); });
  }

  ~py_engine() {
    if (engine_) {
      // Ops still without a result get errc::unavailable now (~engine); no
      // caller is left to re-raise a callback's exception to.
      release();
      try {
        errors_.rethrow_first();
      } catch (py::error_already_set& e) {
        e.restore();
        PyErr_WriteUnraisable(nullptr);
      }
    }
  }

  py_engine(const py_engine&) = delete;
  py_engine& operator=(const py_engine&) = delete;

  // ---- rooms ----

  py_snapshot subscribe_one(subscriber_id sub, const std::string& article, const std::string& user,
                            bool reading) {
    engine& e = open_engine();
    snapshot out;
    if (const std::error_code ec = e.subscribe(sub, user, article, reading, out)) raise_error(ec);
    return to_python(out);
  }

  std::vector<py_snapshot> subscribe_many(subscriber_id sub, const std::vector<std::string>& articles,
                                          const std::string& user, bool reading) {
    engine& e = open_engine();
    const std::vector<std::string_view> views(articles.begin(), articles.end());
    std::vector<snapshot> out;
    if (const std::error_code ec = e.subscribe(sub, user, views, reading, out)) raise_error(ec);
    std::vector<py_snapshot> snapshots;
    snapshots.reserve(out.size());
    for (const snapshot& s : out) snapshots.push_back(to_python(s));
    return snapshots;
  }

  void unsubscribe(subscriber_id sub, const std::optional<std::string>& article) {
    engine& e = open_engine();
    if (article) {
      e.unsubscribe(sub, *article);
    } else {
      e.unsubscribe_all(sub);
    }
  }

  // ---- claps ----

  void clap(const std::string& user, const std::string& article, std::int64_t count,
            const std::optional<std::string>& op_id, py::object cookie) {
    engine& e = open_engine();
    if (count < std::numeric_limits<std::int32_t>::min() ||
        count > std::numeric_limits<std::int32_t>::max()) {
      raise_error(make_error_code(errc::invalid_count), "count " + std::to_string(count) + " is outside 1.." +
                                                            std::to_string(e.options().clap_cap));
    }
    const std::uint64_t id = next_cookie_++;
    if (const std::error_code ec =
            e.clap({user, article, static_cast<std::int32_t>(count), op_id.value_or(""), id})) {
      raise_error(ec);
    }
    cookies_.emplace(id, std::move(cookie));
  }

  void undo(const std::string& user, const std::string& article, const std::optional<std::string>& op_id,
            py::object cookie) {
    engine& e = open_engine();
    const std::uint64_t id = next_cookie_++;
    if (const std::error_code ec = e.undo({user, article, op_id.value_or(""), id})) raise_error(ec);
    cookies_.emplace(id, std::move(cookie));
  }

  py_snapshot read(const std::string& article, const std::string& user) {
    engine& e = open_engine();
    snapshot out;
    if (const std::error_code ec = e.read(user, article, out)) raise_error(ec);
    return to_python(out);
  }

  // ---- time ----

  void advance(std::optional<std::int64_t> now_ms) {
    engine& e = open_engine();
    without_gil_while_committing([&] { e.advance(time_arg(now_ms)); });
    after_callbacks();
  }

  void flush(std::optional<std::int64_t> now_ms) {
    engine& e = open_engine();
    without_gil_while_committing([&] { e.flush(time_arg(now_ms)); });
    after_callbacks();
  }

  std::optional<std::int64_t> next_deadline() const {
    check_thread();
    if (!engine_) return std::nullopt;
    const timestamp t = engine_->next_deadline();
    if (t == timestamp::max()) return std::nullopt;
    return t.time_since_epoch().count();
  }

  // ---- shutdown ----

  bool close(std::optional<std::int64_t> now_ms, std::optional<double> wait_s) {
    check_call();
    if (!engine_) return true;  // closed and released already
    without_gil_while_committing([&] { engine_->close(time_arg(now_ms)); });
    after_callbacks();
    if (wait_s) wait_closed(*wait_s);
    return closed();
  }

  bool closed() const {
    check_thread();
    return !engine_ || engine_->closed();
  }

  // ---- queries ----

  py::dict stats() const {
    check_thread();
    const engine_stats s = engine_ ? engine_->stats() : final_stats_;
    py::dict d;
    d["ticks"] = s.ticks;
    d["commits"] = s.commits;
    d["commit_failures"] = s.commit_failures;
    d["claps_requested"] = s.claps_requested;
    d["claps_accepted"] = s.claps_accepted;
    d["claps_over_cap"] = s.claps_over_cap;
    d["undos"] = s.undos;
    d["replays"] = s.replays;
    d["refused_unavailable"] = s.refused_unavailable;
    d["refused_op_ids"] = s.refused_op_ids;
    d["refused_store_full"] = s.refused_store_full;
    d["updates"] = s.updates;
    d["deliveries"] = s.deliveries;
    d["pending_ops"] = s.pending_ops;
    d["subscribers"] = s.subscribers;
    d["subscriptions"] = s.subscriptions;
    return d;
  }

  std::size_t subscription_count(subscriber_id sub) const {
    check_thread();
    return engine_ ? engine_->subscription_count(sub) : 0;
  }

  py::object on_wake() const { return on_wake_; }
  void set_on_wake(py::object wake) {
    check_thread();
    on_wake_ = std::move(wake);
  }

  // store_user: the store ran completions, and with them our callbacks.
  void after_callbacks() override {
    if (engine_ && engine_->closed()) release();
    errors_.rethrow_first();
  }

private:
  // While a callback runs, the engine is inside one of its calls; calling a
  // mutating function then is the engine's programming error (it aborts):
  // raise instead.
  class callback_scope {
  public:
    explicit callback_scope(py_engine& e) : engine_(e) { engine_.in_callback_ = true; }
    ~callback_scope() { engine_.in_callback_ = false; }
    callback_scope(const callback_scope&) = delete;
    callback_scope& operator=(const callback_scope&) = delete;

  private:
    py_engine& engine_;
  };

  void check_thread() const {
    if (std::this_thread::get_id() != owner_) {
      raise_misuse("a claps engine and its store belong to the thread that made them");
    }
  }

  void check_call() const {
    check_thread();
    if (in_callback_) {
      raise_misuse(
          "an Engine callback may not call the engine's mutating functions (subscribe, clap, advance, "
          "close, ...): queue the work and do it after the callback returns");
    }
  }

  engine& open_engine() {
    check_call();
    if (!engine_) raise_error(make_error_code(errc::unavailable), "the engine is closed");
    return *engine_;
  }

  // A store that writes and fsyncs inside commit() (LmdbStore without its
  // writer thread) runs without the GIL, so other Python threads go on; the
  // callbacks take it back. Other threads cannot enter the engine meanwhile
  // (check_thread).
  template <typename F>
  void without_gil_while_committing(F&& call) {
    if (store_->commits_block()) {
      py::gil_scoped_release unlocked;
      call();
    } else {
      call();
    }
  }

  // Runs a Python callback: its exception is kept for the caller of the
  // engine's call, and never crosses the engine.
  template <typename F>
  void run_callback(F&& call) noexcept {
    py::gil_scoped_acquire gil;  // held already, unless inside wait_for_commit()
    callback_scope scope(*this);
    try {
      call();
    } catch (py::error_already_set& e) {
      errors_.keep(e);
    } catch (const std::exception& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
      py::error_already_set kept;
      errors_.keep(kept);
    }
  }

  void deliver(subscriber_id sub, std::span<const article_update* const> updates) {
    run_callback([&] {
      py::list list(updates.size());
      for (std::size_t i = 0; i < updates.size(); ++i) {
        const article_update& u = *updates[i];
        list[i] = py::cast(py_update{std::string(u.article), u.total, u.viewers});
      }
      on_update_(sub, list);
    });
  }

  void result(const op_result& r) {
    run_callback([&] {
      auto node = cookies_.extract(r.cookie);
      if (on_result_.is_none()) return;
      py_result out;
      if (!node.empty()) out.cookie = std::move(node.mapped());
      out.user = std::string(r.user);
      out.article = std::string(r.article);
      out.op_id = std::string(r.op_id);
      if (r.error) {
        out.error = std::string(wire_name(r.error));
        out.message = r.error.message();
      }
      out.accepted = r.accepted;
      out.total = r.total;
      out.mine = r.mine;
      out.replayed = r.replayed;
      out.durability = r.level == durability::cluster ? "cluster" : "local";
      on_result_(py::cast(std::move(out)));
    });
  }

  void wake() noexcept {
    if (on_wake_.is_none()) return;
    py::gil_scoped_acquire gil;
    callback_scope scope(*this);
    try {
      on_wake_();
    } catch (py::error_already_set& e) {
      // It runs inside clap()/subscribe(), which succeeded: raising there
      // would say they failed.
      e.restore();
      PyErr_WriteUnraisable(on_wake_.ptr());
    }
  }

  void wait_closed(double wait_s) {
    const auto until =
        std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                               std::chrono::duration<double>(wait_s));
    while (engine_ && !engine_->closed() && std::chrono::steady_clock::now() < until) {
      if (store_->wait_for_commit() == 0 && engine_ && !engine_->closed()) {
        // Nothing in flight and still not closed: a commit failed; retry at
        // the next deadline (advance() retries it).
        const timestamp next = engine_->next_deadline();
        if (next != timestamp::max()) {
          py::gil_scoped_release unlocked;
          const std::chrono::steady_clock::time_point retry =
              std::chrono::steady_clock::now() + std::max(millis(1), next - clock_now());
          std::this_thread::sleep_until(std::min(until, retry));
        }
        engine& e = open_engine();
        without_gil_while_committing([&] { e.advance(clock_now()); });
        after_callbacks();
      }
    }
  }

  // Closed: drops the engine (settling nothing, as closed() says) and every
  // reference it held, so the store can be closed and cycles through the
  // callbacks are broken.
  void release() {
    final_stats_ = engine_->stats();
    engine_.reset();
    store_->detach(this);
    store_ = nullptr;
    store_object_ = py::none();
    on_update_ = py::none();
    on_result_ = py::none();
    on_wake_ = py::none();
    cookies_.clear();
  }

  std::thread::id owner_ = std::this_thread::get_id();
  py::object store_object_;    // keeps the store alive while the engine uses it
  py_store* store_ = nullptr;  // null once released
  py::object on_update_;
  py::object on_result_;
  py::object on_wake_ = py::none();
  callback_errors errors_;
  std::unordered_map<std::uint64_t, py::object> cookies_;  // result cookie -> caller's cookie
  std::uint64_t next_cookie_ = 1;
  bool in_callback_ = false;
  engine_stats final_stats_{};
  // Last: destroyed first, while the members its callbacks use still exist.
  std::unique_ptr<engine> engine_;
};

}  // namespace

void bind_engine(py::module_& m) {
  py::class_<py_snapshot>(m, "Snapshot", "The committed state of an article as a subscriber first sees it.")
      .def_readonly("article", &py_snapshot::article)
      .def_readonly("total", &py_snapshot::total, "Committed claps on the article.")
      .def_readonly("viewers", &py_snapshot::viewers, "Subscribers reading it.")
      .def_readonly("mine", &py_snapshot::mine, "The given user's committed claps (0 without a user).")
      .def_readonly("partial", &py_snapshot::partial,
                    "True when a store shared by several nodes did not know the others' part.")
      .def("__repr__", [](const py_snapshot& s) {
        return "Snapshot(article=" + s.article + ", total=" + std::to_string(s.total) +
               ", viewers=" + std::to_string(s.viewers) + ", mine=" + std::to_string(s.mine) + ")";
      });

  py::class_<py_update>(m, "Update", "One changed article in one tick (committed total, readers).")
      .def_readonly("article", &py_update::article)
      .def_readonly("total", &py_update::total)
      .def_readonly("viewers", &py_update::viewers)
      .def("__repr__", [](const py_update& u) {
        return "Update(article=" + u.article + ", total=" + std::to_string(u.total) +
               ", viewers=" + std::to_string(u.viewers) + ")";
      });

  py::class_<py_result>(m, "Result",
                        "The outcome of one clap() or undo(), delivered once its batch is durable.")
      .def_readonly("cookie", &py_result::cookie, "What the caller passed as cookie (any object).")
      .def_readonly("user", &py_result::user)
      .def_readonly("article", &py_result::article)
      .def_readonly("op_id", &py_result::op_id, "'' when the op had none.")
      .def_readonly("error", &py_result::error,
                    "'' when the op was decided; else a wire name ('unavailable': nothing is known to "
                    "be applied; retrying with the same op_id is safe).")
      .def_readonly("message", &py_result::message, "The error's message ('' without one).")
      .def_readonly("accepted", &py_result::accepted,
                    "Claps counted (below the count at the cap); minus the claps removed for an undo.")
      .def_readonly("total", &py_result::total, "The article's committed total now.")
      .def_readonly("mine", &py_result::mine, "The user's committed claps on the article now.")
      .def_readonly("replayed", &py_result::replayed,
                    "True when the op id had been used before: nothing new was applied, accepted and "
                    "mine repeat the first answer.")
      .def_readonly("durability", &py_result::durability, "'local' or 'cluster'.")
      .def("__repr__", [](const py_result& r) {
        return "Result(user=" + r.user + ", article=" + r.article + ", op_id=" + r.op_id +
               ", error=" + r.error + ", accepted=" + std::to_string(r.accepted) +
               ", total=" + std::to_string(r.total) + ", mine=" + std::to_string(r.mine) +
               ", replayed=" + (r.replayed ? "True" : "False") + ")";
      });

  py::class_<py_engine>(m, "Engine",
                        R"doc(The realtime clap engine (claps::engine): it takes subscribe, clap and undo
commands, commits everything pending to its store once per tick, and only
after that commit is durable calls on_result for each op and on_update for
each subscriber that watches a changed article. It does no I/O and reads no
clock of its own: something must call advance() at next_deadline() (see
AsyncioDriver) and, with an LmdbStore's writer thread, the store's
run_completions() when its fileno() is readable.

Thread rule: an engine and its store belong to the thread that made them;
calls from another thread raise RuntimeError.

Callbacks run inside advance(), flush(), close() and store.run_completions()
(and, for ops still pending, when the engine is dropped without close()),
with the GIL held. They may use stats(), next_deadline(), subscription_count()
and closed, but not subscribe, clap, undo, read (it may load from the store),
advance, flush or close: that raises RuntimeError. An exception a callback raises does not stop the
engine: the call that ran the callback finishes its work, then re-raises the
first such exception (later ones go to sys.unraisablehook); the result counts
as delivered.

on_update(subscriber, updates): once per tick per subscriber whose watched
articles changed, updates a list of Update.
on_result(result): exactly once per clap()/undo() that raised nothing, a Result.)doc")
      .def(
          py::init([](py::object store, std::int64_t tick_ms, std::int32_t clap_cap,
                      std::optional<std::int64_t> op_id_window_ms, std::optional<std::size_t> max_pending_ops,
                      std::optional<std::size_t> max_subscriptions,
                      std::optional<std::size_t> max_op_ids_per_user, py::object on_update,
                      py::object on_result, std::optional<std::int64_t> now_ms) {
            engine_options options;
            options.tick = millis(tick_ms);
            options.clap_cap = clap_cap;
            if (op_id_window_ms) options.op_id_window = millis(*op_id_window_ms);
            if (max_pending_ops) options.max_pending_ops = *max_pending_ops;
            if (max_subscriptions) options.max_subscriptions = *max_subscriptions;
            if (max_op_ids_per_user) options.max_op_ids_per_user = *max_op_ids_per_user;
            return std::make_unique<py_engine>(std::move(store), options, std::move(on_update),
                                               std::move(on_result), now_ms);
          }),
          py::arg("store"), py::kw_only(), py::arg("tick_ms") = 25, py::arg("clap_cap") = 50,
          py::arg("op_id_window_ms") = py::none(), py::arg("max_pending_ops") = py::none(),
          py::arg("max_subscriptions") = py::none(), py::arg("max_op_ids_per_user") = py::none(),
          py::arg("on_update") = py::none(), py::arg("on_result") = py::none(),
          py::arg("now_ms") = py::none(),
          "Makes an engine on `store` (a MemoryStore or LmdbStore, used by this engine alone until it "
          "is closed). Options as claps::engine_options (tick_ms 1..1000, clap_cap >= 1; None keeps "
          "the C++ default); claps.Error bad_request names a bad one. now_ms: the time in ms since "
          "the Unix epoch (default: the system clock), as for every `now_ms` below.")
      .def("subscribe", &py_engine::subscribe_one, py::arg("subscriber"), py::arg("article"), py::kw_only(),
           py::arg("user") = "", py::arg("reading") = true,
           "Adds `article` to what `subscriber` (an int of the caller's choosing) watches and returns "
           "its Snapshot; `mine` counts `user`'s claps. reading=False watches without counting as a "
           "viewer. Raises claps.Error (invalid_article, invalid_user, too_many_subscriptions, store "
           "errors).")
      .def("subscribe", &py_engine::subscribe_many, py::arg("subscriber"), py::arg("articles"), py::kw_only(),
           py::arg("user") = "", py::arg("reading") = true,
           "The same for a list of articles, all or nothing; returns a list of Snapshot.")
      .def("unsubscribe", &py_engine::unsubscribe, py::arg("subscriber"), py::arg("article") = py::none(),
           "Stops `subscriber` watching `article`, or everything when article is None. Unknown pairs are "
           "ignored.")
      .def("clap", &py_engine::clap, py::arg("user"), py::arg("article"), py::arg("count") = 1, py::kw_only(),
           py::arg("op_id") = py::none(), py::arg("cookie") = py::none(),
           "Counts up to `count` claps of `user` on `article`, bounded by the cap. Its Result comes "
           "later through on_result, carrying `cookie`. A reused op_id (same user and article) is not "
           "applied again: its Result repeats the first answer with replayed=True. Raises claps.Error at "
           "once (and then no Result comes): invalid_user, invalid_article, invalid_op_id, "
           "invalid_count, unavailable (too much uncommitted, or the engine is closed), too_many_op_ids, "
           "store_full.")
      .def("undo", &py_engine::undo, py::arg("user"), py::arg("article"), py::kw_only(),
           py::arg("op_id") = py::none(), py::arg("cookie") = py::none(),
           "Removes all of `user`'s claps on `article`; as clap() otherwise (accepted is negative).")
      .def("read", &py_engine::read, py::arg("article"), py::kw_only(), py::arg("user") = "",
           "The committed Snapshot of `article` (mine: `user`'s claps), read from the store if needed.")
      .def("advance", &py_engine::advance, py::arg("now_ms") = py::none(),
           "Runs the tick if now is at or past next_deadline(): commits what is pending, then calls "
           "on_result and on_update for what became durable.")
      .def("flush", &py_engine::flush, py::arg("now_ms") = py::none(),
           "Runs a tick now, whatever the deadline, and delivers to every queued subscriber.")
      .def("next_deadline", &py_engine::next_deadline,
           "When advance() next has work to do, in ms since the Unix epoch; None when the engine is idle "
           "(nothing pending, nothing to deliver) or closed. A clap, undo or subscribe, or a store "
           "completion, can make it earlier: on_wake says when.")
      .def_property("on_wake", &py_engine::on_wake, &py_engine::set_on_wake,
                    "A callable, called with no arguments when next_deadline() becomes earlier (an idle "
                    "engine got work), from inside clap()/undo()/subscribe() or a store completion; it may "
                    "only call next_deadline() and the queries, e.g. to re-arm a timer. AsyncioDriver "
                    "sets it. Its exceptions go to sys.unraisablehook.")
      .def("close", &py_engine::close, py::arg("now_ms") = py::none(), py::kw_only(),
           py::arg("wait_s") = py::none(),
           "Shuts the engine down: from now on clap/undo/subscribe raise claps.Error unavailable, and "
           "everything pending is committed now (callbacks run inside). The engine is `closed` once "
           "every op that raised nothing has had its Result: at once with a MemoryStore or an inline "
           "LmdbStore; with the writer thread, once the caller's loop has run the store's completions "
           "(AsyncioDriver.close() waits for that), or pass wait_s to block here up to that many "
           "seconds. Once closed, the engine drops its store and callbacks (the store may then be "
           "closed); further commands raise unavailable, stats() keeps the last counters. Returns "
           "`closed`. Dropping an engine that is not closed gives each op still without a Result one "
           "with error 'unavailable' (it may or may not be durable; retrying its op_id is safe).")
      .def_property_readonly("closed", &py_engine::closed,
                             "True once close() was called and every op has had its Result.")
      .def("stats", &py_engine::stats, "The engine's counters (claps::engine_stats) as a dict.")
      .def("subscription_count", &py_engine::subscription_count, py::arg("subscriber"),
           "Articles `subscriber` watches.");
}

}  // namespace claps::python
