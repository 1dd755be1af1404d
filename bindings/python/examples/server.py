#!/usr/bin/python3
"""A small clap server in Python: the engine on LMDB, inside an asyncio
WebSocket server (Debian's python3-websockets), speaking the basic flow of
docs/protocol.md at /ws: hello, subscribe (snapshots), unsubscribe, clap and
undo (acks and errors), and one counts frame per connection per tick. The JS
client (bindings/js/claps-client.js) and examples/claps-simulate.mjs work
against it.

Demo mode only: the user is ?user=NAME (anon-<hex> without one). No auth, no
rate limits, no REST: for those run clapsd.

    PYTHONPATH=build/bindings/python bindings/python/examples/server.py \\
        --listen 127.0.0.1:8080 --data-dir /tmp/claps-py
"""

import argparse
import asyncio
import json
import os
import re
import secrets
import signal
from http import HTTPStatus
import sys
from urllib.parse import parse_qs, urlsplit

import claps
import websockets

ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
OP_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")
TICK_MS, CAP = 25, 50


class Connection:
    """One WebSocket: its user, subscriber id and an ordered outbox."""

    def __init__(self, ws, user, subscriber):
        self.ws, self.user, self.subscriber = ws, user, subscriber
        self.outbox = asyncio.Queue()

    def send(self, frame):
        self.outbox.put_nowait(json.dumps(frame, separators=(",", ":")))

    async def write(self):
        while True:
            frame = await self.outbox.get()
            try:
                await self.ws.send(frame)
            finally:
                self.outbox.task_done()


class Server:
    def __init__(self, data_dir):
        self.store = claps.LmdbStore(data_dir)  # fsync'd commits on the store's writer thread
        self.engine = claps.Engine(self.store, tick_ms=TICK_MS, clap_cap=CAP,
                                   on_update=self.on_update, on_result=self.on_result)
        self.driver = claps.AsyncioDriver(self.engine, self.store)
        self.connections = {}  # subscriber id -> Connection
        self.next_subscriber = 1

    # ---- engine callbacks (run inside the driver's ticks and completions) ----

    def on_update(self, subscriber, updates):
        conn = self.connections.get(subscriber)
        if conn:
            conn.send({"type": "counts", "counts": [
                {"article": u.article, "total": u.total, "viewers": u.viewers} for u in updates]})

    def on_result(self, result):
        conn, op_id = result.cookie
        if self.connections.get(conn.subscriber) is not conn:
            return  # gone; a reconnect resends the op with its id
        if result.error:
            return conn.send(error_frame(result.error, result.message, op_id))
        ack = {"type": "ack"}
        if op_id:
            ack["id"] = op_id
        ack.update(article=result.article, accepted=result.accepted, total=result.total, mine=result.mine,
                   durability=result.durability)
        if result.replayed:
            ack["replayed"] = True
        conn.send(ack)

    # ---- connections ----

    async def check_request(self, path, headers):
        """Refuses a bad handshake before the upgrade, as clapsd does."""
        url = urlsplit(path)
        if url.path != "/ws":
            return http_error(404, "not_found", "the WebSocket endpoint is /ws")
        users = parse_qs(url.query).get("user", [])
        if users and not ID.match(users[0]):
            return http_error(400, "bad_request", "user must be 1-128 characters of [A-Za-z0-9._:-]")
        return None

    async def serve(self, ws):
        users = parse_qs(urlsplit(ws.path).query).get("user", [])
        user = users[0] if users else "anon-" + secrets.token_hex(5)
        conn = Connection(ws, user, self.next_subscriber)
        self.next_subscriber += 1
        self.connections[conn.subscriber] = conn
        writer = asyncio.create_task(conn.write())
        conn.send({"type": "hello", "protocol": 1, "user": user, "tick_ms": TICK_MS, "cap": CAP})
        try:
            async for message in ws:
                self.handle(conn, message)
        except websockets.ConnectionClosed:
            pass
        finally:
            del self.connections[conn.subscriber]
            if not self.engine.closed:
                self.engine.unsubscribe(conn.subscriber)
            writer.cancel()

    def handle(self, conn, message):
        if isinstance(message, bytes):
            return conn.send(error_frame("bad_request", "binary frames are not supported"))
        try:
            frame = json.loads(message)
        except ValueError as e:
            return conn.send(error_frame("bad_request", f"malformed JSON: {e}"))
        if not isinstance(frame, dict):
            return conn.send(error_frame("bad_request", "a message is a JSON object"))
        op_id = frame.get("id")
        if op_id is not None and not (isinstance(op_id, str) and OP_ID.match(op_id)):
            return conn.send(error_frame("bad_request", "id must be 1-64 characters of [A-Za-z0-9._:-]"))
        kind = frame.get("type")
        try:
            if kind == "subscribe":
                self.subscribe(conn, frame, op_id)
            elif kind == "unsubscribe":
                for article in articles_of(frame):
                    self.engine.unsubscribe(conn.subscriber, article)
            elif kind in ("clap", "undo"):
                article = frame.get("article")
                if not isinstance(article, str):
                    raise BadRequest('"article" must be a string')
                if kind == "clap":
                    count = frame.get("count", 1)
                    if not isinstance(count, int) or isinstance(count, bool):
                        raise BadRequest('"count" must be an integer')
                    self.engine.clap(conn.user, article, count, op_id=op_id, cookie=(conn, op_id))
                else:
                    self.engine.undo(conn.user, article, op_id=op_id, cookie=(conn, op_id))
            else:
                raise BadRequest(f"unknown type {kind!r}")
        except BadRequest as e:
            conn.send(error_frame("bad_request", str(e), op_id))
        except claps.Error as e:
            conn.send(error_frame(e.code, e.message, op_id, e.reason))

    def subscribe(self, conn, frame, request_id):
        reading = frame.get("reading", True)
        if not isinstance(reading, bool):
            raise BadRequest('"reading" must be true or false')
        snapshots = self.engine.subscribe(conn.subscriber, articles_of(frame), user=conn.user, reading=reading)
        reply = {"type": "counts"}
        if request_id:
            reply["id"] = request_id
        reply["snapshot"] = True
        reply["counts"] = [{"article": s.article, "total": s.total, "viewers": s.viewers, "mine": s.mine}
                           for s in snapshots]
        conn.send(reply)

    async def shut_down(self):
        """Commits and acks everything pending, then closes the connections (1001)."""
        await self.driver.close()
        for conn in list(self.connections.values()):
            try:
                await asyncio.wait_for(conn.outbox.join(), 5)  # the acks reach the socket first
            except asyncio.TimeoutError:
                pass  # a client that does not read gets its close anyway
            await conn.ws.close(1001, "server shutdown")
        self.store.close()


class BadRequest(Exception):
    pass


def articles_of(frame):
    articles = frame.get("articles")
    if not isinstance(articles, list) or not all(isinstance(a, str) for a in articles):
        raise BadRequest('"articles" must be an array of strings')
    return articles


def error_frame(code, message, request_id=None, reason=""):
    frame = {"type": "error", "code": code}
    if reason:
        frame["reason"] = reason
    frame["message"] = message
    if request_id:
        frame["id"] = request_id
    return frame


def http_error(status, code, message):
    body = json.dumps({"code": code, "message": message}).encode()
    return HTTPStatus(status), [("Content-Type", "application/json")], body


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--listen", default="127.0.0.1:8080", help="HOST:PORT (port 0: any free one)")
    parser.add_argument("--data-dir", default="data", help="the LMDB store's directory")
    args = parser.parse_args()
    host, _, port = args.listen.rpartition(":")
    os.makedirs(args.data_dir, exist_ok=True)

    server = Server(args.data_dir)
    stop = asyncio.get_running_loop().create_future()
    for sig in (signal.SIGINT, signal.SIGTERM):
        asyncio.get_running_loop().add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))
    async with websockets.serve(server.serve, host, int(port), process_request=server.check_request) as ws:
        bound = ws.sockets[0].getsockname()
        print(f"claps server.py listening on ws://{bound[0]}:{bound[1]}/ws", flush=True)
        await stop
        ws.server.close()  # stop accepting; open connections stay until the acks are out
        await server.shut_down()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
