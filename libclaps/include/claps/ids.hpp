// claps/ids.hpp - identifier rules shared by the engine, stores and servers.
//
// Article ids and user ids are 1-128 bytes of [A-Za-z0-9._:-]; op ids are
// 1-64 bytes of the same alphabet. The alphabet needs no escaping in JSON,
// URLs, Redis keys or LMDB keys, which is why outbound frames may embed ids
// directly.
#pragma once

#include <cstddef>
#include <string_view>
#include <system_error>

namespace claps {

inline constexpr std::size_t max_article_id_bytes = 128;
inline constexpr std::size_t max_user_id_bytes = 128;
inline constexpr std::size_t max_op_id_bytes = 64;

/// True when every byte of s is in [A-Za-z0-9._:-] and 1 <= size <= max_bytes.
bool valid_id(std::string_view s, std::size_t max_bytes) noexcept;

/// Empty error_code when `article` is valid, else errc::invalid_article.
std::error_code check_article_id(std::string_view article) noexcept;
/// Empty error_code when `user` is valid, else errc::invalid_user.
std::error_code check_user_id(std::string_view user) noexcept;
/// Empty error_code when `op_id` is valid, else errc::invalid_op_id.
std::error_code check_op_id(std::string_view op_id) noexcept;

}  // namespace claps
