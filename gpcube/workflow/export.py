"""Export an archive (its mosaic, or one observation) as a FITS dataset that Gammapy reads, with what the
archive says of its observations (GTI, META_TABLE, live time)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path

from gpcube.errors import GpcubeError, GpcubeWarning
from gpcube.io.dataset_meta import ObservationMeta
from gpcube.storage.layout import IRF, MOSAIC, RING, obs_path, observation_attrs, open_readonly
from gpcube.storage.nodes import exists
from gpcube.storage.repository import Archive, as_archive
from gpcube.workflow.open import open_archive

__all__ = ["EXPORT_DATASETS", "export", "observation_meta", "observations_meta"]

#: What ``export`` writes, by its ``dataset`` argument.
EXPORT_DATASETS = ("auto", "map", "onoff")


def observation_meta(obs_id: int, attrs: dict) -> ObservationMeta:
    """The :class:`~gpcube.io.dataset_meta.ObservationMeta` of an observation group's attributes.

    ``gti`` (stored at reduce time since archive format version 2, see
    :func:`gpcube.workflow.reduce.write_observation`) is None for an observation reduced before.
    """
    pointing = attrs.get("pointing_radec") or (float("nan"), float("nan"))
    livetime = attrs.get("livetime") or 0.0
    return ObservationMeta.from_record(obs_id, livetime, pointing, attrs.get("telescope"), attrs.get("gti"))


def observations_meta(store, obs_ids: Iterable[int], label: str = "") -> list[ObservationMeta]:
    """The :class:`~gpcube.io.dataset_meta.ObservationMeta` of observations ``obs_ids`` of the archive's
    snapshot ``store`` (``label`` names the archive in messages).

    Warns (:class:`~gpcube.GpcubeWarning`) when some have no stored GTI: the export then writes no GTI
    table.

    Raises
    ------
    GpcubeError
        If one of them is not a complete observation of the archive.
    """
    obs_ids = [int(i) for i in obs_ids]
    found = observation_attrs(store, obs_ids)
    missing = [i for i in obs_ids if i not in found]
    if missing:
        raise GpcubeError(f"observations {missing} are not complete in the archive", path=label or None)
    out = [observation_meta(i, found[i]) for i in obs_ids]
    without = [obs.obs_id for obs in out if obs.gti is None]
    if without:
        warnings.warn(
            f"{label}: observations {without} have no stored good time intervals (reduced by an earlier "
            "gpcube): the export has no GTI table",
            GpcubeWarning,
            stacklevel=2,
        )
    return out


def export(
    path: Archive | str | Path,
    output: str | Path,
    *,
    obs_id: int | None = None,
    dataset: str = "auto",
    name: str | None = None,
    overwrite: bool = False,
    storage_options: Mapping | None = None,
) -> Path:
    """Write the archive's mosaic, or one observation's products, as a FITS dataset that gammapy reads.

    Parameters
    ----------
    path : str or Path
        The archive.
    output : str or Path
        The FITS file to write.
    obs_id : int, optional
        Export this observation's cutout products (its own safe mask, exposure, background and IRF
        maps from ``obs/<obs_id>``) instead of the mosaic: one dataset per observation, for a joint
        fit or a light curve of the observations.
    dataset : {"auto", "map", "onoff"}
        ``map``: a ``MapDataset`` (counts, exposure, background, IRF maps, masks).
        ``onoff``: a ``MapDatasetOnOff`` of the ring background (ON and OFF counts, acceptances and the
        safe mask on the ring's energy bands, ``energy_band`` in the archive, the dataset's reco energy
        axis in the file, with the exposure and IRF maps, the edisp kernel summed into the bands).
        ``auto`` (default): ``onoff`` if the archive has ring products, else ``map``.
    name : str, optional
        The dataset's name; default ``"gpcube"``, or ``"gpcube-<obs_id>"`` for an observation.
    overwrite : bool
        Replace an existing file.

    Returns
    -------
    pathlib.Path
        The file written, with the ``GTI``, ``META_TABLE`` and live time of the observations it holds
        (:doc:`/export`).

    Raises
    ------
    GpcubeError
        If the archive has no mosaic (or not that observation, or it lies outside the geometry), if
        ``onoff`` is asked of an archive without ring products, or as
        :func:`gpcube.io.export.write_map_dataset`.

    See Also
    --------
    gpcube.io.export.write_map_dataset : Writes the file.

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
    >>> from astropy.io import fits
    >>> from gpcube.workflow.export import export
    >>> path = export(config.output, "crab.fits")
    >>> with fits.open(path) as hdus:  # gammapy.datasets.MapDataset.read(path) reads it
    ...     [hdu.name for hdu in hdus if not hdu.name.endswith("_BANDS")]
    ['PRIMARY', 'COUNTS', 'EXPOSURE', 'BACKGROUND', 'MASK_SAFE', 'GTI', 'META_TABLE']
    """
    from gpcube.io.export import write_map_dataset, write_map_dataset_onoff

    if dataset not in EXPORT_DATASETS:
        raise GpcubeError(f"dataset must be one of {EXPORT_DATASETS}, got {dataset!r}")
    archive = as_archive(path, storage_options)
    session = open_readonly(archive)  # every part from this one snapshot
    snapshot, store, label = session.snapshot_id, session.store, archive.location
    sky = open_archive(archive, obs_id=obs_id, snapshot=snapshot)
    if obs_id is not None and sky.attrs.get("empty"):
        raise GpcubeError(f"observation {obs_id} lies outside the geometry: it has no products", path=label)
    group = MOSAIC if obs_id is None else obs_path(obs_id)
    has_ring = exists(store, f"{group}/{RING}")
    if dataset == "onoff" and not has_ring:
        raise GpcubeError("no ring background products (background.method ring or adaptive_ring)", path=label)
    irf = (
        open_archive(archive, obs_id=obs_id, irf=True, snapshot=snapshot)
        if exists(store, f"{group}/{IRF}")
        else None
    )
    obs_ids = [obs_id] if obs_id is not None else sky.attrs.get("obs_ids", [])
    options = {
        "name": name or ("gpcube" if obs_id is None else f"gpcube-{obs_id}"),
        "observations": observations_meta(store, obs_ids, label),
        "overwrite": overwrite,
    }
    if dataset == "map" or not has_ring:
        return write_map_dataset(output, sky, irf, **options)
    ring = open_archive(archive, obs_id=obs_id, ring=True, snapshot=snapshot)
    onoff = ring[["counts", "counts_off", "acceptance", "acceptance_off", "mask_safe"]]
    if "exposure" in sky.data_vars:
        onoff = onoff.assign(exposure=sky["exposure"])
    return write_map_dataset_onoff(output, onoff, irf, **options)
