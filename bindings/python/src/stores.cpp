// claps.MemoryStore and claps.LmdbStore.
#include "binding.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

namespace claps::python {

void py_store::attach(store_user* user) {
  if (user_ != nullptr) raise_misuse("this store is already used by an engine (one engine per store)");
  user_ = user;
}

void py_store::detach(store_user* user) noexcept {
  if (user_ == user) user_ = nullptr;
}

void py_store::check_thread() const {
  if (std::this_thread::get_id() != owner_) {
    raise_misuse("a claps store and its engine belong to the thread that made them");
  }
}

namespace {

class py_memory_store final : public py_store {
public:
  claps::store& get() override { return store_; }
  std::size_t op_count() const noexcept { return store_.op_count(); }

private:
  claps::memory_store store_;
};

/// An lmdb_store plus an eventfd that its writer thread makes readable when
/// a commit has ended, so that any event loop can wait for completions.
class py_lmdb_store final : public py_store {
public:
  py_lmdb_store(std::string path, bool writer_thread, std::optional<std::size_t> map_size,
                std::optional<std::size_t> max_map_size, bool sync)
      : event_fd_(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)), writer_thread_(writer_thread) {
    if (event_fd_ < 0)
      raise_error(make_error_code(errc::store_io), "eventfd: " + std::string(strerror(errno)));
    lmdb_options options;
    options.path = std::move(path);
    if (map_size) options.map_size = *map_size;
    if (max_map_size) options.max_map_size = *max_map_size;
    options.sync = sync;
    if (writer_thread) {
      // On the writer thread: no Python, no GIL, only a write(2).
      options.on_commit_ready = [fd = event_fd_] {
        const std::uint64_t one = 1;
        [[maybe_unused]] ssize_t n = ::write(fd, &one, sizeof one);
      };
    }
    std::error_code ec;
    {
      py::gil_scoped_release unlocked;  // opening may migrate or wait on the disk
      store_ = lmdb_store::open(options, ec);
    }
    if (!store_) {
      ::close(event_fd_);
      event_fd_ = -1;
      raise_error(ec);
    }
  }

  ~py_lmdb_store() override { close_store(); }

  claps::store& get() override { return open_store(); }

  int fileno() const {
    if (!store_) raise_error(make_error_code(errc::unavailable), "the store is closed");
    return event_fd_;
  }

  std::size_t run_completions() {
    check_thread();
    lmdb_store& store = open_store();
    drain_event_fd();  // first, so that a commit ending meanwhile leaves it readable
    const std::size_t ran = store.run_completions();
    if (user_ != nullptr) user_->after_callbacks();
    return ran;
  }

  std::size_t wait_for_commit() override {
    check_thread();
    lmdb_store& store = open_store();
    drain_event_fd();
    std::size_t ran = 0;
    {
      // The engine's callbacks, run inside, take the GIL back.
      py::gil_scoped_release unlocked;
      ran = store.wait_for_commit();
    }
    if (user_ != nullptr) user_->after_callbacks();
    return ran;
  }

  std::size_t op_count() {
    check_thread();
    return open_store().op_count();
  }
  bool writer_thread() const noexcept { return writer_thread_; }
  bool commits_block() const noexcept override { return store_ && !writer_thread_; }
  bool closed() const noexcept { return !store_; }

  void close() {
    check_thread();
    if (user_ != nullptr) raise_misuse("an engine still uses this store: close the engine first");
    close_store();
  }

private:
  lmdb_store& open_store() {
    if (!store_) raise_error(make_error_code(errc::unavailable), "the store is closed");
    return *store_;
  }

  void drain_event_fd() noexcept {
    std::uint64_t count = 0;
    [[maybe_unused]] ssize_t n = ::read(event_fd_, &count, sizeof count);
  }

  void close_store() noexcept {
    if (store_) {
      py::gil_scoped_release unlocked;  // joins the writer after its commit in flight
      store_.reset();
    }
    // The writer may signal once more while the store is destroyed: close after.
    if (event_fd_ >= 0) ::close(event_fd_);
    event_fd_ = -1;
  }

  std::unique_ptr<lmdb_store> store_;
  int event_fd_ = -1;
  bool writer_thread_ = false;
};

}  // namespace

void bind_stores(py::module_& m) {
  py::class_<py_store>(m, "Store",
                       "The base of the stores an Engine commits to (MemoryStore, LmdbStore). A store "
                       "belongs to the thread that made it, and serves one engine at a time.");

  py::class_<py_memory_store, py_store>(
      m, "MemoryStore",
      "A store in process memory (claps::memory_store): commits succeed at once and nothing survives "
      "the process. For tests and ephemeral use.")
      .def(py::init<>())
      .def("op_count", &py_memory_store::op_count, "Number of op records held.");

  py::class_<py_lmdb_store, py_store>(
      m, "LmdbStore",
      "The LMDB store (claps::lmdb_store): each engine tick is one fsync'd write transaction, and a\n"
      "reopened store has the same state.\n\n"
      "With writer_thread=True (the default) commits run on the store's own thread, without the GIL,\n"
      "and fileno() is readable while a finished commit waits for run_completions(), which the owner\n"
      "calls on its own thread (AsyncioDriver does both). With writer_thread=False commits run inside\n"
      "Engine.advance()/flush()/close(), fsync included; those calls release the GIL meanwhile.\n\n"
      "Opening one directory twice in one process is refused by LMDB: close() (or drop) the first.\n"
      "Raises claps.Error (store_io, store_incompatible, bad_request) when the store cannot be opened.")
      .def(py::init<std::string, bool, std::optional<std::size_t>, std::optional<std::size_t>, bool>(),
           py::arg("path"), py::kw_only(), py::arg("writer_thread") = true, py::arg("map_size") = py::none(),
           py::arg("max_map_size") = py::none(), py::arg("sync") = true,
           "Opens (creating if needed) the environment in directory `path`. map_size and max_map_size "
           "are in bytes (defaults 1 GiB and 4 GiB: the map grows by itself); sync=False skips fsync.")
      .def("fileno", &py_lmdb_store::fileno,
           "A file descriptor (an eventfd) that is readable while completions are pending: wait for it "
           "with select or loop.add_reader(), then call run_completions(). Never readable without the "
           "writer thread. Valid until close().")
      .def("run_completions", &py_lmdb_store::run_completions,
           "Runs the completion of the commit the writer finished, if any: the engine's callbacks run "
           "inside (on_result, on_update). Returns how many ran (0 or 1); cheap when there is none. "
           "Re-raises the first exception a callback raised.")
      .def("wait_for_commit", &py_lmdb_store::wait_for_commit,
           "Blocks (without the GIL) until the commit in flight, if any, has ended, then runs its "
           "completion as run_completions() does. Returns how many ran.")
      .def("op_count", &py_lmdb_store::op_count, "Number of op records stored (expired ones until purged).")
      .def_property_readonly("writer_thread", &py_lmdb_store::writer_thread,
                             "True when commits run on the store's writer thread.")
      .def_property_readonly("closed", &py_lmdb_store::closed, "True after close().")
      .def("close", &py_lmdb_store::close,
           "Closes the environment (a commit in flight is finished first). RuntimeError while an open "
           "Engine uses the store. Closing twice does nothing.")
      .def("__enter__", [](py::object self) { return self; })
      .def("__exit__", [](py_lmdb_store& self, py::args) { self.close(); });
}

}  // namespace claps::python
