// Home page: every article with its live total and readers, all over ONE
// WebSocket subscribed with reading:false, so this page never counts as a
// reader (the timeline case).
import { ClapsClient } from '/client/claps-client.js';
import {
  bind_status_badge, bind_user_switcher, current_user, format_count, frame_scheduler,
  load_articles, websocket_url, with_user,
} from './common.js';

const user = current_user();
bind_user_switcher(document.querySelector('[data-role="user-switcher"]'), user);

const list = document.querySelector('[data-role="article-list"]');
const template = document.getElementById('article-card');
const cards = new Map(); // article id -> { total, viewers } elements

function excerpt(text, limit = 180) {
  if (text.length <= limit) return text;
  const cut = text.lastIndexOf(' ', limit);
  return `${text.slice(0, cut > 0 ? cut : limit)}…`;
}

try {
  const articles = await load_articles();
  for (const article of articles) {
    const card = template.content.firstElementChild.cloneNode(true);
    const link = card.querySelector('[data-testid="article-link"]');
    link.href = with_user(`/articles/${encodeURIComponent(article.id)}`, user);
    link.dataset.article = article.id;
    card.dataset.article = article.id;
    card.querySelector('.card-author').textContent = article.author;
    card.querySelector('.card-title').textContent = article.title;
    card.querySelector('.card-excerpt').textContent = excerpt(article.paragraphs[0] ?? '');
    card.querySelector('.card-minutes').textContent = article.minutes ? `${article.minutes} min read` : '';
    list.append(card);
    cards.set(article.id, {
      total: card.querySelector('[data-role="total"]'),
      viewers: card.querySelector('[data-role="viewers"]'),
      readers: card.querySelector('.card-readers'),
    });
  }

  const client = new ClapsClient({ url: websocket_url(), user: user.name });
  bind_status_badge(client, document.querySelector('[data-testid="connection-status"]'));
  const dirty = new Set();
  const render = frame_scheduler(() => {
    for (const id of dirty) {
      const card = cards.get(id);
      if (!card) continue;
      const view = client.view(id);
      card.total.textContent = format_count(view.total);
      card.viewers.textContent = format_count(view.viewers ?? 0);
      card.readers.dataset.active = String((view.viewers ?? 0) > 0);
    }
    dirty.clear();
  });
  client.on('counts', ({ articles: changed }) => {
    for (const view of changed) dirty.add(view.article);
    render();
  });
  client.subscribe([...cards.keys()], { reading: false });
  window.clapsDemo = { client };
} catch (err) {
  const box = document.querySelector('[data-role="load-error"]');
  box.hidden = false;
  box.textContent = `Could not load the articles: ${err.message}`;
}
