#include "cluster_router.hpp"

#include <claps/error.hpp>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <charconv>
#include <cstring>

namespace claps::detail {

namespace {

constexpr std::uint64_t tick_ms = 250;            // map refresh cadence while not ready
constexpr std::uint64_t ready_refresh_ms = 5000;  // ... and while ready
constexpr std::uint64_t retry_ms = 50;            // TRYAGAIN, CLUSTERDOWN, a link still connecting
constexpr int max_redirects = 8;

std::uint64_t to_ms(millis m) { return m.count() > 0 ? static_cast<std::uint64_t>(m.count()) : 0; }

std::string key_of(const redis_endpoint& e) { return e.host + ":" + std::to_string(e.port); }

bool read_port(std::int64_t value, std::uint16_t& port) {
  if (value < 1 || value > 65535) return false;
  port = static_cast<std::uint16_t>(value);
  return true;
}

bool read_node(const redis_reply& r, const redis_endpoint& asked, redis_endpoint& out) {
  if (r.type != redis_reply::kind::array || r.elements.size() < 2 ||
      r.elements[0].type != redis_reply::kind::string || r.elements[1].type != redis_reply::kind::integer)
    return false;
  out.host = r.elements[0].str.empty() ? asked.host : r.elements[0].str;
  return !out.host.empty() && out.host != "?" && read_port(r.elements[1].integer, out.port);
}

}  // namespace

bool read_cluster_slots(const redis_reply& reply, const redis_endpoint& asked, std::vector<slot_range>& out) {
  if (reply.type != redis_reply::kind::array) return false;
  std::vector<slot_range> ranges;
  for (const redis_reply& e : reply.elements) {
    if (e.type != redis_reply::kind::array || e.elements.size() < 3 ||
        e.elements[0].type != redis_reply::kind::integer || e.elements[1].type != redis_reply::kind::integer)
      return false;
    const std::int64_t first = e.elements[0].integer, last = e.elements[1].integer;
    if (first < 0 || last < first || last >= static_cast<std::int64_t>(cluster_slot_count)) return false;
    slot_range range;
    range.first = static_cast<std::uint16_t>(first);
    range.last = static_cast<std::uint16_t>(last);
    if (!read_node(e.elements[2], asked, range.master)) return false;
    for (std::size_t i = 3; i < e.elements.size(); ++i) {
      redis_endpoint replica;
      if (read_node(e.elements[i], asked, replica)) range.replicas.push_back(std::move(replica));
    }
    ranges.push_back(std::move(range));
  }
  out = std::move(ranges);
  return true;
}

redirect read_redirect(std::string_view error, std::uint16_t& slot, redis_endpoint& to) {
  if (error.starts_with("TRYAGAIN")) return redirect::tryagain;
  if (error.starts_with("CLUSTERDOWN")) return redirect::clusterdown;
  redirect kind;
  if (error.starts_with("MOVED ")) {
    kind = redirect::moved;
    error.remove_prefix(6);
  } else if (error.starts_with("ASK ")) {
    kind = redirect::ask;
    error.remove_prefix(4);
  } else {
    return redirect::none;
  }
  const auto space = error.find(' ');
  if (space == std::string_view::npos) return redirect::none;
  unsigned number = 0;
  const std::string_view slot_text = error.substr(0, space);
  auto [end, ec] = std::from_chars(slot_text.data(), slot_text.data() + slot_text.size(), number);
  if (ec != std::errc{} || end != slot_text.data() + slot_text.size() || number >= cluster_slot_count)
    return redirect::none;
  const std::string_view address = error.substr(space + 1);
  const auto colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0) return redirect::none;
  unsigned port = 0;
  const std::string_view port_text = address.substr(colon + 1);
  auto [pend, pec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (pec != std::errc{} || pend != port_text.data() + port_text.size() || port < 1 || port > 65535)
    return redirect::none;
  slot = static_cast<std::uint16_t>(number);
  to.host = std::string(address.substr(0, colon));
  to.port = static_cast<std::uint16_t>(port);
  return kind;
}

// A request kept until it is answered by the master that owns its slot.
struct cluster_router::routed {
  std::uint16_t slot = 0;
  std::vector<std::string> args;  // copied: a redirect sends them again
  raw_handler done;
  std::uint64_t deadline = 0;
  int redirects = 0;
};

std::shared_ptr<cluster_router> cluster_router::create(uv_loop_t* loop, redis_options options) {
  std::shared_ptr<cluster_router> self(new cluster_router(loop, std::move(options)));
  self->start();
  return self;
}

cluster_router::cluster_router(uv_loop_t* loop, redis_options options)
    : loop_(loop),
      options_(std::move(options)),
      tick_timer_(loop, [this] { on_tick(); }),
      retry_timer_(loop, [this] { on_retry_timer(); }) {
  owner_.fill(-1);
  options_.sentinels.clear();
  options_.database = 0;  // a cluster has database 0 only
  candidates_ = options_.cluster;
}

cluster_router::~cluster_router() { close(); }

void cluster_router::start() { tick_timer_.start(0, tick_ms); }

std::uint64_t cluster_router::add_listener(events e) {
  const std::uint64_t id = next_listener_++;
  listeners_.emplace(id, std::move(e));
  return id;
}

void cluster_router::remove_listener(std::uint64_t id) { listeners_.erase(id); }

void cluster_router::notify(const std::function<void(const events&)>& fn) {
  const auto copy = listeners_;
  for (const auto& [id, e] : copy) fn(e);
}

void cluster_router::close() {
  if (closed_) return;
  closed_ = true;
  ready_ = false;
  tick_timer_.close();
  retry_timer_.close();
  if (probe_ != nullptr) probe_->close();
  probe_ = nullptr;
  for (auto& [key, l] : links_) l.conn->close();
  links_.clear();
  auto parked = std::move(parked_);
  parked_.clear();
  for (auto& [due, entry] : parked) entry.first->done(make_error_code(errc::store_disconnected), nullptr);
}

cluster_router::link& cluster_router::link_to(const redis_endpoint& endpoint) {
  const std::string key = key_of(endpoint);
  auto it = links_.find(key);
  if (it != links_.end()) return it->second;
  redis_options o = options_;
  o.cluster.clear();
  o.address = endpoint;
  connection_events e;
  std::weak_ptr<cluster_router> weak = weak_from_this();
  e.ready = [weak] {
    if (auto self = weak.lock()) self->update_ready({});
  };
  e.lost = [weak](std::error_code ec) {
    auto self = weak.lock();
    if (!self) return;
    // A failover promotes a replica elsewhere: ask for the map at once.
    self->refresh_wanted_ = true;
    self->update_ready(ec);
    self->ask_for_map();
  };
  link l{endpoint, new connection(loop_, std::move(o), std::move(e))};
  return links_.emplace(key, std::move(l)).first->second;
}

void cluster_router::close_link(const std::string& key) {
  const auto it = links_.find(key);
  if (it == links_.end()) return;
  const redis_client_stats& s = it->second.conn->stats;
  retired_.timeouts += s.timeouts;
  retired_.requests += s.requests;
  retired_.failed_requests += s.failed_requests;
  retired_.not_master += s.not_master;
  connection* conn = it->second.conn;
  links_.erase(it);
  conn->close();
}

const redis_endpoint* cluster_router::master_of(std::uint16_t slot) const noexcept {
  if (slot >= cluster_slot_count || owner_[slot] < 0) return nullptr;
  return &masters_[static_cast<std::size_t>(owner_[slot])];
}

std::vector<redis_endpoint> cluster_router::masters() const { return masters_; }

std::error_code cluster_router::send(std::uint16_t slot, std::span<const std::string_view> args,
                                     raw_handler done) {
  if (closed_ || !ready_) return make_error_code(errc::store_disconnected);
  const redis_endpoint* master = master_of(slot);
  if (master == nullptr) return make_error_code(errc::store_disconnected);
  auto r = std::make_shared<routed>();
  r->slot = slot;
  r->args.assign(args.begin(), args.end());
  r->done = std::move(done);
  r->deadline = uv_now(loop_) + to_ms(options_.request_timeout);
  // A slot a MOVED pointed at a master still connecting waits for it, within the deadline.
  dispatch(r, nullptr);
  return {};
}

// Sends `r` to the master of its slot (or to `ask`, preceded by ASKING);
// while that link is not ready yet, waits for it within the deadline.
void cluster_router::dispatch(const std::shared_ptr<routed>& r, const redis_endpoint* ask) {
  if (closed_) {
    r->done(make_error_code(errc::store_disconnected), nullptr);
    return;
  }
  const redis_endpoint* target = ask != nullptr ? ask : master_of(r->slot);
  if (target == nullptr || !link_to(*target).conn->ready()) {
    park(r, retry_ms, ask);
    return;
  }
  connection* conn = link_to(*target).conn;
  std::shared_ptr<cluster_router> self = shared_from_this();
  if (ask != nullptr) {
    // Pipelined on one link: ASKING applies to the command right after it.
    const std::string_view asking[] = {"ASKING"};
    if (conn->send(asking, [](std::error_code, redisReply*) {})) {
      park(r, retry_ms, ask);
      return;
    }
  }
  std::vector<std::string_view> views(r->args.begin(), r->args.end());
  if (conn->send(views, [self, r](std::error_code ec, redisReply* reply) { self->on_reply(r, ec, reply); }))
    park(r, retry_ms, ask);
}

void cluster_router::on_reply(const std::shared_ptr<routed>& r, std::error_code ec, redisReply* reply) {
  if (ec || closed_ || reply->type != REDIS_REPLY_ERROR || reply->str == nullptr) {
    r->done(ec, reply);
    return;
  }
  std::uint16_t slot = 0;
  redis_endpoint to;
  const redirect what = read_redirect(std::string_view(reply->str, reply->len), slot, to);
  if (what == redirect::none || r->redirects >= max_redirects || uv_now(loop_) >= r->deadline) {
    r->done(ec, reply);
    return;
  }
  ++r->redirects;
  switch (what) {
  case redirect::moved: {
    ++stats_.moved;
    // Follow at once; the rest of the map is probably moving too.
    auto found = std::find_if(masters_.begin(), masters_.end(), [&](const redis_endpoint& m) {
      return m.host == to.host && m.port == to.port;
    });
    if (found == masters_.end()) found = masters_.insert(masters_.end(), to);
    const auto index = static_cast<std::int16_t>(found - masters_.begin());
    const bool changed = owner_[slot] != index;
    owner_[slot] = index;
    refresh_wanted_ = true;
    dispatch(r, nullptr);
    if (changed)
      notify([](const events& e) {
        if (e.map_changed) e.map_changed();
      });
    break;
  }
  case redirect::ask:
    ++stats_.ask;
    dispatch(r, &to);
    break;
  default:
    ++stats_.tryagain;
    park(r, retry_ms, nullptr);
    break;
  }
}

void cluster_router::park(const std::shared_ptr<routed>& r, std::uint64_t delay_ms,
                          const redis_endpoint* ask) {
  const std::uint64_t now = uv_now(loop_);
  if (now + delay_ms >= r->deadline) {
    r->done(make_error_code(errc::store_timeout), nullptr);
    return;
  }
  parked_.emplace(now + delay_ms, std::pair{r, ask != nullptr ? *ask : redis_endpoint{"", 0}});
  retry_timer_.start(parked_.begin()->first > now ? parked_.begin()->first - now : 0);
}

void cluster_router::on_retry_timer() {
  const std::uint64_t now = uv_now(loop_);
  std::vector<std::pair<std::shared_ptr<routed>, redis_endpoint>> due;
  while (!parked_.empty() && parked_.begin()->first <= now) {
    due.push_back(std::move(parked_.begin()->second));
    parked_.erase(parked_.begin());
  }
  if (!parked_.empty()) retry_timer_.start(parked_.begin()->first - now);
  for (auto& [r, ask] : due) dispatch(r, ask.port != 0 ? &ask : nullptr);
}

void cluster_router::refresh_soon() {
  refresh_wanted_ = true;
  ask_for_map();
}

void cluster_router::on_tick() {
  const std::uint64_t now = uv_now(loop_);
  if (probe_ != nullptr && !probe_->ready() && now - probe_started_ >= to_ms(options_.connect_timeout)) {
    // That seed does not answer: try the next one.
    probe_->close();
    probe_ = nullptr;
    map_asked_at_ = 0;
  }
  if (map_asked_at_ != 0 && now - map_asked_at_ >= to_ms(options_.request_timeout)) map_asked_at_ = 0;
  if (!ready_ || now - map_read_at_ >= ready_refresh_ms) refresh_wanted_ = true;
  ask_for_map();
}

// One question at a time: on a ready master link, else on a probe link to
// the next candidate (a seed, or any node of an earlier map).
void cluster_router::ask_for_map() {
  if (closed_ || !refresh_wanted_ || map_asked_at_ != 0) return;
  const std::string_view args[] = {"CLUSTER", "SLOTS"};
  std::weak_ptr<cluster_router> weak = weak_from_this();
  for (auto& [key, l] : links_) {
    if (!l.conn->ready()) continue;
    const redis_endpoint asked = l.endpoint;
    if (!l.conn->send(args, [weak, asked](std::error_code ec, redisReply* r) {
          if (auto self = weak.lock()) self->on_map(asked, ec, r);
        })) {
      refresh_wanted_ = false;
      map_asked_at_ = uv_now(loop_);
      return;
    }
  }
  if (probe_ != nullptr || candidates_.empty()) return;
  const redis_endpoint target = candidates_[next_candidate_++ % candidates_.size()];
  redis_options o = options_;
  o.cluster.clear();
  o.address = target;
  connection_events e;
  e.ready = [weak, target] {
    auto self = weak.lock();
    if (!self || self->probe_ == nullptr) return;
    const std::string_view ask[] = {"CLUSTER", "SLOTS"};
    if (!self->probe_->send(ask, [weak, target](std::error_code ec, redisReply* r) {
          auto self = weak.lock();
          if (!self) return;
          self->on_map(target, ec, r);
          if (self->probe_ != nullptr) {
            self->probe_->close();  // deferred by hiredis until this callback returns
            self->probe_ = nullptr;
          }
        })) {
      self->refresh_wanted_ = false;
      self->map_asked_at_ = uv_now(self->loop_);
    }
  };
  probe_ = new connection(loop_, std::move(o), std::move(e), {}, {});
  probe_started_ = uv_now(loop_);
}

void cluster_router::on_map(const redis_endpoint& asked, std::error_code ec, redisReply* reply) {
  map_asked_at_ = 0;
  if (closed_) return;
  std::vector<slot_range> ranges;
  if (ec || !read_cluster_slots(convert(*reply), asked, ranges)) {
    refresh_wanted_ = true;  // the next tick asks again
    return;
  }
  map_read_at_ = uv_now(loop_);
  ++stats_.slot_map_refreshes;
  apply_map(ranges);
}

void cluster_router::apply_map(const std::vector<slot_range>& ranges) {
  std::vector<redis_endpoint> masters;
  std::array<std::int16_t, cluster_slot_count> owner;
  owner.fill(-1);
  std::vector<redis_endpoint> candidates = options_.cluster;
  for (const slot_range& range : ranges) {
    auto found = std::find_if(masters.begin(), masters.end(), [&](const redis_endpoint& m) {
      return m.host == range.master.host && m.port == range.master.port;
    });
    if (found == masters.end()) found = masters.insert(masters.end(), range.master);
    const auto index = static_cast<std::int16_t>(found - masters.begin());
    for (std::size_t s = range.first; s <= range.last; ++s) owner[s] = index;
    candidates.push_back(range.master);
    candidates.insert(candidates.end(), range.replicas.begin(), range.replicas.end());
  }
  bool changed = masters_.empty() && !masters.empty();
  for (std::size_t s = 0; s < cluster_slot_count && !changed; ++s) {
    const redis_endpoint* before = master_of(static_cast<std::uint16_t>(s));
    const bool had = before != nullptr, has = owner[s] >= 0;
    if (had != has) changed = true;
    else if (has) {
      const redis_endpoint& now = masters[static_cast<std::size_t>(owner[s])];
      changed = now.host != before->host || now.port != before->port;
    }
  }
  masters_ = std::move(masters);
  owner_ = owner;
  candidates_ = std::move(candidates);
  for (const redis_endpoint& m : masters_) link_to(m);
  std::vector<std::string> stale;
  for (const auto& entry : links_) {
    const redis_endpoint& e = entry.second.endpoint;
    const bool master = std::any_of(masters_.begin(), masters_.end(), [&](const redis_endpoint& m) {
      return m.host == e.host && m.port == e.port;
    });
    if (!master) stale.push_back(entry.first);
  }
  for (const std::string& key : stale) close_link(key);
  update_ready(make_error_code(errc::store_disconnected));
  if (changed)
    notify([](const events& e) {
      if (e.map_changed) e.map_changed();
    });
  notify([](const events& e) {
    if (e.map_checked) e.map_checked();
  });
}

void cluster_router::update_ready(std::error_code why) {
  if (closed_) return;
  bool now_ready = !masters_.empty();
  for (std::size_t s = 0; s < cluster_slot_count && now_ready; ++s) now_ready = owner_[s] >= 0;
  for (const redis_endpoint& m : masters_) {
    if (!now_ready) break;
    const auto it = links_.find(key_of(m));
    now_ready = it != links_.end() && it->second.conn->ready();
  }
  if (now_ready == ready_) return;
  ready_ = now_ready;
  if (ready_) {
    ++stats_.connects;
    notify([](const events& e) {
      if (e.ready) e.ready();
    });
  } else {
    ++stats_.disconnects;
    notify([&](const events& e) {
      if (e.lost) e.lost(why ? why : make_error_code(errc::store_disconnected));
    });
  }
}

redis_client_stats cluster_router::stats() const {
  redis_client_stats s = stats_;
  s.timeouts += retired_.timeouts;
  s.requests += retired_.requests;
  s.failed_requests += retired_.failed_requests;
  s.not_master += retired_.not_master;
  for (const auto& [key, l] : links_) {
    s.timeouts += l.conn->stats.timeouts;
    s.requests += l.conn->stats.requests;
    s.failed_requests += l.conn->stats.failed_requests;
    s.not_master += l.conn->stats.not_master;
  }
  return s;
}

}  // namespace claps::detail
