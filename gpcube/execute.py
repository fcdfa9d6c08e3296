"""Running many independent tasks: on a dask.distributed cluster, or on dask's local scheduler.

The archive's work is coarse: one task per observation, one per mosaic chunk. There are two ways to
run a batch, both dask's: a :class:`distributed.Client` (the embedded :class:`EmbeddedCluster`, or a
scheduler given by address), to which the tasks are submitted as they are and from which they are
gathered as they finish; or dask's local scheduler in this process, with threads (a batch too small
to pay for starting the embedded cluster) or synchronous (no client: one task after the other, handy
in tests and for debugging). Either way with a progress bar, each failure kept with its task's label.
"""

from __future__ import annotations

import contextlib
import functools
import os
import sys
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

from gpcube.errors import GpcubeError

__all__ = [
    "WORKER_ENV",
    "START_METHODS",
    "QUIET_CLUSTER",
    "EmbeddedCluster",
    "TaskFailure",
    "cluster_client",
    "default_start_method",
    "raise_failures",
    "run_tasks",
    "tune_worker_process",
    "worker_env",
]

#: Environment of the embedded cluster's worker processes, over dask's own (its nanny's
#: ``pre-spawn-environ``, which also makes BLAS single-threaded). Dask sets
#: ``MALLOC_TRIM_THRESHOLD_=65536``, which also switches off glibc's adaptive mmap threshold: every
#: array above 128 KiB is then a fresh mmap whose pages fault in on first touch (35 000 page faults
#: and 50 ms of system time per observation). With these, arrays up to 32 MiB (an observation's
#: largest temporaries) come from the heap, which is given back to the system when 64 MiB of it lie
#: free at its top. malloc reads them when a process starts, so they are set before the workers
#: are spawned. Measured on the 36-run survey (``benchmarks/tunings.py``): without them the job
#: took 42 % more CPU with spawned workers (dask's setting) and 12 % more with forked ones (glibc's
#: defaults).
WORKER_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


#: dask settings of an embedded cluster without a dashboard, over dask's defaults. Nobody looks at
#: what these feed (the dashboard's profile, system and event-loop plots), yet each worker samples
#: its task thread's stack every 10 ms for the profile and every server of the cluster (scheduler,
#: nannies and workers) wakes every 20 ms to time its event loop, each time taking the GIL from the
#: task. Without them the 36-run survey took 11 % (forked workers) and 15 % (spawned) more CPU
#: (``benchmarks/tunings.py``). A job with ``cluster.dashboard`` keeps dask's settings; a cluster
#: given by address keeps its own.
QUIET_CLUSTER = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.system-monitor.disk": False,
}


#: How the embedded cluster's worker processes can start (see :func:`default_start_method`): ``fork``
#: copies this process with gpcube already imported, so a worker is ready at once; ``forkserver``
#: forks them from a fresh process that imports gpcube once (:data:`FORKSERVER_PRELOAD`); ``spawn``
#: starts each in a fresh interpreter that imports numpy, xarray, astropy and gpcube first.
START_METHODS = ("fork", "spawn", "forkserver")


def tune_worker_process() -> None:
    """Make this process fit to be one of several workers on the machine's cores (every worker process
    of the embedded cluster calls it, through the dask preload :mod:`gpcube._worker`).

    BLAS and OpenMP thread pools get one thread (a forked worker inherits the pools of the gpcube
    process, sized for all cores: on the survey, 17 % more CPU without this), and glibc's malloc the
    thresholds of :data:`WORKER_ENV` (which a forked process cannot take from its environment, read
    once when the parent started: 12 % more CPU without them). A spawned worker, or one forked by the
    fork server, has both from its environment already; this changes nothing there.
    """
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1)
    env = {key: int(value) for key, value in WORKER_ENV.items()}
    _set_malloc_thresholds(env["MALLOC_MMAP_THRESHOLD_"], env["MALLOC_TRIM_THRESHOLD_"])


def _set_malloc_thresholds(mmap_threshold: int, trim_threshold: int) -> None:
    """glibc's ``mallopt(M_MMAP_THRESHOLD)`` and ``mallopt(M_TRIM_THRESHOLD)``; nothing elsewhere."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):  # not glibc
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # from glibc's malloc.h
    mallopt(m_mmap_threshold, mmap_threshold)
    mallopt(m_trim_threshold, trim_threshold)


#: The process (pid) that may no longer fork workers: see :func:`mark_fork_unsafe`.
_FORK_UNSAFE: dict[str, int | None] = {"pid": None}


def mark_fork_unsafe() -> None:
    """This process now runs threads that a forked child would lack: icechunk's runtime (Rust threads),
    which the storage layer starts with its first storage. A child forked after that has the runtime's
    state without its threads, and its first archive call hangs; so the embedded cluster then starts
    its workers with the fork server (:func:`default_start_method`), and
    :func:`gpcube.workflow.pipeline.job_client` starts a forking cluster before the job opens its
    archive."""
    _FORK_UNSAFE["pid"] = os.getpid()


def fork_safe() -> bool:
    """Whether a child forked now would work (:func:`mark_fork_unsafe` was not called in this process)."""
    return _FORK_UNSAFE["pid"] != os.getpid()


def default_start_method() -> str:
    """On Linux ``fork`` while this process may fork (:func:`fork_safe`), then ``forkserver``;
    ``spawn`` elsewhere (fork is unsafe on macOS). On the 36-run survey the job took 1.07x the CPU of
    fork with the fork server and 1.19x with spawned workers, the tasks' own times the same
    (``benchmarks/start_method.py``): each spawned worker imports gpcube, the fork server once."""
    if not sys.platform.startswith("linux"):
        return "spawn"
    return "fork" if fork_safe() else "forkserver"


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
    token: str | None = None,
    on_result: Callable[[int, Any], None] | None = None,
) -> tuple[list[Any], list[TaskFailure]]:
    """Run ``func(*args)`` for each ``(label, args)``; results in call order and the failures.

    ``on_result(index, result)`` is called in this process as each task succeeds (an error it raises
    stops the batch). On a dask cluster the tasks are keyed ``<desc>-<token>-<label>``: give each job
    its own ``token`` so that jobs sharing a scheduler never share a task (default: a new one).

    ``client``: a :class:`distributed.Client`; an :class:`EmbeddedCluster` (started here if the
    batch is large enough, else the batch runs on dask's local threaded scheduler with as many
    threads as the cluster has worker threads); or None (dask's synchronous scheduler: one task after
    the other, in call order, in this thread). A failing task does not stop the others: what they
    write is kept, and the caller reports the failures together at the end.

    Examples
    --------
    >>> import math
    >>> from gpcube.execute import run_tasks
    >>> calls = [("a", (4.0,)), ("b", (-1.0,)), ("c", (9.0,))]
    >>> results, failures = run_tasks(math.sqrt, calls, progress=False)
    >>> results, [(f.label, str(f.error)) for f in failures]
    ([2.0, None, 3.0], [('b', 'math domain error')])
    """
    with _bar(len(calls), desc, progress) as bar:
        done = functools.partial(_done, bar, on_result)
        if isinstance(client, EmbeddedCluster):
            if not client.started and len(calls) < client.min_tasks:
                return _run_local(func, calls, client.threads, done)
            client = client.client
        if client is None:
            return _run_local(func, calls, 1, done)
        return _run_distributed(
            func, calls, client, f"{desc or 'task'}-{token or uuid.uuid4().hex[:12]}", done
        )


def _done(bar, on_result, index: int | None = None, result: Any = None) -> None:
    """A task finished: ``on_result`` for a success (``index`` given), the progress bar for all."""
    if index is not None and on_result is not None:
        on_result(index, result)
    bar.update()


def _attempt(call: Callable, after: Any = None) -> tuple[bool, Any]:  # noqa: ARG001 - an order only
    """``(True, call())``, or ``(False, the error)``: a failing task must not stop dask's local
    scheduler, which gives up at the first error."""
    try:
        return True, call()
    except Exception as exc:  # noqa: BLE001 - reported with its label by the caller
        return False, exc


def _run_local(func: Callable, calls: Sequence[tuple[str, tuple]], threads: int, done) -> tuple[list, list]:
    """The batch on dask's local scheduler: ``threads`` threads of this process, or with one the
    synchronous scheduler, each task after the one before it (an argument it ignores), in call order."""
    import dask

    results: list[Any] = [None] * len(calls)
    failures: list[TaskFailure] = []

    def finished(key, outcome, dsk, state, worker_id) -> None:  # noqa: ARG001 - dask's signature
        i = key[1]
        if outcome[0]:
            results[i] = outcome[1]
            done(i, outcome[1])
        else:
            failures.append(TaskFailure(calls[i][0], outcome[1]))
            done()

    attempt = dask.delayed(_attempt, pure=False)
    tasks: list = []
    for i, (_, args) in enumerate(calls):  # a partial: dask neither looks into nor hashes the arguments
        after = tasks[-1] if threads == 1 and tasks else None
        tasks.append(attempt(functools.partial(func, *args), after, dask_key_name=("gpcube-task", i)))
    # the callback goes with this computation alone, not to the ones the tasks run inside: the local
    # schedulers' ``callbacks`` take (start, start_state, pretask, posttask, finish) tuples
    options = {"callbacks": [(None, None, None, finished, None)], "optimize_graph": False}
    if threads == 1:
        dask.compute(*tasks, scheduler="synchronous", **options)
    else:
        dask.compute(*tasks, scheduler="threads", num_workers=threads, **options)
    return results, failures


def _apply(args: tuple, function: Callable) -> Any:
    return function(*args)


def _run_distributed(func: Callable, calls, client, prefix: str, done) -> tuple[list, list]:
    from distributed import as_completed

    # one map, not a submit per call: one graph update for the scheduler instead of one per task
    keys = [f"{prefix}-{label}" for label, _ in calls]
    mapped = client.map(_apply, [args for _, args in calls], key=keys, pure=False, function=func)
    futures = {future: i for i, future in enumerate(mapped)}
    results: list[Any] = [None] * len(calls)
    failures: list[TaskFailure] = []
    try:
        for future in as_completed(futures):
            i = futures[future]
            try:
                results[i] = future.result()
            except Exception as exc:  # noqa: BLE001 - reported with its label by the caller
                failures.append(TaskFailure(calls[i][0], exc))
                done()
                continue
            done(i, results[i])
    finally:
        client.cancel([f for f in mapped if not f.done()])
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


class EmbeddedCluster:
    """A local dask.distributed cluster that starts when a batch of tasks first needs it.

    :func:`run_tasks` runs a batch of fewer than ``min_tasks`` tasks while the cluster has not
    started on ``threads`` (workers x threads per worker) threads of this process: starting a cluster
    of spawned workers costs seconds, as much as a handful of observations take. A larger batch starts
    it (or :attr:`client` does), and it then serves every later batch. A cluster whose workers fork
    (:attr:`forks`) is started by :func:`gpcube.workflow.pipeline.job_client` at once, before the job
    opens its archive (see :func:`mark_fork_unsafe`); it takes about 0.1-0.5 s. Use as a context
    manager, or call :meth:`close`.

    Parameters
    ----------
    n_workers, threads_per_worker, processes, memory_limit, dashboard, start_method
        As :func:`cluster_client`.
    min_tasks : int
        Smallest batch that starts the cluster (0: any batch).
    """

    def __init__(
        self,
        *,
        n_workers: int = 2,
        threads_per_worker: int = 1,
        processes: bool = True,
        memory_limit: str | int | None = "auto",
        dashboard: bool = False,
        start_method: str | None = None,
        min_tasks: int = 0,
    ) -> None:
        self.options = {
            "n_workers": n_workers,
            "threads_per_worker": threads_per_worker,
            "processes": processes,
            "memory_limit": memory_limit,
            "dashboard": dashboard,
            "start_method": start_method,
        }
        self.threads = n_workers * threads_per_worker
        self.min_tasks = min_tasks
        self._stack: contextlib.ExitStack | None = None
        self._client = None

    @property
    def forks(self) -> bool:
        """Whether the cluster's worker processes would start by fork (now)."""
        method = self.options["start_method"] or default_start_method()
        return bool(self.options["processes"]) and method == "fork"

    @property
    def started(self) -> bool:
        """Whether the cluster is running."""
        return self._client is not None

    @property
    def client(self):
        """The :class:`distributed.Client` of the cluster, started on first use (every later batch
        runs on it)."""
        if self._client is None:
            stack = contextlib.ExitStack()
            self._client = stack.enter_context(cluster_client(None, **self.options))
            self._stack = stack
        return self._client

    @property
    def dashboard_link(self) -> str:
        """The dashboard's address (starts the cluster)."""
        return self.client.dashboard_link

    def close(self) -> None:
        """Stop the cluster if it was started."""
        if self._stack is not None:
            self._stack.close()
        self._stack, self._client = None, None

    def __enter__(self) -> EmbeddedCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


#: What the fork server of ``start_method: forkserver`` imports before it forks any worker: each
#: worker then starts with gpcube imported, as a forked one does, without being a copy of the gpcube
#: process (its threads, its icechunk runtime).
FORKSERVER_PRELOAD = ("distributed", "gpcube.workflow.pipeline")


def _preload_forkserver() -> None:
    """Have multiprocessing's fork server import :data:`FORKSERVER_PRELOAD` when it starts (once per
    process: a server already running keeps what it imported)."""
    import multiprocessing

    import dask
    from distributed.utils import get_mp_context

    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        get_mp_context()  # sets dask's own list (distributed, numpy, ...) the first time: ours follows
    multiprocessing.get_context("forkserver").set_forkserver_preload(list(FORKSERVER_PRELOAD))


@contextlib.contextmanager
def cluster_client(
    address: str | None = None,
    *,
    n_workers: int = 2,
    threads_per_worker: int = 1,
    processes: bool = True,
    memory_limit: str | int | None = "auto",
    dashboard: bool = False,
    start_method: str | None = None,
) -> Iterator:
    """A :class:`distributed.Client`: to the scheduler at ``address``, or to a new local cluster.

    The local cluster (and its workers) is closed on exit; an existing cluster is left running.
    ``start_method`` (one of :data:`START_METHODS`; default :func:`default_start_method`) is how its
    worker processes start.
    """
    import dask
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
    method = start_method or default_start_method()
    if method not in START_METHODS:
        raise GpcubeError(f"unknown start method {method!r}; expected one of {', '.join(START_METHODS)}")
    if processes and method == "forkserver":
        _preload_forkserver()
    # a forked worker's malloc is this process's, already set up: the environment would not change it
    spawned = processes and method != "fork"
    settings = {"distributed.worker.multiprocessing-method": method, **({} if dashboard else QUIET_CLUSTER)}
    with (  # distributed, imported above, has added its defaults: the set restores them on exit
        dask.config.set(settings),
        _worker_environ() if spawned else contextlib.nullcontext(),
    ):
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            memory_limit=memory_limit,
            # a free port: with None the scheduler's HTTP server (health, metrics) still takes 8787, and
            # warns when another cluster holds it
            dashboard_address=":0",
            **({"preload": ["gpcube._worker"]} if processes else {}),
        )
    try:
        with Client(cluster) as client:
            yield client
    finally:
        cluster.close()
