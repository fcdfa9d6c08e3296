"""Per-observation cost of reducing the 36-run survey into the archive, serially, in one process.

The survey job of ``benchmarks/mosaic.py`` (its geometry, energy axes, safe mask and product sets), with
no cluster: each observation is reduced twice into temporary archives,

* **phases**: read (``Observation.load``: decompress and parse its files), graph (build the lazy
  products), compute (every product with the synchronous scheduler) and write (the computed products
  through the archive writer, provenance and commit);
* **total**: the real task, :func:`gpcube.workflow.reduce.write_observation` on a fresh observation
  (reading, making and writing interleaved, as a worker runs it).

CPU time (``time.process_time``) is what counts on a shared machine; wall time is printed beside it.
The process runs in the environment of a worker of the embedded cluster (``--env gpcube``, the
default: :func:`gpcube.execute.worker_env`), of a plain dask worker (``--env dask``: its nanny's
``pre-spawn-environ``, single-threaded BLAS and ``MALLOC_TRIM_THRESHOLD_=65536``) or unchanged
(``--env plain``); the environment is set by re-running this script, as malloc reads it at start.
With ``--profile FILE`` the totals run under cProfile and the stats go to FILE (view them with
``python -m pstats FILE``) and the top functions by cumulative time are printed. Run from the
repository root::

    python benchmarks/per_obs.py [--products all ceb] [--repeat 2] [--obs N] [--env gpcube|dask|plain]
                                 [--profile out.prof]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/mosaic.py
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))  # gpcube from this checkout
from mosaic import DEFAULT_DATA, PRODUCTS, survey_job, survey_obs_ids  # noqa: E402

PHASES = ("read", "graph", "compute", "write")
_ENV_SET = "GPCUBE_PER_OBS_ENV"


def rerun_in_env(kind: str) -> None:
    """Re-run this script in the environment ``kind`` (unless it runs in it already)."""
    if kind == "plain" or os.environ.get(_ENV_SET):
        return
    import dask
    import distributed  # noqa: F401 - loads the distributed config

    try:
        from gpcube.execute import worker_env
    except ImportError:  # a gpcube before worker_env: its workers had dask's environment
        kind = "dask"
    if kind == "gpcube":
        env = worker_env()
    else:
        env = {k: str(v) for k, v in dask.config.get("distributed.nanny.pre-spawn-environ").items()}
    print(f"environment ({kind}): {env}", file=sys.stderr, flush=True)
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **env, _ENV_SET: kind})


def survey_config(data: Path, obs_ids: list[int], products: str, output: Path):
    """The survey job of ``benchmarks/mosaic.py`` as a :class:`gpcube.workflow.config.JobConfig`."""
    from gpcube.workflow.config import parse_config

    return parse_config(survey_job(data, obs_ids, products, output))


class Clock:
    """CPU and wall time since the last call."""

    def __init__(self) -> None:
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def lap(self) -> tuple[float, float]:
        cpu, wall = time.process_time(), time.perf_counter()
        out = (cpu - self.cpu, wall - self.wall)
        self.cpu, self.wall = cpu, wall
        return out


def phases_of_one(store, obs_id: int, geom, config, archive) -> dict[str, tuple[float, float]]:
    """Reduce one observation phase by phase; ``{phase: (cpu s, wall s)}``."""
    import dask

    from gpcube.storage.groups import Group, write_groups
    from gpcube.storage.layout import obs_path
    from gpcube.storage.nodes import write_group
    from gpcube.workflow import reduce as red
    from gpcube.workflow.recipe import STORED_DTYPES, observation_products

    out = {}
    clock = Clock()
    observation = store.observation(obs_id).load()
    out["read"] = clock.lap()
    sky, irf = observation_products(observation, geom, config)[:2]  # the survey makes no ring products
    out["graph"] = clock.lap()
    with dask.config.set(scheduler="sync"):
        values = dask.compute({**sky, **irf})[0]
    out["compute"] = clock.lap()
    sky_c = {k: values[k] for k in sky}
    irf_c = {k: values[k] for k in irf}
    key = obs_path(obs_id)
    attrs = {"obs_id": obs_id, "complete": True, "slice": red._slice_attrs(sky_c["mask_safe"])}
    session = archive.writable()
    # as write_observation writes them: one shard per product, coordinates in the groups' attributes
    groups = [Group(key, sky_c, None, compact=True, dtypes=STORED_DTYPES, sharded=True)]
    if irf_c:
        groups.append(
            Group(f"{key}/irf", irf_c, {"grid": "irf"}, compact=True, dtypes=STORED_DTYPES, sharded=True)
        )
    attrs.update(write_groups(session.store, groups, config.chunks.obs)[key])
    attrs["provenance"] = red._provenance(observation, 0.0)
    write_group(session.store, key, attrs)
    archive.commit(session, f"observation {obs_id}")
    out["write"] = clock.lap()
    return out


def total_of_one(store, obs_id: int, geom, config, archive) -> tuple[float, float]:
    """The worker's task on a fresh observation and its commit; ``(cpu s, wall s)``."""
    from gpcube.workflow.reduce import write_observation

    clock = Clock()
    observation = store.observation(obs_id)
    session = archive.writable()
    write_observation(session.store, observation, geom, config)
    archive.commit(session, f"observation {obs_id}")
    observation.close()
    return clock.lap()


def count_nodes(archive, obs_id: int) -> int:
    """Zarr nodes (groups and arrays) in one observation's group."""
    import zarr

    group = zarr.open_group(archive.readonly().store, path=f"obs/{obs_id}", mode="r")
    return 1 + sum(1 for _ in group.members(max_depth=None))


def measure(args, products: str, work: Path, profiler: cProfile.Profile | None) -> dict:
    from gpcube.io import DataStore
    from gpcube.storage.layout import check_or_create
    from gpcube.storage.repository import Archive

    results = {phase: [] for phase in (*PHASES, "total")}
    nodes = 0
    for repeat in range(args.repeat):
        archives = {}
        for kind in ("phases", "total"):
            path = work / f"{products}-{kind}-{repeat}.zarr"
            archive = Archive(path)
            config = survey_config(args.data, args.obs_ids, products, path)
            geom = config.geom()
            check_or_create(archive, config.analysis_dict(), geom.to_attrs(), config.to_dict())
            archives[kind] = (archive, config, geom)
        store = DataStore.from_dir(args.data)
        for obs_id in args.obs_ids:
            archive, config, geom = archives["phases"]
            for phase, value in phases_of_one(store, obs_id, geom, config, archive).items():
                results[phase].append(value)
            archive, config, geom = archives["total"]
            if profiler is not None:
                profiler.enable()
            results["total"].append(total_of_one(store, obs_id, geom, config, archive))
            if profiler is not None:
                profiler.disable()
        nodes = count_nodes(archives["total"][0], args.obs_ids[0])
        for archive, _, _ in archives.values():
            shutil.rmtree(archive.local_path)
    return {"results": results, "nodes": nodes}


def print_table(all_results: dict, n_obs: int, repeat: int) -> None:
    print(f"\nms per observation ({n_obs} runs x {repeat} repeats): median CPU (process_time), "
          "median wall in brackets, and CPU sum over the runs in s (median over repeats)\n")  # fmt: skip
    print("| products | " + " | ".join(PHASES) + " | phases sum | total (write_observation) | "
          "CPU sum of totals s | zarr nodes per obs |")  # fmt: skip
    print("|---|" + "---:|" * (len(PHASES) + 4))
    for products, found in all_results.items():
        res = found["results"]
        cells = []
        for phase in PHASES:
            cpu = statistics.median(v[0] for v in res[phase]) * 1e3
            wall = statistics.median(v[1] for v in res[phase]) * 1e3
            cells.append(f"{cpu:.0f} ({wall:.0f})")
        per_obs = [sum(res[p][i][0] for p in PHASES) for i in range(len(res["read"]))]
        cells.append(f"{statistics.median(per_obs) * 1e3:.0f}")
        cpu = statistics.median(v[0] for v in res["total"]) * 1e3
        wall = statistics.median(v[1] for v in res["total"]) * 1e3
        cells.append(f"{cpu:.0f} ({wall:.0f})")
        sums = [sum(v[0] for v in res["total"][r * n_obs : (r + 1) * n_obs]) for r in range(repeat)]
        cells.append(f"{statistics.median(sums):.2f}")
        cells.append(str(found["nodes"]))
        print(f"| {products} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--products", nargs="+", choices=sorted(PRODUCTS), default=["all", "ceb"])
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--obs", type=int, default=None, help="only the first N runs of the survey")
    parser.add_argument("--profile", type=Path, help="profile the totals with cProfile into this file")
    parser.add_argument(
        "--env",
        choices=["gpcube", "dask", "plain"],
        default="gpcube",
        help="environment of the process (default: an embedded cluster's worker)",
    )
    args = parser.parse_args()
    rerun_in_env(args.env)
    warnings.simplefilter("ignore")
    args.obs_ids = survey_obs_ids(args.data)[: args.obs]
    import numcodecs

    import gpcube.workflow.reduce  # noqa: F401 - imports outside the timings

    # Blosc compresses with threads only when called from the main thread, which the tasks of a
    # worker never are (and its threads would count in the CPU time here)
    numcodecs.blosc.use_threads = False

    profiler = cProfile.Profile() if args.profile else None
    all_results = {}
    with tempfile.TemporaryDirectory(prefix="gpcube-per-obs-") as tmp:
        # warm-up: one observation of each product set (first calls fill caches: WCS header template...)
        for products in args.products:
            warm = argparse.Namespace(**{**vars(args), "obs_ids": args.obs_ids[:1], "repeat": 1})
            measure(warm, products, Path(tmp), None)
        for products in args.products:
            all_results[products] = measure(args, products, Path(tmp), profiler)
    print(f"\nenvironment: {os.environ.get(_ENV_SET, 'plain')}", end="")
    print_table(all_results, len(args.obs_ids), args.repeat)
    if profiler is not None:
        profiler.dump_stats(args.profile)
        print(f"\ncProfile of the totals in {args.profile}; top 40 by cumulative time:\n")
        pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


if __name__ == "__main__":
    main()
