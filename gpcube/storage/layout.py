"""The archive on disk: a zarr v3 store with the geometry and config at the root, one group per
observation under ``obs/`` and the mosaic under ``mosaic/``.

An observation's group is written under a temporary name (``obs/_tmp-<obs_id>-<token>``), marked
complete in its attributes, then renamed to ``obs/<obs_id>`` in one step: a reader sees an
observation whole or not at all, and a run killed halfway leaves only temporary groups, which the
next run deletes. A local filesystem is assumed (rename of a directory is atomic there).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path

from gpcube.errors import GpcubeError
from gpcube.storage.zarrv3 import read_group_attrs, write_group

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
    "file_checksums",
    "is_complete",
    "mosaic_attrs",
    "obs_path",
    "observation_attrs",
    "replace_group",
    "root_attrs",
    "versions",
]

ARCHIVE_FORMAT = "gpcube-archive"
#: 2: the observations' ``edisp`` kernels are masked per reco bin and ``exposure_psf`` weighs the PSF.
ARCHIVE_VERSION = 2
#: Why an archive of an older format version cannot be used; it has to be made again.
_OLD_VERSIONS = {
    1: "its energy-dispersion kernels are not masked per reco bin, so its stacked edisp predicts reco bins "
    "with the exposure of observations that are not safe there; run the job again into a new output"
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


def root_attrs(path: str | Path) -> dict:
    """The root attributes of an archive; a clear error if ``path`` is not one."""
    path = Path(path)
    if not (path / "zarr.json").exists():
        raise GpcubeError("no gpcube archive here (no zarr.json)", path=path)
    attrs = read_group_attrs(path)
    if attrs.get("format") != ARCHIVE_FORMAT:
        raise GpcubeError(f"not a gpcube archive (format {attrs.get('format')!r})", path=path)
    version = attrs.get("format_version")
    if version != ARCHIVE_VERSION:
        why = _OLD_VERSIONS.get(version, f"this gpcube reads version {ARCHIVE_VERSION}")
        raise GpcubeError(f"archive format version {version} is not supported: {why}", path=path)
    return attrs


def check_or_create(
    path: str | Path, analysis: Mapping, geom_attrs: Mapping | Callable[[], Mapping], config: Mapping
) -> dict:
    """Open the archive at ``path``, or create it; refuse it if it was made with another analysis.
    Returns the root attributes.

    ``analysis`` is the part of the config that fixes the products (geometry, products, safe mask,
    background, IRF grid, cutout radius): adding observations made with another one would mix
    products, so a difference is an error that lists the keys. ``geom_attrs`` (or a function giving
    them, called only if the archive is created) are the grid's :meth:`SkyGeom.to_attrs`.
    """
    path = Path(path)
    if path.exists() and not (path / "zarr.json").exists():
        if any(path.iterdir()):
            raise GpcubeError("output exists and is not a gpcube archive", path=path)
    if (path / "zarr.json").exists():
        attrs = root_attrs(path)
        diffs = _differences(attrs.get("analysis", {}), json.loads(_canonical(analysis)))
        if diffs:
            raise GpcubeError(
                "the archive was made with another analysis config; use a new output or the same config "
                "(only data.*, chunks, cluster and output may change). Differences: " + "; ".join(diffs),
                path=path,
            )
        return attrs
    attrs = {
        "format": ARCHIVE_FORMAT,
        "format_version": ARCHIVE_VERSION,
        "geom": dict(geom_attrs() if callable(geom_attrs) else geom_attrs),
        "analysis": json.loads(_canonical(analysis)),
        "config": json.loads(_canonical(config)),
        "versions": versions(),
        "created": now(),
    }
    write_group(path, attrs)
    write_group(path / OBS, {})
    return attrs


def obs_path(path: str | Path, obs_id: int) -> Path:
    """Where observation ``obs_id``'s group lives."""
    return Path(path) / OBS / str(int(obs_id))


def temporary_obs_path(path: str | Path, obs_id: int) -> Path:
    """A fresh temporary group path for writing observation ``obs_id``."""
    return Path(path) / OBS / f"{_TMP_PREFIX}{int(obs_id)}-{uuid.uuid4().hex[:12]}"


def commit_observation(tmp: Path, final: Path) -> bool:
    """Rename a written group into place; False if another writer got there first (ours is dropped)."""
    try:
        os.rename(tmp, final)
        return True
    except OSError:
        if final.exists():
            shutil.rmtree(tmp, ignore_errors=True)
            return False
        raise


def replace_group(tmp: Path, final: Path) -> None:
    """Swap a group written under a temporary name in for ``final`` (the mosaic, the significance maps)."""
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)


def is_complete(group: Path) -> bool:
    """Whether the observation group at ``group`` exists and is complete."""
    return group.is_dir() and _complete_attrs(group) is not None


def _complete_attrs(group: Path) -> dict | None:
    try:
        attrs = read_group_attrs(group)
    except GpcubeError:
        return None
    return attrs if attrs.get("complete") is True else None


def complete_observations(path: str | Path, *, clean: bool = False) -> dict[int, dict]:
    """``{obs_id: attrs}`` of the observations in the archive, in obs_id order.

    With ``clean``, temporary or unfinished groups left by a killed run are deleted on the way.
    """
    obs_dir = Path(path) / OBS
    found = {}
    for entry in obs_dir.iterdir() if obs_dir.is_dir() else []:
        attrs = _complete_attrs(entry) if entry.name.isdigit() else None
        if attrs is not None:
            found[int(entry.name)] = attrs
        elif clean and entry.is_dir() and (entry.name.isdigit() or entry.name.startswith(_TMP_PREFIX)):
            shutil.rmtree(entry)  # unfinished (no complete attrs) or temporary
    return dict(sorted(found.items()))


def observation_attrs(path: str | Path, obs_ids) -> dict[int, dict]:
    """``{obs_id: attrs}`` of those of ``obs_ids`` that are complete in the archive."""
    found = {}
    for obs_id in obs_ids:
        attrs = _complete_attrs(obs_path(path, obs_id))
        if attrs is not None:
            found[int(obs_id)] = attrs
    return found


def mosaic_attrs(path: str | Path) -> dict | None:
    """The attributes of the archive's mosaic, or None if it has no complete mosaic."""
    try:
        attrs = read_group_attrs(Path(path) / MOSAIC)
    except GpcubeError:
        return None
    return attrs if attrs.get("complete") else None


def file_checksums(paths) -> list[dict]:
    """``[{"path", "size", "sha256"}]`` of the distinct input files, sorted by path."""
    out = []
    for p in sorted({str(Path(p).resolve()) for p in paths}):
        digest = hashlib.sha256()
        with open(p, "rb") as f:
            for block in iter(lambda f=f: f.read(1 << 20), b""):
                digest.update(block)
        out.append({"path": p, "size": os.path.getsize(p), "sha256": digest.hexdigest()})
    return out
