// The live admin page: /admin/ws on the admin listener, one `admin` frame
// about once a second after {"type":"subscribe_admin"} (docs/protocol.md).
// Reconnects with a growing delay when the socket drops.

const $ = (id) => document.querySelector(`[data-testid="${id}"]`);

function cell(text, numeric) {
  const td = document.createElement('td');
  td.textContent = text === null || text === undefined ? '–' : String(text);
  if (numeric) td.className = 'n';
  return td;
}

/** Fills a two-column table from [label, value] pairs; rows carry data-key for tests. */
function pairs(table, rows) {
  table.replaceChildren(...rows.map(([key, value]) => {
    const tr = document.createElement('tr');
    tr.dataset.key = key;
    const th = document.createElement('th');
    th.textContent = key;
    tr.append(th, cell(value, typeof value === 'number'));
    return tr;
  }));
}

function articles(table, list) {
  const head = document.createElement('tr');
  for (const h of ['article', 'viewers', 'this node', 'other nodes', 'total', 'claps/s']) {
    const th = document.createElement('th');
    th.textContent = h;
    head.append(th);
  }
  const rows = list.map((a) => {
    const tr = document.createElement('tr');
    tr.dataset.article = a.article;
    tr.append(cell(a.article), cell(a.viewers, true), cell(a.local_viewers, true), cell(a.remote_viewers, true),
      cell(a.total, true), cell(Math.round(a.claps_per_s * 10) / 10, true));
    return tr;
  });
  table.replaceChildren(head, ...rows);
}

const yes = (b) => (b ? 'yes' : 'no');

/** The nodes sharing Redis; rows carry data-node and data-live for tests. */
function nodes(table, list) {
  const head = document.createElement('tr');
  for (const h of ['node', 'live', 'heartbeat age s', 'viewers', 'part of totals', 'articles']) {
    const th = document.createElement('th');
    th.textContent = h;
    head.append(th);
  }
  const rows = list.map((n) => {
    const tr = document.createElement('tr');
    tr.dataset.node = n.id;
    tr.dataset.live = String(n.live);
    const age = n.heartbeat_age_ms === null ? null : Math.round(n.heartbeat_age_ms / 100) / 10;
    tr.append(cell(n.self ? `${n.id} (this node)` : n.id), cell(yes(n.live)), cell(age, true), cell(n.viewers, true),
      cell(n.total, true), cell(n.articles, true));
    return tr;
  });
  table.replaceChildren(head, ...rows);
}

const ms = (v) => (v === null ? null : Math.round(v * 1000) / 1000);

function show(f) {
  $('node').textContent = f.node ? `· ${f.node}` : '';
  $('updated').textContent = new Date().toLocaleTimeString();
  pairs($('node-table'), [['ready', yes(f.ready)], ['draining', yes(f.draining)], ['degraded', yes(f.degraded)],
    ['store full', yes(f.store_full)], ['uptime s', f.uptime_s]]);
  const c = f.connections;
  pairs($('connections-table'), [['ws', c.ws], ['sse', c.sse], ['rest in flight', c.rest_in_flight],
    ['admin', c.admin], ['max', c.max], ['ws since start', c.ws_total]]);
  const e = f.engine;
  const lat = e.commit_latency;
  const tick = e.tick_duration;
  pairs($('engine-table'), [['ticks/s', e.ticks_per_s], ['commits/s', e.commits_per_s], ['claps/s', e.claps_per_s],
    ['pending ops', e.pending_ops], ['subscribers', e.subscribers], ['subscriptions', e.subscriptions],
    [`commit p50 ms (${lat.window_s} s)`, lat.p50_ms], [`commit p99 ms (${lat.window_s} s)`, lat.p99_ms],
    ['commit avg ms', ms(lat.avg_ms)],
    [`tick p50 ms (${tick.window_s} s)`, tick.p50_ms], [`tick p99 ms (${tick.window_s} s)`, tick.p99_ms],
    ['tick avg ms', ms(tick.avg_ms)],
    ['commit failures', e.commit_failures]]);
  pairs($('clients-table'), Object.entries(f.clients));
  pairs($('limits-table'), Object.entries(f.limits));
  pairs($('redis-table'), f.redis ? Object.entries(f.redis).filter(([k]) => k !== 'nodes')
    .map(([k, v]) => [k, typeof v === 'boolean' ? yes(v) : v]) : [['redis', 'not used (single node)']]);
  $('cluster-section').hidden = !f.redis;
  if (f.redis) nodes($('cluster-nodes'), f.redis.nodes);
  articles($('by-viewers'), f.articles.by_viewers);
  articles($('by-claps'), f.articles.by_claps_per_s);
}

let delay = 500;
function connect() {
  const status = $('admin-status');
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/admin/ws`);
  ws.onopen = () => {
    delay = 500;
    status.textContent = status.dataset.status = 'live';
    ws.send(JSON.stringify({ type: 'subscribe_admin' }));
  };
  ws.onmessage = (event) => {
    const frame = JSON.parse(event.data);
    if (frame.type === 'admin') show(frame);
    else if (frame.type === 'error') {
      status.textContent = `${frame.code}: ${frame.message}`;
      if (frame.code === 'too_many_admin_subscribers') status.dataset.status = 'refused';
    }
  };
  ws.onclose = () => {
    // A refused socket keeps saying why while it retries.
    if (status.dataset.status !== 'refused') status.textContent = status.dataset.status = 'disconnected';
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 10000);
  };
}
connect();
