"""Per-observation makers: functions ``(observation, geom, ...) -> lazy xr.DataArray`` over a cutout."""

from gpcube.makers.background import make_map_background
from gpcube.makers.counts import make_map_counts
from gpcube.makers.edisp import make_edisp_kernel_map
from gpcube.makers.exposure import make_map_exposure_reco_energy, make_map_exposure_true_energy

__all__ = [
    "make_edisp_kernel_map",
    "make_map_background",
    "make_map_counts",
    "make_map_exposure_reco_energy",
    "make_map_exposure_true_energy",
]
