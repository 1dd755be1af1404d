// op_submission.hpp - the one path every clap and undo takes into the engine,
// whether it came over WebSocket or REST.
//
// On one node an op goes straight in. Across nodes (cluster_node::before_op)
// an op on an article no local viewer watches first loads the other nodes'
// parts, so its total and the cap are global; an op with an id asks Redis
// whether another node already applied that id for this user, and if so the
// answer is that node's result, replayed (accepted and mine as that node
// counted them, the total as this node knows it now): nothing is counted
// twice. With Redis unreachable the op is applied here; a conflict found
// later is only counted (see docs/design.md).
#pragma once

#include "service_deps.hpp"

#include <cstdint>
#include <string_view>

namespace claps::server {

struct op_request {
  bool undo = false;
  std::string_view user;
  std::string_view article;
  std::string_view op_id;   // may be empty
  std::int32_t count = 1;   // claps only
  std::uint64_t cookie = 0; // from endpoint_registry::track_op()
};

/// Submits `request`. Its outcome reaches the endpoint that tracked the
/// cookie: on_result once durable (or replayed), or on_refused when the
/// engine refuses it, which may happen before this returns. The views need
/// only live for this call.
void submit_op(const service_deps& deps, const op_request& request);

} // namespace claps::server
