"""Per-observation makers: functions ``(observation, geom, ...) -> lazy xr.DataArray`` over a cutout.

The functions are imported from their modules on first use, so that importing one light module
(e.g. :mod:`gpcube.makers.ring_stack` for the mosaic's stacked alpha) does not import dask, scipy
and astropy with all the others.
"""

import importlib

#: Public function -> the module that defines it.
_MODULES = {
    "average_alpha": "ring_stack",
    "combine_ring_sums": "ring_stack",
    "exclusion_mask_from_circles": "exclusion",
    "make_edisp_kernel_map": "edisp",
    "make_map_adaptive_ring_background": "ring_adaptive",
    "make_map_background": "background",
    "make_map_background_fov_norm": "fov_norm",
    "make_map_counts": "counts",
    "make_map_exposure_reco_energy": "exposure",
    "make_map_exposure_true_energy": "exposure",
    "make_map_ring_background": "ring",
    "make_psf_map": "psf",
    "make_safe_mask": "safe",
    "psf_kernel": "psf",
    "ring_stack_terms": "ring_stack",
}

__all__ = sorted(_MODULES)


def __getattr__(name: str):
    if name not in _MODULES:
        raise AttributeError(f"module 'gpcube.makers' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"gpcube.makers.{_MODULES[name]}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULES))
