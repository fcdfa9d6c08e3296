"""A Galactic-plane mosaic larger than this machine's memory, through ``gpcube run``, with its peak memory.

The mosaic: galactic CAR, |l| < 60 deg, |b| < 3 deg at 0.002 deg (60000 x 3000 px), 20 true-energy
bins (0.3-100 TeV) and 10 reco-energy bins (0.5-50 TeV), products counts, exposure and background
(dense: 3000 * 60000 * (10 + 20 + 10) * 4 bytes = 28.8 GB in float32/int32, plus the bool safe mask).
The observations: every run of the data store pointed within the mosaic (the H.E.S.S. DL3 DR1 runs on
the plane by default; ``--data`` takes any GADF store, e.g. one written by ``gpcube simulate``).

``gpcube run job.yaml`` runs as a user runs it (embedded LocalCluster of 2 worker processes, 1 thread
each); its wall time and the peak of the summed RSS of its whole process tree (main process, nanny,
workers) are measured, sampled every 50 ms. Then the archive's size on disk, the mosaic's dense size
and the numbers of tasks are printed. The reference (gammapy 2.1) is not run: its stacked MapDataset
holds the whole mosaic in memory, which does not fit here. Run from the repository root::

    python benchmarks/out_of_core.py [--data PATH] [--work DIR] [--max-obs N] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mosaic import DEFAULT_DATA, _gpcube_command, compile_gpcube, run_sampled  # noqa: E402

WIDTH, HEIGHT, BINSZ = 120.0, 6.0, 0.002
RECO, TRUE = {"min": 0.5, "max": 50, "nbins": 10}, {"min": 0.3, "max": 100, "nbins": 20}
OFFSET_MAX = 2.5


def plane_obs_ids(data: Path, max_obs: int | None) -> list[int]:
    """Runs whose pointing lies within the mosaic (|l| < 60, |b| < 3 deg), in obs_id order."""
    from gpcube.io import DataStore

    table = DataStore.from_dir(data).obs_table
    lon = (np.asarray(table["GLON_PNT"], float) + 180) % 360 - 180
    inside = (np.abs(lon) < WIDTH / 2) & (np.abs(np.asarray(table["GLAT_PNT"], float)) < HEIGHT / 2)
    ids = sorted(int(i) for i in np.asarray(table["OBS_ID"])[inside])
    return ids[:max_obs] if max_obs else ids


def write_job(path: Path, data: Path, obs_ids: list[int], output: Path) -> dict:
    import yaml

    job = {
        "data": {"store": str(data), "obs_ids": obs_ids},
        "geom": {"frame": "galactic", "projection": "CAR", "center": [0.0, 0.0], "width": [WIDTH, HEIGHT],
                 "binsz": BINSZ, "energy_reco": RECO, "energy_true": TRUE},
        "products": ["counts", "exposure", "background"],
        "safe_mask": {"methods": ["offset-max"], "offset_max": OFFSET_MAX},
        "output": str(output),
        "chunks": {"obs": 256, "mosaic": 256},
        "cluster": {"n_workers": 2, "threads_per_worker": 1, "processes": True},
    }  # fmt: skip
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return job


def disk_usage(path: Path) -> tuple[int, int]:
    """Bytes and number of files under ``path``."""
    files = [p for p in path.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(files)


def group_bytes(archive: Path, group: str) -> int:
    """Stored bytes of the arrays under ``group`` in the archive's latest snapshot."""
    from gpcube.storage import aio
    from gpcube.storage.repository import Archive

    return int(aio.run(Archive(archive).readonly().store.getsize_prefix(group)))


def task_counts(archive: Path) -> dict:
    """Tasks a full build of the archive makes: one per observation to reduce, one per mosaic task
    region with data (``grid``: the mosaic's chunks)."""
    from gpcube.geom import SkyGeom
    from gpcube.storage.layout import complete_observations, root_attrs
    from gpcube.storage.repository import Archive
    from gpcube.workflow.mosaic.build import _chunk_index, _pieces, task_size

    store = Archive(archive).readonly().store
    root = root_attrs(store)
    geom = SkyGeom.from_attrs(root["geom"])
    chunk = int(root["config"]["chunks"]["mosaic"])
    observations = complete_observations(store)
    pieces = _pieces(observations, "slice")
    ny, nx = geom.shape
    grid = (-(-ny // chunk)) * (-(-nx // chunk))
    regions = _chunk_index(pieces, (ny, nx), task_size(chunk))
    return {"reduce": len(observations), "mosaic": len(regions), "grid": grid}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--work", type=Path, default=None, help="parent of the work dir (default: /tmp)")
    parser.add_argument("--max-obs", type=int, default=None)
    parser.add_argument("--keep", action="store_true", help="keep the archive")
    args = parser.parse_args()

    compile_gpcube()
    obs_ids = plane_obs_ids(args.data, args.max_obs)
    work = Path(tempfile.mkdtemp(prefix="gpcube-ooc-", dir=args.work))
    archive = work / "plane.zarr"
    job = write_job(work / "plane.yaml", args.data, obs_ids, archive)
    ny, nx = round(HEIGHT / BINSZ), round(WIDTH / BINSZ)
    dense = ny * nx * (RECO["nbins"] * 4 + TRUE["nbins"] * 4 + RECO["nbins"] * 4)
    print(f"{len(obs_ids)} observations from {args.data}; mosaic {nx} x {ny} px, dense {dense / 1e9:.1f} GB")
    start = time.time()
    result = run_sampled([_gpcube_command(), "run", str(work / "plane.yaml"), "-q"], work / "run.log", 0.05)
    size, n_files = disk_usage(archive)
    mosaic_size = group_bytes(archive, "mosaic")
    tasks = task_counts(archive)
    rows = {
        "observations": len(obs_ids),
        "mosaic pixels (lon x lat)": f"{nx} x {ny}",
        "dense mosaic products (GB)": f"{dense / 1e9:.1f}",
        "wall time (s)": f"{result['wall']:.0f}",
        "CPU time of the process tree (s)": f"{result['cpu']:.0f}",
        "peak RSS, whole process tree (MiB)": f"{result['peak_mib']:.0f}",
        "archive on disk (GB, files)": f"{size / 1e9:.2f} ({n_files})",
        "mosaic on disk (GB)": f"{mosaic_size / 1e9:.2f}",
        "tasks: reduce / mosaic (mosaic chunks in the grid)": (
            f"{tasks['reduce']} / {tasks['mosaic']} (of {tasks['grid']})"
        ),
    }
    print("\n| quantity | value |\n|---|---|")
    for key, value in rows.items():
        print(f"| {key} | {value} |")
    print(json.dumps({"started": start, "job": job["geom"], **rows}))
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"kept {work}")


if __name__ == "__main__":
    main()
