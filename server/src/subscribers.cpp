#include "subscribers.hpp"

namespace claps::server {

std::uint64_t endpoint_registry::add(endpoint& e) {
  e.serial = next_serial_++;
  const auto id = reinterpret_cast<std::uintptr_t>(&e);
  endpoints_[id] = &e;
  return id;
}

void endpoint_registry::remove(std::uint64_t id) noexcept { endpoints_.erase(id); }

endpoint* endpoint_registry::find(std::uint64_t id) const noexcept {
  auto it = endpoints_.find(id);
  return it == endpoints_.end() ? nullptr : it->second;
}

std::uint64_t endpoint_registry::track_op(std::uint64_t endpoint_id, std::string_view op_id,
                                          op_received_at received) {
  const auto cookie = next_cookie_++;
  const auto* e = find(endpoint_id);
  ops_.emplace(cookie, pending_op{endpoint_id, e ? e->serial : 0, std::string(op_id), received});
  return cookie;
}

void endpoint_registry::forget_op(std::uint64_t cookie) noexcept { ops_.erase(cookie); }

void endpoint_registry::complete_op(const op_result& result) {
  auto it = ops_.find(result.cookie);
  if (it == ops_.end()) return;
  const pending_op op = std::move(it->second);
  ops_.erase(it);
  if (auto* e = find(op.endpoint_id); e != nullptr && e->serial == op.serial)
    e->on_result(result, op.op_id, op.received);
}

void endpoint_registry::refuse_op(std::uint64_t cookie, std::error_code ec) {
  auto it = ops_.find(cookie);
  if (it == ops_.end()) return;
  const pending_op op = std::move(it->second);
  ops_.erase(it);
  if (auto* e = find(op.endpoint_id); e != nullptr && e->serial == op.serial) e->on_refused(ec, op.op_id);
}

}  // namespace claps::server
