"""Sky geometry: energy axes, WCS pixel grids (CAR/TAN, icrs/galactic) and cutouts on the parent grid.

See ``docs/geometry.rst`` for the conventions (pixel indices, coords, JSON attrs, cutouts).
"""

from gpcube.geom._util import skycoord_to_lonlat
from gpcube.geom.axes import ENERGY_AXIS_NAMES, EnergyAxis
from gpcube.geom.cutout import cutout
from gpcube.geom.sky import FRAMES, PROJECTIONS, SkyGeom

__all__ = [
    "ENERGY_AXIS_NAMES",
    "FRAMES",
    "PROJECTIONS",
    "EnergyAxis",
    "SkyGeom",
    "cutout",
    "skycoord_to_lonlat",
]
