// Fuzzes the LMDB store's record format (format.hpp): decoding format-2 rows
// (decode_row, what the store and its journal walk read) and migrating
// format-1 records (migrate_tally_v1, migrate_op_v1).
//
// Input: one byte choosing the table (mod 5: totals, tallies, ops, format-1
// tallies, format-1 ops), one byte of key length, the key, then the value.
//
// Properties:
// - decode_row accepts exactly the well-formed records (value size, '/'
//   count of the key), and what it decodes encodes back to the same bytes;
// - a record built from the input's ids and numbers (ids never hold '/')
//   encodes and decodes back to itself, for every table;
// - op_expiry's time prefix round-trips and sorts bytewise as the times do;
// - a migrated format-1 record is a format-2 record that decodes to the same
//   article, user, op id and numbers, with an expiry key for its time.
#include "check.hpp"
#include "format.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace {

using namespace claps::detail::lmdb;
using claps::journal_row;
using claps::journal_table;

std::string le64(std::int64_t v) {
  char b[8];
  put_i64_le(b, v);
  return {b, sizeof b};
}
std::string le32(std::int32_t v) {
  char b[4];
  put_i32_le(b, v);
  return {b, sizeof b};
}
std::string op_value(std::int64_t expires_ms, std::int32_t accepted, std::int32_t mine) {
  char b[op_value_size];
  put_op_value(b, expires_ms, accepted, mine);
  return {b, sizeof b};
}
std::string time_be(std::int64_t ms) {
  char b[time_prefix_size];
  put_time_be(b, ms);
  return {b, sizeof b};
}

std::size_t slashes(std::string_view s) {
  return static_cast<std::size_t>(std::count(s.begin(), s.end(), '/'));
}

// decode_row on arbitrary bytes: accepted exactly when well formed, and then
// encoded back to the same key and value.
void check_decode(journal_table table, std::string_view key, std::string_view value) {
  journal_row row;
  const bool ok = decode_row(table, key, value, row);
  switch (table) {
  case journal_table::totals:
    CLAPS_FUZZ_CHECK(ok == (value.size() == 8));
    if (!ok) return;
    CLAPS_FUZZ_CHECK(row.article == key && le64(row.value) == value);
    return;
  case journal_table::tallies: {
    CLAPS_FUZZ_CHECK(ok == (value.size() == 4 && slashes(key) == 1));
    if (!ok) return;
    CLAPS_FUZZ_CHECK(row.value >= INT32_MIN && row.value <= INT32_MAX);
    CLAPS_FUZZ_CHECK(le32(static_cast<std::int32_t>(row.value)) == value);
    record_key k;
    if (k.tally(row.article, row.user)) CLAPS_FUZZ_CHECK(as_view(k.val()) == key);
    return;
  }
  case journal_table::ops: {
    CLAPS_FUZZ_CHECK(ok == (value.size() == op_value_size && slashes(key) >= 2));
    if (!ok) return;
    const std::int64_t ms = row.expires_at.time_since_epoch().count();
    CLAPS_FUZZ_CHECK(op_value(ms, row.accepted, row.mine) == value);
    record_key k;
    if (k.op(row.article, row.user, row.op_id)) {
      CLAPS_FUZZ_CHECK(as_view(k.val()) == key);
      const std::string_view expiry = as_view(k.expiry_val(ms));
      CLAPS_FUZZ_CHECK(expiry.substr(0, time_prefix_size) == time_be(ms) &&
                       expiry.substr(time_prefix_size) == key);
    }
    return;
  }
  }
}

// Ids as the store gets them: no '/', within their limits.
std::string id_from(std::string_view s, std::size_t max) {
  std::string id(s.substr(0, max));
  std::erase(id, '/');
  return id;
}

// A record built from the input: encode, then decode, gives it back.
void check_encode(std::string_view key, std::string_view value) {
  std::string padded(value);
  padded.resize(std::max<std::size_t>(padded.size(), op_value_size), '\0');
  const std::int64_t n64 = get_i64_le(padded.data());
  const std::int32_t a32 = get_i32_le(padded.data() + 8), b32 = get_i32_le(padded.data() + 12);
  const auto first = key.find('/');
  const auto second = first == std::string_view::npos ? first : key.find('/', first + 1);
  const std::string article = id_from(key.substr(0, first), claps::max_article_id_bytes);
  const std::string user = first == std::string_view::npos
                               ? std::string()
                               : id_from(key.substr(first + 1, second - first - 1), claps::max_user_id_bytes);
  const std::string op_id = second == std::string_view::npos
                                ? std::string()
                                : id_from(key.substr(second + 1), claps::max_op_id_bytes);

  journal_row row;
  CLAPS_FUZZ_CHECK(decode_row(journal_table::totals, article, le64(n64), row));
  CLAPS_FUZZ_CHECK(row.article == article && row.value == n64);

  record_key k;
  CLAPS_FUZZ_CHECK(k.tally(article, user));
  row = {};
  CLAPS_FUZZ_CHECK(decode_row(journal_table::tallies, as_view(k.val()), le32(a32), row));
  CLAPS_FUZZ_CHECK(row.article == article && row.user == user && row.value == a32);

  CLAPS_FUZZ_CHECK(k.op(article, user, op_id));
  row = {};
  CLAPS_FUZZ_CHECK(decode_row(journal_table::ops, as_view(k.val()), op_value(n64, a32, b32), row));
  CLAPS_FUZZ_CHECK(row.article == article && row.user == user && row.op_id == op_id);
  CLAPS_FUZZ_CHECK(row.expires_at.time_since_epoch().count() == n64 && row.accepted == a32 &&
                   row.mine == b32);

  // op_expiry: LMDB's bytewise key order must be time order.
  const std::int64_t other = get_i64_le(padded.data() + 8);
  const std::string a = time_be(n64), b = time_be(other);
  CLAPS_FUZZ_CHECK(get_time_be(a.data()) == n64 && get_time_be(b.data()) == other);
  CLAPS_FUZZ_CHECK((a < b) == (n64 < other) && (a == b) == (n64 == other));
}

void check_migrate_tally(std::string_view key, std::string_view value) {
  std::string new_key;
  const auto slash = key.find('/');
  const bool ok = migrate_tally_v1(key, value, new_key);
  CLAPS_FUZZ_CHECK(ok == (slash != std::string_view::npos && value.size() == 4));
  if (!ok) return;
  const std::string_view user = key.substr(0, slash), article = key.substr(slash + 1);
  CLAPS_FUZZ_CHECK(new_key == std::string(article) + "/" + std::string(user));
  if (slashes(article) != 0) return;  // an id with '/': refill() refuses the collision
  journal_row row;
  CLAPS_FUZZ_CHECK(decode_row(journal_table::tallies, new_key, value, row));
  CLAPS_FUZZ_CHECK(row.article == article && row.user == user &&
                   le32(static_cast<std::int32_t>(row.value)) == value);
}

void check_migrate_op(std::string_view key, std::string_view value) {
  std::string new_key, expiry_key;
  std::string_view new_value;
  const auto slash = key.find('/');
  const bool ok = migrate_op_v1(key, value, new_key, new_value, expiry_key);
  CLAPS_FUZZ_CHECK(ok == (slash != std::string_view::npos && value.size() >= op_value_size));
  if (!ok) return;
  const std::string_view user = key.substr(0, slash), op_id = key.substr(slash + 1);
  const std::string_view article = value.substr(op_value_size);
  CLAPS_FUZZ_CHECK(new_value == value.substr(0, op_value_size));
  CLAPS_FUZZ_CHECK(expiry_key == time_be(get_i64_le(value.data())) + new_key);
  if (slashes(article) != 0 || slashes(user) != 0) return;
  journal_row row;
  CLAPS_FUZZ_CHECK(decode_row(journal_table::ops, new_key, new_value, row));
  CLAPS_FUZZ_CHECK(row.article == article && row.user == user && row.op_id == op_id);
  CLAPS_FUZZ_CHECK(op_value(row.expires_at.time_since_epoch().count(), row.accepted, row.mine) == new_value);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const int table = static_cast<unsigned char>(bytes[0]) % 5;
  const std::size_t key_size = std::min<std::size_t>(static_cast<unsigned char>(bytes[1]), size - 2);
  const std::string_view key = bytes.substr(2, key_size), value = bytes.substr(2 + key_size);
  switch (table) {
  case 0: check_decode(journal_table::totals, key, value); break;
  case 1: check_decode(journal_table::tallies, key, value); break;
  case 2: check_decode(journal_table::ops, key, value); break;
  case 3: check_migrate_tally(key, value); break;
  case 4: check_migrate_op(key, value); break;
  }
  check_encode(key, value);
  return 0;
}
