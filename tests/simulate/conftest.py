"""Small simulated stores shared by the simulation tests (session-scoped: each is simulated once)."""

from __future__ import annotations

import copy

import pytest

from gpcube.simulate import simulate_store

#: Six 1-h observations on a 3 x 2 grid around the Galactic Centre, analytic IRFs, one bright point source.
TRUTH_CONFIG = {
    "seed": 3,
    "pointings": {"frame": "galactic", "grid": {"lon": [-1.0, 1.0], "spacing": 1.0, "lat": [-0.5, 0.5]}},
    "observation": {"livetime": 3600.0, "energy": {"min": 0.3, "max": 100.0},
                    "energy_true": {"min": 0.5, "max": 80.0}},
    "sources": [{"name": "pt", "position": [0.0, 0.0], "amplitude": 3e-11, "index": 2.3}],
}  # fmt: skip


def truth_config() -> dict:
    """A fresh copy of :data:`TRUTH_CONFIG`."""
    return copy.deepcopy(TRUTH_CONFIG)


@pytest.fixture(scope="session")
def truth_store(tmp_path_factory):
    """``(path, report)`` of the simulated :data:`TRUTH_CONFIG` store."""
    path = tmp_path_factory.mktemp("sim") / "truth"
    report = simulate_store(truth_config(), path, progress=False)
    return path, report
