#include <claps/error.hpp>

#include <string>

namespace claps {
namespace {

class claps_error_category final : public std::error_category {
public:
  const char* name() const noexcept override { return "claps"; }

  std::string message(int value) const override {
    switch (static_cast<errc>(value)) {
    case errc::bad_request: return "malformed or unknown request";
    case errc::invalid_article: return "invalid article id: use 1-128 characters of A-Z a-z 0-9 . _ : -";
    case errc::invalid_user: return "invalid user id: use 1-128 characters of A-Z a-z 0-9 . _ : -";
    case errc::invalid_op_id: return "invalid op id: use 1-64 characters of A-Z a-z 0-9 . _ : -";
    case errc::invalid_count: return "invalid clap count: use a whole number from 1 to the cap";
    case errc::too_many_subscriptions: return "too many subscriptions: unsubscribe from some articles first";
    case errc::rate_limited: return "too many claps: slow down and retry shortly";
    case errc::unauthorized: return "missing, expired or invalid credentials";
    case errc::forbidden: return "not allowed";
    case errc::message_too_large: return "message too large";
    case errc::too_many_op_ids:
      return "too many op ids from this user in the op-id window: wait, or clap without new op ids";
    case errc::unavailable:
      return "unavailable: the engine has too much uncommitted or is closed (shutting down); retry shortly "
             "(with the same op id, it is applied once)";
    case errc::store_full:
      return "store is full (LMDB map at its maximum, or disk full): new claps are refused until it has room; "
             "retry later";
    case errc::store_io: return "store I/O error";
    case errc::store_corrupted: return "store is corrupted or panicked; it will be reopened";
    case errc::store_incompatible: return "store has an on-disk format this build cannot read";
    case errc::store_timeout: return "store did not answer in time";
    case errc::store_disconnected: return "store is not connected";
    case errc::count_: break;
    }
    return "unknown claps error";
  }
};

const claps_error_category category_instance{};

}  // namespace

const std::error_category& error_category() noexcept { return category_instance; }

std::error_code make_error_code(errc e) noexcept { return {static_cast<int>(e), category_instance}; }

std::string_view wire_name(std::error_code ec) noexcept {
  if (ec.category() != category_instance) return "unavailable";
  switch (static_cast<errc>(ec.value())) {
  case errc::bad_request: return "bad_request";
  case errc::invalid_article: return "invalid_article";
  case errc::invalid_user: return "bad_request";
  case errc::invalid_op_id: return "bad_request";
  case errc::invalid_count: return "bad_request";
  case errc::too_many_subscriptions: return "too_many_subscriptions";
  case errc::rate_limited: return "rate_limited";
  case errc::unauthorized: return "unauthorized";
  case errc::forbidden: return "forbidden";
  case errc::message_too_large: return "message_too_large";
  case errc::too_many_op_ids: return "rate_limited";
  default: return "unavailable";
  }
}

std::string_view errc_name(std::error_code ec) noexcept {
  if (!ec) return "";
  if (ec.category() != category_instance) return "other";
  switch (static_cast<errc>(ec.value())) {
  case errc::bad_request: return "bad_request";
  case errc::invalid_article: return "invalid_article";
  case errc::invalid_user: return "invalid_user";
  case errc::invalid_op_id: return "invalid_op_id";
  case errc::invalid_count: return "invalid_count";
  case errc::too_many_subscriptions: return "too_many_subscriptions";
  case errc::rate_limited: return "rate_limited";
  case errc::unauthorized: return "unauthorized";
  case errc::forbidden: return "forbidden";
  case errc::message_too_large: return "message_too_large";
  case errc::too_many_op_ids: return "too_many_op_ids";
  case errc::unavailable: return "unavailable";
  case errc::store_full: return "store_full";
  case errc::store_io: return "store_io";
  case errc::store_corrupted: return "store_corrupted";
  case errc::store_incompatible: return "store_incompatible";
  case errc::store_timeout: return "store_timeout";
  case errc::store_disconnected: return "store_disconnected";
  case errc::count_: break;
  }
  return "other";
}

std::string_view wire_reason(std::error_code ec) noexcept {
  return ec == errc::store_full ? "store_full" : "";
}

}  // namespace claps
