"""Set-up of a forked worker process of the embedded cluster: a dask preload module.

dask calls :func:`dask_setup` in each worker process when it starts (and when a nanny restarts it).
"""

from __future__ import annotations


def dask_setup(worker) -> None:  # noqa: ARG001 - dask's preload signature
    """Tune this worker process (:func:`gpcube.execute.tune_worker_process`)."""
    from gpcube.execute import tune_worker_process

    tune_worker_process()
