"""Which field-of-view orientation do the H.E.S.S. DL3 DR1 bkg_3d tables have? Ask the events.

The FITS header says the BKG cell is (DETX, DETY, ENERG), DETX fastest, and GADF calls DETX the
FoV longitude. gammapy 2.1 reads the table's numpy axis 1 (DETY by the header) as fov_lon, and for
files of the old H.E.S.S. exporter (CREATOR 'SASH FITS::EventListWriter', HDUVERS '0.2', which all
DR1 files are) it reverses that longitude (its REVERSE_LON_RADEC case), so DETY runs east. This
script scores candidate readings by the log-likelihood of the positions of background-dominated
events (0.5-10 TeV, > 0.3 deg from the target, offset < 2.3 deg, runs on faint targets) under each
run's own model. Every candidate is a symmetry of the square grid, so
the model's normalisation is the same for all and the summed log-density ranks them. Run::

    python benchmarks/bkg_orientation.py [--data PATH]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import astropy.units as u
import numpy as np
from astropy.coordinates import SkyCoord, SkyOffsetFrame

import gpcube
from gpcube.irf import evaluate

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "hess-dl3-dr1"
BRIGHT = {"PKS 2155-304", "MSH 15-5-02", "MSH15-52", "RXJ 1713.7-3946", "Crab Nebula"}
# (name, sign of east on the axis, sign of north on the axis, whether DETY holds east-west)
CANDIDATES = [
    ("DETY=+east, DETX=+north (gammapy 2.1, gpcube 'hess-dr1')", 1, 1, True),
    ("DETY=-east, DETX=+north", -1, 1, True),
    ("DETX=+east, DETY=+north (header literal)", 1, 1, False),
    ("DETX=-east, DETY=+north", -1, 1, False),
    ("DETY=+east, DETX=-north", 1, -1, True),
    ("DETX=+east, DETY=-north", 1, -1, False),
]


def event_fov(obs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Energy, east and north offsets (deg) of the background-dominated events of one run."""
    events = obs.events
    pointing = SkyCoord(obs.pointing.ra, obs.pointing.dec, unit="deg")
    coords = SkyCoord(events["ra"].values, events["dec"].values, unit="deg")
    offset = coords.transform_to(SkyOffsetFrame(origin=pointing))
    east, north = offset.lon.wrap_at(180 * u.deg).deg, offset.lat.deg
    target = SkyCoord(events.attrs["ra_obj"], events.attrs["dec_obj"], unit="deg")
    energy = events["energy"].values
    keep = (
        (energy > 0.5) & (energy < 10) & (coords.separation(target).deg > 0.3) & (np.hypot(east, north) < 2.3)
    )
    return energy[keep], east[keep], north[keep]


def log_likelihoods(obs) -> np.ndarray:
    energy, east, north = event_fov(obs)
    result = []
    for _, sign_east, sign_north, dety_is_east in CANDIDATES:
        along_east, along_north = sign_east * east, sign_north * north
        # gpcube reads the header literally: its fov_lon is the DETX axis, fov_lat the DETY axis.
        detx, dety = (along_north, along_east) if dety_is_east else (along_east, along_north)
        density = evaluate(obs.bkg, energy_reco=energy, fov_lon=detx, fov_lat=dety)
        result.append(np.sum(np.log(np.maximum(density, 1e-300))))
    return np.array(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    args = parser.parse_args()
    store = gpcube.DataStore.from_dir(args.data)
    runs = [int(row["OBS_ID"]) for row in store.obs_table if str(row["OBJECT"]) not in BRIGHT]
    scores = np.array([log_likelihoods(store.observation(obs_id)) for obs_id in runs])
    total = scores.sum(axis=0)
    wins = np.bincount(scores.argmax(axis=1), minlength=len(CANDIDATES))
    print(f"{len(runs)} runs on faint targets\n")
    print(f"{'reading of the BKG table':<58}{'sum dlogL':>11}{'runs best':>11}")
    for index in np.argsort(-total):
        name = CANDIDATES[index][0]
        print(f"{name:<58}{total[index] - total.max():>11.1f}{wins[index]:>8d}/{len(runs)}")


if __name__ == "__main__":
    main()
