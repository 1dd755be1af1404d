'use strict';
// @libclaps/engine: the libclaps engine in-process. See README.md.
//
// The addon (claps.node) is built by CMake (target claps_node). It is looked
// for, in order: $CLAPS_NODE_ADDON, ./build/claps.node, and the repository's
// build tree (../../build/bindings/node/claps.node).
const fs = require('node:fs');
const path = require('node:path');

function addonPath() {
  const candidates = [
    process.env.CLAPS_NODE_ADDON,
    path.join(__dirname, 'build', 'claps.node'),
    path.join(__dirname, '..', '..', 'build', 'bindings', 'node', 'claps.node'),
  ].filter(Boolean);
  for (const candidate of candidates) if (fs.existsSync(candidate)) return candidate;
  const error = new Error(
    `@libclaps/engine: claps.node not found (looked at ${candidates.join(', ')}); ` +
      'build it with `cmake -S . -B build && cmake --build build --target claps_node` at the repository root, ' +
      'or set CLAPS_NODE_ADDON to its path');
  error.code = 'ERR_CLAPS_ADDON_NOT_FOUND';
  throw error;
}

const addon = require(addonPath());

module.exports = {
  MemoryStore: addon.MemoryStore,
  LmdbStore: addon.LmdbStore,
  Engine: addon.Engine,
  version: addon.version,
};
