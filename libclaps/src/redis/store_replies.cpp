// redis_store's reading of Redis replies and bus messages (see store_impl.hpp).
#include "store_impl.hpp"

#include <algorithm>

namespace claps::detail {

namespace {

// Splits up to 4 `sep`-separated fields off `v`; returns how many.
std::size_t split_fields(std::string_view v, char sep, std::string_view (&fields)[4]) {
  std::size_t n = 0;
  while (n < 4 && !v.empty()) {
    const auto at = v.find(sep);
    fields[n++] = v.substr(0, at);
    v = at == std::string_view::npos ? std::string_view{} : v.substr(at + 1);
  }
  return n;
}

}  // namespace

bool read_part_message(std::string_view payload, part_message& out) {
  std::string_view fields[4];
  const std::size_t n = split_fields(payload, ' ', fields);
  part_message m;
  if (n != 4 || !to_int(fields[1], m.version) || !to_int(fields[2], m.total) || !to_int(fields[3], m.viewers))
    return false;
  m.node = fields[0];
  out = m;
  return true;
}

std::string part_message_payload(std::string_view node, std::uint64_t version, std::int64_t total,
                                 std::uint32_t viewers) {
  std::string payload(node);
  payload.append(" ").append(std::to_string(version)).append(" ");
  payload.append(std::to_string(total)).append(" ").append(std::to_string(viewers));
  return payload;
}

bool fold_parts(remote_article& ra, const redis_reply& totals, const redis_reply* viewers,
                std::string_view own_node) {
  if (totals.type != redis_reply::kind::array) return false;
  const auto& e = totals.elements;
  auto merge = [&](const std::string& node, std::string_view version_s, std::string_view total_s) {
    if (node == own_node) return;
    std::uint64_t version = 0;
    std::int64_t total = 0;
    if (!to_int(version_s, version) || !to_int(total_s, total)) return;
    node_part& part = ra.parts[node];
    if (version >= part.version) {
      part.version = version;
      part.total = total;
    }
  };
  if (viewers != nullptr) {
    for (std::size_t i = 0; i + 2 < e.size(); i += 3) merge(e[i].str, e[i + 1].str, e[i + 2].str);
    for (auto& [node, part] : ra.parts) part.viewers = 0;
    const auto& v = viewers->elements;
    for (std::size_t i = 0; i + 1 < v.size(); i += 2) {
      std::uint32_t n = 0;
      if (v[i].str != own_node && to_int(v[i + 1].str, n)) ra.parts[v[i].str].viewers = n;
    }
    ra.viewers_known = true;
  } else {
    for (std::size_t i = 0; i + 1 < e.size(); i += 2) {
      const std::string_view value = e[i + 1].str;
      const auto colon = value.find(':');
      if (colon != std::string_view::npos) merge(e[i].str, value.substr(0, colon), value.substr(colon + 1));
    }
  }
  return true;
}

void sum_parts(const remote_article& ra, std::int64_t& total, std::uint32_t& viewers) {
  // Parts come from Redis as any 64-bit value: clamped to what a JSON client
  // reads exactly, the sum (and the engine's local + remote total) cannot overflow.
  constexpr std::int64_t limit = (std::int64_t{1} << 53) - 1;
  total = 0;
  viewers = 0;
  for (const auto& [node, part] : ra.parts) {
    total = std::clamp(total + std::clamp(part.total, -limit, limit), -limit, limit);
    viewers += part.viewers;
  }
}

bool arbitration_reply_fits(const redis_reply& r, std::span<const group_owned> groups) {
  if (r.type != redis_reply::kind::array || r.elements.size() != groups.size() + 1) return false;
  for (std::size_t n = 0; n < groups.size(); ++n) {
    const redis_reply& e = r.elements[n + 1];
    if (e.type != redis_reply::kind::array || e.elements.size() != 4 ||
        e.elements[1].elements.size() != groups[n].users.size() ||
        e.elements[3].elements.size() != 3 * groups[n].ops.size())
      return false;
  }
  return true;
}

op_decision read_decision(const redis_reply& group, std::size_t k) {
  const auto& out = group.elements[3].elements;
  op_decision d;
  const auto kind = reply_int(out[3 * k]);
  d.accepted = static_cast<std::int32_t>(reply_int(out[3 * k + 1]));
  d.mine = static_cast<std::int32_t>(reply_int(out[3 * k + 2]));
  d.what = kind == 1 || kind == 4 ? op_decision::kind::applied
           : kind == 2            ? op_decision::kind::replay
                                  : op_decision::kind::retry;
  return d;
}

}  // namespace claps::detail
