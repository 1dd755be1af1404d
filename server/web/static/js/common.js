// Shared pieces of the demo pages: who the reader is, where the server is,
// the article list, and the connection badge.
import { ID_PATTERN } from '/client/claps-client.js';

const ADJECTIVES = ['quiet', 'curious', 'bright', 'gentle', 'swift', 'patient', 'bold', 'merry',
  'calm', 'clever', 'sunny', 'brave', 'kind', 'lucky', 'wise', 'eager'];
const ANIMALS = ['heron', 'otter', 'lynx', 'falcon', 'badger', 'wren', 'fox', 'panda',
  'marten', 'owl', 'seal', 'koala', 'ibis', 'hare', 'yak', 'finch'];
const STORAGE_KEY = 'claps.reader';

export function random_reader_name() {
  const pick = (list) => list[Math.floor(Math.random() * list.length)];
  return `${pick(ADJECTIVES)}-${pick(ANIMALS)}-${10 + Math.floor(Math.random() * 90)}`;
}

/**
 * The demo user: ?user=NAME wins; otherwise a random reader name kept in
 * localStorage, so a reload or reconnect stays the same user and retried op
 * ids stay valid.
 */
export function current_user() {
  const from_url = new URLSearchParams(location.search).get('user');
  if (from_url && ID_PATTERN.test(from_url)) return { name: from_url, from_url: true };
  let stored = null;
  try { stored = localStorage.getItem(STORAGE_KEY); } catch { /* storage disabled */ }
  if (!stored || !ID_PATTERN.test(stored)) {
    stored = random_reader_name();
    try { localStorage.setItem(STORAGE_KEY, stored); } catch { /* storage disabled */ }
  }
  return { name: stored, from_url: false };
}

/** Keeps ?user= on links so a tab opened as "bob" stays bob. */
export function with_user(path, user) {
  return user.from_url ? `${path}?user=${encodeURIComponent(user.name)}` : path;
}

export function websocket_url() {
  return `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`;
}

export async function load_articles() {
  const response = await fetch('/static/articles.json', { cache: 'no-cache' });
  if (!response.ok) throw new Error(`articles.json: HTTP ${response.status}`);
  return response.json();
}

const STATUS_TEXT = { connecting: 'connecting', live: 'live', reconnecting: 'reconnecting', offline: 'offline' };

/**
 * Mirrors the client's status on a badge element, and while live the node it
 * is on (data-node, shown by CSS) when the server names one: behind a load
 * balancer, a killed node's readers show the move to another.
 */
export function bind_status_badge(client, badge) {
  const render = (status) => {
    badge.textContent = STATUS_TEXT[status] ?? status;
    badge.dataset.status = status;
    const node = status === 'live' ? client.node : null;
    if (node) badge.dataset.node = node;
    else delete badge.dataset.node;
    badge.title = status === 'live' ? `Connected${node ? ` to node ${node}` : ''}: counts update in real time`
      : status === 'offline' ? 'Offline: still trying to reconnect'
      : 'Connecting to the server…';
  };
  render(client.status);
  client.on('status', ({ status }) => render(status));
}

/** Wires the header's user switcher: shows the name, switches by reloading with ?user=. */
export function bind_user_switcher(root, user) {
  const name = root.querySelector('[data-role="user-name"]');
  const toggle = root.querySelector('[data-role="user-toggle"]');
  const panel = root.querySelector('[data-role="user-panel"]');
  const form = root.querySelector('form');
  const input = root.querySelector('input[name="user"]');
  const random_button = root.querySelector('[data-role="user-random"]');
  const other_tab = root.querySelector('[data-role="user-other-tab"]');
  name.textContent = user.name;
  input.value = user.name;

  const go_as = (next) => {
    const url = new URL(location.href);
    url.searchParams.set('user', next);
    location.assign(url);
  };
  toggle.addEventListener('click', () => {
    panel.hidden = !panel.hidden;
    toggle.setAttribute('aria-expanded', String(!panel.hidden));
    if (!panel.hidden) input.select();
  });
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const next = input.value.trim();
    if (!ID_PATTERN.test(next)) {
      input.setCustomValidity('Use letters, digits and . _ : - only');
      input.reportValidity();
      return;
    }
    go_as(next);
  });
  input.addEventListener('input', () => input.setCustomValidity(''));
  random_button.addEventListener('click', () => go_as(random_reader_name()));
  other_tab.addEventListener('click', (event) => {
    event.preventDefault();
    const url = new URL(location.href);
    url.searchParams.set('user', random_reader_name());
    window.open(url, '_blank', 'noopener');
  });
  document.addEventListener('click', (event) => {
    if (!panel.hidden && !root.contains(event.target)) {
      panel.hidden = true;
      toggle.setAttribute('aria-expanded', 'false');
    }
  });
}

export function format_count(n) {
  if (n === null || n === undefined) return '–';
  return String(n);
}

/**
 * Batches DOM writes into one per animation frame, however many WebSocket
 * frames arrive. Hidden tabs get no animation frames, so they render at once.
 */
export function frame_scheduler(render) {
  let queued = false;
  return () => {
    if (document.visibilityState !== 'visible') {
      render();
      return;
    }
    if (queued) return;
    queued = true;
    requestAnimationFrame(() => {
      queued = false;
      render();
    });
  };
}
