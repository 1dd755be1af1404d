// clapsd - the realtime claps server. See `clapsd --help` and docs/protocol.md.
#include "options.hpp"
#include "server.hpp"

#include <cstdio>
#include <cstdlib>

int main(int argc, char** argv) {
  auto parsed = claps::server::parse_options(
      argc, argv, [](const char* name) -> const char* { return std::getenv(name); });
  if (!parsed.options) {
    if (parsed.exit_code == 0) {
      std::fputs(parsed.message.c_str(), stdout);
      return 0;
    }
    std::fprintf(stderr, "clapsd: %s\n", parsed.message.c_str());
    return parsed.exit_code;
  }
  return claps::server::run_server(*parsed.options);
}
