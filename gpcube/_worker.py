"""Set-up of a worker process of the embedded cluster (forked, spawned, or forked by the fork server):
a dask preload module.

dask calls :func:`dask_setup` in each worker process when it starts (and when a nanny restarts it).
"""

from __future__ import annotations

import logging

#: What a worker logs, with a traceback, when its heartbeat meets the scheduler already closing.
_HEARTBEAT_AT_SHUTDOWN = "Failed to communicate with scheduler during heartbeat"


class _QuietHeartbeat(logging.Filter):
    """Drops the heartbeat error of :data:`_HEARTBEAT_AT_SHUTDOWN`.

    The embedded cluster's scheduler lives in the gpcube process and is closed at the end of the
    job; a worker whose heartbeat falls in the moment between the scheduler's close and its own then
    logs an error and a traceback (about one job in ten), although the job is done and nothing is
    lost. Had the scheduler failed during the job, the gpcube process would report it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return _HEARTBEAT_AT_SHUTDOWN not in record.getMessage()


def dask_setup(worker) -> None:  # noqa: ARG001 - dask's preload signature
    """Tune this worker process (:func:`gpcube.execute.tune_worker_process`); quiet the shutdown race."""
    from gpcube.execute import tune_worker_process

    tune_worker_process()
    logging.getLogger("distributed.worker").addFilter(_QuietHeartbeat())
