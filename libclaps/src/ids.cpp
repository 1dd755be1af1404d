#include <claps/error.hpp>
#include <claps/ids.hpp>

#include <array>

namespace claps {
namespace {

constexpr std::array<bool, 256> make_alphabet() {
  std::array<bool, 256> table{};
  for (int c = 'A'; c <= 'Z'; ++c) table[c] = true;
  for (int c = 'a'; c <= 'z'; ++c) table[c] = true;
  for (int c = '0'; c <= '9'; ++c) table[c] = true;
  for (char c : {'.', '_', ':', '-'}) table[static_cast<unsigned char>(c)] = true;
  return table;
}

constexpr std::array<bool, 256> id_alphabet = make_alphabet();

}  // namespace

bool valid_id(std::string_view s, std::size_t max_bytes) noexcept {
  if (s.empty() || s.size() > max_bytes) return false;
  // Branch-free: ids are short and almost always valid.
  bool ok = true;
  for (unsigned char c : s) ok &= id_alphabet[c];
  return ok;
}

std::error_code check_article_id(std::string_view article) noexcept {
  return valid_id(article, max_article_id_bytes) ? std::error_code{} : make_error_code(errc::invalid_article);
}
std::error_code check_user_id(std::string_view user) noexcept {
  return valid_id(user, max_user_id_bytes) ? std::error_code{} : make_error_code(errc::invalid_user);
}
std::error_code check_op_id(std::string_view op_id) noexcept {
  return valid_id(op_id, max_op_id_bytes) ? std::error_code{} : make_error_code(errc::invalid_op_id);
}

}  // namespace claps
