"""Simulated GADF DL3 data stores: events sampled from real or analytic IRFs, streamed to disk.

``simulate_store(config, out_dir)`` writes one file per observation (EVENTS, GTI, AEFF, EDISP, PSF,
BKG) and the ``hdu-index`` and ``obs-index`` files; ``gpcube simulate CONFIG`` does the same from the
command line. The config keys, the sampling method and the limitations are in ``docs/simulate.rst``.
"""

from gpcube.simulate.config import SimConfig, load_sim_config, parse_sim_config
from gpcube.simulate.pointings import plan_observations, survey_pointings
from gpcube.simulate.store import simulate_store

__all__ = ["SimConfig", "load_sim_config", "parse_sim_config", "plan_observations", "simulate_store",
           "survey_pointings"]  # fmt: skip
