"""What the observations of a simulation share: the IRF sets (as written and as read back) and samplers.

Built once per process from the config (:func:`context_for` caches it by the config's JSON), so a
dask worker pays for it once, not once per observation, and no large object is shipped to workers.
A simulation has one IRF set (analytic IRFs, ``irf.obs_id``) or one per entry of ``irf.obs_ids``;
observation ``i`` uses set ``i % n_sets`` (:meth:`SimContext.irf_set`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import xarray as xr
from astropy.io import fits

from gpcube._schema import ConfigError
from gpcube.simulate.background import BackgroundSampler, background_sampler
from gpcube.simulate.config import SimConfig, parse_sim_config
from gpcube.simulate.irfs import (
    IRF_TYPES,
    extname,
    hdu_bytes,
    hdu_classes,
    irf_hdu_sets,
    read_back,
    scale_background,
)
from gpcube.simulate.sampling import GroupedCdf
from gpcube.simulate.sources import edisp_sampler, psf_sampler

__all__ = ["IrfSet", "SimContext", "build_context", "context_for"]

_SUPPORTED = {
    "aeff": ("aeff_2d",),
    "edisp": ("edisp_2d",),
    "psf": ("psf_table", "psf_3gauss", "psf_king"),
    "bkg": ("bkg_2d", "bkg_3d"),
}


@dataclass(frozen=True)
class IrfSet:
    """The IRFs of some observations of a simulation, and their samplers.

    Attributes
    ----------
    obs_id : int or None
        The observation of ``irf.store`` they come from (None for analytic IRFs).
    raw : dict
        HDU type -> the serialised HDU written into the files (``AEFF``, ``EDISP``, ``PSF``, ``BKG``).
    classes : dict
        HDU type -> GADF HDU class.
    irfs : dict
        HDU type -> the IRF as gpcube reads it back from ``raw``.
    background : BackgroundSampler
        The (scaled) background model, tabulated.
    psf, edisp : GroupedCdf
        PSF and migration samplers.
    energy_true : tuple of float
        True-energy range of the source events (TeV).
    """

    obs_id: int | None
    raw: dict[str, bytes]
    classes: dict[str, str]
    irfs: dict[str, xr.Dataset]
    background: BackgroundSampler
    psf: GroupedCdf
    edisp: GroupedCdf
    energy_true: tuple[float, float]


@dataclass(frozen=True)
class SimContext:
    """The shared part of a simulation.

    Attributes
    ----------
    config : SimConfig
    irf_sets : tuple of IrfSet
        One set, or one per entry of ``irf.obs_ids``.
    background_scale : float
        Factor applied to every background model's rate (written into the BKG tables).
    """

    config: SimConfig
    irf_sets: tuple[IrfSet, ...]
    background_scale: float

    def irf_set(self, index: int) -> IrfSet:
        """The IRF set of observation ``index`` (from 0): the sets in turn."""
        return self.irf_sets[index % len(self.irf_sets)]


def _check_classes(classes: dict[str, str], key: str, source: str | None) -> None:
    for hdu_type, accepted in _SUPPORTED.items():
        if classes[hdu_type] not in accepted:
            raise ConfigError(key, f"expected a {hdu_type} HDU of class {' or '.join(accepted)}, "
                              f"got {classes[hdu_type]!r}", source)  # fmt: skip


def _scale(config: SimConfig, sets: dict, obs_ids: tuple) -> float:
    """The background scale: the config's, or ``events`` over the mean expected count of the sets.

    Only ``events`` needs the unscaled models' rates (a background sampler each).
    """
    settings = config.background
    if settings.events is None:
        return 1.0 if settings.scale is None else settings.scale
    rates = {obs_id: _unit_rate(config, hdus) for obs_id, hdus in sets.items()}
    expected = sum(rates[obs_id] for obs_id in obs_ids) / len(obs_ids) * config.observation.ontime
    if expected <= 0:
        raise ConfigError("background.events", "a background model with a non-zero rate in the field of "
                          "view and energy range", config.source)  # fmt: skip
    return settings.events / expected


def _irf_set(
    config: SimConfig, obs_id: int | None, hdus: dict[str, fits.BinTableHDU], scale: float
) -> IrfSet:
    """Scale the background, serialise the HDUs, read them back and build the samplers."""
    obs = config.observation
    hdus = dict(hdus)
    if scale != 1.0:
        hdus["bkg"] = scale_background(hdus["bkg"], scale)
    classes = hdu_classes(hdus)
    raw = {t: hdu_bytes(hdus[t], extname(t)) for t in IRF_TYPES}
    irfs = {t: read_back(raw[t], classes[t]) for t in IRF_TYPES}
    aeff = irfs["aeff"]
    if obs.energy_true is not None:
        energy_true = (obs.energy_true.min, obs.energy_true.max)
    else:
        energy_true = (float(aeff["energy_true_lo"][0]), float(aeff["energy_true_hi"][-1]))
    background = background_sampler(irfs["bkg"], (obs.energy.min, obs.energy.max), obs.max_offset)
    return IrfSet(
        obs_id=obs_id, raw=raw, classes=classes, irfs=irfs, background=background,
        psf=psf_sampler(irfs["psf"]), edisp=edisp_sampler(irfs["edisp"]), energy_true=energy_true,
    )  # fmt: skip


def _unit_rate(config: SimConfig, hdus: dict[str, fits.BinTableHDU]) -> float:
    """Expected background events per second of the unscaled model."""
    obs = config.observation
    unit_bkg = read_back(hdu_bytes(hdus["bkg"], "BKG"), hdu_classes(hdus)["bkg"])
    return background_sampler(unit_bkg, (obs.energy.min, obs.energy.max), obs.max_offset).rate


def build_context(config: SimConfig) -> SimContext:
    """Read or compute the IRF sets, scale the backgrounds, serialise the HDUs and build the samplers.

    Each distinct observation of ``irf.obs_ids`` is built once; the background scale is common to all.
    """
    key = "irf.obs_ids" if config.irf.obs_ids is not None else "irf.obs_id"
    obs_ids = config.irf.store_obs_ids or (None,)
    distinct = dict(zip(obs_ids, irf_hdu_sets(config), strict=True))
    for hdus in distinct.values():
        _check_classes(hdu_classes(hdus), key, config.source)
    scale = _scale(config, distinct, obs_ids)
    built = {obs_id: _irf_set(config, obs_id, hdus, scale) for obs_id, hdus in distinct.items()}
    return SimContext(config, tuple(built[obs_id] for obs_id in obs_ids), scale)


@lru_cache(maxsize=2)
def context_for(config_json: str) -> SimContext:
    """:func:`build_context` of a config given as :meth:`SimConfig.to_json`, cached in this process."""
    return build_context(parse_sim_config(json.loads(config_json)))
