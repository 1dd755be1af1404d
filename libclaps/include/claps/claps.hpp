// claps/claps.hpp - umbrella header for the core (target claps::claps).
//
// libclaps needs C++20 or later (the CMake target requires cxx_std_20 as a
// minimum; the pkg-config files set no -std flag: pass -std=c++20 or later).
//
// Pulls in no backend: for LMDB include <claps/lmdb.hpp> and link claps::lmdb;
// for libuv include <claps/uv.hpp> and link claps::uv.
#pragma once

#include <claps/engine.hpp>
#include <claps/error.hpp>
#include <claps/ids.hpp>
#include <claps/memory_store.hpp>
#include <claps/store.hpp>
#include <claps/time.hpp>
#include <claps/version.hpp>
