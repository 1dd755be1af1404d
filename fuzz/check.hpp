// check.hpp - a property a fuzz target asserts. Unlike assert() it holds in
// every build type, and it names the property before libFuzzer saves the input.
#pragma once

#include <cstdio>
#include <cstdlib>

#define CLAPS_FUZZ_CHECK(cond)                                                         \
  do {                                                                                 \
    if (!(cond)) {                                                                     \
      std::fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                    \
    }                                                                                  \
  } while (0)
