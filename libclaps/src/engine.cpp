// The engine: rooms, cap and op-id checks at intake, and the per-tick
// coalescer that commits one batch and then fans out one update per changed
// article. See docs/architecture.md for the model.
#include "engine_impl.hpp"

#include <cstdio>
#include <cstdlib>
#include <string>
#include <unordered_set>

namespace claps {

void engine::impl::reentered() {
  std::fputs(
      "claps::engine: mutating call from inside an engine callback (only the const queries "
      "and set_remote() may be called there)\n",
      stderr);
  std::abort();
}

namespace {

// The first option out of range, with its value and the allowed range; empty when all are usable.
std::string check_options(const engine_options& o) {
  auto ms = [](millis m) { return std::to_string(m.count()) + " ms"; };
  if (o.tick < millis(1) || o.tick > millis(1000))
    return "engine_options::tick is " + ms(o.tick) + "; it must be 1..1000 ms";
  if (o.clap_cap < 1)
    return "engine_options::clap_cap is " + std::to_string(o.clap_cap) + "; it must be at least 1";
  if (o.op_id_window < millis(0))
    return "engine_options::op_id_window is " + ms(o.op_id_window) + "; it must be 0 ms or more";
  if (o.max_pending_ops < 1)
    return "engine_options::max_pending_ops is " + std::to_string(o.max_pending_ops) +
           "; it must be at least 1";
  if (o.op_id_cache < 1)
    return "engine_options::op_id_cache is " + std::to_string(o.op_id_cache) + "; it must be at least 1";
  if (o.op_id_wait < millis(0))
    return "engine_options::op_id_wait is " + ms(o.op_id_wait) + "; it must be 0 ms or more";
  if (o.viewer_update_interval < millis(0))
    return "engine_options::viewer_update_interval is " + ms(o.viewer_update_interval) +
           "; it must be 0 ms or more";
  return {};
}

}  // namespace

std::error_code validate(const engine_options& o, std::string& why) {
  why = check_options(o);
  return why.empty() ? std::error_code() : make_error_code(errc::bad_request);
}

std::error_code validate(const engine_options& o) noexcept {
  try {
    std::string why;
    return validate(o, why);
  } catch (...) {  // no memory for the sentence: the options are out of range
    return make_error_code(errc::bad_request);
  }
}

engine::engine(store& s, engine_options options, engine_callbacks callbacks, timestamp now)
    : impl_(std::make_unique<impl>(s, options, std::move(callbacks), now)) {
  if (std::string why; validate(options, why)) {
    std::fprintf(stderr, "claps::engine: options fail validate(): %s\n", why.c_str());
    std::abort();
  }
  s.attach(impl_.get());
}

engine::~engine() {
  impl& e = *impl_;
  *e.self = nullptr;  // a store completion after this does nothing
  e.committing = e.arbitrating = false;
  e.settle_all_unavailable();
  e.st.attach(nullptr);
}

std::error_code engine::subscribe(subscriber_id sub, std::string_view user, std::string_view article,
                                  bool reading, snapshot& out) {
  impl& e = *impl_;
  e.assert_not_in_callback();
  if (auto ec = check_article_id(article)) return ec;
  if (e.closing) return make_error_code(errc::unavailable);
  // Over the limit costs no store read (an article not in memory is watched by nobody).
  if (auto it = e.sub_index.find(sub); e.opt.max_subscriptions && it != e.sub_index.end() &&
                                       e.subs[it->second].watching.size() >= e.opt.max_subscriptions) {
    const std::uint32_t known = e.find_article(article);
    if (known == no_slot || !e.watches(it->second, known))
      return make_error_code(errc::too_many_subscriptions);
  }
  std::uint32_t slot = 0;
  std::int32_t mine = 0;
  bool global = true;
  if (auto ec = e.load_for_snapshot(article, user, slot, mine, global)) return ec;
  // The limit was checked above, before anything was loaded.
  std::uint32_t sub_slot = e.find_or_add_subscriber(sub);
  if (!e.watches(sub_slot, slot)) e.add_watch(sub_slot, slot, reading);
  e.fill_snapshot(slot, mine, global, out);
  e.wake_if_earlier();
  return {};
}

std::error_code engine::subscribe(subscriber_id sub, std::string_view user,
                                  std::span<const std::string_view> list, bool reading,
                                  std::vector<snapshot>& out) {
  impl& e = *impl_;
  e.assert_not_in_callback();
  if (!user.empty())
    if (auto ec = check_user_id(user)) return ec;
  for (std::string_view article : list)
    if (auto ec = check_article_id(article)) return ec;
  if (e.closing) return make_error_code(errc::unavailable);
  // The limit first, from memory alone (an article not in memory is watched by
  // nobody), so a request over it costs no store reads.
  auto it = e.sub_index.find(sub);
  const std::size_t have = it == e.sub_index.end() ? 0 : e.subs[it->second].watching.size();
  std::size_t adding = 0;
  std::unordered_set<std::string_view> seen;
  for (std::string_view article : list) {
    if (!seen.insert(article).second) continue;
    const std::uint32_t slot = e.find_article(article);
    if (slot == no_slot || it == e.sub_index.end() || !e.watches(it->second, slot)) ++adding;
  }
  if (e.opt.max_subscriptions && have + adding > e.opt.max_subscriptions)
    return make_error_code(errc::too_many_subscriptions);
  // Load everything first so a store error leaves nothing half done.
  std::vector<std::uint32_t> slots;
  std::vector<std::int32_t> mines;
  std::vector<bool> globals;
  slots.reserve(list.size());
  mines.reserve(list.size());
  for (std::string_view article : list) {
    std::uint32_t slot = 0;
    if (auto ec = e.find_or_load_article(article, slot)) return ec;
    std::int32_t mine = 0;
    if (auto ec = e.committed_mine(user, slot, mine)) return ec;
    slots.push_back(slot);
    mines.push_back(mine);
    globals.push_back(e.refresh_remote(slot));
  }
  if (slots.empty()) return {};
  std::uint32_t sub_slot = e.find_or_add_subscriber(sub);
  for (std::size_t i = 0; i < slots.size(); ++i) {
    if (!e.watches(sub_slot, slots[i])) e.add_watch(sub_slot, slots[i], reading);
    snapshot snap;
    e.fill_snapshot(slots[i], mines[i], globals[i], snap);
    out.push_back(snap);
  }
  e.wake_if_earlier();
  return {};
}

void engine::unsubscribe(subscriber_id sub, std::string_view article) {
  impl& e = *impl_;
  e.assert_not_in_callback();
  auto it = e.sub_index.find(sub);
  if (it == e.sub_index.end()) return;
  std::uint32_t slot = e.find_article(article);
  if (slot == no_slot) return;
  auto& watching = e.subs[it->second].watching;
  for (std::uint32_t pos = 0; pos < watching.size(); ++pos) {
    if (watching[pos].article == slot) {
      std::uint32_t sub_slot = it->second;
      e.remove_watch(sub_slot, pos);
      e.drop_subscriber_if_empty(sub_slot);
      e.wake_if_earlier();
      return;
    }
  }
}

void engine::unsubscribe_all(subscriber_id sub) {
  impl& e = *impl_;
  e.assert_not_in_callback();
  auto it = e.sub_index.find(sub);
  if (it == e.sub_index.end()) return;
  std::uint32_t sub_slot = it->second;
  while (!e.subs[sub_slot].watching.empty())
    e.remove_watch(sub_slot, static_cast<std::uint32_t>(e.subs[sub_slot].watching.size() - 1));
  e.drop_subscriber_if_empty(sub_slot);
  e.wake_if_earlier();
}

std::error_code engine::clap(const clap_request& r) {
  impl_->assert_not_in_callback();
  auto ec = impl_->apply(r.user, r.article, r.count, false, r.op_id, r.cookie);
  if (!ec) impl_->wake_if_earlier();
  return ec;
}

std::error_code engine::undo(const undo_request& r) {
  impl_->assert_not_in_callback();
  auto ec = impl_->apply(r.user, r.article, 0, true, r.op_id, r.cookie);
  if (!ec) impl_->wake_if_earlier();
  return ec;
}

void engine::advance(timestamp now) {
  impl& e = *impl_;
  e.assert_not_in_callback();
  if (now == timestamp::max()) return;  // next_deadline() of an idle engine: nothing to do
  if (now < e.next_tick) {
    e.now = std::max(e.now, now);
    if (e.delivering()) e.deliver_queued(e.opt.deliveries_per_slice);
    return;
  }
  e.in_tick = true;
  e.tick(now);
  e.in_tick = false;
}

void engine::flush(timestamp now) {
  impl& e = *impl_;
  e.assert_not_in_callback();
  e.in_tick = true;
  e.tick(now);
  e.in_tick = false;
  e.deliver_queued(0);
}

void engine::close(timestamp now) {
  impl& e = *impl_;
  e.assert_not_in_callback();
  e.closing = true;
  flush(now);
}

bool engine::closed() const noexcept {
  const impl& e = *impl_;
  return e.closing && idle() && e.changed_articles.empty() && !e.delivering();
}

void engine::on_wake(std::function<void()> wake) {
  impl_->assert_not_in_callback();
  impl_->wake = std::move(wake);
  impl_->deadline_told = timestamp::min();
}

void engine::set_remote(std::string_view article, std::int64_t remote_total, std::uint32_t remote_viewers) {
  impl_->set_remote(article, remote_total, remote_viewers);
  impl_->wake_if_earlier();
}

// Safe inside a callback: it only marks the article for the next emission.
void engine::impl::set_remote(std::string_view article, std::int64_t remote_total,
                              std::uint32_t remote_viewers) {
  std::uint32_t slot = find_article(article);
  if (slot == no_slot) return;
  article_state& a = *articles[slot];
  if (a.remote_total == remote_total && a.remote_viewers == remote_viewers) return;
  a.remote_total = remote_total;
  a.remote_viewers = remote_viewers;
  mark_changed(slot);
}

bool engine::impl::has_work() const {
  return delivering() || !changed_articles.empty() || !accumulating_results.empty() ||
         !ready_results.empty() || !intents.empty() || !dirty_articles.empty() || !dirty_tallies.empty() ||
         !dirty_ops.empty() || live_articles > opt.article_cache || tally_count > opt.tally_cache ||
         !st.space().accepts_new_keys;
}

timestamp engine::next_deadline() const noexcept {
  const timestamp d = impl_->deadline();
  impl_->deadline_told = d;
  return d;
}

bool engine::delivering() const noexcept { return impl_->delivering(); }

std::error_code engine::read(std::string_view user, std::string_view article, snapshot& out) {
  impl& e = *impl_;
  std::uint32_t slot = 0;
  std::int32_t mine = 0;
  bool global = true;
  if (auto ec = e.load_for_snapshot(article, user, slot, mine, global)) return ec;
  e.fill_snapshot(slot, mine, global, out);
  return {};
}

std::error_code engine::store_error() const noexcept { return impl_->last_error; }

bool engine::idle() const noexcept {
  const impl& e = *impl_;
  return !e.committing && !e.arbitrating && e.intents.empty() && e.dirty_articles.empty() &&
         e.dirty_tallies.empty() && e.dirty_ops.empty() && e.stats.pending_ops == 0;
}

std::size_t engine::subscription_count(subscriber_id sub) const noexcept {
  auto it = impl_->sub_index.find(sub);
  return it == impl_->sub_index.end() ? 0 : impl_->subs[it->second].watching.size();
}

engine_stats engine::stats() const noexcept {
  engine_stats s = impl_->stats;
  s.subscribers = impl_->sub_index.size();
  s.subscriptions = impl_->subscriptions;
  s.articles_cached = impl_->live_articles;
  s.deliveries_queued = impl_->delivery_queue.size() - impl_->delivery_pos;
  s.tallies_cached = impl_->tally_count;
  return s;
}

const engine_options& engine::options() const noexcept { return impl_->opt; }

}  // namespace claps
