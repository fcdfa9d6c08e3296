"""Per-observation makers, gpcube against gammapy 2.1, side by side in one run, on one core.

The data store is opened once per library. For each observation and repeat, each product is made
from a fresh observation object (so reading its files counts), by gpcube (graph built and computed
with the synchronous scheduler) and by gammapy's MapDatasetMaker with that product alone selected;
then all five products together (gpcube: one ``dask.compute`` of the five lazy cubes, sharing the
IRF reads; gammapy: one MapDatasetMaker run). Medians over observations and repeats are printed per
product, with the ratio. Peak memory (max RSS) of all five products over all observations is
measured in a separate process per library, which imports only that library. The setup is the
validation one: 5 x 5 deg at 0.02 deg around the Crab, reco 0.5-50 TeV (10 bins), true 0.3-100 TeV
(20 bins), IRF grid 0.2 deg. Run::

    python benchmarks/makers.py [--repeat 3] [--runs 23523 23526 23559 23592] [--data PATH]
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hess-dl3-dr1"
CRAB = (83.633, 22.014)
PRODUCTS = ("counts", "exposure", "background", "psf", "edisp")


def gpcube_setup(data: Path):
    import gpcube
    from gpcube import makers

    reco = gpcube.EnergyAxis.log(0.5, 50, 10, "energy_reco")
    true = gpcube.EnergyAxis.log(0.3, 100, 20, "energy_true")
    geom = gpcube.SkyGeom.create(CRAB, 0.02, width=5, axes=[reco, true])
    functions = {
        "counts": makers.make_map_counts,
        "exposure": makers.make_map_exposure_true_energy,
        "background": makers.make_map_background,
        "psf": makers.make_psf_map,
        "edisp": makers.make_edisp_kernel_map,
    }

    store = gpcube.DataStore.from_dir(data)

    def run(obs_id: int, products) -> None:
        import dask

        obs = store.observation(obs_id)
        dask.compute(*[functions[p](obs, geom) for p in products], scheduler="sync")

    return run


def gammapy_setup(data: Path):
    from gammapy.data import DataStore
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker
    from gammapy.maps import MapAxis, WcsGeom

    energy = MapAxis.from_energy_bounds(0.5, 50, 10, unit="TeV", name="energy")
    energy_true = MapAxis.from_energy_bounds(0.3, 100, 20, unit="TeV", name="energy_true")
    geom = WcsGeom.create(skydir=CRAB, binsz=0.02, width=5, frame="icrs", proj="CAR", axes=[energy])
    empty = MapDataset.create(geom, energy_axis_true=energy_true, binsz_irf=0.2)
    store = DataStore.from_dir(data)

    def run(obs_id: int, products) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obs = store.obs(obs_id)
            MapDatasetMaker(selection=list(products)).run(empty.copy(), obs)

    return run


def timed(function, *args) -> float:
    start = time.perf_counter()
    function(*args)
    return time.perf_counter() - start


def measure_times(data: Path, runs, repeat: int) -> dict:
    """{library: {product or "all five": [seconds per observation, ...]}}, interleaved."""
    libraries = {"gammapy": gammapy_setup(data), "gpcube": gpcube_setup(data)}
    for run in libraries.values():  # warm-up: imports, caches of the file system
        run(runs[0], PRODUCTS)
    times = {name: {p: [] for p in (*PRODUCTS, "all five")} for name in libraries}
    for _ in range(repeat):
        for obs_id in runs:
            for product in (*PRODUCTS, "all five"):
                selection = PRODUCTS if product == "all five" else (product,)
                for name, run in libraries.items():
                    times[name][product].append(timed(run, obs_id, selection))
    return times


def measure_memory(library: str, data: Path, runs) -> float:
    """Peak RSS in MiB of a fresh process making all five products for ``runs`` with ``library``."""
    command = [sys.executable, __file__, "--memory-child", library, "--data", str(data), "--runs"]
    output = subprocess.run(command + [str(r) for r in runs], capture_output=True, text=True, check=True)
    return json.loads(output.stdout.strip().splitlines()[-1])["peak_mib"]


def memory_child(library: str, data: Path, runs) -> None:
    run = (gpcube_setup if library == "gpcube" else gammapy_setup)(data)
    for obs_id in runs:
        run(obs_id, PRODUCTS)
    print(json.dumps({"peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def print_table(times: dict, memory: dict) -> None:
    print(f"{'product':<12}{'gammapy ms/obs':>16}{'gpcube ms/obs':>15}{'speed-up':>10}")
    for product in (*PRODUCTS, "all five"):
        ref = statistics.median(times["gammapy"][product]) * 1e3
        ours = statistics.median(times["gpcube"][product]) * 1e3
        print(f"{product:<12}{ref:>16.1f}{ours:>15.1f}{ref / ours:>9.1f}x")
    print(f"{'peak RSS':<12}{memory['gammapy']:>13.0f} MiB{memory['gpcube']:>12.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--runs", type=int, nargs="+", default=[23523, 23526, 23559, 23592])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-child", choices=["gpcube", "gammapy"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child(args.memory_child, args.data, args.runs)
        return
    memory = {name: measure_memory(name, args.data, args.runs) for name in ("gammapy", "gpcube")}
    times = measure_times(args.data, args.runs, args.repeat)
    print(f"{len(args.runs)} observations x {args.repeat} repeats, medians, one core (sync scheduler)\n")
    print_table(times, memory)


if __name__ == "__main__":
    main()
