#include <claps/memory_store.hpp>

#include <map>
#include <string>
#include <unordered_map>

namespace claps {

struct memory_store::impl {
  std::unordered_map<std::string, std::int64_t> totals;
  std::unordered_map<std::string, std::int32_t> tallies;  // user/article
  std::unordered_map<std::string, stored_op> ops;         // user/op_id
  std::multimap<timestamp, std::string> op_expiry;
  std::size_t commits = 0;

  static std::string key(std::string_view a, std::string_view b) {
    std::string k;
    k.reserve(a.size() + 1 + b.size());
    k.append(a).push_back('/');
    k.append(b);
    return k;
  }
};

memory_store::memory_store() : impl_(std::make_unique<impl>()) {}
memory_store::~memory_store() = default;
memory_store::memory_store(memory_store&&) noexcept = default;
memory_store& memory_store::operator=(memory_store&&) noexcept = default;

std::error_code memory_store::read_total(std::string_view article, std::int64_t& total) {
  auto it = impl_->totals.find(std::string(article));
  total = it == impl_->totals.end() ? 0 : it->second;
  return {};
}

std::error_code memory_store::read_tally(std::string_view user, std::string_view article,
                                         std::int32_t& claps) {
  auto it = impl_->tallies.find(impl::key(user, article));
  claps = it == impl_->tallies.end() ? 0 : it->second;
  return {};
}

std::error_code memory_store::read_op(std::string_view user, std::string_view op_id,
                                      stored_op& out, bool& found) {
  auto it = impl_->ops.find(impl::key(user, op_id));
  found = it != impl_->ops.end();
  if (found) out = it->second;
  return {};
}

void memory_store::commit(const commit_batch& batch, commit_handler done) {
  for (const auto& t : batch.totals) impl_->totals[std::string(t.article)] = t.total;
  for (const auto& t : batch.tallies) {
    if (t.claps == 0)
      impl_->tallies.erase(impl::key(t.user, t.article));
    else
      impl_->tallies[impl::key(t.user, t.article)] = t.claps;
  }
  for (const auto& op : batch.ops) {
    auto k = impl::key(op.user, op.op_id);
    impl_->ops[k] = stored_op{std::string(op.article), op.accepted, op.mine, op.expires_at};
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

std::size_t memory_store::commits() const noexcept { return impl_->commits; }
std::size_t memory_store::op_count() const noexcept { return impl_->ops.size(); }

} // namespace claps
