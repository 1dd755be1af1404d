// What the cluster tests share: a uv loop stepped until a condition holds,
// and a temporary directory.
#pragma once

#include <uv.h>

#include <doctest/doctest.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <functional>

namespace claps::test {

// A uv loop that tests step until a condition holds or a deadline passes.
// The wake timer only bounds how long one uv_run(ONCE) may block, so the
// deadline is checked; the conditions themselves are events on the loop.
class loop_runner {
public:
  loop_runner() {
    uv_loop_init(&loop_);
    uv_timer_init(&loop_, &wake_);
    uv_timer_start(
        &wake_, [](uv_timer_t*) {}, 20, 20);
  }
  ~loop_runner() {
    uv_close(reinterpret_cast<uv_handle_t*>(&wake_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);  // lets closed handles finish
    CHECK(uv_loop_close(&loop_) == 0);
  }
  uv_loop_t* get() { return &loop_; }

  bool run_until(const std::function<bool()>& done, std::chrono::milliseconds deadline) {
    const auto end = std::chrono::steady_clock::now() + deadline;
    while (!done()) {
      if (std::chrono::steady_clock::now() >= end) return false;
      uv_run(&loop_, UV_RUN_ONCE);
    }
    return true;
  }

private:
  uv_loop_t loop_{};
  uv_timer_t wake_{};
};

struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    char tmpl[] = "/tmp/claps-redis-lmdb-XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

}  // namespace claps::test
