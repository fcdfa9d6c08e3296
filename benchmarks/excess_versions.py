"""Is ``estimate_excess_map`` as fast on two versions of gpcube? A survey-sized mosaic, side by side.

The significance maps of a mosaic the size of ``benchmarks/mosaic.py``'s survey (galactic CAR 1643 x
456 px at 0.02 deg, 10 reco bins 0.5-50 TeV, 20 true bins 0.3-100 TeV: counts, FoV background,
safe mask, exposure), correlation radius 0.1 deg, two bands, with the flux: in memory (numpy) and
lazy (dask, chunks of 256 x 256 px, the threaded scheduler), each in a fresh process with one BLAS
thread. The two
versions alternate, repeat by repeat, so that a shared machine's noise falls on both; the mosaic is
random but the same for both (seeded) and the maps must agree to 1e-12. Command (repository root)::

    python benchmarks/excess_versions.py --old 66c8e5b [--new HEAD] [--repeat 5]

``--new`` defaults to the working tree. Prints each run's seconds of ``estimate_excess_map`` (build
and compute), then the medians and new / old.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from versions import checkout  # noqa: E402

#: Run in a fresh process with a version's tree on sys.path: prints {"seconds": ..., "checksum": ...}.
CHILD = r"""
import json, sys, time
import numpy as np
import xarray as xr
import gpcube
from gpcube.estimators import estimate_excess_map
mode = sys.argv[1]
reco = gpcube.EnergyAxis.log(0.5, 50, 10, "energy_reco")
true = gpcube.EnergyAxis.log(0.3, 100, 20, "energy_true")
geom = gpcube.SkyGeom.create((0.0, 0.0), 0.02, npix=(1643, 456), frame="galactic", axes=[reco, true])
rng = np.random.default_rng(7)
shape, tshape = geom.data_shape("energy_reco"), geom.data_shape("energy_true")
attrs = {"geom": geom.to_attrs()}
coords = geom.to_coords()
def var(values, dims, units=""):
    own = {k: v for k, v in coords.items() if set(v.dims) <= set(dims)}
    return xr.DataArray(values, dims=dims, coords=own, attrs={**attrs, "units": units})
cube = ("energy_reco", "y", "x")
mosaic = xr.Dataset({
    "counts": var(rng.poisson(2.0, shape).astype(np.int32), cube),
    "background": var(rng.uniform(1.5, 2.5, shape).astype(np.float32), cube),
    "mask_safe": var(rng.random(shape) > 0.1, cube),
    "exposure": var(rng.uniform(1e8, 1e9, tshape).astype(np.float32), ("energy_true", "y", "x"), "m2 s"),
}, attrs=attrs)
if mode == "lazy":
    mosaic = mosaic.chunk({"y": 256, "x": 256})
start = time.perf_counter()
maps = estimate_excess_map(mosaic, 0.1, energy_edges=[0.5, 5.0, 50.0]).compute()
seconds = time.perf_counter() - start
total = float(sum(np.nansum(maps[name].to_numpy()) for name in ("sqrt_ts", "flux", "excess")))
print(json.dumps({"seconds": seconds, "checksum": total}))
"""


#: The flux's weighted sum is one BLAS matrix product, whose thread pool's start and size made the
#: in-memory timings swing by 0.4 s between processes; one thread for both versions.
ONE_BLAS_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run(tree: Path, mode: str) -> dict:
    env = {"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin", **ONE_BLAS_THREAD}
    command = [sys.executable, "-c", CHILD, mode]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="git revision of the baseline")
    parser.add_argument("--new", default=None, help="git revision to compare (default: the working tree)")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    seconds: dict[tuple[str, str], list[float]] = {}
    sums: dict[tuple[str, str], float] = {}
    with tempfile.TemporaryDirectory(prefix="gpcube-excess-") as tmp, \
            checkout(args.old, Path(tmp)) as old, checkout(args.new, Path(tmp)) as new:  # fmt: skip
        print("| repeat | mode | old s | new s |\n|---:|---|---:|---:|")
        for repeat in range(args.repeat):
            for mode in ("numpy", "lazy"):
                row = {}
                order = (("old", old), ("new", new))
                for name, tree in order if repeat % 2 == 0 else order[::-1]:
                    result = run(tree, mode)
                    seconds.setdefault((name, mode), []).append(result["seconds"])
                    sums[(name, mode)] = result["checksum"]
                    row[name] = result["seconds"]
                print(f"| {repeat + 1} | {mode} | {row['old']:.2f} | {row['new']:.2f} |", flush=True)
    print("\n| mode | old s (median) | new s (median) | new / old | checksums agree |")
    print("|---|---:|---:|---:|---|")
    for mode in ("numpy", "lazy"):
        o, n = statistics.median(seconds[("old", mode)]), statistics.median(seconds[("new", mode)])
        agree = abs(sums[("old", mode)] - sums[("new", mode)]) <= 1e-12 * abs(sums[("old", mode)])
        print(f"| {mode} | {o:.2f} | {n:.2f} | {n / o:.3f} | {agree} |")


if __name__ == "__main__":
    main()
