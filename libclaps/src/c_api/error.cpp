// Error codes, names and the small helpers of <claps/claps.h>.
#include "handles.hpp"

#include <claps/error.hpp>
#include <claps/version.hpp>

#include <array>
#include <chrono>
#include <string>

namespace {

using claps::errc;

constexpr int code_of(errc e) { return -static_cast<int>(e); }

// One C code per claps::errc, in order: a code added to errc without one
// here fails the build.
static_assert(CLAPS_ERROR_COUNT == static_cast<int>(errc::count_) - 1, "claps.h lacks a code of claps::errc");
static_assert(CLAPS_E_BAD_REQUEST == code_of(errc::bad_request));
static_assert(CLAPS_E_INVALID_ARTICLE == code_of(errc::invalid_article));
static_assert(CLAPS_E_INVALID_USER == code_of(errc::invalid_user));
static_assert(CLAPS_E_INVALID_OP_ID == code_of(errc::invalid_op_id));
static_assert(CLAPS_E_INVALID_COUNT == code_of(errc::invalid_count));
static_assert(CLAPS_E_TOO_MANY_SUBSCRIPTIONS == code_of(errc::too_many_subscriptions));
static_assert(CLAPS_E_RATE_LIMITED == code_of(errc::rate_limited));
static_assert(CLAPS_E_UNAUTHORIZED == code_of(errc::unauthorized));
static_assert(CLAPS_E_FORBIDDEN == code_of(errc::forbidden));
static_assert(CLAPS_E_MESSAGE_TOO_LARGE == code_of(errc::message_too_large));
static_assert(CLAPS_E_TOO_MANY_OP_IDS == code_of(errc::too_many_op_ids));
static_assert(CLAPS_E_UNAVAILABLE == code_of(errc::unavailable));
static_assert(CLAPS_E_STORE_FULL == code_of(errc::store_full));
static_assert(CLAPS_E_STORE_IO == code_of(errc::store_io));
static_assert(CLAPS_E_STORE_CORRUPTED == code_of(errc::store_corrupted));
static_assert(CLAPS_E_STORE_INCOMPATIBLE == code_of(errc::store_incompatible));
static_assert(CLAPS_E_STORE_TIMEOUT == code_of(errc::store_timeout));
static_assert(CLAPS_E_STORE_DISCONNECTED == code_of(errc::store_disconnected));

bool known(int code) { return code < 0 && code >= -CLAPS_ERROR_COUNT; }

// Messages and names built once from the C++ category, so they never
// differ from what the C++ API says; static storage for the C caller.
struct texts {
  std::array<std::string, static_cast<std::size_t>(errc::count_)> messages;
  std::array<std::string, static_cast<std::size_t>(errc::count_)> wire_names;
  std::array<std::string, static_cast<std::size_t>(errc::count_)> names;
  texts() {
    for (int v = 1; v < static_cast<int>(errc::count_); ++v) {
      auto ec = claps::make_error_code(static_cast<errc>(v));
      messages[v] = ec.message();
      wire_names[v] = std::string(claps::wire_name(ec));
      names[v] = std::string(claps::errc_name(ec));
    }
  }
};

const texts* all_texts() noexcept {
  try {
    static const texts t;  // thread-safe initialisation
    return &t;
  } catch (...) {
    return nullptr;
  }
}

}  // namespace

namespace claps::c_api {

int to_code(std::error_code ec) noexcept {
  if (!ec) return CLAPS_OK;
  if (ec.category() != claps::error_category() || ec.value() <= 0 ||
      ec.value() >= static_cast<int>(errc::count_))
    return CLAPS_E_UNAVAILABLE;
  return -ec.value();
}

}  // namespace claps::c_api

extern "C" {

const char* claps_strerror(int code) {
  if (code == CLAPS_OK) return "success";
  const texts* t = all_texts();
  if (!known(code) || !t) return "unknown claps error";
  return t->messages[-code].c_str();
}

const char* claps_error_name(int code) {
  if (code == CLAPS_OK) return "";
  const texts* t = all_texts();
  if (!known(code) || !t) return "unknown";
  return t->names[-code].c_str();
}

const char* claps_error_wire_name(int code) {
  if (code == CLAPS_OK) return "";
  const texts* t = all_texts();
  if (!known(code) || !t) return "unavailable";
  return t->wire_names[-code].c_str();
}

const char* claps_version(void) { return CLAPS_VERSION_STRING; }

int64_t claps_now_ms(void) {
  return std::chrono::time_point_cast<claps::millis>(std::chrono::system_clock::now())
      .time_since_epoch()
      .count();
}

}  // extern "C"
