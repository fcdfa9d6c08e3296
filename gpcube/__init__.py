"""gpcube: gamma-ray DL3 event lists and IRFs into chunked, out-of-core DL4 sky cubes."""

import gpcube.accessor  # noqa: F401  (registers the "sky" accessor on xarray objects)
from gpcube.errors import GpcubeError, GpcubeWarning
from gpcube.geom import EnergyAxis, SkyGeom, cutout
from gpcube.io import DataStore, Observation, Pointing
from gpcube.pipeline import open_archive

__version__ = "0.1.0.dev0"

__all__ = [
    "DataStore",
    "EnergyAxis",
    "GpcubeError",
    "GpcubeWarning",
    "Observation",
    "Pointing",
    "SkyGeom",
    "__version__",
    "cutout",
    "open_archive",
]
