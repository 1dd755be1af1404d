"""AsyncioDriver: runs a claps.Engine on an asyncio event loop."""

import asyncio
import time


def _now_ms():
    return time.time_ns() // 1_000_000


class AsyncioDriver:
    """Drives `engine` on `loop` (default: the running loop).

    It arms one timer for engine.next_deadline() and calls engine.advance()
    when it fires, and it watches store.fileno() (an LmdbStore with its
    writer thread) with loop.add_reader() to call store.run_completions().
    The engine tells it of new work through engine.on_wake, which the driver
    sets, so the caller's clap()/subscribe() calls need no extra step. An idle
    engine arms no timer: the loop sleeps.

    An exception raised by on_update or on_result inside a tick the driver
    runs goes to loop.call_exception_handler() (by default: logged); the
    engine goes on.

    Shut down with `await driver.close()`: it closes the engine, waits until
    every op has had its result, and detaches from the loop. Then close the
    store. Everything runs on the loop's thread, the engine's thread.
    """

    def __init__(self, engine, store, loop=None):
        self._engine = engine
        self._store = store
        self._loop = loop if loop is not None else asyncio.get_running_loop()
        self._timer = None
        self._timer_due = None
        self._closing = None  # the future close() waits on
        self._fd = store.fileno() if hasattr(store, "fileno") else None
        if self._fd is not None:
            self._loop.add_reader(self._fd, self._on_completions)
        engine.on_wake = self.wake
        self.wake()

    @property
    def timer_armed(self):
        """True while a tick is scheduled (False when the engine is idle)."""
        return self._timer is not None

    def wake(self):
        """Arms the timer for the engine's next deadline (earlier ones win)."""
        deadline = self._engine.next_deadline()
        if deadline is None:
            return
        if self._timer is not None:
            if self._timer_due <= deadline:
                return
            self._timer.cancel()
        delay = max(0.0, (deadline - _now_ms()) / 1000.0)
        self._timer_due = deadline
        self._timer = self._loop.call_later(delay, self._on_timer)

    async def close(self):
        """Closes the engine and waits until it is closed (every result in)."""
        if self._closing is None:
            self._closing = self._loop.create_future()
            self._run(self._engine.close)
        await self._closing

    def _on_timer(self):
        self._timer = None
        self._timer_due = None
        self._run(self._engine.advance)

    def _on_completions(self):
        self._run(self._store.run_completions)

    def _run(self, call):
        try:
            call()
        except Exception as e:  # a callback's exception, re-raised by the engine
            self._loop.call_exception_handler({
                "message": "claps: an engine callback raised",
                "exception": e,
            })
        if self._closing is not None and self._engine.closed:
            self._detach()
            if not self._closing.done():
                self._closing.set_result(None)
            return
        self.wake()

    def _detach(self):
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._fd is not None:
            self._loop.remove_reader(self._fd)
            self._fd = None
