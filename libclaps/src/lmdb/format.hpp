// The on-disk layout of lmdb_store, shared by the store and the format-1
// migration.
//
// Format version 2 (lmdb_format_version). Integers are stored little-endian
// regardless of the host, except the expiry key prefix, which is big-endian so
// that LMDB's bytewise key order is time order.
//
//   meta       "format_version"   -> u32 LE = 2
//              "next_version"     -> u64 LE          (absent means 1)
//   totals     article            -> i64 LE          (absent means 0)
//   tallies    article '/' user   -> i32 LE          (absent means 0; 0 is deleted)
//   ops        article '/' user '/' op_id
//                                 -> i64 LE expires_at ms, i32 LE accepted, i32 LE mine
//   op_expiry  u64 BE (expires_at ms with the sign bit flipped) + the ops key -> empty
//
// '/' is not in the id alphabet, so the composite keys are unambiguous, and
// the article comes first so that one article's tallies and ops are
// contiguous: a journal walk re-asserts them into one Redis hash slot at a
// time. op_expiry has exactly one entry per ops record.
//
// Format 1 (migrated on open, see migrate.cpp) keyed tallies "user/article"
// and ops "user/op_id", with the article appended to the op value.
#pragma once

#include <claps/ids.hpp>
#include <claps/store.hpp>

#include <lmdb.h>

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace claps::detail::lmdb {

inline constexpr const char* meta_db = "meta";
inline constexpr const char* totals_db = "totals";
inline constexpr const char* tallies_db = "tallies";
inline constexpr const char* ops_db = "ops";
inline constexpr const char* op_expiry_db = "op_expiry";
inline constexpr unsigned named_db_count = 5;
inline constexpr std::string_view format_version_key = "format_version";
inline constexpr std::string_view next_version_key = "next_version";

inline constexpr std::size_t time_prefix_size = 8;
inline constexpr std::size_t op_value_size = 8 + 4 + 4;
// The longest tally or ops key; with the expiry prefix it stays well under
// LMDB's default 511-byte key limit.
inline constexpr std::size_t max_record_key_size =
    max_article_id_bytes + 1 + max_user_id_bytes + 1 + max_op_id_bytes;
static_assert(time_prefix_size + max_record_key_size <= 511);

// Not an LMDB code (those are -30799..-30700) nor an errno (positive): a
// malformed value or key in a sound B-tree. It maps to store_corrupted but,
// unlike MDB_CORRUPTED, does not make the store reopen: that would not fix it.
inline constexpr int malformed_record = -30600;

inline void put_u32_le(char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
inline std::uint32_t get_u32_le(const char* p) {
  std::uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= std::uint32_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}
inline void put_u64_le(char* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * i));
}
inline std::uint64_t get_u64_le(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i);
  return v;
}
inline void put_i32_le(char* p, std::int32_t v) { put_u32_le(p, static_cast<std::uint32_t>(v)); }
inline std::int32_t get_i32_le(const char* p) { return static_cast<std::int32_t>(get_u32_le(p)); }
inline void put_i64_le(char* p, std::int64_t v) { put_u64_le(p, static_cast<std::uint64_t>(v)); }
inline std::int64_t get_i64_le(const char* p) { return static_cast<std::int64_t>(get_u64_le(p)); }

// Flipping the sign bit makes unsigned big-endian byte order match signed
// order, so timestamps before 1970 would still sort first.
inline constexpr std::uint64_t sign_bit = std::uint64_t{1} << 63;
inline void put_time_be(char* p, std::int64_t ms) {
  const std::uint64_t v = static_cast<std::uint64_t>(ms) ^ sign_bit;
  for (int i = 0; i < 8; ++i) p[i] = static_cast<char>(v >> (8 * (7 - i)));
}
inline std::int64_t get_time_be(const char* p) {
  std::uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return static_cast<std::int64_t>(v ^ sign_bit);
}

// An ops value: expires_at ms, accepted, mine.
inline void put_op_value(char* p, std::int64_t expires_ms, std::int32_t accepted, std::int32_t mine) {
  put_i64_le(p, expires_ms);
  put_i32_le(p + 8, accepted);
  put_i32_le(p + 12, mine);
}

inline MDB_val as_val(std::string_view s) { return MDB_val{s.size(), const_cast<char*>(s.data())}; }
inline std::string_view as_view(const MDB_val& v) { return {static_cast<const char*>(v.mv_data), v.mv_size}; }

// A tally key (article/user) or ops key (article/user/op_id) built in place
// without allocating, with room in front for op_expiry's time prefix: an op's
// expiry key is the same bytes with the prefix filled in.
class record_key {
public:
  // False when an id is longer than the id rules allow.
  bool tally(std::string_view article, std::string_view user) {
    if (article.size() > max_article_id_bytes || user.size() > max_user_id_bytes) return false;
    char* p = append(bytes_.data() + time_prefix_size, article);
    *p++ = '/';
    p = append(p, user);
    size_ = static_cast<std::size_t>(p - bytes_.data()) - time_prefix_size;
    return true;
  }
  bool op(std::string_view article, std::string_view user, std::string_view op_id) {
    if (op_id.size() > max_op_id_bytes || !tally(article, user)) return false;
    char* p = bytes_.data() + time_prefix_size + size_;
    *p++ = '/';
    p = append(p, op_id);
    size_ = static_cast<std::size_t>(p - bytes_.data()) - time_prefix_size;
    return true;
  }
  // The key as built (tallies or ops).
  MDB_val val() { return MDB_val{size_, bytes_.data() + time_prefix_size}; }
  // The op_expiry key of this ops key for a record expiring at `expires_ms`.
  MDB_val expiry_val(std::int64_t expires_ms) {
    put_time_be(bytes_.data(), expires_ms);
    return MDB_val{time_prefix_size + size_, bytes_.data()};
  }

private:
  // An empty string_view may hold a null pointer, which memcpy must not get.
  static char* append(char* p, std::string_view s) {
    if (!s.empty()) std::memcpy(p, s.data(), s.size());
    return p + s.size();
  }
  std::array<char, time_prefix_size + max_record_key_size> bytes_{};
  std::size_t size_ = 0;
};

// ---- Record decoding: pure functions of a key and a value (fuzzed by
// fuzz/lmdb_record.cpp) ----

/// Decodes one row of a format-2 table (lmdb_store.cpp); false when the key or
/// value is malformed.
bool decode_row(journal_table table, std::string_view key, std::string_view value, journal_row& row);

/// Format 1 -> 2 for one tally record (migrate.cpp): its new key; the value
/// stays. False when malformed.
bool migrate_tally_v1(std::string_view key, std::string_view value, std::string& new_key);
/// Format 1 -> 2 for one ops record: its new key and value (a view into
/// `value`), and its op_expiry key. False when malformed.
bool migrate_op_v1(std::string_view key, std::string_view value, std::string& new_key,
                   std::string_view& new_value, std::string& expiry_key);

struct table_handles {
  MDB_dbi meta = 0, totals = 0, tallies = 0, ops = 0, op_expiry = 0;
};

/// Rewrites a format-1 environment's tallies, ops and op_expiry in the
/// format-2 layout inside `txn`, a write transaction that has opened every
/// table. The caller then records format 2 in meta and commits, so a crash or
/// an error (the caller aborts) leaves format 1 as it was. Returns 0, an LMDB
/// code (MDB_MAP_FULL, MDB_TXN_FULL, ...) or malformed_record. May throw
/// std::bad_alloc: it holds those tables in memory while it rewrites them.
int migrate_from_format_1(MDB_txn* txn, const table_handles& tables);

}  // namespace claps::detail::lmdb
