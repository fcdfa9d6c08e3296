"""Set-up of the docstring examples, which ``python -m pytest`` runs as doctests (``pyproject.toml``).

Each example runs in its own empty temporary directory (the current directory while it runs), so the
files it writes (``crab.yaml``, ``crab.zarr``, FITS files) go there and nowhere else. Examples use the
example data store shipped with gpcube (:func:`gpcube.data.example_data_dir`); ``hess_dir`` in their
namespace is the whole H.E.S.S. DL3 DR1 store, found as ``tests/conftest.py`` finds it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

_HESS_DIR = Path(
    os.environ.get(
        "GPCUBE_HESS_DL3_DR1", Path(__file__).resolve().parents[2] / "shared" / "data" / "hess-dl3-dr1"
    )
)


@pytest.fixture(autouse=True)
def _example_namespace(doctest_namespace: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run every example in a fresh temporary directory; name the H.E.S.S. DL3 DR1 store ``hess_dir``."""
    monkeypatch.chdir(tmp_path)
    doctest_namespace["hess_dir"] = _HESS_DIR
