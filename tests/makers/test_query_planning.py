"""The makers with dask's array query planning on (``array.query-planning``, read once, when
``dask.array`` is first imported): the counts and lazy-cube tests in a fresh interpreter."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import REPO

ENV = {**os.environ, "DASK_ARRAY__QUERY_PLANNING": "True"}


def test_counts_and_lazy_cubes_pass_with_query_planning():
    check = "import dask.array as da; assert da.array_expr_enabled()"
    subprocess.run([sys.executable, "-c", check], cwd=REPO, env=ENV, check=True)
    tests = ["tests/makers/test_counts.py", "tests/makers/test_lazy.py"]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
