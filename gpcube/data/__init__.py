"""Example data shipped with gpcube: the 4 Crab Nebula runs of the H.E.S.S. DL3 DR1 release.

The files are a subset of the H.E.S.S. DL3 public test data release 1 (CC BY 4.0 with the terms of use
in ``README.txt``; see ``NOTICE.md`` in the folder). Attribution: "This work made use of data from the
H.E.S.S. DL3 public test data release 1 (HESS DL3 DR1, H.E.S.S. collaboration, 2018)."

Examples
--------
>>> import gpcube
>>> from gpcube.data import EXAMPLE_OBS_IDS, example_data_dir
>>> store = gpcube.DataStore.from_dir(example_data_dir())
>>> store.obs_ids == list(EXAMPLE_OBS_IDS)
True
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["EXAMPLE_OBS_IDS", "example_data_dir"]

#: Observation ids of the example data store (the H.E.S.S. DL3 DR1 Crab Nebula runs).
EXAMPLE_OBS_IDS = (23523, 23526, 23559, 23592)


def example_data_dir() -> Path:
    """Directory of the example GADF data store (``hdu-index.fits.gz``, ``obs-index.fits.gz``, ``data/``).

    Returns
    -------
    pathlib.Path
        ``gpcube/data/hess-dl3-dr1-crab`` in the installed package; open it with
        :meth:`gpcube.DataStore.from_dir`.
    """
    return Path(str(files("gpcube") / "data" / "hess-dl3-dr1-crab"))
