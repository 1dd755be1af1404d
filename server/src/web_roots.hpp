// web_roots.hpp - where clapsd finds its web app and the JS client when
// --web-root / --client-root are not given.
//
// An installed clapsd (cmake --install, the clapsd .deb) finds them next to
// its own binary: <bindir>/../share/claps/web and .../client (the relative
// path comes from the install layout at build time). When they are not there
// (clapsd run from a build tree), it falls back to the source tree the binary
// was built from, so a source build works from any directory.
#pragma once

#include <string>

namespace claps::server {

struct web_roots {
  std::string web;     // index.html, article.html, static/
  std::string client;  // claps-client.js, served at /client/
};

/// The installed copies beside this executable (/proc/self/exe) when its web
/// directory exists, else the source tree's paths compiled in.
web_roots default_web_roots();

}  // namespace claps::server
