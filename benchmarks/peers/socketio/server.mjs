// The Socket.IO 4 peer of clapsd for the benchmarks (issue 5): what the seed's
// recommended stack looks like when written the way its tutorials write it.
//
//   node server.mjs --mode naive|coalesced [--port 0] [--tick-ms 25] [--cap 50]
//
// Rooms per article, counts in memory, websocket transport only. Events carry
// clapsd's frame shapes: "hello", "counts" {counts:[{article,total,viewers}]},
// "ack" {id,article,accepted,total,mine}, "error" {code,message,id}; the
// client emits "subscribe" {articles,reading} and "clap" {article,count,id}.
//
// naive: every clap updates the count and emits to the article's room at once,
//        and is acknowledged at once.
// coalesced: claps mark their article changed; every tick one "counts" event
//        goes to each changed article's room, then the acks. Viewer-count
//        changes are coalesced the same way. (naive mode does not broadcast
//        joins and leaves: doing so per join is quadratic, and the tutorials
//        it stands for do not.)
//
// Prints "socketio-peer listening on http://HOST:PORT" once it accepts.
import http from "node:http";
import { Server } from "socket.io";

function flag(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const mode = flag("mode", "coalesced");
const port = Number(flag("port", "0"));
const tickMs = Number(flag("tick-ms", "25"));
const cap = Number(flag("cap", "50"));
if (mode !== "naive" && mode !== "coalesced") {
  console.error("server.mjs: --mode is naive or coalesced");
  process.exit(2);
}

const idPattern = /^[A-Za-z0-9._:-]{1,128}$/;
const totals = new Map();   // article -> total
const viewers = new Map();  // article -> reading subscribers
const tallies = new Map();  // user + "\n" + article -> claps
const changed = new Set();  // coalesced: articles to announce this tick
let pendingAcks = [];       // coalesced: [socket, ack] sent after the tick's counts

const countOf = (article) => ({ article, total: totals.get(article) ?? 0, viewers: viewers.get(article) ?? 0 });

const httpServer = http.createServer((req, res) => {
  res.writeHead(404).end();
});
const io = new Server(httpServer, {
  transports: ["websocket"],
  serveClient: false,
  perMessageDeflate: false,
  maxHttpBufferSize: 4096,
});

io.on("connection", (socket) => {
  const requested = socket.handshake.query.user;
  const user = typeof requested === "string" && idPattern.test(requested)
    ? requested : `anon-${Math.random().toString(36).slice(2, 10)}`;
  const reading = new Set();
  socket.emit("hello", { type: "hello", protocol: 1, user, tick_ms: tickMs, cap });

  socket.on("subscribe", (msg) => {
    const articles = Array.isArray(msg?.articles) ? msg.articles : [];
    if (articles.length === 0 || articles.length > 256 || !articles.every((a) => typeof a === "string" && idPattern.test(a))) {
      socket.emit("error", { type: "error", code: "invalid_article", message: "bad articles", id: msg?.id });
      return;
    }
    const counting = msg.reading !== false;
    const snapshot = [];
    for (const article of articles) {
      if (!socket.rooms.has(article)) {
        socket.join(article);
        if (counting) {
          reading.add(article);
          viewers.set(article, (viewers.get(article) ?? 0) + 1);
          if (mode === "coalesced") changed.add(article);
        }
      }
      snapshot.push({ ...countOf(article), mine: tallies.get(`${user}\n${article}`) ?? 0 });
    }
    socket.emit("counts", { type: "counts", counts: snapshot });
  });

  socket.on("clap", (msg) => {
    const article = msg?.article;
    const count = msg?.count ?? 1;
    if (typeof article !== "string" || !idPattern.test(article) || !Number.isInteger(count) || count < 1 || count > cap) {
      socket.emit("error", { type: "error", code: "bad_request", message: "bad clap", id: msg?.id });
      return;
    }
    const key = `${user}\n${article}`;
    const mine = tallies.get(key) ?? 0;
    const accepted = Math.min(count, cap - mine);
    tallies.set(key, mine + accepted);
    totals.set(article, (totals.get(article) ?? 0) + accepted);
    const ack = { type: "ack", id: msg.id, article, accepted, total: 0, mine: mine + accepted };
    if (mode === "naive") {
      ack.total = totals.get(article);
      socket.emit("ack", ack);
      io.to(article).emit("counts", { type: "counts", counts: [countOf(article)] });
    } else {
      if (accepted > 0) changed.add(article);
      pendingAcks.push([socket, ack]);
    }
  });

  socket.on("disconnect", () => {
    for (const article of reading) {
      viewers.set(article, (viewers.get(article) ?? 1) - 1);
      if (mode === "coalesced") changed.add(article);
    }
  });
});

if (mode === "coalesced") {
  setInterval(() => {
    for (const article of changed) io.to(article).emit("counts", { type: "counts", counts: [countOf(article)] });
    changed.clear();
    const acks = pendingAcks;
    pendingAcks = [];
    for (const [socket, ack] of acks) {
      ack.total = totals.get(ack.article) ?? 0;
      socket.emit("ack", ack);
    }
  }, tickMs);
}

httpServer.listen(port, "127.0.0.1", () => {
  const { address, port: bound } = httpServer.address();
  console.log(`socketio-peer listening on http://${address}:${bound}`);
});
for (const signal of ["SIGTERM", "SIGINT"]) process.on(signal, () => process.exit(0));
