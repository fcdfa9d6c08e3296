"""gpcube: gamma-ray DL3 event lists and IRFs into chunked, out-of-core DL4 sky cubes."""

from gpcube.errors import GpcubeError, GpcubeWarning
from gpcube.io import DataStore, Observation, Pointing

__version__ = "0.1.0.dev0"

__all__ = ["DataStore", "GpcubeError", "GpcubeWarning", "Observation", "Pointing", "__version__"]
