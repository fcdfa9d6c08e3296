"""Run the zarr store API's coroutines from synchronous code.

The archive's store (icechunk's, or any zarr ``Store``) is asynchronous. gpcube's callers are not: a
worker task, a notebook cell (whose thread already runs an event loop, so ``asyncio.run`` is refused
there) or the command line. Each process gets one event loop in a daemon thread, made on first use; a
forked child makes its own (the parent's thread does not exist in it).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

__all__ = ["gather", "run"]

T = TypeVar("T")

_lock = threading.Lock()
_state: dict[str, Any] = {"pid": None, "loop": None}


def _loop() -> asyncio.AbstractEventLoop:
    with _lock:
        if _state["pid"] != os.getpid() or _state["loop"] is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="gpcube-io", daemon=True)
            thread.start()
            _state.update(pid=os.getpid(), loop=loop)
        return _state["loop"]


def run(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` on this process's I/O loop; its exception is raised here."""

    async def wrapper():
        return await awaitable

    return asyncio.run_coroutine_threadsafe(wrapper(), _loop()).result()


def gather(awaitables: Iterable[Awaitable[Any]], *, return_exceptions: bool = False) -> list[Any]:
    """Wait for all of ``awaitables`` at once (concurrently) and return their results in order (with
    ``return_exceptions``, an awaitable's exception in place of its result)."""

    async def together():
        return await asyncio.gather(*awaitables, return_exceptions=return_exceptions)

    return run(together())
