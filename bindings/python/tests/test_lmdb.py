"""claps.LmdbStore: the completion fd, durability across a reopen, and the
rules for closing it."""

import select
import unittest

import claps
from support import TempDirTest, drive


def readable(fd, timeout_s):
    return bool(select.select([fd], [], [], timeout_s)[0])


class LmdbStoreTest(TempDirTest):
    def test_fileno_is_readable_while_a_completion_is_pending(self):
        store = claps.LmdbStore(self.path())
        self.addCleanup(store.close)
        results = []
        engine = claps.Engine(store, on_result=results.append)
        self.assertTrue(store.writer_thread)
        fd = store.fileno()
        self.assertFalse(readable(fd, 0), "nothing pending yet")
        engine.clap("alice", "a1", 3)
        engine.flush()  # hands the batch to the writer thread
        self.assertEqual(results, [], "the result waits for run_completions()")
        self.assertTrue(readable(fd, 5), "the writer made the fd readable")
        self.assertEqual(store.run_completions(), 1)
        self.assertEqual([r.accepted for r in results], [3])
        self.assertFalse(readable(fd, 0), "run_completions() drained it")
        self.assertEqual(store.run_completions(), 0, "a spurious call costs nothing")
        self.assertTrue(engine.close(wait_s=5))

    def test_inline_store_completes_inside_the_engines_call(self):
        store = claps.LmdbStore(self.path(), writer_thread=False)
        self.addCleanup(store.close)
        results = []
        engine = claps.Engine(store, on_result=results.append)
        engine.clap("alice", "a1", 3)
        engine.flush()
        self.assertEqual([r.accepted for r in results], [3])
        self.assertFalse(readable(store.fileno(), 0))
        self.assertTrue(engine.close())

    def test_state_and_op_ids_survive_a_reopen(self):
        for writer in (True, False):
            with self.subTest(writer_thread=writer):
                path = self.path(f"reopen-{writer}")
                store = claps.LmdbStore(path, writer_thread=writer)
                results = []
                engine = claps.Engine(store, on_result=results.append)
                engine.clap("alice", "a1", 30, op_id="op-1")
                engine.clap("bob", "a1", 5, op_id="op-2")
                self.assertTrue(engine.close(wait_s=5))
                self.assertEqual(len(results), 2)
                store.close()

                store = claps.LmdbStore(path, writer_thread=writer)
                results = []
                engine = claps.Engine(store, on_result=results.append)
                snap = engine.read("a1", user="alice")
                self.assertEqual((snap.total, snap.mine), (35, 30))
                engine.clap("bob", "a1", 5, op_id="op-2")
                drive(engine, store, lambda: results, what="the replay's result")
                self.assertTrue(results[0].replayed)
                self.assertEqual((results[0].accepted, results[0].total), (5, 35))
                self.assertTrue(engine.close(wait_s=5))
                store.close()

    def test_a_store_serves_one_open_engine(self):
        store = claps.LmdbStore(self.path())
        engine = claps.Engine(store)
        with self.assertRaises(RuntimeError):
            claps.Engine(store)
        with self.assertRaises(RuntimeError):
            store.close()
        self.assertTrue(engine.close(wait_s=5))
        store.close()  # the closed engine let go of it
        self.assertTrue(store.closed)
        store.close()  # twice is fine
        with self.assertRaises(claps.Error) as caught:
            store.fileno()
        self.assertEqual(caught.exception.code, "unavailable")
        del store  # the closed engine does not keep it alive; its queries still answer
        self.assertGreaterEqual(engine.stats()["ticks"], 1)
        self.assertIsNone(engine.next_deadline())
        self.assertTrue(engine.closed)

    def test_open_errors_are_claps_errors(self):
        with self.assertRaises(claps.Error) as caught:
            claps.LmdbStore(self.path(), map_size=2 << 30, max_map_size=1 << 30)
        self.assertEqual(caught.exception.name, "bad_request")
        with open(self.path("a-file"), "w") as f:
            f.write("not a directory")
        with self.assertRaises(claps.Error) as caught:
            claps.LmdbStore(self.path("a-file"))
        self.assertEqual(caught.exception.code, "unavailable")  # store_io
        self.assertTrue(caught.exception.message)

    def test_context_manager_closes(self):
        with claps.LmdbStore(self.path()) as store:
            engine = claps.Engine(store)
            engine.clap("alice", "a1", 1)
            self.assertTrue(engine.close(wait_s=5))
        self.assertTrue(store.closed)


if __name__ == "__main__":
    unittest.main()
