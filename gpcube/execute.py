"""Running many independent tasks: on a dask.distributed cluster, or in this process.

The archive's work is coarse: one task per observation, one per mosaic chunk. Tasks are submitted
to a :class:`distributed.Client` as they are and gathered as they finish, with a progress bar; with
no client they run one after the other here (handy in tests and for debugging).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from gpcube.errors import GpcubeError

__all__ = ["WORKER_ENV", "TaskFailure", "cluster_client", "raise_failures", "run_tasks", "worker_env"]

#: Environment of the embedded cluster's worker processes, over dask's own (its nanny's
#: ``pre-spawn-environ``, which also makes BLAS single-threaded). Dask sets
#: ``MALLOC_TRIM_THRESHOLD_=65536``, which also switches off glibc's adaptive mmap threshold: every
#: array above 128 KiB is then a fresh mmap whose pages fault in on first touch (35 000 page faults
#: and 50 ms of system time per observation). With these, arrays up to 32 MiB (an observation's
#: largest temporaries) come from the heap, which is given back to the system when 64 MiB of it lie
#: free at its top. malloc reads them when a process starts, so they are set before the workers
#: are spawned.
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


class TaskFailure(NamedTuple):
    """A task that raised: its label and the error."""

    label: str
    error: BaseException


def _bar(total: int, desc: str, progress: bool):
    if not progress:  # tqdm.auto would warn in a notebook without ipywidgets, even for a hidden bar
        from tqdm import tqdm

        return tqdm(total=total, disable=True)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="task", file=sys.stderr, leave=True)


def run_tasks(
    func: Callable,
    calls: Sequence[tuple[str, tuple]],
    client=None,
    *,
    desc: str = "",
    progress: bool = True,
) -> tuple[list[Any], list[TaskFailure]]:
    """Run ``func(*args)`` for each ``(label, args)``; results in call order and the failures.

    A failing task does not stop the others: what they write is kept, and the caller reports the
    failures together at the end.
    """
    results: list[Any] = [None] * len(calls)
    failures: list[TaskFailure] = []
    with _bar(len(calls), desc, progress) as bar:
        if client is None:
            for i, (label, args) in enumerate(calls):
                try:
                    results[i] = func(*args)
                except Exception as exc:  # noqa: BLE001 - reported with its label below
                    failures.append(TaskFailure(label, exc))
                bar.update()
            return results, failures
        from distributed import as_completed

        futures = {client.submit(func, *args, key=f"{desc or 'task'}-{label}", pure=False): i
                   for i, (label, args) in enumerate(calls)}  # fmt: skip
        for future in as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as exc:  # noqa: BLE001
                failures.append(TaskFailure(calls[i][0], exc))
            bar.update()
    return results, failures


def raise_failures(failures: Sequence[TaskFailure], what: str) -> None:
    """One error naming every failed task and why (the first few in full)."""
    if not failures:
        return
    lines = [f"  {f.label}: {f.error}" for f in failures[:20]]
    more = f"\n  ... and {len(failures) - 20} more" if len(failures) > 20 else ""
    raise GpcubeError(f"{len(failures)} {what} failed (the others are kept):\n" + "\n".join(lines) + more)


def worker_env() -> dict[str, str]:
    """The environment variables the embedded cluster's workers start with (dask's, then ours)."""
    import dask
    import distributed  # noqa: F401 - loads the distributed config

    environ = dask.config.get("distributed.nanny.pre-spawn-environ", {}) or {}
    return {**{k: str(v) for k, v in environ.items() if v is not None}, **WORKER_ENV}


@contextlib.contextmanager
def _worker_environ() -> Iterator[None]:
    """Make the nannies created inside spawn their workers with :func:`worker_env`.

    A nanny reads ``pre-spawn-environ`` when created, preferring values already in ``os.environ``
    (where an earlier nanny of this process may have left dask's); both are set here, and
    ``os.environ`` is restored afterwards.
    """
    import dask

    environ = worker_env()
    saved = {key: os.environ.get(key) for key in WORKER_ENV}
    os.environ.update(WORKER_ENV)
    try:
        with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def cluster_client(
    address: str | None = None,
    *,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    processes: bool = True,
    memory_limit: str | int | None = "auto",
    dashboard: bool = False,
) -> Iterator:
    """A :class:`distributed.Client`: to the scheduler at ``address``, or to a new local cluster.

    The local cluster (and its workers) is closed on exit; an existing cluster is left running.
    """
    from distributed import Client, LocalCluster

    if address:
        try:
            client = Client(address, timeout="10s")
        except OSError as exc:
            raise GpcubeError(f"cannot reach the dask scheduler at {address!r}: {exc}") from exc
        try:
            yield client
        finally:
            client.close()
        return
    with _worker_environ() if processes else contextlib.nullcontext():
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            memory_limit=memory_limit,
            dashboard_address=":0" if dashboard else None,
        )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()
