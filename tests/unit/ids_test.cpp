#include <claps/error.hpp>
#include <claps/ids.hpp>

#include <doctest/doctest.h>

#include <string>

TEST_CASE("the id alphabet is [A-Za-z0-9._:-]") {
  CHECK(claps::valid_id("Abc-09_.:z", 128));
  for (int c = 0; c < 256; ++c) {
    char ch = static_cast<char>(c);
    bool expected = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || ch == '.' ||
                    ch == '_' || ch == ':' || ch == '-';
    CHECK(claps::valid_id(std::string(1, ch), 128) == expected);
  }
}

TEST_CASE("id lengths") {
  CHECK_FALSE(claps::valid_id("", 128));
  CHECK(claps::valid_id(std::string(128, 'a'), 128));
  CHECK_FALSE(claps::valid_id(std::string(129, 'a'), 128));
  CHECK_FALSE(claps::check_op_id(std::string(64, 'a')));
  CHECK(claps::check_op_id(std::string(65, 'a')) == claps::errc::invalid_op_id);
  CHECK(claps::check_article_id("x y") == claps::errc::invalid_article);
  CHECK(claps::check_user_id("x/y") == claps::errc::invalid_user);
  CHECK_FALSE(claps::check_user_id("anon-1f3a"));
}
