"""gpcube: gamma-ray DL3 event lists and IRFs into chunked, out-of-core DL4 sky cubes."""

import importlib

import gpcube.accessor  # noqa: F401  (registers the "sky" accessor on xarray objects)
from gpcube.errors import GpcubeError, GpcubeWarning
from gpcube.geom import EnergyAxis, SkyGeom, cutout

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
    "open_datatree",
]

#: Imported on first use: the data store pulls in astropy and the pipeline dask and the makers,
#: which a command such as ``gpcube significance`` does not need.
_LAZY = {
    "DataStore": "gpcube.io",
    "Observation": "gpcube.io",
    "Pointing": "gpcube.io",
    "open_archive": "gpcube.workflow.open",
    "open_datatree": "gpcube.workflow.open",
}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'gpcube' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
