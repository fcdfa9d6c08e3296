"""Is each tuning of the embedded cluster's workers worth keeping? The 36-run survey with it on and off.

Each variant runs ``gpcube run job.yaml -q`` (``benchmarks/mosaic.py``'s survey job, all five
products, 2 worker processes, a fresh archive and a fresh process each) with one of gpcube's worker
tunings switched off in that process, against the job with all of them on, for both start methods:

* ``malloc``: glibc's malloc thresholds ``gpcube.execute.WORKER_ENV`` (``MALLOC_MMAP_THRESHOLD_`` 32 MiB,
  ``MALLOC_TRIM_THRESHOLD_`` 64 MiB; set by ``mallopt`` in a forked worker, by the environment in a
  spawned one). Off: a forked worker keeps glibc's defaults (the process it copies never set any), a
  spawned one dask's ``MALLOC_TRIM_THRESHOLD_=65536``.
* ``quiet``: ``gpcube.execute.QUIET_CLUSTER`` (no statistical profiler, 1 s event-loop ticks). Off:
  dask's settings.
* ``blas`` (fork only): one BLAS/OpenMP thread per forked worker (``threadpoolctl``). Off: the pools
  the worker inherits, sized for every core (a spawned worker gets dask's ``OMP_NUM_THREADS=1`` and
  friends from its environment either way).

The switch is made in the measured process before the job starts (``--child``), by the names the
code reads when it starts a cluster, so the rest of the run is the production code. The variants of a
repeat run one after the other in an order that rotates between repeats, so that the noise of a
shared machine falls on all of them alike. Printed per variant: median wall time, every wall time,
median CPU time of the process tree, median peak RSS of the tree and the sum of the reduce tasks' own
times (``provenance.seconds``); then each variant's ratio to the base of its start method. Command
(repository root)::

    python benchmarks/tunings.py [--repeat 5] [--methods fork spawn]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mosaic import (  # noqa: E402
    DEFAULT_DATA,
    compile_gpcube,
    print_ratios,
    run_sampled,
    survey_obs_ids,
    timing_cells,
    warm_cache,
)
from start_method import archive_info, job_file  # noqa: E402

#: Which tunings each variant switches off, by start method.
OFF = {"base": (), "malloc-off": ("malloc",), "quiet-off": ("quiet",), "blas-off": ("blas",)}
VARIANTS = {
    "fork": ("base", "malloc-off", "quiet-off", "blas-off"),
    "spawn": ("base", "malloc-off", "quiet-off"),
}


def switch_off(tunings: list[str]) -> None:
    """Switch ``tunings`` off in this process before a cluster starts (see the module's docstring)."""
    import gpcube.execute as execute

    if "quiet" in tunings:
        execute.QUIET_CLUSTER.clear()
    if "malloc" in tunings or "blas" in tunings:
        from threadpoolctl import threadpool_limits

        malloc, blas = "malloc" not in tunings, "blas" not in tunings
        if not malloc:
            execute.WORKER_ENV.clear()  # what spawned workers start with: dask's environment alone

        def tune() -> None:  # what the preload of a forked worker calls
            if blas:
                threadpool_limits(limits=1)
            if malloc:
                execute._set_malloc_thresholds(32 << 20, 64 << 20)

        execute.tune_worker_process = tune


def child(tunings: list[str], argv: list[str]) -> None:
    switch_off(tunings)
    from gpcube.cli import main

    sys.argv = ["gpcube", *argv]
    main()


def run_once(work: Path, name: str, args, obs_ids: list[int], method: str, variant: str) -> dict:
    out, job = work / f"{name}.zarr", work / f"{name}.yaml"
    job_file(job, args.data, obs_ids, "all", out, method)
    off = ",".join(OFF[variant]) or "none"
    command = [sys.executable, __file__, "--child", off, "run", str(job), "-q"]
    result = run_sampled(command, work / f"{name}.log")
    result["obs_s"] = sum(o["seconds"] for o in archive_info(out)["observations"])
    shutil.rmtree(out, ignore_errors=True)
    return result


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child([t for t in sys.argv[2].split(",") if t != "none"], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--methods", nargs="+", choices=sorted(VARIANTS), default=sorted(VARIANTS))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    obs_ids = survey_obs_ids(args.data)
    warm_cache(args.data, obs_ids)
    compile_gpcube()
    runs = [(method, variant) for method in args.methods for variant in VARIANTS[method]]
    rows: dict[tuple[str, str], list[dict]] = {run: [] for run in runs}
    with tempfile.TemporaryDirectory(prefix="gpcube-tunings-") as tmp:
        for repeat in range(args.repeat):
            shift = repeat % len(runs)
            for method, variant in runs[shift:] + runs[:shift]:
                result = run_once(Path(tmp), f"{method}-{variant}-{repeat}", args, obs_ids, method, variant)
                rows[(method, variant)].append(result)
                print(f"repeat {repeat} {method} {variant}: {result['wall']:.2f} s, "
                      f"CPU {result['cpu']:.2f} s, {result['peak_mib']:.0f} MiB, "
                      f"tasks {result['obs_s']:.2f} s", flush=True)  # fmt: skip
    print(f"\n36-run survey, all products, 2 workers, {args.repeat} repeats, rotating order\n")
    print("| start method | variant | wall s (median) | walls | CPU s of the tree | peak MiB "
          "| reduce tasks s |")  # fmt: skip
    print("|---|---|---:|---|---:|---:|---:|")
    for (method, variant), found in rows.items():
        tasks = statistics.median(r["obs_s"] for r in found)
        print(f"| {method} | {variant} | " + " | ".join(timing_cells(found)) + f" | {tasks:.2f} |")
    for method in args.methods:
        named = {variant: rows[(method, variant)] for variant in VARIANTS[method]}
        for variant in VARIANTS[method][1:]:
            print(f"{method}, {variant}:")
            print_ratios(named, "base", variant, ("wall", "cpu", "obs_s"))


if __name__ == "__main__":
    main()
