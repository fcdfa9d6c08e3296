"""Sky geometry: energy axes, WCS pixel grids (CAR/TAN, icrs/galactic) and cutouts on the parent grid.

See ``docs/geometry.rst`` for the conventions (pixel indices, coords, JSON attrs, cutouts) and
:mod:`gpcube.geom.world` for the world coordinates (``lon``/``lat``) of sky products.
"""

from gpcube.geom._util import skycoord_to_lonlat
from gpcube.geom.axes import BAND_DIM, ENERGY_AXIS_NAMES, EnergyAxis
from gpcube.geom.cutout import cutout
from gpcube.geom.sky import FRAMES, IRF_DIMS, PROJECTIONS, SKY_DIMS, SkyGeom, pixel_dims

__all__ = [
    "BAND_DIM",
    "ENERGY_AXIS_NAMES",
    "FRAMES",
    "IRF_DIMS",
    "PROJECTIONS",
    "SKY_DIMS",
    "EnergyAxis",
    "SkyGeom",
    "cutout",
    "pixel_dims",
    "skycoord_to_lonlat",
]
