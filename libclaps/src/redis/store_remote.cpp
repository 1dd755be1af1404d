// redis_store's view of the other nodes: their parts of the articles this
// node watches (kept current by the bus and a periodic re-read) or reads once
// (load()), this node's viewer counts in Redis, and what it publishes.
#include "store_impl.hpp"

namespace claps {

void redis_store::impl::room_changed(std::string_view article, bool watched, std::uint32_t viewers) {
  if (closed) return;
  const std::string id(article);
  detail::own_article& o = own[id];
  if (o.viewers != viewers) {
    o.viewers = viewers;
    viewer_marks.insert(id);
    mark_publish(id);
  }
  auto it = remote.find(id);
  if (watched && (it == remote.end() || !it->second.watched)) {
    if (it == remote.end()) it = remote.try_emplace(id).first;
    it->second.watched = true;
    bus.watch(article);
    refresh(id);
  } else if (!watched && it != remote.end() && it->second.watched) {
    remote.erase(it);
    bus.unwatch(article);
  }
}

void redis_store::impl::mark_publish(std::string_view article) {
  publish_marks.emplace(article);
  if (!flush_timer.active()) flush_timer.start(0);
}

void redis_store::impl::send_viewers(const std::string& article, std::uint32_t viewers, bool paced) {
  const std::string args[] = {key("v", article), options.node_id, std::to_string(viewers),
                              std::to_string(options.viewer_ttl.count())};
  const std::error_code ec = client.eval(detail::scripts::write_viewers, 1, args,
                                         [this, alive = token(), paced](std::error_code, const redis_reply&) {
                                           if (!alive.expired() && paced) background_done();
                                         });
  if (!ec && paced) background_sent();
}

// One message per changed article per loop iteration, carrying this node's
// absolute total and viewers: "node version total viewers". Totals are
// published only once the journal holds them.
void redis_store::impl::flush() {
  auto viewers = std::move(viewer_marks);
  auto publishes = std::move(publish_marks);
  viewer_marks.clear();
  publish_marks.clear();
  if (!writable()) return;  // heartbeat and re-assertion catch up after reconnecting
  for (const std::string& article : viewers) {
    const auto it = own.find(article);
    send_viewers(article, it == own.end() ? 0 : it->second.viewers);
  }
  for (const std::string& article : publishes) {
    detail::own_article& o = own[article];
    if (!o.total_known) {
      std::int64_t total = 0;
      if (!local.read_total(article, total)) {
        o.total = total;
        o.total_known = true;
      }
    }
    const std::string payload = detail::part_message_payload(options.node_id, o.version, o.total, o.viewers);
    if (!bus.publish(article, payload)) ++stats.published;
    // Kept only while someone here watches it (its viewer count is heartbeated).
    const auto it = remote.find(article);
    if (o.viewers == 0 && (it == remote.end() || !it->second.watched)) own.erase(article);
  }
}

void redis_store::impl::heartbeat() {
  if (!writable()) return;
  announce();
  if (!background_busy()) {
    for (const auto& [article, o] : own) {
      if (o.viewers == 0) continue;
      enqueue([this, article = article](bool run) {
        const auto it = own.find(article);
        if (run && it != own.end() && it->second.viewers > 0) send_viewers(article, it->second.viewers, true);
      });
    }
  }
  if (!dirty_articles.empty() || !dirty_tallies.empty() || !dirty_ops.empty()) reassert();
  if (walk_pending && !walking) walk_journal();
}

// One script call per heartbeat, whatever the number of articles: the
// admin page's table of nodes costs Redis nothing per clap or per view.
void redis_store::impl::announce() {
  if (!writable()) return;
  // Forgotten after a day: a node id that stopped for good leaves the table.
  const std::string args[] = {key("hb", "nodes"), options.node_id, "86400000"};
  (void)client.eval(detail::scripts::node_heartbeat, 1, args,
                    [this, alive = token()](std::error_code ec, const redis_reply& r) {
                      if (alive.expired() || ec || r.type != redis_reply::kind::array) return;
                      node_ages.clear();
                      for (std::size_t i = 0; i + 1 < r.elements.size(); i += 2) {
                        const redis_reply& age = r.elements[i + 1];
                        if (r.elements[i].type != redis_reply::kind::string ||
                            age.type != redis_reply::kind::integer || age.integer < 0)
                          continue;
                        node_ages[r.elements[i].str] = static_cast<std::uint64_t>(age.integer);
                      }
                      node_ages_heard_at = uv_now(loop);
                    });
}

void redis_store::impl::recompute(const std::string& article, detail::remote_article& ra) {
  std::int64_t total = 0;
  std::uint32_t viewers = 0;
  detail::sum_parts(ra, total, viewers);
  if (total == ra.total && viewers == ra.viewers) return;
  ra.total = total;
  ra.viewers = viewers;
  if (listener != nullptr) listener->remote_changed(article, total, viewers);
}

// Folds a reply's parts of `article` in (see detail::fold_parts).
bool redis_store::impl::merge_parts(const std::string& article, const redis_reply& totals,
                                    const redis_reply* viewers) {
  if (totals.type != redis_reply::kind::array) return false;
  // An article nobody here watches gets an entry too: a full read (load())
  // is trusted for refresh_interval; an arbitration's totals tell the engine
  // the global total for its acks, and are pruned with the loaded ones.
  detail::remote_article& ra = remote.try_emplace(article).first->second;
  detail::fold_parts(ra, totals, viewers, options.node_id);
  if (viewers != nullptr) ra.loaded_at = uv_now(loop);
  recompute(article, ra);
  return true;
}

void redis_store::impl::refresh(const std::string& article, bool paced) {
  const std::string args[] = {key("t", article), key("v", article), options.node_id};
  const std::error_code sent =
      client.eval(detail::scripts::read_article, 2, args,
                  [this, alive = token(), article, paced](std::error_code ec, const redis_reply& r) {
                    if (alive.expired()) return;
                    if (paced) background_done();
                    const auto it = remote.find(article);
                    if (ec || it == remote.end() || !it->second.watched) return;  // unwatched meanwhile
                    if (r.type == redis_reply::kind::array && r.elements.size() == 3)
                      merge_parts(article, r.elements[0], &r.elements[1]);
                  });
  if (!sent && paced) background_sent();
}

void redis_store::impl::refresh_all() {
  prune_loaded();
  if (!writable() || background_busy()) return;
  for (const auto& [article, ra] : remote) {
    if (!ra.watched) continue;
    enqueue([this, article = article](bool run) {
      const auto it = remote.find(article);
      if (run && it != remote.end() && it->second.watched) refresh(article, true);
    });
  }
}

// Parts read once for an unwatched article are dropped once stale; run with
// every refresh round, not per read, since it walks the whole map.
void redis_store::impl::prune_loaded() {
  const std::uint64_t now = uv_now(loop);
  const auto ttl = static_cast<std::uint64_t>(options.refresh_interval.count());
  std::erase_if(remote, [&](const auto& e) { return !e.second.watched && now - e.second.loaded_at > ttl; });
}

void redis_store::impl::on_message(std::string_view article, std::string_view payload) {
  const auto it = remote.find(std::string(article));
  if (it == remote.end()) return;
  detail::part_message m;
  if (!detail::read_part_message(payload, m)) return;
  if (m.node == options.node_id) return;  // our own echo
  ++stats.remote_messages;
  detail::node_part& part = it->second.parts[std::string(m.node)];
  if (m.version >= part.version) {
    part.version = m.version;
    part.total = m.total;
  }
  part.viewers = m.viewers;  // one publisher connection per node keeps these in order
  recompute(it->first, it->second);
}

std::error_code redis_store::load(std::string_view user, std::span<const std::string_view> articles,
                                  std::function<void(std::error_code)> done) {
  impl* self = impl_.get();
  if (self->closed || !self->client.ready()) return make_error_code(errc::store_disconnected);
  struct loading {
    std::size_t waiting = 1;
    std::error_code ec;
    std::function<void(std::error_code)> done;
  };
  auto l = std::make_shared<loading>();
  l->done = std::move(done);
  auto finish = [l](std::error_code ec) {
    if (ec && !l->ec) l->ec = ec;
    if (--l->waiting == 0) l->done(l->ec);
  };
  std::size_t sent_count = 0;
  for (std::string_view article : articles) {
    std::vector<std::string> args{self->key("t", article), self->key("v", article)};
    if (!user.empty()) args.push_back(self->key("u", article, user));
    args.push_back(self->options.node_id);
    ++l->waiting;
    const std::error_code sent = self->client.eval(
        detail::scripts::read_article, args.size() - 1, args,
        [self, alive = self->token(), finish, article = std::string(article),
         tkey = user.empty() ? std::string() : detail::tally_key(user, article)](std::error_code ec,
                                                                                 const redis_reply& r) {
          if (alive.expired()) return;
          if (!ec && (r.type != redis_reply::kind::array || r.elements.size() != 3))
            ec = make_error_code(errc::store_io);
          if (!ec) {
            self->merge_parts(article, r.elements[0], &r.elements[1]);
            if (!tkey.empty())
              self->set_remote_tally(tkey, static_cast<std::int32_t>(detail::reply_int(r.elements[2])));
          }
          finish(ec);
        });
    if (sent) {
      --l->waiting;
      l->ec = sent;
    } else {
      ++sent_count;
    }
  }
  if (sent_count == 0) {
    l->done = nullptr;  // a failed call never runs its callback
    return articles.empty() ? make_error_code(errc::bad_request) : make_error_code(errc::store_disconnected);
  }
  finish({});  // the loop's own hold
  return {};
}

bool redis_store::loaded(std::string_view user, std::span<const std::string_view> articles) {
  if (!user.empty()) return false;  // the user's claps through other nodes are read afresh
  std::int64_t total = 0;
  std::uint32_t viewers = 0;
  for (std::string_view article : articles)
    if (!remote_part(article, total, viewers)) return false;
  return true;
}

}  // namespace claps
