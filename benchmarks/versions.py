"""Two versions of gpcube side by side: the 36-run survey end to end (``benchmarks/mosaic.py``'s job).

A change's cost is measured against the code before it in one run, the two alternating, so that the
noise of a shared machine falls on both alike. ``--old`` and ``--new`` are git revisions (``--new``
defaults to the working tree); each is checked out into a temporary worktree and byte-compiled. Each
repeat runs ``gpcube run job.yaml -q`` of both (a fresh archive and a fresh process each: interpreter
start, imports, the embedded cluster of 2 worker processes, reduce, mosaic, exit) with the tree on
``PYTHONPATH``; wall time, CPU time of the process tree (user + system, of every process it waited
for: less sensitive to a neighbour's load than wall time) and peak RSS summed over the process tree
(sampled every 20 ms) are printed, then the medians and the ratios new / old. Command (repository root)::

    python benchmarks/versions.py --old 65e84c2 [--new HEAD] [--repeat 5] [--products all]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mosaic import DEFAULT_DATA, PRODUCTS, print_ratios, run_sampled, survey_obs_ids, timing_cells, write_job  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@contextlib.contextmanager
def checkout(revision: str | None, parent: Path):
    """A directory holding ``gpcube/`` at ``revision`` (the working tree if None), byte-compiled."""
    if revision is None:
        tree = ROOT
    else:
        tree = parent / revision.replace("/", "_")
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(tree), revision],
                       check=True)  # fmt: skip
    try:
        subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "gpcube")], check=True)
        yield tree
    finally:
        if revision is not None:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="git revision of the baseline")
    parser.add_argument("--new", default=None, help="git revision to compare (default: the working tree)")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--products", choices=sorted(PRODUCTS), default="all")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    obs_ids = survey_obs_ids(args.data)
    rows: dict[str, list[dict]] = {"old": [], "new": []}
    with tempfile.TemporaryDirectory(prefix="gpcube-versions-") as tmp:
        work = Path(tmp)
        with checkout(args.old, work) as old, checkout(args.new, work) as new:
            trees = {"old": old, "new": new}
            for repeat in range(args.repeat):
                for name, tree in trees.items():
                    out = work / f"{name}{repeat}.zarr"
                    job = work / f"{name}{repeat}.yaml"
                    write_job(job, args.data, obs_ids, args.products, out, "processes")
                    os.environ["PYTHONPATH"] = str(tree)
                    try:
                        result = run_sampled([sys.executable, "-m", "gpcube.cli", "run", str(job), "-q"],
                                             work / f"{name}{repeat}.log")  # fmt: skip
                    finally:
                        del os.environ["PYTHONPATH"]
                    rows[name].append(result)
                    print(f"repeat {repeat} {name}: {result['wall']:.2f} s, CPU {result['cpu']:.2f} s, "
                          f"{result['peak_mib']:.0f} MiB",
                          flush=True)  # fmt: skip
                    shutil.rmtree(out, ignore_errors=True)
    label = {"old": args.old, "new": args.new or "working tree"}
    print(f"\n36-run survey, products {args.products}, {args.repeat} repeats alternating\n")
    print("| version | wall s (median) | walls | CPU s of the process tree (median) | peak MiB (median) |")
    print("|---|---:|---|---:|---:|")
    for name, found in rows.items():
        print(f"| {name}: {label[name]} | " + " | ".join(timing_cells(found)) + " |")
    print_ratios(rows, "old", "new", ("wall", "cpu"))


if __name__ == "__main__":
    main()
