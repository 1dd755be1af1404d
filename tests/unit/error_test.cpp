#include <claps/error.hpp>

#include <doctest/doctest.h>

#include <string>

TEST_CASE("errc is a std::error_code enum in the claps category") {
  std::error_code ec = claps::errc::invalid_article;
  CHECK(ec);
  CHECK(ec.category().name() == std::string("claps"));
  CHECK(ec == claps::errc::invalid_article);
  CHECK(ec != claps::errc::invalid_user);
  CHECK(ec.message().find("A-Z") != std::string::npos);  // says how to fix it
}

TEST_CASE("every code has a message and a wire name") {
  for (int v = static_cast<int>(claps::errc::bad_request); v < static_cast<int>(claps::errc::count_); ++v) {
    std::error_code ec(v, claps::error_category());
    CHECK(ec.message() != "unknown claps error");
    CHECK_FALSE(claps::wire_name(ec).empty());
  }
  CHECK(claps::wire_name(claps::errc::store_full) == "unavailable");
  CHECK(claps::wire_name(claps::errc::rate_limited) == "rate_limited");
  CHECK(claps::wire_name(claps::errc::invalid_count) == "bad_request");
  CHECK(claps::wire_name(claps::errc::too_many_op_ids) == "rate_limited");
  CHECK(std::error_code(claps::errc::count_).message() == "unknown claps error");
  CHECK(claps::wire_name(std::make_error_code(std::errc::io_error)) == "unavailable");
}

TEST_CASE("only store_full carries a wire reason") {
  CHECK(claps::wire_reason(claps::errc::store_full) == "store_full");
  CHECK(claps::wire_reason(claps::errc::unavailable).empty());
  CHECK(claps::wire_reason(claps::errc::store_io).empty());
  CHECK(claps::wire_reason(std::make_error_code(std::errc::no_space_on_device)).empty());
}
