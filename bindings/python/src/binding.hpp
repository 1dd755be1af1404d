// The pieces of the Python module _claps that its files share. Internal.
#pragma once

#include <claps/error.hpp>
#include <claps/lmdb.hpp>
#include <claps/memory_store.hpp>
#include <claps/store.hpp>

#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <optional>
#include <string_view>
#include <system_error>
#include <thread>

namespace claps::python {

namespace py = pybind11;

// ---- errors (error.cpp) ----

/// Registers claps.Error in `m`.
void bind_errors(py::module_& m);
/// Raises claps.Error for `ec`: .code (wire name), .name (errc name),
/// .reason, .message (`message`, or ec.message() when empty).
[[noreturn]] void raise_error(std::error_code ec, std::string_view message = {});
/// Raises RuntimeError: a misuse of the API (wrong thread, a call from a
/// callback), which the C++ engine would abort on.
[[noreturn]] void raise_misuse(const char* message);

/// The exceptions that Python callbacks raised inside one engine call. The
/// engine's C++ call always runs to its end (so its state stays whole); the
/// first exception is re-raised when the call returns to Python, later ones
/// go to sys.unraisablehook.
class callback_errors {
public:
  /// Keeps the Python error being handled (call inside a catch block).
  void keep(py::error_already_set& e);
  /// Re-raises the kept error, if any, and forgets it.
  void rethrow_first();

private:
  std::optional<py::error_already_set> first_;
};

// ---- stores (stores.cpp) ----

/// What a store asks of the engine that uses it: after the store ran
/// completions (engine callbacks), re-raise their errors and settle a close.
class store_user {
public:
  virtual void after_callbacks() = 0;

protected:
  ~store_user() = default;
};

/// claps.Store: the base of the stores an engine may use.
class py_store {
public:
  virtual ~py_store() = default;
  /// The C++ store; raises when the store was closed.
  virtual claps::store& get() = 0;
  /// Blocks until a commit in flight, if any, ended and runs its completion;
  /// returns how many ran. 0 for stores that complete inside commit().
  virtual std::size_t wait_for_commit() { return 0; }
  /// True when commit() does its disk I/O before returning (LMDB inline).
  virtual bool commits_block() const noexcept { return false; }
  /// One engine at a time uses a store (an LMDB store has one commit in flight).
  void attach(store_user* user);
  void detach(store_user* user) noexcept;
  bool in_use() const noexcept { return user_ != nullptr; }
  /// Raises RuntimeError unless called on the thread that made the store.
  void check_thread() const;

protected:
  store_user* user_ = nullptr;
  std::thread::id owner_ = std::this_thread::get_id();
};

void bind_stores(py::module_& m);

// ---- engine (engine.cpp) ----

void bind_engine(py::module_& m);

/// Milliseconds since the Unix epoch, from the system clock.
timestamp clock_now() noexcept;
/// `now_ms`, or the clock when it is None.
timestamp time_arg(const std::optional<std::int64_t>& now_ms) noexcept;

}  // namespace claps::python
