"""The documentation builds with Sphinx, warnings as errors (as in CI)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

from tests.conftest import REPO


def test_docs_build_without_warnings(tmp_path, hess_dir):
    # autosummary's pages of an earlier build: stale ones (of a name since removed) would warn
    shutil.rmtree(REPO / "docs" / "api" / "generated", ignore_errors=True)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "docs",
            str(tmp_path / "html"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "GPCUBE_HESS_DL3_DR1": str(hess_dir)},
    )
    assert result.returncode == 0, result.stderr[-5000:]
