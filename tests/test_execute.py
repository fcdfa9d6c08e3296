"""Running tasks: on a distributed.Client, or on dask's local scheduler (threads, or synchronous); the
embedded cluster starts only for batches large enough to pay for it."""

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


def test_a_small_batch_runs_on_dask_threads_here_without_starting_the_cluster():
    with EmbeddedCluster(n_workers=2, processes=False, min_tasks=5) as embedded:
        results, failures = run_tasks(_where, [(str(i), (i,)) for i in (3, -1, 4)], embedded, progress=False)
        assert not embedded.started
    assert [r[0] for r in results if r] == [3, 4] and results[1] is None
    main = threading.main_thread().name
    assert all(name != main and not worker for _, name, worker in filter(None, results))
    assert [(f.label, str(f.error)) for f in failures] == [("-1", "bad -1")]


def test_without_a_client_tasks_run_in_this_thread_in_call_order():
    seen = []
    calls = [(str(i), (i,)) for i in (5, 3, -1, 9, 0, 12, 1, 10, 2, 4, 6, 7, 8, 11)]
    results, failures = run_tasks(
        _where, calls, None, progress=False, on_result=lambda i, r: seen.append(r[0])
    )
    assert [r and r[0] for r in results] == [i if i >= 0 else None for _, (i,) in calls]
    assert {name for _, name, _ in filter(None, results)} == {threading.current_thread().name}
    assert seen == [i for _, (i,) in calls if i >= 0]
    assert [(f.label, str(f.error)) for f in failures] == [("-1", "bad -1")]


@pytest.mark.parametrize("threads", [1, 2])
def test_an_error_of_on_result_stops_the_batch(threads):
    ran = []

    def stop(index, result):
        ran.append(result[0])
        raise KeyError("commit failed")

    calls = [(str(i), (i,)) for i in range(20)]
    with EmbeddedCluster(n_workers=threads, processes=False, min_tasks=100) as embedded:
        with pytest.raises(KeyError, match="commit failed"):
            run_tasks(_where, calls, embedded if threads > 1 else None, progress=False, on_result=stop)
    assert len(ran) == 1


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


def test_workers_of_the_fork_server_start_with_gpcube_imported_and_one_blas_thread():
    import os

    with EmbeddedCluster(
        n_workers=1, processes=True, start_method="forkserver", memory_limit=None
    ) as embedded:
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


def test_workers_fork_only_while_this_process_may_fork(monkeypatch, tmp_path):
    """After icechunk's runtime (its threads) started here, forked workers would hang on their first
    archive call: the default start method becomes the fork server; opening an archive marks the
    process."""
    import gpcube.execute
    from gpcube.execute import default_start_method, fork_safe
    from gpcube.storage.repository import Archive

    monkeypatch.setattr(gpcube.execute, "_FORK_UNSAFE", {"pid": None})
    assert default_start_method() == "fork" and EmbeddedCluster().forks
    Archive(tmp_path / "a").create()  # icechunk storage made: its runtime runs
    assert not fork_safe()
    assert default_start_method() == "forkserver" and not EmbeddedCluster().forks
    assert EmbeddedCluster(start_method="fork").forks  # asked for explicitly


def test_only_worker_processes_can_fork():
    assert not EmbeddedCluster(processes=True, start_method="spawn").forks
    assert not EmbeddedCluster(processes=False, start_method="fork").forks


def _tagged(job: str, i: int) -> tuple[str, int]:
    import time

    time.sleep(0.02)
    return job, i


def test_two_jobs_on_one_scheduler_never_share_a_task():
    """Both use the same labels (obs ids, chunk regions): the job's token keeps their tasks apart."""
    with EmbeddedCluster(n_workers=2, processes=False, min_tasks=0) as embedded:
        client, out = embedded.client, {}

        def job(name):
            calls = [(str(i), (name, i)) for i in range(20)]
            out[name] = run_tasks(_tagged, calls, client, desc="reduce", progress=False, token=name)

        threads = [threading.Thread(target=job, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for name in ("a", "b"):
        results, failures = out[name]
        assert not failures and results == [(name, i) for i in range(20)]


@pytest.mark.parametrize("processes", [False])
def test_on_result_sees_every_success_once(processes):
    seen = []
    with EmbeddedCluster(n_workers=2, processes=processes, min_tasks=0) as embedded:
        calls = [(str(i), (i,)) for i in (4, -1, 6, 8)]
        results, failures = run_tasks(
            _where, calls, embedded, progress=False, on_result=lambda i, r: seen.append(i)
        )
    assert sorted(seen) == [0, 2, 3] and len(failures) == 1
    seen.clear()
    run_tasks(_where, calls, None, progress=False, on_result=lambda i, r: seen.append((i, r[0])))
    assert seen == [(0, 4), (2, 6), (3, 8)]


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
