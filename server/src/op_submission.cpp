#include "op_submission.hpp"

namespace claps::server {

namespace {

void apply(const service_deps& deps, const op_request& r) {
  std::error_code ec;
  if (r.undo) {
    ec = deps.engine.undo({r.user, r.article, r.op_id, r.cookie});
  } else {
    clap_request request;
    request.user = r.user;
    request.article = r.article;
    request.count = r.count;
    request.op_id = r.op_id;
    request.cookie = r.cookie;
    ec = deps.engine.clap(request);
  }
  if (!ec) return;
  deps.metrics.reject(wire_name(ec) == "unavailable" ? clap_rejection::unavailable : clap_rejection::invalid);
  deps.registry.refuse_op(r.cookie, ec);
}

} // namespace

void submit_op(const service_deps& deps, const op_request& request) { apply(deps, request); }

} // namespace claps::server
