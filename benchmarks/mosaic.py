"""The 36-run H.E.S.S. Galactic survey end to end: ``gpcube run`` against gammapy 2.1, side by side.

The survey: every H.E.S.S. DL3 DR1 run pointed within 20 deg of (l, b) = (330, 0) deg with |b| < 5 deg,
on a galactic CAR mosaic of 1643 x 456 px at 0.02 deg centred on (333.974, -1.965) deg, reco 0.5-50 TeV
(10 bins), true 0.3-100 TeV (20 bins), safe mask offset-max 2.5 deg; products all five (``all``) or
counts, exposure and background (``ceb``).

* gammapy: a fresh Python process runs ``MapDataset.create(geom)``, then per run in obs_id order a
  cutout of 2 x offset-max, ``MapDatasetMaker`` (all five: its default selection), ``SafeMaskMaker``
  and ``stack``; then writes the stacked dataset to FITS. "work" is the makers and stacking (store
  opened to stacked dataset, no imports, no writing), as the issue's 36.2 s; "write" the FITS file.
* gpcube: ``gpcube run job.yaml`` (the CLI as a user runs it, embedded ``LocalCluster`` of 2 worker
  processes), a fresh archive each time: interpreter start, imports, cluster start, reading, making the
  products, writing the archive, the mosaic and the shutdown are all in its wall time. The same job is
  also run in an instrumented process that times the phases (``processes``), and in-process: one
  worker with 2 threads (``threads``) and no client at all (``none``), to show what the cluster costs.

Wall time is that of the whole command (from launch to exit). Peak memory is the peak of the sum of
RSS over the command's process tree (main, nanny, workers), sampled every 20 ms with psutil (shared
pages are counted once per process, which counts against gpcube's several processes). Runs
alternate between the tools within each repeat so that load noise hits both; medians are printed.
Run from the repository root::

    python benchmarks/mosaic.py [--repeat 3] [--products all ceb] [--data PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from pathlib import Path

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hess-dl3-dr1"
SELECT_CENTER, SELECT_RADIUS, SELECT_MAX_ABS_B = (330.0, 0.0), 20.0, 5.0
CENTER, WIDTH, NPIX, BINSZ = (333.974, -1.965), (32.85, 9.115), (1643, 456), 0.02
RECO, TRUE = {"min": 0.5, "max": 50, "nbins": 10}, {"min": 0.3, "max": 100, "nbins": 20}
OFFSET_MAX = 2.5
PRODUCTS = {
    "all": ["counts", "exposure", "background", "psf", "edisp"],
    "ceb": ["counts", "exposure", "background"],
}
GPCUBE_MODES = {  # cluster section of the job; None: pipeline.run(config, client=None)
    "processes": {"n_workers": 2, "threads_per_worker": 1, "processes": True},
    "threads": {"n_workers": 1, "threads_per_worker": 2, "processes": False},
    "none": None,
}
LAUNCH = "GPCUBE_BENCH_LAUNCH"


def survey_obs_ids(data: Path) -> list[int]:
    """Runs pointed within 20 deg of (l, b) = (330, 0) with |b| < 5 deg, from the obs index."""
    import numpy as np
    from astropy.coordinates import SkyCoord
    from astropy.table import Table

    table = Table.read(data / "obs-index.fits.gz")
    pointing = SkyCoord(table["RA_PNT"], table["DEC_PNT"], unit="deg", frame="icrs").galactic
    center = SkyCoord(*SELECT_CENTER, unit="deg", frame="galactic")
    keep = (pointing.separation(center).deg < SELECT_RADIUS) & (np.abs(pointing.b.deg) < SELECT_MAX_ABS_B)
    return sorted(int(i) for i in table["OBS_ID"][keep])


def survey_job(data: Path, obs_ids: list[int], products: str, output: Path) -> dict:
    """The survey job as a config mapping (no cluster section)."""
    return {
        "data": {"store": str(data), "obs_ids": obs_ids},
        "geom": {"frame": "galactic", "projection": "CAR", "center": list(CENTER), "width": list(WIDTH),
                 "binsz": BINSZ, "energy_reco": RECO, "energy_true": TRUE},
        "products": PRODUCTS[products],
        "safe_mask": {"methods": ["offset-max"], "offset_max": OFFSET_MAX},
        "output": str(output),
    }  # fmt: skip


def write_job(path: Path, data: Path, obs_ids: list[int], products: str, output: Path, mode: str) -> None:
    import yaml

    job = {
        **survey_job(data, obs_ids, products, output),
        "cluster": GPCUBE_MODES[mode] or GPCUBE_MODES["processes"],
    }
    path.write_text(yaml.safe_dump(job, sort_keys=False))


# ------------------------------------------------------------------------------------- child processes
def _since_launch() -> float:
    return time.time() - float(os.environ.get(LAUNCH, time.time()))


def _maxrss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def gammapy_child(data: Path, obs_ids: list[int], products: str, out: Path) -> dict:
    """Stack the survey with gammapy; phase times in s."""
    startup = _since_launch()
    t0 = time.perf_counter()
    from gammapy.data import DataStore
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker, SafeMaskMaker
    from gammapy.maps import MapAxis, WcsGeom

    t1 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        store = DataStore.from_dir(data)
        energy, energy_true = (
            MapAxis.from_energy_bounds(e["min"], e["max"], e["nbins"], unit="TeV", name=name)
            for e, name in ((RECO, "energy"), (TRUE, "energy_true"))
        )
        geom = WcsGeom.create(
            skydir=CENTER, binsz=BINSZ, npix=NPIX, frame="galactic", proj="CAR", axes=[energy]
        )
        stacked = MapDataset.create(geom, energy_axis_true=energy_true, name="survey")
        maker = MapDatasetMaker() if products == "all" else MapDatasetMaker(selection=PRODUCTS[products])
        safe = SafeMaskMaker(methods=["offset-max"], offset_max=f"{OFFSET_MAX} deg")
        for obs in store.get_observations(obs_ids):
            cutout = stacked.cutout(obs.get_pointing_icrs(obs.tmid), width=2 * safe.offset_max,
                                    name=f"obs-{obs.obs_id}")  # fmt: skip
            stacked.stack(safe.run(maker.run(cutout, obs), obs))
        t2 = time.perf_counter()
        peak_work = _maxrss_mib()
        stacked.write(out / "survey.fits", overwrite=True)
    t3 = time.perf_counter()
    return {"startup": startup, "import": t1 - t0, "work": t2 - t1, "write": t3 - t2,
            "peak_work_mib": peak_work, "counts": float(stacked.counts.data.sum())}  # fmt: skip


def gpcube_child(job: Path, mode: str) -> dict:
    """Run the job like ``gpcube run``, timing its phases; in-process if ``mode`` is "none"."""
    startup = _since_launch()
    t = [time.perf_counter()]
    from gpcube.storage.info import archive_info
    from gpcube.workflow import pipeline
    from gpcube.workflow.config import load_config

    config = load_config(job)
    t.append(time.perf_counter())
    with pipeline.job_client(config) if GPCUBE_MODES[mode] else contextlib.nullcontext() as client:
        t.append(time.perf_counter())
        report = pipeline.reduce(config, client, progress=False)
        t.append(time.perf_counter())
        pipeline.mosaic(config.output, client, progress=False)
        t.append(time.perf_counter())
    t.append(time.perf_counter())
    seconds = [o["seconds"] for o in archive_info(config.output)["observations"]]
    counts = int(pipeline.open_archive(config.output)["counts"].sum().compute())
    names = ("import", "cluster", "reduce", "mosaic", "close")
    phases = {name: b - a for name, a, b in zip(names, t[:-1], t[1:], strict=True)}
    return {"startup": startup, **phases, "work": t[-1] - t[1], "written": report["written"],
            "obs_seconds": seconds, "counts": counts}  # fmt: skip


# ---------------------------------------------------------------------------------------- measuring
def run_sampled(command: list[str], log: Path, interval: float = 0.02) -> dict:
    """Run ``command``; its wall time, CPU time of its process tree (user + system of every process it
    waited for: steadier than wall time on a loaded machine), peak RSS summed over its process tree, and
    its last stdout line; also ``cpu_seen``, the CPU time of every process of the tree as last sampled
    (which counts processes nobody waits for, such as multiprocessing's fork server and the workers
    it forks, and misses what each did in its last ``interval``)."""
    import psutil

    env = {**os.environ, LAUNCH: repr(time.time())}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with open(log, "w") as out:
        start = time.perf_counter()
        proc = psutil.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, text=True)
        peak, done, seen = [0], threading.Event(), {}

        def sample() -> None:
            while not done.is_set():
                total = 0
                try:
                    tree = [proc, *proc.children(recursive=True)]
                except psutil.Error:
                    tree = []
                for p in tree:
                    try:
                        total += p.memory_info().rss
                        times = p.cpu_times()
                        seen[(p.pid, p.create_time())] = times.user + times.system
                    except psutil.Error:
                        pass
                peak[0] = max(peak[0], total)
                done.wait(interval)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = proc.wait()
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    text = log.read_text()
    if code != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({code}):\n{text[-3000:]}")
    lines = text.strip().splitlines()
    # the child's result is its last JSON line; anything a library logged after it is shown, not parsed
    results = [i for i, line in enumerate(lines) if line.startswith("{")]
    last = lines[results[-1]] if results else (lines[-1] if lines else "")
    if results and results[-1] < len(lines) - 1:
        after = lines[results[-1] + 1 :]
        print(f"note: {' '.join(command[:3])} printed after its result:", *after, sep="\n  ", file=sys.stderr)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    seen_cpu = sum(seen.values())
    return {"wall": wall, "cpu": cpu, "cpu_seen": seen_cpu, "peak_mib": peak[0] / 2**20, "stdout": last}


def timing_cells(runs: list[dict]) -> list[str]:
    """Table cells of repeated :func:`run_sampled` runs: median wall (s), every wall, median CPU (s) and
    median peak (MiB)."""
    walls = [r["wall"] for r in runs]
    return [f"{statistics.median(walls):.2f}", " / ".join(f"{w:.2f}" for w in walls),
            f"{statistics.median(r['cpu'] for r in runs):.2f}",
            f"{statistics.median(r['peak_mib'] for r in runs):.0f}"]  # fmt: skip


def print_ratios(rows: dict[str, list[dict]], base: str, other: str, keys) -> None:
    """``other / base`` of each of ``keys``: of the medians, and the median of the repeats' ratios
    (the runs alternate, so a repeat's two runs saw the same load)."""
    for key in keys:
        ratio = statistics.median(r[key] for r in rows[other]) / statistics.median(r[key] for r in rows[base])
        pairs = [o[key] / b[key] for b, o in zip(rows[base], rows[other], strict=True)]
        print(f"{other} / {base}, {key}: {ratio:.3f} (medians), {statistics.median(pairs):.3f} "
              "(median of the repeats' ratios)")  # fmt: skip


def _child_command(args, kind: str, products: str, extra: list[str]) -> list[str]:
    ids = [str(i) for i in args.obs_ids]
    return [sys.executable, __file__, "--child", kind, "--products", products, "--data", str(args.data),
            "--obs-ids", *ids, *extra]  # fmt: skip


def measure_once(args, products: str, work: Path, results: dict) -> None:
    """One repeat for one product set: gammapy, then each gpcube variant, each in a fresh process."""
    log = work / "log.txt"
    out = work / "gammapy"
    out.mkdir(exist_ok=True)
    row = run_sampled(_child_command(args, "gammapy", products, ["--out", str(out)]), log)
    results[(products, "gammapy")].append({**row, **json.loads(row.pop("stdout"))})
    shutil.rmtree(out)
    for mode in ("cli", *GPCUBE_MODES):
        archive = work / f"survey-{mode}.zarr"
        job = work / f"job-{mode}.yaml"
        write_job(job, args.data, args.obs_ids, products, archive, "processes" if mode == "cli" else mode)
        if mode == "cli":
            row = run_sampled([args.gpcube, "run", str(job), "-q"], log)
            info = [args.gpcube, "info", str(archive), "--json"]
            info = subprocess.run(info, capture_output=True, text=True, check=True)
            row["obs_seconds"] = [o["seconds"] for o in json.loads(info.stdout)["observations"]]
        else:
            command = _child_command(args, "gpcube", products, ["--mode", mode, "--job", str(job)])
            row = run_sampled(command, log)
            row.update(json.loads(row["stdout"]))
        row.pop("stdout", None)
        results[(products, f"gpcube-{mode}")].append(row)
        shutil.rmtree(archive)


def warm_cache(data: Path, obs_ids: list[int]) -> None:
    """Read every file of the runs once, so that no tool pays for the first read from disk."""
    from astropy.table import Table

    hdu = Table.read(data / "hdu-index.fits.gz")
    for row in hdu:
        if int(row["OBS_ID"]) in obs_ids:
            (data / str(row["FILE_DIR"]).strip() / str(row["FILE_NAME"]).strip()).read_bytes()


# ------------------------------------------------------------------------------------------ printing
def _med(rows: list[dict], key: str) -> float:
    values = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(values) if values else float("nan")


LABELS = {
    "gammapy": "gammapy 2.1 (makers + stack)",
    "gpcube-cli": "`gpcube run` (2 worker processes)",
    "gpcube-processes": "gpcube, instrumented (2 worker processes)",
    "gpcube-threads": "gpcube, 1 worker x 2 threads",
    "gpcube-none": "gpcube, client=None (1 thread)",
}


def print_tables(results: dict, products_list: list[str], n_obs: int, repeat: int) -> None:
    print(f"\n{n_obs} runs, {repeat} repeats, medians; wall = the whole command; "
          "speed-up = gammapy's work (or wall) / wall\n")  # fmt: skip
    print("| products | run | wall s | work s | ms/obs (wall) | peak MiB | speed-up (vs work) | vs wall |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for products in products_list:
        ref = results[(products, "gammapy")]
        ref_work, ref_wall = _med(ref, "work"), _med(ref, "wall")
        for kind in LABELS:
            rows = results[(products, kind)]
            wall, work, peak = _med(rows, "wall"), _med(rows, "work"), _med(rows, "peak_mib")
            ratio = "" if kind == "gammapy" else f"{ref_work / wall:.1f}x"
            ratio_wall = "" if kind == "gammapy" else f"{ref_wall / wall:.1f}x"
            work_text = "" if work != work else f"{work:.2f}"
            print(f"| {products} | {LABELS[kind]} | {wall:.2f} | {work_text} | {wall / n_obs * 1e3:.0f} | "
                  f"{peak:.0f} | {ratio} | {ratio_wall} |")  # fmt: skip
    print("\ngammapy phases (s): startup = launch to the first import; write = FITS of the stacked dataset")
    print("| products | startup | import | work | write | peak MiB before write | counts |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for products in products_list:
        rows = results[(products, "gammapy")]
        cells = [f"{_med(rows, k):.2f}" for k in ("startup", "import", "work", "write")]
        print(f"| {products} | " + " | ".join(cells)
              + f" | {_med(rows, 'peak_work_mib'):.0f} | {_med(rows, 'counts'):.0f} |")  # fmt: skip
    print("\ngpcube phases (s); obs s = provenance.seconds per observation (median, sum over the 36)")
    print("| products | run | startup | import | cluster | reduce | mosaic | close | obs s median "
          "| obs s sum | counts |")  # fmt: skip
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for products in products_list:
        for kind in [k for k in LABELS if k.startswith("gpcube-")]:
            rows = results[(products, kind)]
            cells = [f"{_med(rows, k):.2f}" if any(k in r for r in rows) else "" for k in
                     ("startup", "import", "cluster", "reduce", "mosaic", "close")]  # fmt: skip
            obs = [statistics.median(r["obs_seconds"]) for r in rows]
            sums = [sum(r["obs_seconds"]) for r in rows]
            counts = f"{_med(rows, 'counts'):.0f}" if any("counts" in r for r in rows) else ""
            obs_cells = f" | {statistics.median(obs):.3f} | {statistics.median(sums):.2f} | {counts} |"
            print(f"| {products} | {LABELS[kind]} | " + " | ".join(cells) + obs_cells)


def compile_gpcube() -> None:
    """Byte-compile gpcube's modules, as pip does when it installs a wheel.

    An editable install leaves that to the first import, which writes ``__pycache__`` unless
    ``PYTHONDONTWRITEBYTECODE`` is set (as on the machines these results come from): every fresh
    ``gpcube`` process would then compile gpcube's source again (0.3-0.4 s), while gammapy, numpy and
    the other installed packages load compiled code.
    """
    import compileall

    import gpcube

    compileall.compile_dir(Path(gpcube.__file__).parent, quiet=1)


def _gpcube_command() -> str:
    beside = Path(sys.executable).parent / "gpcube"  # not a pyenv shim, which adds its own start-up
    return str(beside) if beside.is_file() else shutil.which("gpcube") or "gpcube"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--products", nargs="+", choices=sorted(PRODUCTS), default=["all", "ceb"])
    parser.add_argument("--gpcube", default=_gpcube_command(), help="gpcube command (default: beside python)")
    parser.add_argument("--json", type=Path, help="also write every measurement to this JSON file")
    parser.add_argument("--child", choices=["gammapy", "gpcube"], help=argparse.SUPPRESS)
    parser.add_argument("--obs-ids", type=int, nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mode", choices=sorted(GPCUBE_MODES), help=argparse.SUPPRESS)
    parser.add_argument("--job", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "gammapy":
        print(json.dumps(gammapy_child(args.data, args.obs_ids, args.products[0], args.out)))
        return
    if args.child == "gpcube":
        print(json.dumps(gpcube_child(args.job, args.mode)))
        return
    args.obs_ids = survey_obs_ids(args.data)
    warm_cache(args.data, args.obs_ids)
    compile_gpcube()
    kinds = ["gammapy", *(f"gpcube-{m}" for m in ("cli", *GPCUBE_MODES))]
    results = {(p, k): [] for p in args.products for k in kinds}
    with tempfile.TemporaryDirectory(prefix="gpcube-bench-") as tmp:
        for i in range(args.repeat):
            for products in args.products:
                measure_once(args, products, Path(tmp), results)
                print(f"repeat {i + 1}/{args.repeat} {products}: "
                      + ", ".join(f"{k} {results[(products, k)][-1]['wall']:.1f} s" for k in kinds),
                      file=sys.stderr, flush=True)  # fmt: skip
    print_tables(results, args.products, len(args.obs_ids), args.repeat)
    if args.json:
        args.json.write_text(json.dumps({f"{p}/{k}": v for (p, k), v in results.items()}, indent=1))


if __name__ == "__main__":
    main()
