"""Icechunk against plain zarr directories for the archive: what transactions cost.

The archive's choice (``docs/archive.rst``, "Transactions"): an icechunk repository, or a design of our
own with write-once groups in a plain zarr store and a manifest swapped atomically. Both write the same
bytes through the same zarr ``Store`` interface (``gpcube.storage.nodes``); what differs is the store
under it. This script writes ``--obs`` observation groups shaped as the 36-run survey's (sky products
250 x 250 px, 10 reco and 20 true-energy bins, PSF and edisp maps on the coarse grid; as the archive
stores them, one shard per product and the coordinates in the groups' attributes) into each and
prints, at 100, 300 and 1000 observations in the archive:

* **write**: ms per observation group written (plain: into a LocalStore directory; icechunk: into a
  fork of a session, as a reduce task does);
* **commit**: s per commit of a batch of ``--batch`` observations (icechunk: merge the forks and commit;
  plain: nothing to commit, which is what makes it unsafe: see the docs);
* **list**: s to list the observations and read their attributes (what every run does first);
* **objects**: stored objects (files) per observation.

Command (repository root)::

    python benchmarks/storage_choice.py [--obs 1000] [--batch 100]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from gpcube.storage import nodes
from gpcube.storage.layout import complete_observations
from gpcube.storage.repository import Archive

RNG = np.random.default_rng(0)
#: name: (shape, dtype, dims, kind)
PRODUCTS = {
    "counts": ((10, 250, 250), np.int32, ("energy_reco", "y", "x"), "counts"),
    "exposure": ((20, 250, 250), np.float32, ("energy_true", "y", "x"), "smooth"),
    "background": ((10, 250, 250), np.float32, ("energy_reco", "y", "x"), "smooth"),
    "mask_safe": ((10, 250, 250), bool, ("energy_reco", "y", "x"), "mask"),
    "irf/psf": ((20, 66, 25, 25), np.float32, ("energy_true", "rad", "irf_y", "irf_x"), "smooth"),
    "irf/edisp": ((20, 10, 25, 25), np.float32, ("energy_true", "energy_reco", "irf_y", "irf_x"), "smooth"),
    "irf/exposure_irf": ((20, 25, 25), np.float32, ("energy_true", "irf_y", "irf_x"), "smooth"),
    "irf/exposure_psf": ((20, 25, 25), np.float32, ("energy_true", "irf_y", "irf_x"), "smooth"),
}
#: the coordinates an observation group keeps in its attributes (the rest derive from its geometry)
COORD_ATTRS = {"rad": list(np.linspace(0, 0.66, 67)), "fov_norm_energy": list(np.geomspace(0.1, 100, 11))}


def _values(shape, dtype, kind) -> np.ndarray:
    if kind == "counts":
        return RNG.poisson(0.02, shape).astype(dtype)
    if kind == "mask":
        return np.indices(shape).sum(axis=0) % 7 > 1
    return (np.exp(-np.indices(shape).sum(axis=0) / 100.0) * (1 + 0.01 * RNG.random(shape))).astype(dtype)


DATA = {name: _values(shape, dtype, kind) for name, (shape, dtype, _, kind) in PRODUCTS.items()}


def write_observation(store, obs_id: int) -> None:
    key = f"obs/{obs_id}"
    attrs = {"obs_id": obs_id, "complete": True, "slice": {"y": [0, 250]}, **COORD_ATTRS}
    nodes.write_group(store, key, attrs)
    nodes.write_group(store, f"{key}/irf", {"grid": "irf", **COORD_ATTRS})
    for name, (shape, dtype, dims, _) in PRODUCTS.items():
        writer = nodes.ArrayWriter(store, f"{key}/{name}", shape, dtype, shape, dims, shards=True)
        writer[tuple(slice(None) for _ in shape)] = DATA[name]


def _count_files(path: Path) -> int:
    return sum(1 for p in path.rglob("*") if p.is_file())


def run_plain(root: Path, n: int, marks: list[int]) -> dict:
    from zarr.storage import LocalStore

    store = LocalStore(root)
    nodes.write_group(store, "", {"format": "bench"})
    nodes.write_group(store, "obs", {})
    out, spent, done = {}, 0.0, 0
    for mark in marks:
        start = time.perf_counter()
        for obs_id in range(done, mark):
            write_observation(store, obs_id)
        spent, written, done = time.perf_counter() - start, mark - done, mark
        t = time.perf_counter()
        listed = complete_observations(store)
        out[mark] = {"write": 1e3 * spent / written, "commit": 0.0, "list": time.perf_counter() - t,
                     "objects": _count_files(root) / mark, "n": len(listed)}  # fmt: skip
    return out


def run_icechunk(root: Path, n: int, marks: list[int], batch: int) -> dict:
    archive = Archive(root)
    archive.create()
    session = archive.writable()
    nodes.write_group(session.store, "", {"format": "bench"})
    nodes.write_group(session.store, "obs", {})
    archive.commit(session, "root")
    out, done = {}, 0
    for mark in marks:
        writing = committing = 0.0
        commits = 0
        for start in range(done, mark, batch):
            base = archive.writable()
            forks = []
            t = time.perf_counter()
            for obs_id in range(start, min(mark, start + batch)):
                fork = base.fork()
                write_observation(fork.store, obs_id)
                forks.append(fork)
            writing += time.perf_counter() - t
            t = time.perf_counter()
            base.merge(*forks)
            archive.commit(base, f"{len(forks)} observations")
            committing += time.perf_counter() - t
            commits += 1
        t = time.perf_counter()
        listed = complete_observations(archive.readonly().store)
        out[mark] = {"write": 1e3 * writing / (mark - done), "commit": committing / commits,
                     "list": time.perf_counter() - t, "objects": _count_files(root) / mark,
                     "n": len(listed)}  # fmt: skip
        done = mark
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--obs", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=100)
    args = parser.parse_args()
    marks = [m for m in (100, 300, 1000) if m <= args.obs] or [args.obs]
    with tempfile.TemporaryDirectory() as tmp:
        plain = run_plain(Path(tmp) / "plain", args.obs, marks)
        shutil.rmtree(Path(tmp) / "plain")
        ice = run_icechunk(Path(tmp) / "icechunk", args.obs, marks, args.batch)
    print(f"| observations | store | write (ms/obs) | commit of {args.batch} (s) | list + attrs (s) "
          "| objects/obs |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for mark in marks:
        for name, rows in (("plain zarr directory", plain), ("icechunk", ice)):
            r = rows[mark]
            assert r["n"] == mark
            cells = (f"{r['write']:.1f}", f"{r['commit']:.2f}", f"{r['list']:.2f}", f"{r['objects']:.1f}")
            print(f"| {mark} | {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
