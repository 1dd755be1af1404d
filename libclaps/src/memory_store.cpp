#include <claps/error.hpp>
#include <claps/memory_store.hpp>

#include <map>
#include <string>

namespace claps {

// Ordered maps keyed like lmdb_store's tables, so a journal walk visits one
// article's rows together: tallies "article/user", ops "article/user/op".
struct memory_store::impl {
  std::map<std::string, std::int64_t, std::less<>> totals;
  std::map<std::string, std::int32_t, std::less<>> tallies;
  std::map<std::string, stored_op, std::less<>> ops;
  std::multimap<timestamp, std::string> op_expiry;
  std::size_t commits = 0;

  static std::string key(std::string_view a, std::string_view b, std::string_view c = {}) {
    std::string k;
    k.reserve(a.size() + 2 + b.size() + c.size());
    k.append(a).push_back('/');
    k.append(b);
    if (!c.empty()) k.append("/").append(c);
    return k;
  }

  template <class Map, class Fill>
  static void walk(const Map& m, std::string_view after_view, std::size_t max, std::vector<journal_row>& out,
                   std::string& next, Fill fill) {
    const std::string after(after_view);  // may view `next`
    next.clear();
    auto it = after.empty() ? m.begin() : m.upper_bound(after);
    for (std::size_t n = 0; n < max && it != m.end(); ++n, ++it) {
      journal_row row;
      fill(it->first, it->second, row);
      out.push_back(std::move(row));
      next = it->first;
    }
    if (it == m.end()) next.clear();
  }
};

memory_store::memory_store() : impl_(std::make_unique<impl>()) {}
memory_store::~memory_store() = default;
memory_store::memory_store(memory_store&&) noexcept = default;
memory_store& memory_store::operator=(memory_store&&) noexcept = default;

std::error_code memory_store::read_total(std::string_view article, std::int64_t& total) {
  auto it = impl_->totals.find(article);
  total = it == impl_->totals.end() ? 0 : it->second;
  return {};
}

std::error_code memory_store::read_tally(std::string_view user, std::string_view article,
                                         std::int32_t& claps) {
  auto it = impl_->tallies.find(impl::key(article, user));
  claps = it == impl_->tallies.end() ? 0 : it->second;
  return {};
}

std::error_code memory_store::read_op(std::string_view user, std::string_view article, std::string_view op_id,
                                      stored_op& out, bool& found) {
  auto it = impl_->ops.find(impl::key(article, user, op_id));
  found = it != impl_->ops.end();
  if (found) out = it->second;
  return {};
}

// op_expiry may still hold entries of records rewritten since: the latest
// of them is never earlier than the latest record's.
bool memory_store::op_records_expire_by(timestamp& out) {
  out = impl_->op_expiry.empty() ? timestamp::min() : impl_->op_expiry.rbegin()->first;
  return true;
}

void memory_store::commit(const commit_batch& batch, commit_handler done) {
  for (const auto& t : batch.totals) impl_->totals[std::string(t.article)] = t.total;
  for (const auto& t : batch.tallies) {
    if (t.claps == 0) impl_->tallies.erase(impl::key(t.article, t.user));
    else impl_->tallies[impl::key(t.article, t.user)] = t.claps;
  }
  for (const auto& op : batch.ops) {
    auto k = impl::key(op.article, op.user, op.op_id);
    impl_->ops[k] = stored_op{op.accepted, op.mine, op.expires_at};
    impl_->op_expiry.emplace(op.expires_at, std::move(k));
  }
  while (!impl_->op_expiry.empty() && impl_->op_expiry.begin()->first <= batch.now) {
    auto it = impl_->ops.find(impl_->op_expiry.begin()->second);
    // A newer record under the same key may have replaced the one that expired.
    if (it != impl_->ops.end() && it->second.expires_at <= batch.now) impl_->ops.erase(it);
    impl_->op_expiry.erase(impl_->op_expiry.begin());
  }
  ++impl_->commits;
  if (done) done({}, durability::local);
}

std::error_code memory_store::read_journal(journal_table table, std::string_view after, std::size_t max,
                                           std::vector<journal_row>& out, std::string& next) {
  // Ids never contain '/', so the first one splits article from user and the
  // second user from op id.
  auto split = [](std::string_view key, journal_row& row) {
    const auto a = key.find('/');
    row.article.assign(key.substr(0, a));
    const std::string_view rest = key.substr(a + 1);
    const auto u = rest.find('/');
    row.user.assign(rest.substr(0, u));
    if (u != std::string_view::npos) row.op_id.assign(rest.substr(u + 1));
  };
  if (max == 0) return make_error_code(errc::bad_request);
  switch (table) {
  case journal_table::totals:
    impl::walk(impl_->totals, after, max, out, next,
               [](const std::string& k, std::int64_t v, journal_row& row) {
                 row.article = k;
                 row.value = v;
               });
    break;
  case journal_table::tallies:
    impl::walk(impl_->tallies, after, max, out, next,
               [&](const std::string& k, std::int32_t v, journal_row& row) {
                 split(k, row);
                 row.value = v;
               });
    break;
  case journal_table::ops:
    impl::walk(impl_->ops, after, max, out, next,
               [&](const std::string& k, const stored_op& v, journal_row& row) {
                 split(k, row);
                 row.accepted = v.accepted;
                 row.mine = v.mine;
                 row.expires_at = v.expires_at;
               });
    break;
  }
  return {};
}

std::size_t memory_store::commits() const noexcept { return impl_->commits; }
std::size_t memory_store::op_count() const noexcept { return impl_->ops.size(); }

}  // namespace claps
