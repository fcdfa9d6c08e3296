"""dask's array query planning (``array.query-planning``, read once, when ``dask.array`` is first
imported): the makers' tests in a fresh interpreter with it on, and the same archive bytes with it on
and off. The whole suite with it on is run by ``tools/ci_extra.py`` (CI)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from tests.archive.conftest import RING, chunk_files, job_dict
from tests.conftest import REPO

ENV = {**os.environ, "DASK_ARRAY__QUERY_PLANNING": "True"}


def test_counts_and_lazy_cubes_pass_with_query_planning():
    check = "import dask.array as da; assert da.array_expr_enabled()"
    subprocess.run([sys.executable, "-c", check], cwd=REPO, env=ENV, check=True)
    tests = ["tests/makers/test_counts.py", "tests/makers/test_lazy.py"]
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests]
    result = subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def _run(job: dict, path, planning: bool) -> None:
    """``gpcube run`` of ``job`` in a fresh interpreter, with dask's array query planning on or off."""
    path.write_text(yaml.safe_dump(job))
    env = {**os.environ, "DASK_ARRAY__QUERY_PLANNING": str(planning)}
    command = [sys.executable, "-m", "gpcube.cli", "run", str(path), "-q"]
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


FOV = {"method": "fov", "grouping": {"min_counts": 100}, "exclusion": RING["exclusion"]}
SKY = ["counts", "exposure", "background"]


@pytest.mark.parametrize(
    ("background", "products"),
    # FoV with the IRF maps: their safe mask is masked by fov_norm_ok, made of rechunked sky maps
    [(FOV, [*SKY, "psf", "edisp"]), (RING, SKY)],
    ids=["fov-irf", "ring"],
)
def test_archives_have_the_same_bytes_with_and_without_query_planning(tmp_path, background, products):
    # small blocks (obs chunk 16): the products are lazy multi-block graphs, not computed at once
    archives = {}
    for planning in (False, True):
        out = tmp_path / f"{planning}.zarr"
        job = job_dict(out, products=products, background=background,
                       chunks={"obs": 16, "mosaic": 32})  # fmt: skip
        _run(job, tmp_path / f"{planning}.yaml", planning)
        archives[planning] = out
    for group in ("obs", "mosaic"):
        off, on = chunk_files(archives[False], group), chunk_files(archives[True], group)
        assert off and sorted(off) == sorted(on), group
        assert ("psf" in products) == any("irf" in key.split("/") for key in off), group
        different = [key for key in off if off[key] != on[key]]
        assert not different, (group, different[:10])
