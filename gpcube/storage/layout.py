"""The archive's layout: a zarr hierarchy in an icechunk repository (:mod:`gpcube.storage.repository`)
with the geometry and config in the root group's attributes, one group per observation under ``obs/``,
the mosaic under ``mosaic/`` (its IRF maps under ``mosaic/irf``, its ring sums under ``mosaic/ring``)
and the significance maps under ``significance/``.

The functions that read take a session's ``store`` (one snapshot): what they return is consistent
whatever is committed meanwhile. Observation groups are committed whole, so a group that exists is
complete.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import itertools
import json
from collections.abc import Callable, Mapping

from gpcube.errors import GpcubeError
from gpcube.storage.nodes import exists, list_children, read_group_attrs, read_many_group_attrs, write_group
from gpcube.storage.repository import BRANCH, Archive, ArchiveConflict, fault_point

__all__ = [
    "ARCHIVE_FORMAT",
    "ARCHIVE_VERSION",
    "IRF",
    "MOSAIC",
    "OBS",
    "RING",
    "SIGNIFICANCE",
    "check_or_create",
    "complete_observations",
    "mosaic_attrs",
    "now",
    "obs_path",
    "observation_attrs",
    "open_readonly",
    "root_attrs",
    "versions",
]

ARCHIVE_FORMAT = "gpcube-archive"
#: 5: the ring background's products (``mosaic/ring``, ``obs/<id>/ring``) and the significance maps are
#: on their energy bands, the dim ``energy_band`` (coords ``energy_band_lo``/``_hi``), not on a dim
#: ``energy_reco`` that clashed with the reco bins of the groups above them: the whole archive opens
#: as one ``xarray.DataTree``.
#: 4: the pixel dims are ``y``/``x`` (``irf_y``/``irf_x`` on the coarse IRF grid), the geometry attrs
#: name them (``dims``), the observations' ``slice``/``irf_slice`` are keyed by those dims.
#: 3: an icechunk repository (transactions, snapshots, any store). 2: the observations' ``edisp``
#: kernels are masked per reco bin and ``exposure_psf`` weighs the PSF.
ARCHIVE_VERSION = 5
#: Why an archive of an older format version cannot be used; it has to be made again.
_OLD_VERSIONS = {
    1: "its energy-dispersion kernels are not masked per reco bin, so its stacked edisp predicts reco bins "
    "with the exposure of observations that are not safe there; run the job again into a new output",
    2: "it is a plain zarr directory, written before archives became transactional (icechunk); run the "
    "job again into a new output",
    3: "its sky products have pixel dims 'lat'/'lon' holding pixel indices, not degrees (now 'y'/'x', "
    "and 'irf_y'/'irf_x' on the coarse IRF grid, with world coordinates 'lon'/'lat' in degrees); run "
    "the job again into a new output",
    4: "its ring-background products (mosaic/ring, obs/<id>/ring) and significance maps hold their "
    "energy bands on the dim 'energy_reco', which clashes with the reco bins of the groups above them "
    "(now the dim 'energy_band', with coords 'energy_band_lo'/'energy_band_hi'); run the job again "
    "into a new output",
}
OBS = "obs"
MOSAIC = "mosaic"
#: The significance maps' group, and the mosaic's subgroups of IRF maps and ring products.
SIGNIFICANCE = "significance"
IRF = "irf"
RING = "ring"
_TMP_PREFIX = "_tmp-"


def versions() -> dict[str, str]:
    """Versions of gpcube and of the libraries that shape its numbers and files.

    Read from the installed distributions' metadata: importing zarr only for its version took
    ~0.2 s of every ``gpcube run`` (the archive is written without it).
    """
    from importlib.metadata import version

    import gpcube

    libraries = ("numpy", "astropy", "dask", "xarray", "zarr")
    return {"gpcube": gpcube.__version__, **{name: version(name) for name in libraries}}


def now() -> str:
    """UTC time stamp, ISO 8601."""
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True, default=str)


def _differences(old: Mapping, new: Mapping, prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    out = []
    for key in keys:
        dotted = f"{prefix}{key}"
        a, b = old.get(key), new.get(key)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out += _differences(a, b, dotted + ".")
        elif _canonical(a) != _canonical(b):
            out.append(f"{dotted}: archive has {_canonical(a)}, config has {_canonical(b)}")
    return out


def _old_layout(archive: Archive) -> bool:
    """Whether the location holds an archive of format version 2 or older: a plain zarr directory."""
    path = archive.local_path
    return path is not None and (path / "zarr.json").is_file() and not (path / "refs").exists()


def root_attrs(store) -> dict:
    """The root attributes of an archive (``store`` a session's store); a clear error if it is not one."""
    try:
        attrs = read_group_attrs(store, "")
    except GpcubeError:
        raise GpcubeError("no gpcube archive here (the repository has no root group)") from None
    return _checked(attrs)


def _checked(attrs: dict) -> dict:
    if attrs.get("format") != ARCHIVE_FORMAT:
        raise GpcubeError(f"not a gpcube archive (format {attrs.get('format')!r})")
    version = attrs.get("format_version")
    if version != ARCHIVE_VERSION:
        why = _OLD_VERSIONS.get(version, f"this gpcube reads version {ARCHIVE_VERSION}")
        raise GpcubeError(f"archive format version {version} is not supported: {why}")
    return attrs


def open_readonly(archive: Archive, snapshot: str | None = None):
    """A read-only session of the archive (its latest snapshot, or ``snapshot``), checked to be one.

    Raises
    ------
    GpcubeError
        If there is no archive, it is not a gpcube archive (of a supported format version) or its
        snapshot cannot be read.

    Examples
    --------
    A repository that gpcube did not write is refused:

    >>> import zarr
    >>> import gpcube
    >>> from gpcube.storage.layout import open_readonly
    >>> from gpcube.storage.repository import Archive
    >>> archive = Archive("demo.zarr")
    >>> archive.create()
    >>> session = archive.writable()
    >>> _ = zarr.open_group(session.store, mode="a")
    >>> _ = archive.commit(session, "an empty group")
    >>> try:
    ...     open_readonly(archive)
    ... except gpcube.GpcubeError as error:
    ...     print(error)
    file .../demo.zarr: not a gpcube archive (format None)
    """
    if _old_layout(archive):
        raise GpcubeError(
            f"archive format version 2 is not supported: {_OLD_VERSIONS[2]}", path=archive.location
        )
    if not archive.exists():
        raise GpcubeError("no gpcube archive here", path=archive.location)
    session = archive.readonly(snapshot)
    try:
        root_attrs(session.store)
    except GpcubeError as exc:
        raise GpcubeError(_unreadable(session) or str(exc), path=archive.location) from None
    return session


def _unreadable(session) -> str:
    """Why the session's snapshot cannot be read, or '' if it can. icechunk's store answers the
    reads of a snapshot whose file is damaged (truncated, missing) as if every key were missing: the
    root group would seem absent; asking whether a key exists raises the real error."""
    try:
        exists(session.store, "")
    except Exception as exc:  # noqa: BLE001 - icechunk's error names the problem
        why = next((line.strip(" |x") for line in str(exc).splitlines() if line.strip(" |x")), "error")
        return f"its snapshot {session.snapshot_id} cannot be read ({why}): the archive's metadata is damaged"
    return ""


def _unfinished(archive: Archive) -> bool:
    """Whether the repository is empty as icechunk creates it: a run was killed after creating it and
    before committing the archive's root group, which the next run then commits."""
    try:
        if exists(archive.readonly().store, ""):
            return False
        return len(list(itertools.islice(archive.repo.ancestry(branch=BRANCH), 2))) == 1
    except Exception:  # noqa: BLE001 - a damaged repository: open_readonly says what is wrong
        return False


def check_or_create(archive: Archive, analysis: Mapping, geom_attrs: Mapping | Callable[[], Mapping],
                    config: Mapping) -> dict:  # fmt: skip
    """Open the archive, or create it (one commit); refuse it if it was made with another analysis.
    Returns the root attributes.

    ``analysis`` is the part of the config that fixes the products (geometry, products, safe mask,
    background, IRF grid, cutout radius): adding observations made with another one would mix
    products, so a difference is an error that lists the keys. ``geom_attrs`` (or a function giving
    them, called only if the archive is created) are the grid's :meth:`SkyGeom.to_attrs`. Two runs
    creating the same archive at once: one creates it, the other then checks it. A run killed while it
    created the archive leaves it to the next run to finish (see :meth:`Archive.create`).
    """
    if _old_layout(archive):
        raise GpcubeError(
            f"archive format version 2 is not supported: {_OLD_VERSIONS[2]}", path=archive.location
        )
    created = False
    if not archive.exists():
        try:
            archive.create()
        except GpcubeError:
            if not archive.exists():
                raise
        else:
            created = True
            fault_point("archive:created")
    if created or _unfinished(archive):  # or a run was killed between creating it and this commit
        attrs = {
            "format": ARCHIVE_FORMAT,
            "format_version": ARCHIVE_VERSION,
            "geom": dict(geom_attrs() if callable(geom_attrs) else geom_attrs),
            "analysis": json.loads(_canonical(analysis)),
            "config": json.loads(_canonical(config)),
            "versions": versions(),
            "created": now(),
        }
        session = archive.writable()
        write_group(session.store, "", attrs)
        write_group(session.store, OBS, {})
        with contextlib.suppress(ArchiveConflict):  # another run created it first: check theirs
            archive.commit(session, "create the archive", rebase=False)
    attrs = open_readonly(archive).store
    attrs = root_attrs(attrs)
    diffs = _differences(attrs.get("analysis", {}), json.loads(_canonical(analysis)))
    if diffs:
        raise GpcubeError(
            "the archive was made with another analysis config; use a new output or the same config "
            "(only data.*, chunks, cluster and output may change). Differences: " + "; ".join(diffs),
            path=archive.location,
        )
    return attrs


def obs_path(obs_id: int) -> str:
    """Where observation ``obs_id``'s group lives (a key of the archive)."""
    return f"{OBS}/{int(obs_id)}"


def complete_observations(store) -> dict[int, dict]:
    """``{obs_id: attrs}`` of the observations in the archive's snapshot ``store``, in obs_id order."""
    ids = sorted(int(name) for name in list_children(store, OBS) if name.isdigit())
    return observation_attrs(store, ids)


def observation_attrs(store, obs_ids) -> dict[int, dict]:
    """``{obs_id: attrs}`` of those of ``obs_ids`` that are in the archive's snapshot ``store``."""
    obs_ids = [int(i) for i in obs_ids]
    found = read_many_group_attrs(store, [obs_path(i) for i in obs_ids])
    return {
        i: attrs for i, attrs in zip(obs_ids, found, strict=True) if attrs and attrs.get("complete") is True
    }


def mosaic_attrs(store) -> dict | None:
    """The attributes of the archive's mosaic, or None if it has no complete mosaic."""
    try:
        attrs = read_group_attrs(store, MOSAIC)
    except GpcubeError:
        return None
    return attrs if attrs.get("complete") else None
