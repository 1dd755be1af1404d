// claps/version.hpp - library version.
#pragma once

#define CLAPS_VERSION_MAJOR 0
#define CLAPS_VERSION_MINOR 1
#define CLAPS_VERSION_PATCH 0
#define CLAPS_VERSION_STRING "0.1.0"

namespace claps {
/// The version of the library that was linked, e.g. "0.1.0".
const char* version() noexcept;
}  // namespace claps
