"""libclaps for Python: the realtime clap engine, in process.

    import claps
    store = claps.LmdbStore("data")                 # fsync'd, on its writer thread
    engine = claps.Engine(store, on_result=print)   # tick 25 ms, cap 50
    engine.subscribe(1, "a1", user="alice")
    engine.clap("alice", "a1", 3, op_id="op-1")     # the Result comes once durable

Something must drive the engine: call engine.advance() at
engine.next_deadline() and store.run_completions() when store.fileno() is
readable. AsyncioDriver does both on an asyncio loop.

Thread rule: an engine and its store belong to the thread that made them.
Errors a call causes raise claps.Error (.code, .reason, .message) and change
nothing. See docs/bindings/python.md.
"""

from ._claps import (  # noqa: F401
    Engine,
    Error,
    LmdbStore,
    MemoryStore,
    Result,
    Snapshot,
    Store,
    Update,
    __version__,
)
from ._asyncio import AsyncioDriver  # noqa: F401

__all__ = [
    "AsyncioDriver",
    "Engine",
    "Error",
    "LmdbStore",
    "MemoryStore",
    "Result",
    "Snapshot",
    "Store",
    "Update",
]
