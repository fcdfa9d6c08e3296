"""Whether this process may still fork workers: not once icechunk's runtime (Rust threads) runs in it.

A process forked after those threads started has the runtime's state without its threads, and its
first icechunk call hangs. The storage layer marks the process when it first makes icechunk storage;
the embedded cluster then starts its workers with ``spawn`` instead of ``fork``
(:func:`gpcube.execute.default_start_method`), and :func:`gpcube.workflow.pipeline.job_client` starts
a forking cluster before the job touches its archive.
"""

from __future__ import annotations

import os

__all__ = ["fork_safe", "mark_unsafe"]

_unsafe: dict[str, int | None] = {"pid": None}


def mark_unsafe() -> None:
    """This process now runs threads that a forked child would lack."""
    _unsafe["pid"] = os.getpid()


def fork_safe() -> bool:
    """Whether a child forked now would work (nothing marked this process)."""
    return _unsafe["pid"] != os.getpid()
