"""claps.Engine on each store: errors, the cap, undo, op-id replays, updates,
close, callbacks that raise or misbehave, the thread rule."""

import itertools
import threading
import unittest

import claps
from support import TempDirTest, drive


class Recorder:
    """Records what an engine's callbacks saw."""

    def __init__(self):
        self.results = []
        self.updates = []  # (subscriber, [(article, total, viewers)])

    def on_result(self, result):
        self.results.append(result)

    def on_update(self, subscriber, updates):
        self.updates.append((subscriber, [(u.article, u.total, u.viewers) for u in updates]))

    def totals(self, subscriber, article):
        return [t for s, ups in self.updates if s == subscriber for a, t, _ in ups if a == article]


class EngineCases:
    """The same cases on every store; subclasses say which (make_store)."""

    def open(self, **options):
        self.store = self.make_store()
        self.rec = Recorder()
        self.engine = claps.Engine(self.store, on_result=self.rec.on_result, on_update=self.rec.on_update,
                                   **options)
        self.addCleanup(self.shut)
        return self.engine

    def shut(self):
        if not self.engine.closed:
            self.engine.close(wait_s=5)
        self.assertTrue(self.engine.closed)
        if hasattr(self.store, "close"):
            self.store.close()

    def settle(self, count):
        """Drives the engine until `count` results came in."""
        drive(self.engine, self.store, lambda: len(self.rec.results) >= count, what=f"{count} results")
        return self.rec.results[count - 1]

    def clap(self, *args, **kwargs):
        self.engine.clap(*args, **kwargs)
        return self.settle(len(self.rec.results) + 1)

    def test_refused_ops_raise_and_get_no_result(self):
        engine = self.open()
        cases = [
            (dict(user="alice", article="a1", count=0), "invalid_count", "bad_request"),
            (dict(user="alice", article="a1", count=51), "invalid_count", "bad_request"),
            (dict(user="alice", article="a1", count=2**40), "invalid_count", "bad_request"),
            (dict(user="alice", article="bad article!", count=1), "invalid_article", "invalid_article"),
            (dict(user="", article="a1", count=1), "invalid_user", "bad_request"),
            (dict(user="alice", article="a1", count=1, op_id="x" * 65), "invalid_op_id", "bad_request"),
        ]
        for kwargs, name, code in cases:
            with self.subTest(**{k: str(v)[:20] for k, v in kwargs.items()}):
                with self.assertRaises(claps.Error) as caught:
                    engine.clap(**kwargs)
                self.assertEqual(caught.exception.name, name)
                self.assertEqual(caught.exception.code, code)
                self.assertTrue(caught.exception.message)
        with self.assertRaises(claps.Error) as caught:
            engine.subscribe(1, "bad article!")
        self.assertEqual(caught.exception.name, "invalid_article")
        # A good op afterwards is the only one answered.
        result = self.clap("alice", "a1", 1, op_id="ok")
        self.assertEqual(len(self.rec.results), 1)
        self.assertEqual((result.op_id, result.accepted, result.error), ("ok", 1, ""))

    def test_bad_options_name_the_option(self):
        store = self.make_store()
        with self.assertRaises(claps.Error) as caught:
            claps.Engine(store, tick_ms=0)
        self.assertEqual(caught.exception.code, "bad_request")
        self.assertIn("tick", caught.exception.message)
        if hasattr(store, "close"):
            store.close()  # the refused engine did not keep the store

    def test_wrong_types_raise_type_error(self):
        with self.assertRaises(TypeError):
            claps.Engine("not a store")
        engine = self.open()
        with self.assertRaises(TypeError):
            engine.clap("alice", "a1", "3")
        with self.assertRaises(TypeError):
            engine.subscribe("one", "a1")

    def test_cap_bounds_a_users_claps(self):
        self.open()
        first = self.clap("alice", "a1", 30, op_id="op-1", cookie="first")
        self.assertEqual((first.accepted, first.total, first.mine, first.cookie), (30, 30, 30, "first"))
        self.assertEqual((first.user, first.article, first.op_id), ("alice", "a1", "op-1"))
        second = self.clap("alice", "a1", 30, op_id="op-2")
        self.assertEqual((second.accepted, second.total, second.mine), (20, 50, 50))
        third = self.clap("alice", "a1", 1)
        self.assertEqual((third.accepted, third.total, third.mine), (0, 50, 50))
        other = self.clap("bob", "a1", 5)
        self.assertEqual((other.accepted, other.total, other.mine), (5, 55, 5))
        stats = self.engine.stats()
        self.assertEqual(stats["claps_accepted"], 55)
        self.assertEqual(stats["claps_over_cap"], 11)

    def test_undo_removes_a_users_claps(self):
        self.open()
        self.clap("alice", "a1", 12)
        self.clap("bob", "a1", 3)
        self.engine.undo("alice", "a1", op_id="u-1", cookie=7)
        undo = self.settle(3)
        self.assertEqual((undo.accepted, undo.total, undo.mine, undo.cookie), (-12, 3, 0, 7))
        self.assertEqual(self.engine.read("a1", user="alice").mine, 0)
        self.assertEqual(self.engine.read("a1", user="bob").mine, 3)

    def test_op_id_replay_is_counted_once(self):
        self.open()
        self.clap("alice", "a1", 7, op_id="op-1")
        self.clap("bob", "a1", 2)
        replay = self.clap("alice", "a1", 7, op_id="op-1")
        self.assertTrue(replay.replayed)
        self.assertEqual((replay.accepted, replay.total, replay.mine), (7, 9, 7))
        # The same op id on another article is another op.
        other = self.clap("alice", "a2", 7, op_id="op-1")
        self.assertEqual((other.replayed, other.accepted, other.total), (False, 7, 7))
        self.assertEqual(self.engine.stats()["replays"], 1)

    def test_subscribers_get_updates_and_snapshots(self):
        engine = self.open()
        snap = engine.subscribe(1, "a1", user="alice")
        self.assertEqual((snap.article, snap.total, snap.viewers, snap.mine, snap.partial),
                         ("a1", 0, 1, 0, False))
        many = engine.subscribe(2, ["a1", "a2"], user="bob", reading=False)
        self.assertEqual([(s.article, s.viewers) for s in many], [("a1", 1), ("a2", 0)])
        self.assertEqual(engine.subscription_count(2), 2)
        self.clap("bob", "a1", 4)
        drive(engine, self.store, lambda: 4 in self.rec.totals(1, "a1") and 4 in self.rec.totals(2, "a1"),
              what="both subscribers to see total 4")
        engine.unsubscribe(2)
        self.assertEqual(engine.subscription_count(2), 0)

    def test_close_settles_every_op_and_refuses_new_ones(self):
        engine = self.open()
        for i in range(20):
            engine.clap(f"user{i}", "a1", 1, op_id=f"op-{i}", cookie=i)
        engine.close()
        with self.assertRaises(claps.Error) as caught:
            engine.clap("late", "a1", 1)
        self.assertEqual(caught.exception.code, "unavailable")
        drive(engine, self.store, lambda: engine.closed, what="the engine to close")
        self.assertEqual(sorted(r.cookie for r in self.rec.results), list(range(20)))
        self.assertTrue(all(r.error == "" and r.accepted == 1 for r in self.rec.results))
        self.assertEqual(engine.stats()["claps_accepted"], 20)  # kept after the engine let go
        self.assertIsNone(engine.next_deadline())
        self.assertTrue(engine.close())  # again: nothing to do

    def test_dropping_an_engine_settles_its_ops(self):
        engine = self.open()
        for i in range(3):
            engine.clap("alice", "a1", 1, op_id=f"op-{i}", cookie=i)
        engine.flush()  # with the writer thread, this commit is now in flight
        for i in range(3, 6):
            engine.clap("bob", "a1", 1, op_id=f"op-{i}", cookie=i)
        self.engine = _Closed()  # the cleanup closes the store only
        del engine  # the last reference: ~engine settles every op
        self.assertEqual(sorted(r.cookie for r in self.rec.results), list(range(6)), "each op exactly once")
        for r in self.rec.results:
            self.assertIn(r.error, ("", "unavailable"))
        self.assertEqual([r.error for r in self.rec.results if r.cookie >= 3], ["unavailable"] * 3)
        if hasattr(self.store, "run_completions"):
            self.store.wait_for_commit()  # the commit in flight ends; its completion does nothing
            self.assertEqual(len(self.rec.results), 6)

    def test_a_raising_callback_is_reraised_after_the_engines_call(self):
        store = self.make_store()
        seen = []

        def on_result(result):
            seen.append(result.cookie)
            if result.cookie == "boom":
                raise ValueError("callback failed")

        engine = claps.Engine(store, on_result=on_result)
        self.engine, self.store, self.rec = engine, store, Recorder()
        self.addCleanup(self.shut)
        engine.clap("alice", "a1", 1, cookie="boom")
        engine.clap("bob", "a1", 1, cookie="fine")
        raised = []

        def step():
            try:
                drive(engine, store, lambda: len(seen) == 2, what="both results")
            except ValueError as e:
                raised.append(e)
                return False
            return True

        while not step():
            pass
        self.assertEqual(len(raised), 1)
        self.assertEqual(str(raised[0]), "callback failed")
        self.assertEqual(seen, ["boom", "fine"])  # the next result was still delivered
        # The engine goes on.
        engine.clap("carol", "a1", 1, cookie="after")
        drive(engine, store, lambda: "after" in seen, what="the next result")
        self.assertEqual(engine.read("a1").total, 3)

    def test_callbacks_may_not_call_mutating_functions(self):
        store = self.make_store()
        refused = []

        def on_result(result):
            for call in (lambda: engine.clap("alice", "a1", 1), lambda: engine.read("a1"), engine.advance):
                try:
                    call()
                except RuntimeError as e:
                    refused.append(str(e))
            refused.append(engine.stats()["pending_ops"])  # queries are fine

        engine = claps.Engine(store, on_result=on_result)
        self.engine, self.store, self.rec = engine, store, Recorder()
        self.addCleanup(self.shut)
        engine.clap("alice", "a1", 1)
        drive(engine, store, lambda: len(refused) == 4, what="the result")
        self.assertEqual(len([r for r in refused[:3] if "callback" in r]), 3, refused)
        self.assertEqual(engine.read("a1").total, 1)

    def test_the_engine_belongs_to_its_thread(self):
        engine = self.open()
        caught = []

        def other():
            try:
                engine.clap("alice", "a1", 1)
            except RuntimeError as e:
                caught.append(e)

        thread = threading.Thread(target=other, name="claps-test-other-thread")
        thread.start()
        thread.join(10)
        self.assertEqual(len(caught), 1)
        self.assertEqual(engine.stats()["claps_requested"], 0)


class _Closed:
    closed = True


_stores = itertools.count()


class MemoryStoreEngineTest(EngineCases, TempDirTest):
    def make_store(self):
        return claps.MemoryStore()


class LmdbInlineEngineTest(EngineCases, TempDirTest):
    def make_store(self):
        return claps.LmdbStore(self.path(f"inline{next(_stores)}"), writer_thread=False)


class LmdbWriterEngineTest(EngineCases, TempDirTest):
    def make_store(self):
        return claps.LmdbStore(self.path(f"writer{next(_stores)}"), writer_thread=True)


if __name__ == "__main__":
    unittest.main()
