"""Shared fixtures: the H.E.S.S. DL3 DR1 data store (required: tests fail, never skip, without it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HESS_DIR = Path(os.environ.get("GPCUBE_HESS_DL3_DR1", REPO.parent / "shared" / "data" / "hess-dl3-dr1"))
CRAB_RUNS = (23523, 23526, 23559, 23592)


@pytest.fixture(scope="session")
def hess_dir() -> Path:
    """Path of the H.E.S.S. DL3 DR1 store; a missing store is a test failure."""
    if not (HESS_DIR / "hdu-index.fits.gz").is_file():
        pytest.fail(f"H.E.S.S. DL3 DR1 data not found at {HESS_DIR} (set GPCUBE_HESS_DL3_DR1)")
    return HESS_DIR


@pytest.fixture(scope="session")
def hess_store(hess_dir):
    import gpcube

    return gpcube.DataStore.from_dir(hess_dir)
