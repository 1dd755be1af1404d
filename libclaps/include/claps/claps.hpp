// claps/claps.hpp - umbrella header for the core (target claps::claps).
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
