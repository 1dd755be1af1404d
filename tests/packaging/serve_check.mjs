// Starts a clapsd binary with a temporary data dir and cwd, reads its port
// from stdout, and checks that it serves the web app files of WEB_DIR and the
// JS client of CLIENT_DIR byte for byte (GET /, a static file, the client),
// then stops it with SIGTERM.
// Usage: node serve_check.mjs CLAPSD WEB_DIR CLIENT_DIR WORK_DIR
import { spawn } from 'node:child_process';
import { readFileSync, mkdirSync } from 'node:fs';
import assert from 'node:assert/strict';

const [clapsd, webDir, clientDir, work] = process.argv.slice(2);
mkdirSync(`${work}/cwd`, { recursive: true });
const child = spawn(clapsd, ['--listen', '127.0.0.1:0', '--data-dir', `${work}/data`],
  { cwd: `${work}/cwd`, stdio: ['ignore', 'pipe', 'pipe'], env: { PATH: process.env.PATH } });
let stderr = '';
child.stderr.on('data', (d) => { stderr += d; });
const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));

try {
  const port = await new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no listening line in 20 s; stderr: ${stderr}`)), 20000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    exited.then(({ code }) => reject(new Error(`clapsd exited ${code}: ${stderr}`)));
  });
  const checks = [
    ['/', `${webDir}/index.html`],
    ['/static/css/style.css', `${webDir}/static/css/style.css`],
    ['/client/claps-client.js', `${clientDir}/claps-client.js`],
  ];
  for (const [url, file] of checks) {
    const res = await fetch(`http://127.0.0.1:${port}${url}`);
    assert.equal(res.status, 200, `GET ${url}`);
    assert.equal(await res.text(), readFileSync(file, 'utf8'), `GET ${url} serves ${file}`);
  }
  console.log(`served ${checks.length} files from ${webDir} and ${clientDir}`);
} finally {
  child.kill('SIGTERM');
  const { code, signal } = await exited;
  assert.equal(signal, null, `clapsd stopped by ${signal}`);
  assert.equal(code, 0, `clapsd exit code after SIGTERM; stderr: ${stderr}`);
}
