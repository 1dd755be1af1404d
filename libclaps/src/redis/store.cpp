// redis_store: the public API, connecting, the node id claim and degraded
// mode. The write path, the journal and the remote view have files of their
// own (see store_impl.hpp). docs/design.md says why this keeps every
// acknowledged clap while Redis fails over.
#include "store_impl.hpp"

#include <cassert>
#include <map>

namespace claps {

redis_store::impl::impl(uv_loop_t* l, store& lo, redis_client& c, redis_bus& b, redis_store_options o,
                        redis_store_callbacks cb)
    : loop(l),
      local(lo),
      client(c),
      bus(b),
      options(std::move(o)),
      callbacks(std::move(cb)),
      flush_timer(l, [this] { flush(); }),
      heartbeat_timer(l, [this] { heartbeat(); }),
      refresh_timer(l, [this] { refresh_all(); }) {}

std::string redis_store::impl::key(std::string_view kind, std::string_view tag, std::string_view rest,
                                   std::string_view more) const {
  std::string k = options.key_prefix;
  k.append(kind);
  k.append(":{");
  k.append(tag);
  k.push_back('}');
  if (!rest.empty()) k.append(":").append(rest);
  if (!more.empty()) k.append(":").append(more);
  return k;
}

// On every connect: claim the node id, then catch up.
void redis_store::impl::claim_then_catch_up() {
  claimed = options.owner.empty();
  if (claimed) {
    catch_up();
    return;
  }
  const std::string args[] = {key("node", options.node_id), options.owner};
  (void)client.eval(detail::scripts::claim_node, 1, args,
                    [this, alive = token()](std::error_code ec, const redis_reply& r) {
                      if (alive.expired() || ec) return;  // a failed request reconnects, and claims again
                      if (r.type == redis_reply::kind::integer && r.integer == 1) {
                        stats.node_id_taken = false;
                        claimed = true;
                        catch_up();
                        return;
                      }
                      stats.node_id_taken = true;
                      update_degraded();
                      if (callbacks.node_id_taken) callbacks.node_id_taken(r.str);
                    });
  update_degraded();
}

void redis_store::impl::catch_up() {
  announce();
  reassert();
  check_marker();
  refresh_all();
  update_degraded();
}

void redis_store::impl::update_degraded() {
  // Still degraded while Redis lacks keys of this node: dirty ones, a
  // re-assertion in flight, or a full walk of the journal due or running.
  const bool now_degraded = !writable() || reasserting || walking || walk_pending ||
                            !dirty_articles.empty() || !dirty_tallies.empty() || !dirty_ops.empty();
  stats.dirty_keys = dirty_articles.size() + dirty_tallies.size() + dirty_ops.size();
  if (now_degraded == degraded) return;
  degraded = now_degraded;
  if (callbacks.degraded) callbacks.degraded(degraded);
}

void redis_store::impl::enqueue(std::function<void(bool run)> task) {
  background.push_back(std::move(task));
  pump();
}

void redis_store::impl::pump() {
  while (!open.open && background_in_flight < max_background_in_flight && !background.empty()) {
    auto task = std::move(background.front());
    background.pop_front();
    task(writable());
  }
}

void redis_store::impl::background_done() {
  --background_in_flight;
  pump();
}

// Accounts for one request of `state`: sent (its completion must settle()
// it) or refused (the write failed).
void redis_store::impl::track(std::error_code send_error, const std::shared_ptr<write_state>& state,
                              bool paced) {
  if (send_error) {
    state->failed = true;
    return;
  }
  ++state->outstanding;
  if (paced) background_sent();
}

void redis_store::impl::settle(const std::shared_ptr<write_state>& state) {
  if (--state->outstanding == 0) state->finish(!state->failed);
}

redis_store::redis_store(uv_loop_t* loop, store& local, redis_client& client, redis_bus& bus,
                         redis_store_options options, redis_store_callbacks callbacks)
    : impl_(std::make_unique<impl>(loop, local, client, bus, std::move(options), std::move(callbacks))) {
  assert(valid_id(impl_->options.node_id, max_user_id_bytes));
  impl* self = impl_.get();
  self->clustered = !client.options().cluster.empty();
  redis_client_callbacks on_client;
  on_client.connected = [self](const redis_endpoint&) { self->claim_then_catch_up(); };
  on_client.disconnected = [self](std::error_code) {
    self->claimed = self->options.owner.empty();
    self->update_degraded();
    // The other nodes' parts are no longer kept current.
    for (auto& [article, ra] : self->remote) ra.viewers_known = false;
  };
  self->client_listener = client.add_listener(std::move(on_client));
  redis_bus_callbacks on_bus;
  on_bus.message = [self](std::string_view article, std::string_view payload) {
    self->on_message(article, payload);
  };
  on_bus.resubscribed = [self] { self->refresh_all(); };
  self->bus_listener = bus.add_listener(std::move(on_bus));
  const auto heartbeat = static_cast<std::uint64_t>(self->options.heartbeat_interval.count());
  const auto refresh = static_cast<std::uint64_t>(self->options.refresh_interval.count());
  self->heartbeat_timer.start(heartbeat, heartbeat);
  self->refresh_timer.start(refresh, refresh);
  self->claimed = self->options.owner.empty();
  self->degraded = true;
  if (client.ready()) self->claim_then_catch_up();
}

redis_store::~redis_store() { close(); }

void redis_store::close() {
  impl& p = *impl_;
  if (p.closed) return;
  p.client.remove_listener(p.client_listener);
  p.bus.remove_listener(p.bus_listener);
  for (const auto& [article, ra] : p.remote)
    if (ra.watched) p.bus.unwatch(article);
  p.remote.clear();
  p.closed = true;
  p.flush_timer.close();
  p.heartbeat_timer.close();
  p.refresh_timer.close();
  p.background.clear();
  p.update_degraded();
}

std::error_code redis_store::read_total(std::string_view article, std::int64_t& total) {
  return impl_->local.read_total(article, total);
}

std::error_code redis_store::read_tally(std::string_view user, std::string_view article,
                                        std::int32_t& claps) {
  return impl_->local.read_tally(user, article, claps);
}

std::error_code redis_store::read_op(std::string_view user, std::string_view article, std::string_view op_id,
                                     stored_op& out, bool& found) {
  return impl_->local.read_op(user, article, op_id, out, found);
}

std::error_code redis_store::reserve_versions(std::uint64_t count, std::uint64_t& first) {
  return impl_->local.reserve_versions(count, first);
}

std::error_code redis_store::read_journal(journal_table table, std::string_view after, std::size_t max,
                                          std::vector<journal_row>& out, std::string& next) {
  return impl_->local.read_journal(table, after, max, out, next);
}

void redis_store::commit(const commit_batch& batch, commit_handler done) {
  impl_->commit(batch, std::move(done));
}

std::error_code redis_store::arbitrate(std::span<const op_intent> intents, arbitrate_handler done) {
  return impl_->arbitrate(intents, std::move(done));
}

void redis_store::room_changed(std::string_view article, bool watched, std::uint32_t viewers) {
  impl_->room_changed(article, watched, viewers);
}

void redis_store::attach(store_listener* listener) { impl_->listener = listener; }

store_space redis_store::space() const { return impl_->local.space(); }

std::int32_t redis_store::remote_tally(std::string_view user, std::string_view article) {
  const auto it = impl_->remote_tallies.find(detail::tally_key(user, article));
  return it == impl_->remote_tallies.end() ? 0 : it->second;
}

bool redis_store::remote_part(std::string_view article, std::int64_t& total, std::uint32_t& viewers) {
  const impl& p = *impl_;
  if (p.closed || !p.client.ready()) return false;
  const auto it = p.remote.find(std::string(article));
  if (it == p.remote.end() || !it->second.viewers_known) return false;
  if (!it->second.watched &&
      uv_now(p.loop) - it->second.loaded_at > static_cast<std::uint64_t>(p.options.refresh_interval.count()))
    return false;
  total = it->second.total;
  viewers = it->second.viewers;
  return true;
}

std::vector<redis_node_info> redis_store::nodes() const {
  const impl& p = *impl_;
  std::map<std::string, redis_node_info, std::less<>> by_id;
  auto row = [&](std::string_view id) -> redis_node_info& {
    auto it = by_id.find(id);
    if (it == by_id.end()) {
      it = by_id.emplace(std::string(id), redis_node_info{}).first;
      it->second.node_id = std::string(id);
      it->second.self = id == p.options.node_id;
    }
    return it->second;
  };
  const std::uint64_t now = uv_now(p.loop);
  const std::uint64_t since_heard = now >= p.node_ages_heard_at ? now - p.node_ages_heard_at : 0;
  for (const auto& [id, age] : p.node_ages) {
    redis_node_info& n = row(id);
    n.heartbeat_age_ms = age + since_heard;
    n.live = *n.heartbeat_age_ms < static_cast<std::uint64_t>(p.options.viewer_ttl.count());
  }
  redis_node_info& self = row(p.options.node_id);
  for (const auto& [article, o] : p.own) {
    self.viewers += o.viewers;
    if (o.total_known) self.total += o.total;
    ++self.articles;
  }
  for (const auto& [article, ra] : p.remote) {
    for (const auto& [id, part] : ra.parts) {
      redis_node_info& n = row(id);
      n.total += part.total;
      n.viewers += part.viewers;
      ++n.articles;
    }
  }
  std::vector<redis_node_info> out;
  out.reserve(by_id.size());
  for (auto& [id, n] : by_id) out.push_back(std::move(n));
  return out;
}

bool redis_store::degraded() const noexcept { return impl_->degraded; }

redis_store_stats redis_store::stats() const noexcept {
  redis_store_stats s = impl_->stats;
  s.degraded = impl_->degraded;
  s.walking_journal = impl_->walking || impl_->walk_pending;
  s.dirty_keys = impl_->dirty_articles.size() + impl_->dirty_tallies.size() + impl_->dirty_ops.size();
  s.recent_keys = impl_->recent_articles.size() + impl_->recent_tallies.size() + impl_->recent_ops.size();
  return s;
}

}  // namespace claps
