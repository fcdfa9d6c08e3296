"""Running tasks: the embedded cluster starts only for batches large enough to pay for it."""

from __future__ import annotations

import threading

import pytest

from gpcube.execute import EmbeddedCluster, run_tasks


def _where(i: int) -> tuple[int, str, bool]:
    try:
        from distributed import get_worker

        get_worker()
        on_worker = True
    except ValueError:
        on_worker = False
    if i < 0:
        raise RuntimeError(f"bad {i}")
    return i, threading.current_thread().name, on_worker


def test_a_small_batch_runs_on_threads_here_without_starting_the_cluster():
    with EmbeddedCluster(n_workers=2, processes=False, min_tasks=5) as embedded:
        results, failures = run_tasks(_where, [(str(i), (i,)) for i in (3, -1, 4)], embedded, progress=False)
        assert not embedded.started
    assert [r[0] for r in results if r] == [3, 4] and results[1] is None
    assert all(name.startswith("gpcube") and not worker for _, name, worker in filter(None, results))
    assert [(f.label, str(f.error)) for f in failures] == [("-1", "bad -1")]


def test_a_large_batch_starts_the_cluster_and_later_batches_use_it():
    with EmbeddedCluster(n_workers=1, processes=False, min_tasks=3) as embedded:
        first, _ = run_tasks(_where, [(str(i), (i,)) for i in range(3)], embedded, progress=False)
        assert embedded.started
        later, _ = run_tasks(_where, [("9", (9,))], embedded, progress=False)
    assert all(worker for *_, worker in first + later)
    assert not embedded.started  # closed on exit


def test_on_the_cluster_results_come_in_call_order_and_failures_by_label():
    with EmbeddedCluster(n_workers=2, processes=False, min_tasks=0) as embedded:
        calls = [(f"obs{i}", (i,)) for i in (7, -1, 2, 5, -3, 0)]
        results, failures = run_tasks(_where, calls, embedded, desc="reduce", progress=False)
    assert [r and r[0] for r in results] == [7, None, 2, 5, None, 0]
    assert all(worker for *_, worker in filter(None, results))
    assert sorted((f.label, str(f.error)) for f in failures) == [("obs-1", "bad -1"), ("obs-3", "bad -3")]


@pytest.mark.parametrize("min_tasks", [0, 1])
def test_min_tasks_zero_or_one_always_starts_it(min_tasks):
    with EmbeddedCluster(n_workers=1, processes=False, min_tasks=min_tasks) as embedded:
        results, _ = run_tasks(_where, [("0", (0,))], embedded, progress=False)
    assert results[0][2]


def _process() -> tuple[int, bool, set[int]]:
    import os
    import sys

    from threadpoolctl import threadpool_info

    return os.getpid(), "gpcube.workflow.reduce" in sys.modules, {p["num_threads"] for p in threadpool_info()}


def test_forked_workers_start_with_gpcube_imported_and_one_blas_thread():
    import os

    import numpy  # noqa: F401 - its BLAS pool, sized for every core here
    import scipy.fft  # noqa: F401

    import gpcube.workflow.reduce  # noqa: F401 - what the workers should inherit

    with EmbeddedCluster(n_workers=1, processes=True, start_method="fork", memory_limit=None) as embedded:
        results, failures = run_tasks(_process, [("0", ())], embedded, progress=False)
    assert not failures
    pid, imported, threads = results[0]
    assert pid != os.getpid() and imported
    assert threads <= {1}


def _worker_settings(dask_worker) -> tuple[bool, float]:
    return "profile" in dask_worker.periodic_callbacks, dask_worker._tick_interval


def test_the_embedded_cluster_without_a_dashboard_neither_profiles_nor_ticks_every_20_ms():
    import dask

    from gpcube.execute import cluster_client

    with cluster_client(None, n_workers=1, processes=True, start_method="fork", memory_limit=None) as client:
        [(profiles, tick)] = client.run(_worker_settings).values()
        scheduler_tick = client.run_on_scheduler(lambda dask_scheduler: dask_scheduler._tick_interval)
    assert not profiles and tick == scheduler_tick == 1.0
    # the settings were the cluster's alone: this process keeps dask's (a later cluster here, a user's)
    assert dask.config.get("distributed.worker.profile.enabled") is True
    assert dask.config.get("distributed.admin.tick.interval") == "20ms"


def _fork_task(i: int) -> tuple[int, int, set[int]]:
    import os

    from threadpoolctl import threadpool_info

    from gpcube.errors import GpcubeError

    if i == -1:
        raise GpcubeError("unreadable", path="obs.fits", hdu="EVENTS")
    if i == -2:
        os._exit(3)  # a worker killed (out of memory, say)
    return i, os.getpid(), {p["num_threads"] for p in threadpool_info()}


def test_a_small_batch_runs_on_forked_processes_with_one_blas_thread():
    import os

    import numpy  # noqa: F401 - its BLAS pool, sized for every core here

    from gpcube.errors import GpcubeError

    with EmbeddedCluster(n_workers=2, processes=True, start_method="fork", min_tasks=10) as embedded:
        assert embedded.forks
        calls = [(str(i), (i,)) for i in (5, -1, 6, 7)]
        results, failures = run_tasks(_fork_task, calls, embedded, progress=False)
        assert not embedded.started
    assert [r[0] for r in results if r] == [5, 6, 7] and results[1] is None
    pids = {pid for _, pid, _ in filter(None, results)}
    assert os.getpid() not in pids and 1 <= len(pids) <= 2
    assert all(threads <= {1} for *_, threads in filter(None, results))
    [failure] = failures  # the error arrives whole, with where it happened
    assert failure.label == "-1" and isinstance(failure.error, GpcubeError)
    assert failure.error.path == "obs.fits" and "HDU 'EVENTS'" in str(failure.error)


def test_a_forked_process_that_dies_fails_its_tasks_and_keeps_the_others():
    with EmbeddedCluster(n_workers=1, processes=True, start_method="fork", min_tasks=10) as embedded:
        results, failures = run_tasks(_fork_task, [("1", (1,)), ("dies", (-2,))], embedded, progress=False)
    assert results[0][0] == 1 and results[1] is None
    assert [f.label for f in failures] == ["dies"]


def test_small_batches_share_the_forked_processes_and_a_dead_one_is_replaced():
    with EmbeddedCluster(n_workers=2, processes=True, start_method="fork", min_tasks=10) as embedded:
        first, _ = run_tasks(_fork_task, [(str(i), (i,)) for i in range(4)], embedded, progress=False)
        forked = set(embedded._pool._processes)
        later, _ = run_tasks(_fork_task, [(str(i), (i,)) for i in range(4)], embedded, progress=False)
        assert {pid for _, pid, _ in first + later} <= forked and len(forked) == 2  # the same processes
        _, failures = run_tasks(_fork_task, [("dies", (-2,))], embedded, progress=False)
        assert [f.label for f in failures] == ["dies"]
        after, failures = run_tasks(_fork_task, [(str(i), (i,)) for i in range(3)], embedded, progress=False)
        assert not failures and [r[0] for r in after] == [0, 1, 2]
        assert not {pid for _, pid, _ in after} & forked  # new ones
        assert not embedded.started
    assert embedded._pool is None  # shut down with the cluster


def test_the_forked_processes_are_shut_down_when_the_cluster_starts():
    with EmbeddedCluster(n_workers=1, processes=True, start_method="fork", min_tasks=2) as embedded:
        run_tasks(_fork_task, [("0", (0,))], embedded, progress=False)
        assert embedded._pool is not None
        results, _ = run_tasks(_fork_task, [(str(i), (i,)) for i in range(2)], embedded, progress=False)
        assert embedded.started and embedded._pool is None and [r[0] for r in results] == [0, 1]


def test_a_first_batch_of_one_forks_one_process_and_a_larger_batch_gets_more():
    with EmbeddedCluster(n_workers=2, processes=True, start_method="fork", min_tasks=10) as embedded:
        one, _ = run_tasks(_fork_task, [("0", (0,))], embedded, progress=False)
        assert embedded._pool_size == 1
        more, _ = run_tasks(_fork_task, [(str(i), (i,)) for i in range(2)], embedded, progress=False)
        assert embedded._pool_size == 2 and [r[0] for r in more] == [0, 1]


def test_small_batches_run_on_threads_unless_workers_are_forked():
    assert not EmbeddedCluster(processes=True, start_method="spawn").forks
    assert not EmbeddedCluster(processes=False, start_method="fork").forks


def test_an_unknown_start_method_is_refused():
    from gpcube.errors import GpcubeError

    with pytest.raises(GpcubeError, match="start method 'vfork'"):
        with EmbeddedCluster(start_method="vfork") as embedded:
            embedded.client  # noqa: B018


def test_the_heartbeat_error_of_a_closing_embedded_cluster_is_dropped():
    import logging

    from gpcube._worker import _QuietHeartbeat

    quiet = _QuietHeartbeat()

    def record(message):
        return logging.LogRecord("distributed.worker", logging.ERROR, __file__, 1, message, None, None)

    assert not quiet.filter(record("Failed to communicate with scheduler during heartbeat."))
    assert quiet.filter(record("Worker stream died during communication"))
