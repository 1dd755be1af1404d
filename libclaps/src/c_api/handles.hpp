// What the opaque handles of <claps/claps.h> are, and the one guard every
// entry point runs its body in so that no exception crosses into C.
#pragma once

#include <claps/claps.h>
#include <claps/engine.hpp>
#include <claps/lmdb.hpp>
#include <claps/memory_store.hpp>

#include <memory>
#include <new>
#include <vector>
#include <string>
#include <system_error>

// The engine's view of a store: the C++ interface, borrowed.
struct claps_store {
  claps::store* store = nullptr;
};

struct claps_memory_store {
  claps::memory_store store;
  claps_store view{&store};
};

struct claps_lmdb_store {
  // CLAPS_LMDB_WRITER_THREAD's eventfd. The destructor frees the store
  // (joining the writer thread, which may signal the fd until then) first.
  int completion_fd = -1;
  std::unique_ptr<claps::lmdb_store> store;
  claps_store view{};
  ~claps_lmdb_store();
};

struct claps_engine {
  claps_engine_callbacks callbacks{};
  // Reused between calls: what a delivery hands to C, NUL-terminated.
  std::vector<claps_article_update> updates;
  std::string arena;
  std::string result_strings;
  // Last: destroyed first, while the callbacks it may still call exist.
  std::unique_ptr<claps::engine> engine;
};

namespace claps::c_api {

/// The C code of an error_code: 0, or -(errc) for claps' own category.
/// Errors of other categories (none are expected) become CLAPS_E_UNAVAILABLE.
int to_code(std::error_code ec) noexcept;

/// Runs `body` (returning an int code), turning any exception into a code:
/// std::bad_alloc and every other exception into CLAPS_E_UNAVAILABLE.
template <class Body>
int guarded(Body&& body) noexcept {
  try {
    return body();
  } catch (...) {
    return CLAPS_E_UNAVAILABLE;
  }
}

}  // namespace claps::c_api
