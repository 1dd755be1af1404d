// claps/error.hpp - the one error vocabulary of libclaps.
//
// Every recoverable failure in libclaps and its adapters is a std::error_code
// in claps::error_category(). Nothing throws across the public API: functions
// that can fail return std::error_code (or carry one in their result).
// Programming errors (calling into an engine from one of its own callbacks,
// passing an unknown subscriber to a query) assert.
#pragma once

#include <string_view>
#include <system_error>

namespace claps {

enum class errc : int {
  // Input a user can cause. Each has a message that says how to fix it.
  bad_request = 1,         // malformed or unknown message
  invalid_article,         // article id not 1-128 bytes of [A-Za-z0-9._:-]
  invalid_user,            // user id not 1-128 bytes of [A-Za-z0-9._:-]
  invalid_op_id,           // op id not 1-64 bytes of [A-Za-z0-9._:-]
  invalid_count,           // clap count outside 1..cap
  too_many_subscriptions,  // subscriber would exceed its subscription limit
  rate_limited,            // caller's token bucket is empty
  unauthorized,            // missing, expired or invalid credentials
  forbidden,               // credentials fine, action not allowed (origin, allow-list)
  message_too_large,       // inbound message over the size limit
  too_many_op_ids,         // user holds engine_options::max_op_ids_per_user live op ids
  // Conditions of the system. The caller may retry later.
  unavailable,         // engine refuses new work: too much uncommitted, or shutting down
  store_full,          // store out of space (LMDB map full, disk full)
  store_io,            // store I/O error
  store_corrupted,     // store contents failed a check, or LMDB panicked
  store_incompatible,  // on-disk format version this build does not read
  store_timeout,       // a networked store did not answer in time
  store_disconnected,  // a networked store is not connected
  // Not an error: one past the last code, so that tests and bindings can walk
  // every code. New codes go before it.
  count_,
};

/// The category of claps::errc. Its name is "claps".
const std::error_category& error_category() noexcept;

/// Makes a std::error_code in claps::error_category().
std::error_code make_error_code(errc e) noexcept;

/// The stable wire name of an error, e.g. "invalid_article", used in protocol
/// error frames. Store errors all map to "unavailable" for clients;
/// use error_code::message() for the detailed text.
std::string_view wire_name(std::error_code ec) noexcept;

/// The name of an error's claps::errc enumerator, e.g. "invalid_count": one
/// name per code, unlike wire_name(). "" for an empty code, "other" for a
/// code of another category. For bindings and logs that need the exact code.
std::string_view errc_name(std::error_code ec) noexcept;

/// Why an error has the wire name it has, when clients may act on it:
/// "store_full" for errc::store_full (wire name "unavailable"), empty for
/// every other error. Protocol error frames carry it as "reason".
std::string_view wire_reason(std::error_code ec) noexcept;

}  // namespace claps

template <>
struct std::is_error_code_enum<claps::errc> : std::true_type {};
