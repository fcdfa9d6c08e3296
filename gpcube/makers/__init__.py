"""Per-observation makers: functions ``(observation, geom, ...) -> lazy xr.DataArray`` over a cutout."""

from gpcube.makers.counts import make_map_counts
from gpcube.makers.exposure import make_map_exposure_true_energy

__all__ = ["make_map_counts", "make_map_exposure_true_energy"]
