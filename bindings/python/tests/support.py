"""What the binding's tests share: a fresh directory, and a loop that drives an
engine on its store until something happened (with a deadline, no sleeps)."""

import os
import select
import shutil
import tempfile
import time
import unittest


def now_ms():
    return time.time_ns() // 1_000_000


def drive(engine, store, done, timeout_s=5.0, what="the event"):
    """Ticks the engine and runs the store's completions until done() is true.

    Waits on store.fileno() (when the store has one) until the engine's next
    deadline; fails the test after timeout_s.
    """
    give_up = time.monotonic() + timeout_s
    fds = [store.fileno()] if hasattr(store, "fileno") else []
    while not done():
        left = give_up - time.monotonic()
        if left <= 0:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        deadline = engine.next_deadline()
        wait = left if deadline is None else min(left, max(0.0, deadline / 1000 - time.time()))
        ready, _, _ = select.select(fds, [], [], wait)
        if ready:
            store.run_completions()
        deadline = engine.next_deadline()
        if deadline is not None and deadline <= now_ms():
            engine.advance()


class TempDirTest(unittest.TestCase):
    """A fresh directory per test in self.dir, removed afterwards."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="claps-py-test-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def path(self, name="store"):
        return os.path.join(self.dir, name)
