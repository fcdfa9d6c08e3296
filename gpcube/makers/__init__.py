"""Per-observation makers: functions ``(observation, geom, ...) -> lazy xr.DataArray`` over a cutout."""

from gpcube.makers.background import make_map_background
from gpcube.makers.counts import make_map_counts
from gpcube.makers.edisp import make_edisp_kernel_map
from gpcube.makers.exclusion import exclusion_mask_from_circles
from gpcube.makers.exposure import make_map_exposure_reco_energy, make_map_exposure_true_energy
from gpcube.makers.fov_norm import make_map_background_fov_norm
from gpcube.makers.psf import make_psf_map, psf_kernel
from gpcube.makers.ring import make_map_ring_background
from gpcube.makers.ring_adaptive import make_map_adaptive_ring_background
from gpcube.makers.ring_stack import average_alpha, combine_ring_sums, ring_stack_terms
from gpcube.makers.safe import make_safe_mask

__all__ = [
    "average_alpha",
    "combine_ring_sums",
    "exclusion_mask_from_circles",
    "make_edisp_kernel_map",
    "make_map_adaptive_ring_background",
    "make_map_background",
    "make_map_background_fov_norm",
    "make_map_counts",
    "make_map_exposure_reco_energy",
    "make_map_exposure_true_energy",
    "make_map_ring_background",
    "make_psf_map",
    "make_safe_mask",
    "psf_kernel",
    "ring_stack_terms",
]
