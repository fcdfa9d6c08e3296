"""Per-observation makers: functions ``(observation, geom, ...) -> lazy xr.DataArray`` over a cutout."""

from gpcube.makers.counts import make_map_counts

__all__ = ["make_map_counts"]
