// op_submission.hpp - the one path every clap and undo takes into the engine,
// whether it came over WebSocket or REST.
//
// Ops go straight into the engine, on one node as across nodes: with a
// cluster store the engine has each tick's ops decided in Redis (the cap and
// op ids across nodes, see claps::redis_store), and an op id another node
// applied comes back as that node's result, replayed.
#pragma once

#include "service_deps.hpp"

#include <cstdint>
#include <string_view>

namespace claps::server {

struct op_request {
  bool undo = false;
  std::string_view user;
  std::string_view article;
  std::string_view op_id;    // may be empty
  std::int32_t count = 1;    // claps only
  std::uint64_t cookie = 0;  // from endpoint_registry::track_op()
};

/// Submits `request`. Its outcome reaches the endpoint that tracked the
/// cookie: on_result once durable (or replayed), or on_refused when the
/// engine refuses it, which may happen before this returns. The views need
/// only live for this call.
void submit_op(const service_deps& deps, const op_request& request);

}  // namespace claps::server
