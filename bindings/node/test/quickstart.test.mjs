// docs/bindings/node.md's example is examples/quickstart.mjs, and it runs:
// in a fresh directory where '@libclaps/engine' resolves to bindings/node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '../../../tests/integration/helpers.mjs';

const PACKAGE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const DOC = path.resolve(PACKAGE, '..', '..', 'docs', 'bindings', 'node.md');
const EXAMPLE = path.join(PACKAGE, 'examples', 'quickstart.mjs');

test('the docs page shows examples/quickstart.mjs as it is', () => {
  const doc = fs.readFileSync(DOC, 'utf8');
  const m = doc.match(/<!-- quickstart begin -->\n```js\n([\s\S]*?)```\n<!-- quickstart end -->/);
  assert.ok(m, 'the quickstart markers are in docs/bindings/node.md');
  assert.equal(m[1], fs.readFileSync(EXAMPLE, 'utf8'));
});

test('examples/quickstart.mjs runs and prints what its comments say', () => {
  const dir = tempDir('claps-node-quickstart-');
  fs.mkdirSync(path.join(dir, 'node_modules', '@libclaps'), { recursive: true });
  fs.symlinkSync(PACKAGE, path.join(dir, 'node_modules', '@libclaps', 'engine'));
  fs.copyFileSync(EXAMPLE, path.join(dir, 'quickstart.mjs'));
  const out = execFileSync(process.execPath, ['quickstart.mjs'], { cwd: dir, encoding: 'utf8', timeout: 30000 });
  const lines = out.trim().split('\n');
  assert.ok(lines.includes('30 30 30'), out);
  assert.ok(lines.includes('invalid_count'), out);
  assert.ok(fs.existsSync(path.join(dir, 'claps-data', 'data.mdb')), 'LMDB files in ./claps-data');
});
