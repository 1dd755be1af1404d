// Format 1 -> format 2: tallies "user/article" become "article/user", ops
// "user/op_id" (article in the value) become "article/user/op_id" with the
// short value, and op_expiry is rebuilt from the migrated ops.
//
// Old and new keys have the same shape ("x/y"), so a table cannot be rewritten
// in place: each is read into memory, emptied and refilled in key order
// (MDB_APPEND, which also packs the pages). Everything happens in the
// caller's one write transaction.

#include "format.hpp"

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

namespace claps::detail::lmdb {
namespace {

using entry = std::pair<std::string, std::string>;  // key, value

// Reads every entry of `dbi`, handing each to `convert`, which returns false
// on a malformed one.
template <typename Convert>
int read_all(MDB_txn* txn, MDB_dbi dbi, Convert&& convert) {
  MDB_cursor* cursor = nullptr;
  int rc = mdb_cursor_open(txn, dbi, &cursor);
  if (rc != 0) return rc;
  MDB_val key{}, value{};
  try {
    for (rc = mdb_cursor_get(cursor, &key, &value, MDB_FIRST); rc == 0;
         rc = mdb_cursor_get(cursor, &key, &value, MDB_NEXT)) {
      if (!convert(as_view(key), as_view(value))) {
        rc = malformed_record;
        break;
      }
    }
  } catch (...) {
    mdb_cursor_close(cursor);
    throw;
  }
  mdb_cursor_close(cursor);
  return rc == MDB_NOTFOUND ? 0 : rc;
}

// Empties `dbi` and writes `entries` into it in key order.
int refill(MDB_txn* txn, MDB_dbi dbi, std::vector<entry>& entries) {
  std::sort(entries.begin(), entries.end());
  int rc = mdb_drop(txn, dbi, 0);
  for (std::size_t i = 0; rc == 0 && i < entries.size(); ++i) {
    MDB_val key = as_val(entries[i].first);
    MDB_val value = as_val(entries[i].second);
    rc = mdb_put(txn, dbi, &key, &value, MDB_APPEND);
  }
  // Two old keys mapping to one new key can only come from ids with a '/'.
  return rc == MDB_KEYEXIST ? malformed_record : rc;
}

// Splits "a/b" at its first '/'.
bool split(std::string_view key, std::string_view& a, std::string_view& b) {
  const auto slash = key.find('/');
  if (slash == std::string_view::npos) return false;
  a = key.substr(0, slash);
  b = key.substr(slash + 1);
  return true;
}

}  // namespace

bool migrate_tally_v1(std::string_view key, std::string_view value, std::string& new_key) {
  std::string_view user, article;
  if (!split(key, user, article) || value.size() != 4) return false;
  new_key.clear();
  new_key.reserve(key.size());
  new_key.append(article).append("/").append(user);
  return true;
}

bool migrate_op_v1(std::string_view key, std::string_view value, std::string& new_key,
                   std::string_view& new_value, std::string& expiry_key) {
  std::string_view user, op_id;
  if (!split(key, user, op_id) || value.size() < op_value_size) return false;
  const std::string_view article = value.substr(op_value_size);
  new_key.clear();
  new_key.reserve(key.size() + 1 + article.size());
  new_key.append(article).append("/").append(user).append("/").append(op_id);
  char prefix[time_prefix_size];
  put_time_be(prefix, get_i64_le(value.data()));
  expiry_key.assign(prefix, sizeof prefix);
  expiry_key.append(new_key);
  new_value = value.substr(0, op_value_size);
  return true;
}

int migrate_from_format_1(MDB_txn* txn, const table_handles& tables) {
  std::vector<entry> tallies;
  int rc = read_all(txn, tables.tallies, [&](std::string_view key, std::string_view value) {
    std::string new_key;
    if (!migrate_tally_v1(key, value, new_key)) return false;
    tallies.emplace_back(std::move(new_key), value);
    return true;
  });
  if (rc == 0) rc = refill(txn, tables.tallies, tallies);
  if (rc != 0) return rc;
  tallies = {};

  std::vector<entry> ops, expiry;
  rc = read_all(txn, tables.ops, [&](std::string_view key, std::string_view value) {
    std::string new_key, expiry_key;
    std::string_view new_value;
    if (!migrate_op_v1(key, value, new_key, new_value, expiry_key)) return false;
    ops.emplace_back(std::move(new_key), new_value);
    expiry.emplace_back(std::move(expiry_key), std::string{});
    return true;
  });
  if (rc == 0) rc = refill(txn, tables.ops, ops);
  if (rc == 0) rc = refill(txn, tables.op_expiry, expiry);
  return rc;
}

}  // namespace claps::detail::lmdb
