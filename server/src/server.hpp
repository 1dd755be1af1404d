// server.hpp - the composition root of clapsd: builds the store, engine,
// services and lws context on one uv loop, runs until SIGTERM/SIGINT, then
// drains. Behaviour lives in the pieces; this file only wires and sequences.
#pragma once

#include "options.hpp"

namespace claps::server {

/// Runs clapsd with `options` and returns the process exit code: 0 after a
/// clean shutdown, 1 when start-up failed (a message is on stderr).
int run_server(const server_options& options);

}  // namespace claps::server
