"""The test suite's other configurations, run by CI after the main run (README, "Test").

1. dask's array *query planning* on (``DASK_ARRAY__QUERY_PLANNING=True``: dask arrays are dask-expr
   arrays) on the tests that build or compute dask arrays (:data:`QUERY_PLANNING_TESTS`). Tests that
   need what dask-expr does not have yet are listed in ``tests/query_planning_gaps.py``, expected
   to fail there (strictly: one that passes fails the run, so that the list is kept short).
2. Python 3.13, when an interpreter is found (:func:`python313`): a virtual environment of its own
   (``GPCUBE_VENV313``, default ``../venv313`` beside the clone, kept between runs), the package
   installed with its test and docs extras (as the README's install command; the notebook and docs
   tests need the docs extra) at the versions of ``tools/constraints-py313.txt``, and the suite
   outside ``tests/validation``.

Usage, from the repository's root::

    python tools/ci_variants.py                 # both
    python tools/ci_variants.py query-planning  # one of them
    python tools/ci_variants.py python3.13

Each run prints its wall time; the script exits non-zero if one fails. A missing Python 3.13 is
reported and skipped (``GPCUBE_REQUIRE_PY313=1`` makes it a failure).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: Where dask arrays are built or computed (the makers, the archive's writes and mosaics, the
#: estimators on lazy mosaics, the accessor, gpcube.geom._arrays).
QUERY_PLANNING_TESTS = (
    "tests/makers",
    "tests/storage",
    "tests/archive",
    "tests/estimators",
    "tests/test_accessor.py",
    "tests/test_arrays.py",
)

#: The versions the Python 3.13 environment is installed with: a resolution known to work (pip's
#: resolver, left alone, was seen backtracking for 38 min over boto3/botocore/aiobotocore pins).
CONSTRAINTS_313 = ROOT / "tools" / "constraints-py313.txt"

PYTEST = ("-m", "pytest", "-q", "-p", "no:cacheprovider")


def _run(label: str, command: list[str], env: dict | None = None) -> bool:
    print(f"\n=== {label}: {' '.join(command)}", flush=True)
    start = time.monotonic()
    code = subprocess.run(command, cwd=ROOT, env=env).returncode
    print(f"=== {label}: exit {code} in {time.monotonic() - start:.0f} s", flush=True)
    return code == 0


def query_planning() -> bool:
    """The array tests with dask's array query planning on."""
    env = {**os.environ, "DASK_ARRAY__QUERY_PLANNING": "True"}
    return _run("query planning", [sys.executable, *PYTEST, *QUERY_PLANNING_TESTS], env)


def _works(python: str) -> bool:
    try:
        return subprocess.run([python, "--version"], capture_output=True, timeout=60).returncode == 0
    except OSError:
        return False


def python313() -> str | None:
    """A Python 3.13 interpreter: ``GPCUBE_PYTHON313``, ``python3.13`` on the PATH, or pyenv's."""
    candidates = [os.environ.get("GPCUBE_PYTHON313"), shutil.which("python3.13")]
    if shutil.which("pyenv"):
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True).stdout.strip()
        candidates += sorted(glob.glob(os.path.join(root, "versions", "3.13*", "bin", "python3.13")))
    return next((c for c in candidates if c and _works(c)), None)


def python_313() -> bool:
    """The suite outside ``tests/validation`` on Python 3.13, in a virtual environment of its own."""
    python = python313()
    if python is None:
        print("\n=== python3.13: no interpreter found (GPCUBE_PYTHON313, PATH, pyenv): skipped", flush=True)
        return os.environ.get("GPCUBE_REQUIRE_PY313") != "1"
    venv = Path(os.environ.get("GPCUBE_VENV313", ROOT.parent / "venv313")).resolve()
    bin_python = str(venv / "bin" / "python")
    fresh = not (venv / "bin" / "python").exists()
    if fresh and not _run("python3.13 venv", [python, "-m", "venv", str(venv)]):
        return False
    install = [bin_python, "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS_313), "-e", ".[test,docs]"]
    if not _run("python3.13 install", install):
        return False
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    return _run("python3.13", [bin_python, *PYTEST, "--ignore=tests/validation"], env)


VARIANTS = {"query-planning": query_planning, "python3.13": python_313}


def main(argv: list[str]) -> int:
    names = argv or list(VARIANTS)
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        print(f"unknown variant(s) {unknown}; known: {list(VARIANTS)}", file=sys.stderr)
        return 2
    results = {name: VARIANTS[name]() for name in names}
    failed = [name for name, ok in results.items() if not ok]
    print(f"\n=== ci_variants: {'failed: ' + ', '.join(failed) if failed else 'all passed'}", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
