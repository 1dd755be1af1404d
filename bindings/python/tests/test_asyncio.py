"""claps.AsyncioDriver: ticks and completions from an asyncio loop, an idle
engine arms no timer, a raising callback is reported, close() settles."""

import asyncio
import unittest

import claps
from support import TempDirTest


async def wait_for(condition, what, timeout_s=5.0):
    """Yields to the loop until condition() holds (the driver's events run)."""
    async def poll():
        while not condition():
            await asyncio.sleep(0.005)  # a poll, like tests/integration's eventually()
    try:
        await asyncio.wait_for(poll(), timeout_s)
    except asyncio.TimeoutError:
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}") from None


class AsyncioDriverTest(TempDirTest, unittest.IsolatedAsyncioTestCase):
    async def asyncSetUp(self):
        self.store = claps.LmdbStore(self.path())
        self.results, self.updates = [], []
        self.engine = claps.Engine(self.store, on_result=self.results.append,
                                   on_update=lambda sub, ups: self.updates.append((sub, ups[0].total)))
        self.driver = claps.AsyncioDriver(self.engine, self.store)

    async def asyncTearDown(self):
        await asyncio.wait_for(self.driver.close(), 10)
        self.store.close()

    async def test_claps_are_committed_and_answered(self):
        self.engine.subscribe(1, "a1")
        self.engine.subscribe(2, "a1")
        self.engine.clap("alice", "a1", 4, op_id="op-1", cookie="c1")
        await wait_for(lambda: self.results, "the result")
        self.assertEqual((self.results[0].cookie, self.results[0].accepted), ("c1", 4))
        await wait_for(lambda: {(1, 4), (2, 4)} <= set(self.updates), "both subscribers' updates")

    async def test_an_idle_engine_arms_no_timer(self):
        self.engine.clap("alice", "a1", 1)
        self.assertTrue(self.driver.timer_armed, "a clap woke the driver")
        await wait_for(lambda: self.results, "the result")
        await wait_for(lambda: not self.driver.timer_armed, "the driver to go idle")
        # No timer and nothing on the fd: the loop has nothing of ours to wake for.
        self.assertIsNone(self.engine.next_deadline())
        self.engine.subscribe(1, "a1")
        self.assertTrue(self.driver.timer_armed, "a subscribe woke it (the viewer count goes out)")
        await wait_for(lambda: not self.driver.timer_armed, "the driver to go idle again")

    async def test_a_raising_callback_is_reported_and_the_engine_goes_on(self):
        reported = []
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, context: reported.append(context["exception"]))

        def on_result(result):
            self.results.append(result)
            if result.cookie == "boom":
                raise ValueError("callback failed")

        await self.driver.close()
        self.store.close()
        self.store = claps.LmdbStore(self.path("second"))
        self.results = []
        self.engine = claps.Engine(self.store, on_result=on_result)
        self.driver = claps.AsyncioDriver(self.engine, self.store)
        self.engine.clap("alice", "a1", 1, cookie="boom")
        await wait_for(lambda: reported, "the callback's exception to be reported")
        self.assertIsInstance(reported[0], ValueError)
        self.engine.clap("bob", "a1", 1, cookie="after")
        await wait_for(lambda: len(self.results) == 2, "the next result")
        self.assertEqual(self.engine.read("a1").total, 2)

    async def test_close_settles_every_op(self):
        for i in range(10):
            self.engine.clap(f"u{i}", "a1", 1, op_id=f"op-{i}", cookie=i)
        await asyncio.wait_for(self.driver.close(), 10)
        self.assertTrue(self.engine.closed)
        self.assertEqual(sorted(r.cookie for r in self.results), list(range(10)))
        self.assertTrue(all(r.error == "" for r in self.results))
        with self.assertRaises(claps.Error):
            self.engine.clap("late", "a1", 1)


if __name__ == "__main__":
    unittest.main()
