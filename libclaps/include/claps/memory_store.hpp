// claps/memory_store.hpp - a store that keeps everything in process memory.
//
// For tests, benchmarks and ephemeral deployments: commits always succeed
// (durability::local, though nothing survives the process) and run before
// commit() returns.
#pragma once

#include <claps/store.hpp>

#include <cstddef>
#include <memory>

namespace claps {

class memory_store final : public store {
public:
  memory_store();
  ~memory_store() override;
  memory_store(memory_store&&) noexcept;
  memory_store& operator=(memory_store&&) noexcept;

  std::error_code read_total(std::string_view article, std::int64_t& total) override;
  std::error_code read_tally(std::string_view user, std::string_view article, std::int32_t& claps) override;
  std::error_code read_op(std::string_view user, std::string_view article, std::string_view op_id,
                          stored_op& out, bool& found) override;
  /// The latest expires_at among the op records held.
  bool op_records_expire_by(timestamp& out) override;
  void commit(const commit_batch& batch, commit_handler done) override;
  /// Walks what the store holds, as lmdb_store does (keys in byte order).
  std::error_code read_journal(journal_table table, std::string_view after, std::size_t max,
                               std::vector<journal_row>& out, std::string& next) override;

  /// Number of commits applied so far.
  std::size_t commits() const noexcept;
  /// Number of op records held (expired ones are purged on commit).
  std::size_t op_count() const noexcept;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

}  // namespace claps
