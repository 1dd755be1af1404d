// The memory and LMDB stores of <claps/claps.h>. The LMDB store's writer
// thread signals an eventfd, so any loop that polls descriptors (asyncio,
// epoll, uv_poll_t) can bring its completions back to the engine's thread.
#include "handles.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <type_traits>

using claps::c_api::guarded;
using claps::c_api::to_code;

namespace {

// Makes the fd unreadable: reads the counter back to 0 (EAGAIN when it is).
void drain(int fd) {
  std::uint64_t n;
  while (::read(fd, &n, sizeof n) < 0 && errno == EINTR) {}
}

}  // namespace

claps_lmdb_store::~claps_lmdb_store() {
  store.reset();  // joins the writer thread, which may signal the fd until then
  if (completion_fd >= 0) ::close(completion_fd);
}

extern "C" {

int claps_memory_store_new(claps_memory_store** out) {
  if (!out) return CLAPS_E_BAD_REQUEST;
  *out = nullptr;
  return guarded([&] {
    *out = new claps_memory_store;
    return CLAPS_OK;
  });
}

claps_store* claps_memory_store_as_store(claps_memory_store* store) { return store ? &store->view : nullptr; }

void claps_memory_store_free(claps_memory_store* store) { delete store; }

void claps_lmdb_options_init(claps_lmdb_options* options) {
  if (!options) return;
  const claps::lmdb_options defaults;
  *options = claps_lmdb_options{};
  options->path = nullptr;
  options->map_size = defaults.map_size;
  options->max_map_size = defaults.max_map_size;
  options->headroom = defaults.headroom;
  options->sync = defaults.sync;
  options->max_purge_per_commit = defaults.max_purge_per_commit;
  options->completions = CLAPS_LMDB_INLINE;
}

int claps_lmdb_store_open(const claps_lmdb_options* options, claps_lmdb_store** out) {
  if (!out) return CLAPS_E_BAD_REQUEST;
  *out = nullptr;
  if (!options || !options->path || !*options->path) return CLAPS_E_BAD_REQUEST;
  // A C caller may store any int in the enum; in C++ loading one outside its
  // values is undefined, so read the bytes.
  std::underlying_type_t<claps_lmdb_completions> completions;
  static_assert(sizeof completions == sizeof options->completions);
  std::memcpy(&completions, &options->completions, sizeof completions);
  if (completions != CLAPS_LMDB_INLINE && completions != CLAPS_LMDB_WRITER_THREAD) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    auto handle = std::make_unique<claps_lmdb_store>();
    claps::lmdb_options o;
    o.path = options->path;
    o.map_size = options->map_size;
    o.max_map_size = options->max_map_size;
    o.headroom = options->headroom;
    o.sync = options->sync;
    o.max_purge_per_commit = options->max_purge_per_commit;
    if (completions == CLAPS_LMDB_WRITER_THREAD) {
      handle->completion_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
      if (handle->completion_fd < 0) return CLAPS_E_STORE_IO;
      // Runs on the writer thread: a write to an eventfd is thread-safe and
      // cannot block (the counter would need 2^64 - 1 pending signals).
      o.on_commit_ready = [fd = handle->completion_fd] {
        const std::uint64_t one = 1;
        while (::write(fd, &one, sizeof one) < 0 && errno == EINTR) {}
      };
    }
    std::error_code ec;
    handle->store = claps::lmdb_store::open(o, ec);
    if (!handle->store) return ec ? to_code(ec) : CLAPS_E_STORE_IO;
    handle->view.store = handle->store.get();
    *out = handle.release();
    return CLAPS_OK;
  });
}

claps_store* claps_lmdb_store_as_store(claps_lmdb_store* store) { return store ? &store->view : nullptr; }

int claps_lmdb_store_completion_fd(const claps_lmdb_store* store) {
  return store ? store->completion_fd : -1;
}

int claps_lmdb_store_run_completions(claps_lmdb_store* store) {
  if (!store) return CLAPS_E_BAD_REQUEST;
  return guarded([&] {
    // Drain first: a commit that ends while its predecessor's completion
    // runs signals again, so the fd stays readable for it.
    if (store->completion_fd >= 0) drain(store->completion_fd);
    return static_cast<int>(store->store->run_completions());
  });
}

int claps_lmdb_store_wait_for_commit(claps_lmdb_store* store) {
  if (!store) return CLAPS_E_BAD_REQUEST;
  return guarded([&] { return static_cast<int>(store->store->wait_for_commit()); });
}

void claps_lmdb_store_free(claps_lmdb_store* store) { delete store; }

}  // extern "C"
