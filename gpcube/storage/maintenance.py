"""Housekeeping of an archive: delete what no snapshot refers to any more (``gpcube gc``).

A killed run leaves objects that no commit refers to (the chunks of forks never merged, the build
branch of a mosaic that was not finished: :func:`gpcube.workflow.mosaic.build_mosaic` deletes such
branches once their process is gone); a mosaic built again leaves the older one's chunks to the older
snapshots. Both stay until garbage-collected here. Only objects written before a cutoff are deleted:
a run still writing holds objects that no commit refers to *yet*, and it must have started after the
cutoff for them to be safe (the default cutoff, a day ago, is longer than any run).
"""

from __future__ import annotations

import datetime as _dt

from gpcube.errors import GpcubeError
from gpcube.storage.repository import Archive

__all__ = ["collect_garbage"]


def collect_garbage(archive: Archive, *, older_than_hours: float = 24.0, history: bool = False) -> dict:
    """Expire the snapshots older than the cutoff (unless ``history``), then delete every object written
    before the cutoff that no remaining snapshot refers to; returns what was done.

    Readers that opened an expired snapshot may fail afterwards: run it when no long reader holds one.

    Parameters
    ----------
    archive : Archive
        The archive.
    older_than_hours : float
        The cutoff's age.
    history : bool
        Keep every snapshot (delete only the objects that none refers to).

    Returns
    -------
    dict
        ``expired_snapshots``, ``objects_deleted`` and ``bytes_deleted``.

    Examples
    --------
    Nothing is older than a day in a new archive:

    >>> from gpcube.storage.maintenance import collect_garbage
    >>> from gpcube.storage.repository import Archive
    >>> archive = Archive("demo.zarr")
    >>> archive.create()
    >>> collect_garbage(archive)
    {'expired_snapshots': 0, 'objects_deleted': 0, 'bytes_deleted': 0}
    """
    if older_than_hours < 0:
        raise GpcubeError(f"older_than_hours must not be negative, got {older_than_hours}")
    cutoff = _dt.datetime.now(_dt.UTC) - _dt.timedelta(hours=older_than_hours)
    repo = archive.repo
    expired = set() if history else repo.expire_snapshots(cutoff)
    summary = repo.garbage_collect(cutoff)
    deleted = summary.chunks_deleted + summary.manifests_deleted + summary.snapshots_deleted
    return {
        "expired_snapshots": len(expired),
        "objects_deleted": int(deleted + summary.attributes_deleted + summary.transaction_logs_deleted),
        "bytes_deleted": int(summary.bytes_deleted),
    }
