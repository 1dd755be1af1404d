// Browser tests for the demo app: Playwright (npm playwright-core) drives
// Debian's Chromium against a real clapsd with LMDB in a temp dir.
//
// Every wait is on an event or a DOM condition with a deadline; deadlines
// such as "within 1 s" are liveness bounds, not performance claims.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { by_testid, launch_chromium, text_becomes } from './chromium.mjs';
import { startServer, tempDir } from '../integration/helpers.mjs';

const ARTIFACTS = process.env.CLAPS_TEST_ARTIFACTS ?? join(process.cwd(), 'test-artifacts');
const ARTICLE = 'why-realtime-matters';
const OTHER_ARTICLE = 'slow-mornings';


async function number_of(page, testid) {
  return Number((await page.textContent(by_testid(testid))).trim());
}

/** Waits until the page's own claps are all acknowledged (the total is no longer optimistic). */
async function confirmed(page, timeout = 10000) {
  await page.waitForFunction((sel) => document.querySelector(sel)?.dataset.confirmed === 'true',
    by_testid('clap-total'), { timeout });
}

describe('demo web app in Chromium', () => {
  let server;
  let data_dir;
  let browser;
  const contexts = [];
  const page_errors = [];

  async function open(path, { user, frames } = {}) {
    const context = await browser.newContext({ viewport: { width: 1100, height: 860 } });
    contexts.push(context);
    const page = await context.newPage();
    page.on('pageerror', (err) => page_errors.push(`${page.url()}: ${err.message}`));
    if (frames) {
      page.on('websocket', (ws) => {
        frames.sockets += 1;
        ws.on('framereceived', ({ payload }) => frames.received.push(String(payload)));
        ws.on('framesent', ({ payload }) => frames.sent.push(String(payload)));
      });
    }
    const query = user ? `?user=${encodeURIComponent(user)}` : '';
    await page.goto(`${server.http}${path}${query}`);
    await text_becomes(page, 'connection-status', 'live');
    return page;
  }

  before(async () => {
    mkdirSync(ARTIFACTS, { recursive: true });
    data_dir = tempDir('claps-browser-');
    server = await startServer({ dataDir: data_dir });
    browser = await launch_chromium();
  });

  after(async () => {
    for (const c of contexts) await c.close().catch(() => {});
    await browser?.close();
    await server?.stop();
  });

  // The steps share one server and build on each other, in order.
  let home;
  const home_frames = { sockets: 0, received: [], sent: [] };
  let alice;
  let bob;
  let carol;
  const carol_frames = { sockets: 0, received: [], sent: [] };

  test('home lists the articles over ONE WebSocket subscribed with reading:false', async () => {
    home = await open('/', { user: 'homer', frames: home_frames });
    const links = await home.$$(by_testid('article-link'));
    assert.ok(links.length >= 5, `expected the sample articles, got ${links.length}`);
    const hrefs = await Promise.all(links.map((l) => l.getAttribute('href')));
    assert.ok(hrefs.some((h) => h.startsWith(`/articles/${ARTICLE}`)));
    assert.equal(home_frames.sockets, 1);
    const subscribes = home_frames.sent.map((p) => JSON.parse(p)).filter((f) => f.type === 'subscribe');
    assert.equal(subscribes.length, 1);
    assert.equal(subscribes[0].reading, false);
    assert.equal(subscribes[0].articles.length, links.length);
  });

  test('two readers on one article see each other: viewers 2, a click lands within 1 s', async () => {
    alice = await open(`/articles/${ARTICLE}`, { user: 'alice' });
    bob = await open(`/articles/${ARTICLE}`, { user: 'bob' });
    carol = await open(`/articles/${OTHER_ARTICLE}`, { user: 'carol', frames: carol_frames });
    // The home page watches with reading:false, so it does not count.
    await text_becomes(alice, 'viewers', '2');
    await text_becomes(bob, 'viewers', '2');
    await text_becomes(carol, 'viewers', '1');
    assert.equal(await alice.textContent('[data-role="user-name"]'), 'alice');

    const before_total = await number_of(bob, 'clap-total');
    await alice.click(by_testid('clap-button'));
    await text_becomes(bob, 'clap-total', String(before_total + 1), 1000);
    await text_becomes(alice, 'my-claps', '1');
    await text_becomes(bob, 'my-claps', '0');
    // The home page's card for the article follows too.
    await home.waitForFunction(([article, want]) =>
      document.querySelector(`li[data-article="${article}"] [data-role="total"]`)?.textContent === want,
    [ARTICLE, String(before_total + 1)], { timeout: 5000 });
  });

  test('a reader of another article receives no update for it', async () => {
    // Carol's socket did get frames (her snapshot), so the listener works...
    assert.ok(carol_frames.received.some((p) => p.includes(`"${OTHER_ARTICLE}"`)));
    // ...and by now alice's clap has reached bob and home, yet nothing for it reached carol.
    assert.equal(carol_frames.received.filter((p) => p.includes(`"${ARTICLE}"`)).length, 0,
      `carol got: ${carol_frames.received.join(' | ')}`);
    await text_becomes(carol, 'clap-total', '0');
  });

  test('press-and-hold claps repeatedly, reaches the cap of 50 and stops there', async () => {
    const button = await alice.$(by_testid('clap-button'));
    const box = await button.boundingBox();
    await alice.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
    await alice.mouse.down();
    await text_becomes(alice, 'my-claps', '50', 20000);
    // The hold keeps trying past 50; the button shows the refusal and the cap.
    await alice.waitForFunction((sel) => document.querySelector(sel).classList.contains('refused'),
      by_testid('clap-button'), { timeout: 5000 });
    await alice.mouse.up();
    assert.equal(await alice.getAttribute(by_testid('clap-button'), 'data-capped'), 'true');
    await confirmed(alice);
    assert.equal(await number_of(alice, 'my-claps'), 50);
    await text_becomes(alice, 'clap-total', '50');
    await text_becomes(bob, 'clap-total', '50');
    // A further click is refused too.
    await alice.click(by_testid('clap-button'));
    await confirmed(alice);
    assert.equal(await number_of(alice, 'my-claps'), 50);
    const rest = await (await fetch(`${server.http}/api/articles/${ARTICLE}`)).json();
    assert.equal(rest.total, 50);
  });

  test('undo brings the total down in both contexts', async () => {
    await bob.click(by_testid('clap-button'));
    await bob.click(by_testid('clap-button'));
    await text_becomes(alice, 'clap-total', '52');
    await confirmed(bob);
    await alice.click(by_testid('undo-button'));
    await text_becomes(alice, 'my-claps', '0');
    await text_becomes(alice, 'clap-total', '2');
    await text_becomes(bob, 'clap-total', '2');
    await confirmed(alice);
    assert.equal(await alice.getAttribute(by_testid('clap-button'), 'data-capped'), 'false');
    assert.equal(await alice.isDisabled(by_testid('undo-button')), true);
  });

  test('a reload keeps the total and my-claps', async () => {
    for (let i = 0; i < 3; i += 1) await alice.click(by_testid('clap-button'));
    await text_becomes(alice, 'my-claps', '3');
    await confirmed(alice);
    await text_becomes(bob, 'clap-total', '5');
    await alice.reload();
    await text_becomes(alice, 'connection-status', 'live');
    await text_becomes(alice, 'clap-total', '5');
    await text_becomes(alice, 'my-claps', '3');
    await bob.reload();
    await text_becomes(bob, 'connection-status', 'live');
    await text_becomes(bob, 'clap-total', '5');
    await text_becomes(bob, 'my-claps', '2');
    await text_becomes(alice, 'viewers', '2');
  });

  test('without ?user the page picks a reader name and keeps it across reloads', async () => {
    const anon = await open(`/articles/${OTHER_ARTICLE}`);
    const name = await anon.textContent('[data-role="user-name"]');
    assert.match(name, /^[A-Za-z0-9._:-]+$/);
    await anon.click(by_testid('clap-button'));
    // The page renders on the next animation frame: until my-claps shows the
    // click, data-confirmed still describes the state before it.
    await text_becomes(anon, 'my-claps', '1');
    await confirmed(anon);
    await anon.reload();
    await text_becomes(anon, 'connection-status', 'live');
    assert.equal(await anon.textContent('[data-role="user-name"]'), name);
    await text_becomes(anon, 'my-claps', '1');
    await anon.context().close();
  });

  test('killing and restarting clapsd on the same port: reconnecting, then live with the right total', async () => {
    const port = server.port;
    await server.stop('SIGKILL');
    await text_becomes(alice, 'connection-status', 'reconnecting', 5000);
    await text_becomes(bob, 'connection-status', 'reconnecting', 5000);
    server = await startServer({ dataDir: data_dir, listen: `127.0.0.1:${port}` });
    assert.equal(server.port, port);
    // Backoff is capped at 5 s, so this is generous.
    await text_becomes(alice, 'connection-status', 'live', 15000);
    await text_becomes(bob, 'connection-status', 'live', 15000);
    await text_becomes(alice, 'clap-total', '5');
    await text_becomes(alice, 'my-claps', '3');
    await text_becomes(bob, 'my-claps', '2');
    await text_becomes(alice, 'viewers', '2');
    // And it is realtime again.
    await bob.click(by_testid('clap-button'));
    await text_becomes(alice, 'clap-total', '6', 1000);
  });

  test('simulated readers clap through the server and show up as readers', async () => {
    await alice.fill('input[name="readers"]', '3');
    await alice.fill('input[name="rate"]', '5');
    await alice.click('[data-role="simulate-toggle"]');
    await text_becomes(bob, 'viewers', '5');
    const start = await number_of(bob, 'clap-total');
    await bob.waitForFunction(([sel, n]) => Number(document.querySelector(sel).textContent) >= n,
      [by_testid('clap-total'), start + 5], { timeout: 10000 });
    await alice.click('[data-role="simulate-toggle"]');
    await text_becomes(bob, 'viewers', '2');
    await alice.evaluate(() => window.scrollTo(0, 0));
    await alice.screenshot({ path: join(ARTIFACTS, 'article-page.png') });
    assert.deepEqual(page_errors, []);
  });
});
