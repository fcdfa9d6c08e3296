"""How the embedded cluster's workers start: ``fork``, ``spawn`` and ``forkserver`` on the 36-run survey.

A forked worker is a copy of the ``gpcube`` process with numpy, xarray, astropy and gpcube already
imported (forked when the job starts, before it opens its archive: it makes the job's geometry and
reads the data store's index itself, from its first task's arguments, as any worker does); a spawned
worker (the default off Linux, and what a remote worker resembles) starts a fresh interpreter and
imports them first; the fork server is a fresh process that imports gpcube once and forks the workers
(``gpcube.execute.FORKSERVER_PRELOAD``). Each repeat runs ``gpcube run job.yaml -q``
(``benchmarks/mosaic.py``'s job, 2 worker processes, a fresh archive and a fresh process each) once
with each ``cluster.start_method``, in an order that rotates between repeats, so that the noise of a
shared machine falls on all alike. Printed: wall time, CPU time of the process tree (user + system of
every process the command waited for), peak RSS summed over the tree (sampled every 20 ms), the CPU
time of every process of the tree as sampled (which counts the fork server's workers, whom nobody
waits for) and the sum of the 36 reduce tasks' own times (``provenance.seconds``: what a worker
spends per observation once it has started), their medians and the ratios to the first method; and
whether the archives of the first repeat hold the same bytes in every chunk. Command (repository
root)::

    python benchmarks/start_method.py [--repeat 5] [--products all] [--methods fork spawn forkserver]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mosaic import (  # noqa: E402
    DEFAULT_DATA,
    PRODUCTS,
    compile_gpcube,
    print_ratios,
    run_sampled,
    survey_obs_ids,
    timing_cells,
    warm_cache,
    write_job,
)

METHODS = ("fork", "spawn", "forkserver")


def job_file(path: Path, data: Path, obs_ids: list[int], products: str, out: Path, method: str) -> None:
    """``benchmarks/mosaic.py``'s survey job with 2 worker processes started by ``method``."""
    write_job(path, data, obs_ids, products, out, "processes")
    job = yaml.safe_load(path.read_text())
    job["cluster"]["start_method"] = method
    path.write_text(yaml.safe_dump(job, sort_keys=False))


def chunks(archive: Path) -> dict[str, bytes]:
    """``{key: encoded bytes}`` of every chunk in the archive's latest snapshot."""
    from gpcube.storage import aio, nodes
    from gpcube.storage.repository import Archive

    store = Archive(archive).readonly().store

    async def keys():
        return [key async for key in store.list_prefix("")]

    found = sorted(key for key in aio.run(keys()) if "/c/" in key or "/c" == key[-2:])
    return dict(zip(found, aio.gather(nodes._get(store, key) for key in found), strict=True))


def archive_info(path: Path) -> dict:
    from gpcube.storage.info import archive_info

    return archive_info(path)


def run_once(work: Path, name: str, args, obs_ids: list[int], method: str) -> dict:
    out, job = work / f"{name}.zarr", work / f"{name}.yaml"
    job_file(job, args.data, obs_ids, args.products, out, method)
    result = run_sampled([sys.executable, "-m", "gpcube.cli", "run", str(job), "-q"], work / f"{name}.log")
    result["obs_s"] = sum(o["seconds"] for o in archive_info(out)["observations"])
    result["archive"] = out
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--products", choices=sorted(PRODUCTS), default="all")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    args = parser.parse_args()
    methods = tuple(args.methods)
    obs_ids = survey_obs_ids(args.data)
    warm_cache(args.data, obs_ids)
    compile_gpcube()
    rows: dict[str, list[dict]] = {method: [] for method in methods}
    same = None
    with tempfile.TemporaryDirectory(prefix="gpcube-start-method-") as tmp:
        work = Path(tmp)
        for repeat in range(args.repeat):
            shift = repeat % len(methods)
            order = methods[shift:] + methods[:shift]
            archives = {}
            for method in order:
                result = run_once(work, f"{method}{repeat}", args, obs_ids, method)
                archives[method] = result.pop("archive")
                rows[method].append(result)
                print(f"repeat {repeat} {method}: {result['wall']:.2f} s, CPU {result['cpu']:.2f} s "
                      f"(seen {result['cpu_seen']:.2f} s), {result['peak_mib']:.0f} MiB, "
                      f"tasks {result['obs_s']:.2f} s", flush=True)  # fmt: skip
            if same is None:
                first, *others = (chunks(archives[m]) for m in methods)
                same = f"{len(first)} chunks, " + ", ".join(
                    "identical" if other == first else "DIFFERENT" for other in others
                )
            for path in archives.values():
                shutil.rmtree(path, ignore_errors=True)
    print(f"\n36-run survey, products {args.products}, 2 workers, {args.repeat} repeats, rotating\n")
    print("| start method | wall s (median) | walls | CPU s of the tree | peak MiB | CPU s seen "
          "| reduce tasks s |")  # fmt: skip
    print("|---|---:|---|---:|---:|---:|---:|")
    for method, found in rows.items():
        seen, tasks = (statistics.median(r[key] for r in found) for key in ("cpu_seen", "obs_s"))
        print(f"| {method} | " + " | ".join(timing_cells(found)) + f" | {seen:.2f} | {tasks:.2f} |")
    for method in methods[1:]:
        print_ratios(rows, methods[0], method, ("wall", "cpu", "cpu_seen", "peak_mib", "obs_s"))
    print(f"archives of the first repeat ({', '.join(methods[1:])} against {methods[0]}): {same}")


if __name__ == "__main__":
    main()
