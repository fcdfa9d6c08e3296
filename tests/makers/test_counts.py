"""make_map_counts: lazy, chunking-independent, equal to a plain histogram of the events."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from astropy.coordinates import SkyCoord

import gpcube
from gpcube.makers import make_map_counts

CRAB = (83.633, 22.014)


def _geom(frame="icrs", projection="CAR", center=CRAB, width=5.0):
    axis = gpcube.EnergyAxis.log(0.5, 50, 10, "energy_reco")
    return gpcube.SkyGeom.create(center, 0.02, width=width, frame=frame, projection=projection, axes=[axis])


def _raising_scheduler(*args, **kwargs):
    raise AssertionError("the graph was computed while it was being built")


def test_building_reads_and_computes_nothing(hess_store, monkeypatch):
    def no_read(path):
        raise AssertionError(f"{path} was read while the graph was being built")

    monkeypatch.setattr("gpcube.io.observation.open_fits", no_read)
    with dask.config.set(scheduler=_raising_scheduler):
        counts = make_map_counts(hess_store.observation(23523), _geom(), max_offset=2.5, chunk=64)
    assert counts.chunks is not None and len(counts.chunks[1]) > 1 and len(counts.chunks[2]) > 1
    assert counts.dims == ("energy_reco", "y", "x")
    assert counts.attrs["energy_type"] == "reco"
    assert gpcube.SkyGeom.from_dataarray(counts).shape == counts.shape[1:]


def test_chunking_does_not_change_the_result(hess_store):
    obs = hess_store.observation(23523)
    big = make_map_counts(obs, _geom(), chunk=512).compute(scheduler="sync")
    small = make_map_counts(obs, _geom(), chunk=37).compute(scheduler="sync")
    assert big.dtype == np.int64
    np.testing.assert_array_equal(big.values, small.values)


@pytest.mark.parametrize(("frame", "projection"), [("icrs", "CAR"), ("galactic", "TAN")])
def test_counts_equal_a_plain_histogram(hess_store, frame, projection):
    """Independent check: astropy's WCS and SkyCoord, numpy's histogramdd."""
    obs = hess_store.observation(23526)
    center = SkyCoord(*CRAB, unit="deg").transform_to(frame)
    geom = _geom(frame, projection, (center.spherical.lon.deg, center.spherical.lat.deg), width=4.0)
    counts = make_map_counts(obs, geom).compute(scheduler="sync").values
    events = obs.events
    coord = SkyCoord(events["ra"].values, events["dec"].values, unit="deg").transform_to(frame)
    x, y = geom.wcs.world_to_pixel(coord)
    edges_e = geom.axis("energy_reco").edges
    edges_x = np.arange(geom.npix[0] + 1) - 0.5
    edges_y = np.arange(geom.npix[1] + 1) - 0.5
    expected, _ = np.histogramdd((events["energy"].values, y, x), bins=(edges_e, edges_y, edges_x))
    np.testing.assert_array_equal(counts, expected)
    assert counts.sum() > 1000


def test_cutout_is_a_slice_of_the_full_map(hess_store):
    obs = hess_store.observation(23559)
    geom = _geom(width=8.0)
    full = make_map_counts(obs, geom).compute(scheduler="sync")
    cut = make_map_counts(obs, geom, max_offset=2.5).compute(scheduler="sync")
    assert cut.shape[1] < full.shape[1]
    np.testing.assert_array_equal(full.sel(y=cut["y"], x=cut["x"]).values, cut.values)
