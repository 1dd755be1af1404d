#include "fanout.hpp"

#include "frames.hpp"

namespace claps::server {

engine_callbacks fanout::callbacks() {
  engine_callbacks cb;
  cb.encode = [](const article_update& update, std::string& out) { encode_update_frame(update, out); };
  cb.deliver_slice = [this](std::span<const delivery> slice) {
    depth_guard guard(depth_);
    // A slice names the next connections: their endpoint (and, a step
    // closer, lws's connection object) are fetched ahead, so the writes do
    // not each wait for cache misses at 20k connections.
    constexpr std::size_t ahead = 4;
    for (std::size_t i = 0; i < slice.size() && i < 2 * ahead; ++i)
      __builtin_prefetch(reinterpret_cast<const void*>(slice[i].subscriber));
    for (std::size_t i = 0; i < slice.size(); ++i) {
      if (i + 2 * ahead < slice.size())
        __builtin_prefetch(reinterpret_cast<const void*>(slice[i + 2 * ahead].subscriber));
      if (i + ahead < slice.size())
        if (const void* peer = endpoint_registry::subscriber(slice[i + ahead].subscriber).hot_peer)
          __builtin_prefetch(peer);
      endpoint_registry::subscriber(slice[i].subscriber).on_update(slice[i].updates, scratch_);
    }
  };
  cb.result = [this](const op_result& result) {
    depth_guard guard(depth_);
    if (result.error) {
      // Across nodes: another node kept holding the op id; the client retries it.
      if (on_refused) on_refused();
      registry_.refuse_op(result.cookie, result.error);
      return;
    }
    if (on_result) on_result(result);
    registry_.complete_op(result);
  };
  cb.tick_updates = [this](std::span<const article_update> updates) {
    if (on_tick) on_tick(updates);
  };
  cb.store_status = [this](std::error_code ec) {
    if (ec) log_.error("store commit failed: " + ec.message() + " (readyz now 503; retrying each tick)");
    else log_.info("store commits again");
  };
  return cb;
}

void fanout::release(engine& e, subscriber_id sub, std::unique_ptr<endpoint> owner) {
  if (depth_ > 0) {
    deferred_.push_back(sub);
    if (owner) graveyard_.push_back(std::move(owner));
  } else {
    e.unsubscribe_all(sub);
  }
}

void fanout::run_deferred(engine& e) {
  if (deferred_.empty() || depth_ > 0) return;
  auto subs = std::move(deferred_);
  deferred_.clear();
  for (auto sub : subs) e.unsubscribe_all(sub);
  graveyard_.clear();
}

}  // namespace claps::server
