#include "op_submission.hpp"

#include <memory>
#include <string>

namespace claps::server {

namespace {

void apply(const service_deps& deps, const op_request& r) {
  std::error_code ec;
  if (r.undo) {
    ec = deps.engine.undo(r.user, r.article, r.op_id, r.cookie);
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

void submit_op(const service_deps& deps, const op_request& request) {
  if (deps.cluster == nullptr) {
    apply(deps, request);
    return;
  }
  // The lookup outlives the caller's views, so the op owns its strings.
  struct owned_op {
    op_request request;
    std::string user, article, op_id;
  };
  auto op = std::make_shared<owned_op>(
      owned_op{request, std::string(request.user), std::string(request.article), std::string(request.op_id)});
  op->request.user = op->user;
  op->request.article = op->article;
  op->request.op_id = op->op_id;
  deps.cluster->before_op(
      op->user, op->article, op->op_id, op->request.undo, op->request.count,
      [deps, op] { apply(deps, op->request); },
      [deps, op](const cluster_node::prior_op& prior) {
        op_result result;
        result.cookie = op->request.cookie;
        result.article = prior.article;
        result.accepted = prior.accepted;
        result.mine = prior.mine;
        result.replayed = true;
        result.level = durability::cluster;
        snapshot now;
        if (!deps.engine.read(prior.article, {}, now)) result.total = now.total;
        deps.registry.complete_op(result);
      },
      [deps, op](std::error_code ec) {
        deps.metrics.reject(clap_rejection::unavailable);
        deps.registry.refuse_op(op->request.cookie, ec);
      });
}

} // namespace claps::server
