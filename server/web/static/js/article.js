// Article page: the text, a Medium-like clap button, undo, live total,
// "N reading now", connection status, user switcher and virtual readers.
import { ClapsClient, ID_PATTERN } from '/client/claps-client.js';
import {
  bind_status_badge, bind_user_switcher, current_user, format_count, frame_scheduler,
  load_articles, websocket_url,
} from './common.js';
import { VirtualReaders } from './simulate.js';

const HOLD_DELAY_MS = 350;   // press longer than this and claps repeat
const HOLD_REPEAT_MS = 80;   // one clap per repeat while held
const BUBBLE_LINGER_MS = 900;

function article_from_path() {
  const raw = location.pathname.replace(/^\/articles\//, '').replace(/\/$/, '');
  try {
    return decodeURIComponent(raw);
  } catch {
    return raw;
  }
}
const article_id = article_from_path();
const valid_article = ID_PATTERN.test(article_id);
const user = current_user();
bind_user_switcher(document.querySelector('[data-role="user-switcher"]'), user);

const el = {
  title: document.querySelector('[data-role="title"]'),
  author: document.querySelector('[data-role="author"]'),
  avatar: document.querySelector('[data-role="avatar"]'),
  minutes: document.querySelector('[data-role="minutes"]'),
  body: document.querySelector('[data-role="body"]'),
  not_found: document.querySelector('[data-role="not-found"]'),
  total: document.querySelector('[data-testid="clap-total"]'),
  mine: document.querySelector('[data-testid="my-claps"]'),
  viewers: document.querySelector('[data-testid="viewers"]'),
  button: document.querySelector('[data-testid="clap-button"]'),
  undo: document.querySelector('[data-testid="undo-button"]'),
  bubble: document.querySelector('[data-role="bubble"]'),
  cap_note: document.querySelector('[data-role="cap-note"]'),
};

// The text loads in parallel with the connection; counts do not wait for it.
load_articles().then((articles) => {
  const article = articles.find((a) => a.id === article_id);
  if (!article) {
    el.title.textContent = article_id;
    el.not_found.hidden = false;
    document.title = `${article_id} · Claps`;
    return;
  }
  document.title = `${article.title} · Claps`;
  el.title.textContent = article.title;
  el.author.textContent = article.author;
  el.avatar.textContent = article.author.split(/\s+/).map((w) => w[0]).slice(0, 2).join('');
  el.minutes.textContent = article.minutes ? `${article.minutes} min read` : '';
  el.body.replaceChildren(...article.paragraphs.map((text) => {
    const p = document.createElement('p');
    p.textContent = text;
    return p;
  }));
}).catch((err) => {
  el.title.textContent = article_id;
  el.not_found.hidden = false;
  el.not_found.textContent = `Could not load the article text (${err.message}); its claps are live all the same.`;
});

const client = new ClapsClient({ url: websocket_url(), user: user.name });
bind_status_badge(client, document.querySelector('[data-testid="connection-status"]'));
if (valid_article) {
  client.subscribe([article_id], { reading: true });
} else {
  el.button.disabled = true;
  el.not_found.hidden = false;
  el.not_found.textContent = 'Article ids are letters, digits and . _ : - only; this one cannot be clapped for.';
}

const render = frame_scheduler(() => {
  const view = client.view(article_id);
  el.total.textContent = format_count(view.total);
  el.mine.textContent = String(view.mine);
  el.viewers.textContent = format_count(view.viewers ?? 0);
  el.viewers.closest('.readers').dataset.active = String((view.viewers ?? 0) > 0);
  el.button.dataset.capped = String(view.capped);
  el.button.setAttribute('aria-label', view.capped
    ? `You gave this article the maximum of ${client.cap} claps`
    : 'Clap for this article');
  el.cap_note.textContent = view.capped ? ' · the most one reader can give' : '';
  el.undo.disabled = view.mine === 0;
  el.total.dataset.confirmed = String(view.unconfirmed === 0);
});
client.on('counts', ({ articles }) => {
  if (articles.some((v) => v.article === article_id)) render();
});
client.on('status', render);
client.on('error', (err) => console.warn('claps:', err.code, err.message));

// ---- the clap button ----

let hold_timer = null;
let bubble_timer = null;

function show_bubble() {
  el.bubble.textContent = `+${client.view(article_id).mine}`;
  el.bubble.classList.remove('pop');
  void el.bubble.offsetWidth; // restart the pop animation
  el.bubble.classList.add('pop', 'visible');
  clearTimeout(bubble_timer);
  bubble_timer = setTimeout(() => el.bubble.classList.remove('visible'), BUBBLE_LINGER_MS);
}

function clap_once() {
  if (!valid_article) return 0;
  const queued = client.clap(article_id, 1);
  if (queued === 0) {
    el.button.classList.remove('refused');
    void el.button.offsetWidth;
    el.button.classList.add('refused');
    stop_hold();
  } else {
    el.button.classList.remove('burst');
    void el.button.offsetWidth;
    el.button.classList.add('burst');
  }
  show_bubble();
  return queued;
}

function stop_hold() {
  clearTimeout(hold_timer);
  clearInterval(hold_timer);
  hold_timer = null;
  el.button.classList.remove('holding');
}

el.button.addEventListener('pointerdown', (event) => {
  if (event.button !== 0) return;
  event.preventDefault();
  el.button.setPointerCapture?.(event.pointerId);
  stop_hold();
  if (clap_once() === 0) return;
  el.button.classList.add('holding');
  hold_timer = setTimeout(() => {
    hold_timer = setInterval(() => {
      if (clap_once() === 0) stop_hold();
    }, HOLD_REPEAT_MS);
  }, HOLD_DELAY_MS);
});
for (const type of ['pointerup', 'pointercancel', 'lostpointercapture']) {
  el.button.addEventListener(type, stop_hold);
}
// Keyboard activation (Enter/Space) arrives as a click with detail 0;
// pointer clicks were already counted on pointerdown.
el.button.addEventListener('click', (event) => {
  if (event.detail === 0) clap_once();
});
el.button.addEventListener('contextmenu', (event) => event.preventDefault());

el.undo.addEventListener('click', () => {
  if (!valid_article) return;
  stop_hold();
  client.undo(article_id);
  el.bubble.classList.remove('visible');
});

// ---- virtual readers ----

const readers = new VirtualReaders({ url: websocket_url(), article: article_id });
const sim_form = document.querySelector('[data-role="simulate-form"]');
const sim_toggle = document.querySelector('[data-role="simulate-toggle"]');
const sim_stats = document.querySelector('[data-role="simulate-stats"]');
sim_form.addEventListener('submit', (event) => {
  event.preventDefault();
  if (!valid_article) return;
  if (readers.running) {
    readers.stop();
  } else {
    const data = new FormData(sim_form);
    readers.start({
      count: Math.max(1, Math.min(50, Number(data.get('readers')) || 1)),
      rate: Math.max(0.2, Math.min(10, Number(data.get('rate')) || 1)),
    });
  }
  sim_toggle.textContent = readers.running ? 'Stop' : 'Start';
  sim_form.classList.toggle('running', readers.running);
});
readers.on_change = (s) => {
  sim_stats.textContent = s.running
    ? `${s.readers} virtual readers (${s.live} live) · ${s.claps_sent} claps sent · ${s.claps_acked} counted`
    : s.claps_sent ? `Stopped. ${s.claps_sent} claps sent, ${s.claps_acked} counted.` : 'No virtual readers.';
};
window.addEventListener('pagehide', () => readers.stop());

window.clapsDemo = { client, readers, article: article_id };
