"""Reading GADF DL3 data: data stores, observations, events and IRFs."""

from gpcube.io.datastore import DataStore
from gpcube.io.observation import HduRef, Observation, Pointing

__all__ = ["DataStore", "HduRef", "Observation", "Pointing"]
