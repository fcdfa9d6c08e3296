"""Survey scale: throughput, peak memory, 1 vs 2 workers and incremental cost on simulated surveys.

For each size N (default 100 and 1000 observations), ``gpcube simulate`` writes a store of N + 10
observations on a grid along the Galactic plane (pointings 0.5 deg apart in longitude, rows at
b = -1, -0.5, 0, 0.5, 1 deg; H.E.S.S. IRFs of run 23523; ``--events`` background events per
observation, 1e5 by default, plus a few sources). Then, each a fresh ``gpcube run`` process (wall time
from launch to exit, peak of the summed RSS of the whole process tree sampled every 50 ms):

* ``1 worker``: the first N observations, embedded LocalCluster of 1 worker process (1 thread);
* ``2 workers``: the same job into a new archive with 2 worker processes; the ratio is the scaling;
* ``+10``: the 2-worker archive's job again with all N + 10 observations: only the 10 are reduced and
  only the mosaic chunks they overlap are recomputed. The incremental cost is its wall time over the
  2-worker build's. It is measured twice on copies of the same archive: as a fresh ``gpcube run``
  process (interpreter start and imports included), and in session: ``gpcube.workflow.pipeline.run`` timed in
  a process that has imported gpcube already (what a notebook, a service or a script adding
  observations to several archives pays).

The job: galactic CAR at 0.02 deg over the grid plus 3 deg, reco 0.5-50 TeV (10 bins), true 0.3-100
TeV (20 bins), products counts, exposure, background, safe mask offset-max 2.5 deg. Throughput is
observations and events per second of the whole command. Task counts: one reduce task per observation
and one mosaic task per mosaic task region that a cutout overlaps (computed from the archive). Run from the
repository root::

    python benchmarks/survey.py [--sizes 100 1000] [--events 100000] [--work DIR] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mosaic import DEFAULT_DATA, _gpcube_command, compile_gpcube, run_sampled  # noqa: E402
from out_of_core import task_counts  # noqa: E402

SPACING, ROWS = 0.5, [-1.0, -0.5, 0.0, 0.5, 1.0]
RECO, TRUE = {"min": 0.5, "max": 50, "nbins": 10}, {"min": 0.3, "max": 100, "nbins": 20}


def grid_lon(n: int) -> list[float]:
    """Longitude range of a grid of ``n`` pointings (rounded up to whole columns of 5 rows)."""
    columns = -(-n // len(ROWS))
    half = (columns - 1) * SPACING / 2
    return [-half, half]


def write_sim(path: Path, out: Path, n: int, events: int, data: Path) -> None:
    lon = grid_lon(n)
    sim = {
        "output": str(out),
        "seed": 7,
        "pointings": {"frame": "galactic", "grid": {"lon": lon, "spacing": SPACING, "lat": ROWS}},
        "observation": {"livetime": 1800, "max_offset": 2.5, "energy": {"min": 0.3, "max": 100}},
        "irf": {"store": str(data), "obs_id": 23523},
        "background": {"events": events},
        "sources": [
            {"name": "point", "position": [0.0, 0.0], "amplitude": 2.0e-11, "index": 2.3},
            {"name": "blob", "position": [lon[0] / 2, 0.3], "sigma": 0.3, "amplitude": 3.0e-11, "index": 2.1},
        ],
    }
    path.write_text(yaml.safe_dump(sim, sort_keys=False))


def write_job(path: Path, store: Path, obs_ids: list[int], output: Path, n_workers: int, lon) -> None:
    width = [lon[1] - lon[0] + 6.0, 8.0]
    job = {
        "data": {"store": str(store), "obs_ids": obs_ids},
        "geom": {"frame": "galactic", "projection": "CAR", "center": [0.0, 0.0], "width": width,
                 "binsz": 0.02, "energy_reco": RECO, "energy_true": TRUE},
        "products": ["counts", "exposure", "background"],
        "safe_mask": {"methods": ["offset-max"], "offset_max": 2.5},
        "output": str(output),
        "cluster": {"n_workers": n_workers, "threads_per_worker": 1, "processes": True},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(job, sort_keys=False))


def simulate(work: Path, n: int, events: int, data: Path) -> tuple[Path, list[int], float, int]:
    """The store of ``n + 10`` observations; its obs_ids, the simulation's wall time, the event count."""
    from gpcube.io import DataStore

    store = work / f"store-{n}"
    write_sim(work / f"sim-{n}.yaml", store, n + 10, events, data)
    start = time.perf_counter()
    result = run_sampled([_gpcube_command(), "simulate", str(work / f"sim-{n}.yaml"), "-q", "--workers", "2"],
                         work / f"sim-{n}.log", 0.1)  # fmt: skip
    seconds = time.perf_counter() - start
    table = DataStore.from_dir(store).obs_table
    obs_ids = sorted(int(i) for i in table["OBS_ID"])
    n_events = int(sum(int(x) for x in table["EVENT_COUNT"])) if "EVENT_COUNT" in table.colnames else -1
    print(f"simulated {len(obs_ids)} observations ({n_events} events) in {seconds:.0f} s, "
          f"peak {result['peak_mib']:.0f} MiB")  # fmt: skip
    return store, obs_ids, seconds, n_events


def run_job(work: Path, name: str, store: Path, obs_ids, output: Path, n_workers: int, lon) -> dict:
    job = work / f"{name}.yaml"
    write_job(job, store, obs_ids, output, n_workers, lon)
    result = run_sampled([_gpcube_command(), "run", str(job), "-q"], work / f"{name}.log", 0.05)
    print(f"  {name}: {result['wall']:.1f} s, peak {result['peak_mib']:.0f} MiB ({result['stdout']})")
    return result


def _in_session(job: Path) -> None:
    """Child: time ``pipeline.run`` of ``job`` after the imports; print the seconds as JSON."""
    from gpcube.workflow import pipeline
    from gpcube.workflow.config import load_config

    config = load_config(job)
    start = time.perf_counter()
    with pipeline.job_client(config) as client:
        pipeline.run(config, client, progress=False)
    print(json.dumps({"seconds": time.perf_counter() - start}))


def run_in_session(work: Path, name: str, store: Path, obs_ids, output: Path, lon) -> float:
    import subprocess

    job = work / f"{name}.yaml"
    write_job(job, store, obs_ids, output, 2, lon)
    done = subprocess.run([sys.executable, __file__, "--in-session", str(job)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    seconds = json.loads(done.stdout.strip().splitlines()[-1])["seconds"]
    print(f"  {name}: {seconds:.1f} s in session")
    return seconds


def measure(work: Path, n: int, events: int, data: Path) -> dict:
    store, obs_ids, sim_seconds, n_events = simulate(work, n, events, data)
    lon = grid_lon(n + 10)
    first = obs_ids[:n]
    one = run_job(work, f"n{n}-1worker", store, first, work / f"n{n}-1.zarr", 1, lon)
    two = run_job(work, f"n{n}-2workers", store, first, work / f"n{n}-2.zarr", 2, lon)
    tasks = task_counts(work / f"n{n}-2.zarr")  # the build's, before the +10
    shutil.rmtree(work / f"n{n}-1.zarr", ignore_errors=True)
    shutil.copytree(work / f"n{n}-2.zarr", work / f"n{n}-2s.zarr")
    more = run_job(work, f"n{n}-plus10", store, obs_ids, work / f"n{n}-2.zarr", 2, lon)
    session = run_in_session(work, f"n{n}-plus10-session", store, obs_ids, work / f"n{n}-2s.zarr", lon)
    shutil.rmtree(work / f"n{n}-2s.zarr", ignore_errors=True)
    events_per_obs = n_events / len(obs_ids) if n_events > 0 else float("nan")
    return {
        "n": n, "events_per_obs": events_per_obs, "simulate_s": sim_seconds,
        "one": one, "two": two, "plus10": more, "plus10_session": session,
        "tasks": tasks,
    }  # fmt: skip


def print_table(rows: list[dict]) -> None:
    print("\n| observations | events/obs | workers | wall (s) | obs/s | events/s | peak RSS (MiB) |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        for label, res in (("1", r["one"]), ("2", r["two"])):
            rate = r["n"] / res["wall"]
            print(f"| {r['n']} | {r['events_per_obs']:.3g} | {label} | {res['wall']:.1f} | {rate:.2f} | "
                  f"{rate * r['events_per_obs']:.3g} | {res['peak_mib']:.0f} |")  # fmt: skip
    print("\n| observations | 2 vs 1 worker | +10: `gpcube run` (s) | +10 / build | +10: in session (s) "
          "| +10 in session / build | tasks: reduce + mosaic |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        scaling = r["one"]["wall"] / r["two"]["wall"]
        share = r["plus10"]["wall"] / r["two"]["wall"]
        session = r["plus10_session"]
        tasks = r["tasks"]
        in_session = 100 * session / r["two"]["wall"]
        print(f"| {r['n']} | {scaling:.2f}x | {r['plus10']['wall']:.1f} | {100 * share:.1f} % | "
              f"{session:.1f} | {in_session:.1f} % | {tasks['reduce']} + {tasks['mosaic']} |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--events", type=int, default=100_000, help="background events per observation")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="store whose IRFs are used")
    parser.add_argument("--work", type=Path, default=None, help="parent of the work dir (default: /tmp)")
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--in-session", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.in_session:
        _in_session(args.in_session)
        return
    compile_gpcube()
    work = Path(tempfile.mkdtemp(prefix="gpcube-survey-", dir=args.work))
    rows = []
    try:
        for n in args.sizes:
            rows.append(measure(work, n, args.events, args.data))
        print_table(rows)
        print(json.dumps(rows, default=str))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
