#include <claps/version.hpp>

namespace claps {
const char* version() noexcept { return CLAPS_VERSION_STRING; }
}  // namespace claps
