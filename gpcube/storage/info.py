"""What is in an archive: geometry, products, observations, mosaic and provenance (``gpcube info``)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from gpcube.geom import SkyGeom
from gpcube.storage.layout import complete_observations, mosaic_attrs, open_readonly, root_attrs
from gpcube.storage.repository import Archive, as_archive

__all__ = ["archive_info", "format_info"]


#: How many of the latest commits ``gpcube info`` lists.
HISTORY = 5


def _mosaic_summary(store) -> dict | None:
    attrs = mosaic_attrs(store)
    keys = ("complete", "n_obs", "obs_ids", "livetime", "chunk", "made_at")
    return None if attrs is None else {k: attrs.get(k) for k in keys}


def _history(archive: Archive, n: int) -> list[dict]:
    out = []
    for snapshot in archive.repo.ancestry(branch="main"):
        out.append({"snapshot": snapshot.id, "message": snapshot.message,
                    "written_at": snapshot.written_at.isoformat(timespec="seconds")})  # fmt: skip
        if len(out) == n:
            break
    return out


def archive_info(location: Archive | str | os.PathLike, storage_options: Mapping | None = None) -> dict:
    """A JSON-able description of the archive at ``location`` (its latest snapshot).

    Parameters
    ----------
    location : str, path-like or Archive
        The archive.
    storage_options : mapping, optional
        Options of its storage (see :class:`~gpcube.storage.repository.Archive`).

    Returns
    -------
    dict
        ``path``, ``format``, ``created``, ``versions``, ``geom``, ``analysis``, ``config``,
        ``observations`` (one dict each), ``mosaic`` (None before the first) and ``history`` (the
        latest commits); ``gpcube info`` prints it.

    Examples
    --------
    >>> from gpcube.data import example_data_dir
    >>> from gpcube.workflow.config import parse_config
    >>> config = parse_config({  # the 4 Crab runs on a small mosaic
    ...     "data": {"store": str(example_data_dir())},
    ...     "geom": {"center": [83.633, 22.014], "width": 3.0, "binsz": 0.05,
    ...              "energy_reco": {"min": 0.5, "max": 50, "nbins": 4},
    ...              "energy_true": {"min": 0.3, "max": 100, "nbins": 8}},
    ...     "output": "crab.zarr",
    ... })
    >>> from gpcube.workflow.pipeline import run
    >>> report = run(config, progress=False)
    >>> from gpcube.storage.info import archive_info
    >>> info = archive_info(config.output)
    >>> info["format"], [obs["obs_id"] for obs in info["observations"]]
    ('gpcube-archive v5', [23523, 23526, 23559, 23592])
    >>> info["history"][0]["message"]  # the latest commit
    'mosaic: 4 observations'
    """
    archive = as_archive(location, storage_options)
    store = open_readonly(archive).store
    attrs = root_attrs(store)
    observations = complete_observations(store)
    obs = []
    for obs_id, a in observations.items():
        prov = a.get("provenance", {})
        obs.append({
            "obs_id": obs_id,
            "empty": a.get("empty", False),
            "livetime": a.get("livetime"),
            "pointing_radec": a.get("pointing_radec"),
            "slice": a.get("slice"),
            "reduced_at": prov.get("reduced_at"),
            "seconds": prov.get("seconds"),
            "files": prov.get("files", []),
        })  # fmt: skip
    return {
        "path": archive.location,
        "format": f"{attrs['format']} v{attrs['format_version']}",
        "created": attrs.get("created"),
        "versions": attrs.get("versions", {}),
        "geom": attrs["geom"],
        "analysis": attrs.get("analysis", {}),
        "config": attrs.get("config", {}),
        "observations": obs,
        "mosaic": _mosaic_summary(store),
        "history": _history(archive, HISTORY),
    }


def _geom_lines(geom_attrs: dict) -> list[str]:
    geom = SkyGeom.from_attrs(geom_attrs)
    nx, ny = geom.npix
    lines = [
        f"geometry: {geom.frame} {geom.projection}, {nx} x {ny} px of {geom.binsz:g} deg, "
        f"centre ({geom.center[0]:.4f}, {geom.center[1]:.4f}) deg"
    ]
    for axis in geom.axes:
        lines.append(f"  {axis.name}: {axis.nbins} bins, {axis.edges[0]:g} - {axis.edges[-1]:g} TeV")
    return lines


def format_info(info: dict, files: bool = False) -> str:
    """Human-readable text of :func:`archive_info`'s output."""
    analysis = info["analysis"]
    safe = analysis.get("safe_mask", {})
    lines = [f"archive: {info['path']} ({info['format']}, created {info['created']})"]
    lines += _geom_lines(info["geom"])
    lines.append(
        f"products: {', '.join(analysis.get('products', []))}; cutout radius {analysis.get('max_offset')} deg"
    )
    lines.append(f"safe mask: {', '.join(safe.get('methods', [])) or 'none'}; "
                 f"background: {analysis.get('background', {}).get('method')}")  # fmt: skip
    obs = info["observations"]
    livetime = sum(o["livetime"] or 0.0 for o in obs)
    n_empty = sum(o["empty"] for o in obs)
    lines.append(
        f"observations: {len(obs)} ({n_empty} outside the geometry), livetime {livetime / 3600:.2f} h"
    )
    head = ("obs_id", "livetime/s", "ra", "dec", "y slice", "x slice")
    lines.append("  {:>8} {:>10} {:>9} {:>9}  {:>11} {:>11}  reduced".format(*head))
    for o in obs:
        ra, dec = o["pointing_radec"] or (float("nan"), float("nan"))
        sl = o["slice"] or {"y": ["-", "-"], "x": ["-", "-"]}
        rows, cols = "{}:{}".format(*sl["y"]), "{}:{}".format(*sl["x"])
        row = f"  {o['obs_id']:>8} {o['livetime'] or 0:>10.1f} {ra:>9.4f} {dec:>9.4f}  {rows:>11} {cols:>11}"
        lines.append(f"{row}  {o['reduced_at']}")
        if files:
            lines += [f"      {f['path']}  sha256 {f['sha256']}  {f['size']} B" for f in o["files"]]
    mosaic = info["mosaic"]
    if mosaic and mosaic.get("complete"):
        lines.append(f"mosaic: {mosaic['n_obs']} observations, {mosaic['livetime'] / 3600:.2f} h, "
                     f"chunk {mosaic['chunk']} px, made {mosaic['made_at']}")  # fmt: skip
    else:
        lines.append("mosaic: none yet (gpcube mosaic ARCHIVE)")
    lines.append("versions: " + ", ".join(f"{k} {v}" for k, v in info["versions"].items()))
    lines.append("latest commits:")
    lines += [f"  {h['snapshot']}  {h['written_at']}  {h['message']}" for h in info.get("history", [])]
    return "\n".join(lines)
