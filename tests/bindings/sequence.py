#!/usr/bin/python3
"""The Python runner of tests/bindings/SEQUENCE.md.

The scripted sequence through the Python binding: an LmdbStore with its writer
thread, driven by a plain loop that waits on store.fileno() with select() until
the engine's next deadline. Prints one JSON line per step, like sequence_cpp.
Usage: sequence.py DIR   (a fresh directory for the LMDB store; the package
claps on PYTHONPATH, e.g. build/bindings/python)
"""

import json
import select
import sys
import time

import claps


def fail(why):
    print(f"sequence.py: {why}", file=sys.stderr)
    sys.exit(1)


def line(**fields):
    print(json.dumps(fields, separators=(",", ":")), flush=True)


class Node:
    """One engine on one store, with what its callbacks saw."""

    def __init__(self, directory):
        self.store = claps.LmdbStore(directory, writer_thread=True)
        self.result = None
        self.totals = []  # delivered to subscriber 1, for a1
        self.engine = claps.Engine(self.store, tick_ms=25, clap_cap=50,
                                   on_result=self._on_result, on_update=self._on_update)

    def _on_result(self, result):
        self.result = result

    def _on_update(self, subscriber, updates):
        if subscriber == 1:
            self.totals += [u.total for u in updates if u.article == "a1"]

    def run_until(self, done, what):
        """Ticks and runs completions until done(), 5 s deadline."""
        give_up = time.monotonic() + 5
        while not done():
            now = time.monotonic()
            if now >= give_up:
                fail(f"no {what} within 5 s")
            deadline = self.engine.next_deadline()
            wait = give_up - now
            if deadline is not None:
                wait = min(wait, max(0.0, deadline / 1000 - time.time()))
            ready, _, _ = select.select([self.store.fileno()], [], [], wait)
            if ready:
                self.store.run_completions()
            deadline = self.engine.next_deadline()
            if deadline is not None and deadline <= time.time_ns() // 1_000_000:
                self.engine.advance()

    def op(self, kind, user, article, count, op_id, cookie):
        self.result = None
        error, accepted, total, mine, replayed = "", 0, 0, 0, False
        try:
            if kind == "undo":
                self.engine.undo(user, article, op_id=op_id, cookie=cookie)
            else:
                self.engine.clap(user, article, count, op_id=op_id, cookie=cookie)
        except claps.Error as e:
            error = e.name
        else:
            self.run_until(lambda: self.result is not None, "result")
            r = self.result
            if (r.cookie, r.user, r.op_id) != (cookie, user, op_id):
                fail(f"the result of {op_id} reports another op")
            if r.error:
                error = r.error
            else:
                accepted, total, mine, replayed = r.accepted, r.total, r.mine, r.replayed
        line(step=kind, user=user, article=article, count=0 if kind == "undo" else count, op=op_id,
             error=error, accepted=accepted, total=total, mine=mine, replayed=replayed)

    def read(self, user, article):
        snap = self.engine.read(article, user=user)
        line(step="read", user=user, article=article, total=snap.total, mine=snap.mine)

    def close(self):
        """The documented shutdown: close, run completions until closed, then the store."""
        self.engine.close()
        self.run_until(lambda: self.engine.closed, "closed engine")
        self.store.close()


def main(argv):
    if len(argv) != 2:
        print("usage: sequence.py DIR", file=sys.stderr)
        return 2
    directory = argv[1]

    n = Node(directory)
    line(step="open")
    snap = n.engine.subscribe(1, "a1", user="alice", reading=True)
    line(step="subscribe", subscriber=1, article="a1", total=snap.total, viewers=snap.viewers, mine=snap.mine)
    # The subscription's own update (the viewer count) goes out first.
    n.run_until(lambda: n.totals, "delivery of the subscription")

    n.op("clap", "alice", "a1", 30, "op-1", 1)
    n.op("clap", "alice", "a1", 30, "op-2", 2)
    n.op("clap", "bob", "a1", 5, "op-3", 3)
    n.op("clap", "alice", "a1", 30, "op-1", 4)
    n.op("clap", "alice", "a1", 0, "op-5", 5)
    n.op("clap", "alice", "bad article!", 1, "op-6", 6)
    n.op("undo", "alice", "a1", 0, "op-4", 7)
    line(step="deliveries", subscriber=1, totals=n.totals)
    n.close()
    line(step="close")

    again = Node(directory)
    again.read("alice", "a1")
    again.read("bob", "a1")
    again.op("clap", "bob", "a1", 5, "op-3", 8)
    again.close()
    line(step="close")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
