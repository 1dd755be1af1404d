#include "op_submission.hpp"

namespace claps::server {

void submit_op(const service_deps& deps, const op_request& r) {
  const std::error_code ec = r.undo ? deps.engine.undo({r.user, r.article, r.op_id, r.cookie})
                                    : deps.engine.clap({r.user, r.article, r.count, r.op_id, r.cookie});
  if (!ec) return;
  // The engine counts these refusals itself (engine_stats, rendered with
  // reason="store_full" and reason="op_ids"): not twice.
  if (ec != errc::store_full && ec != errc::too_many_op_ids)
    deps.metrics.reject(wire_name(ec) == "unavailable" ? clap_rejection::unavailable
                                                       : clap_rejection::invalid);
  deps.registry.refuse_op(r.cookie, ec);
}

}  // namespace claps::server
