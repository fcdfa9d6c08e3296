"""What every observation of a simulation shares: the IRFs (as written and as read back) and the samplers.

Built once per process from the config (:func:`context_for` caches it by the config's JSON), so a
dask worker pays for it once, not once per observation, and no large object is shipped to workers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import xarray as xr

from gpcube._schema import ConfigError
from gpcube.simulate.background import BackgroundSampler, background_sampler
from gpcube.simulate.config import SimConfig, parse_sim_config
from gpcube.simulate.irfs import (
    IRF_TYPES,
    extname,
    hdu_bytes,
    hdu_classes,
    irf_hdus,
    read_back,
    scale_background,
)
from gpcube.simulate.sampling import GroupedCdf
from gpcube.simulate.sources import edisp_sampler, psf_sampler

__all__ = ["SimContext", "build_context", "context_for"]

_SUPPORTED = {
    "aeff": ("aeff_2d",),
    "edisp": ("edisp_2d",),
    "psf": ("psf_table", "psf_3gauss", "psf_king"),
    "bkg": ("bkg_2d", "bkg_3d"),
}


@dataclass(frozen=True)
class SimContext:
    """The shared part of a simulation.

    Attributes
    ----------
    config : SimConfig
    irf_raw : dict
        HDU type -> the serialised HDU written into every file (``AEFF``, ``EDISP``, ``PSF``, ``BKG``).
    irf_class : dict
        HDU type -> GADF HDU class.
    irfs : dict
        HDU type -> the IRF as gpcube reads it back from ``irf_raw``.
    background : BackgroundSampler
        The (scaled) background model, tabulated.
    psf, edisp : GroupedCdf
        PSF and migration samplers.
    background_scale : float
        Factor applied to the background model's rate (written into the BKG table).
    energy_true : tuple of float
        True-energy range of the source events (TeV).
    """

    config: SimConfig
    irf_raw: dict[str, bytes]
    irf_class: dict[str, str]
    irfs: dict[str, xr.Dataset]
    background: BackgroundSampler
    psf: GroupedCdf
    edisp: GroupedCdf
    background_scale: float
    energy_true: tuple[float, float]


def _check_classes(classes: dict[str, str], source: str | None) -> None:
    for hdu_type, accepted in _SUPPORTED.items():
        if classes[hdu_type] not in accepted:
            raise ConfigError("irf.obs_id", f"expected a {hdu_type} HDU of class {' or '.join(accepted)}, "
                              f"got {classes[hdu_type]!r}", source)  # fmt: skip


def _scale(config: SimConfig, unit_rate: float) -> float:
    settings = config.background
    if settings.events is None:
        return 1.0 if settings.scale is None else settings.scale
    expected = unit_rate * config.observation.ontime
    if expected <= 0:
        raise ConfigError("background.events", "a background model with a non-zero rate in the field of "
                          "view and energy range", config.source)  # fmt: skip
    return settings.events / expected


def build_context(config: SimConfig) -> SimContext:
    """Read or compute the IRFs, scale the background, serialise the HDUs and build the samplers."""
    obs = config.observation
    energy, max_offset = (obs.energy.min, obs.energy.max), obs.max_offset
    hdus = irf_hdus(config)
    classes = hdu_classes(hdus)
    _check_classes(classes, config.source)
    unit_bkg = read_back(hdu_bytes(hdus["bkg"], "BKG"), classes["bkg"])
    scale = _scale(config, background_sampler(unit_bkg, energy, max_offset).rate)
    if scale != 1.0:
        hdus["bkg"] = scale_background(hdus["bkg"], scale)
    raw = {t: hdu_bytes(hdus[t], extname(t)) for t in IRF_TYPES}
    irfs = {t: read_back(raw[t], classes[t]) for t in IRF_TYPES}
    aeff = irfs["aeff"]
    if obs.energy_true is not None:
        energy_true = (obs.energy_true.min, obs.energy_true.max)
    else:
        energy_true = (float(aeff["energy_true_lo"][0]), float(aeff["energy_true_hi"][-1]))
    return SimContext(
        config=config, irf_raw=raw, irf_class=classes, irfs=irfs,
        background=background_sampler(irfs["bkg"], energy, max_offset), psf=psf_sampler(irfs["psf"]),
        edisp=edisp_sampler(irfs["edisp"]), background_scale=scale, energy_true=energy_true,
    )  # fmt: skip


@lru_cache(maxsize=2)
def context_for(config_json: str) -> SimContext:
    """:func:`build_context` of a config given as :meth:`SimConfig.to_json`, cached in this process."""
    return build_context(parse_sim_config(json.loads(config_json)))
