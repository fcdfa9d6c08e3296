"""The coarse IRF grid, ``SkyGeom.to_binsz``, against gammapy 2.1's ``WcsGeom.to_binsz`` of the same grid.

Gammapy rounds the new pixel count half to even (``np.rint`` of the width over the new pixel size):
every case below that lands on a tie (the ``.5`` widths) is one where rounding half up would give one
pixel more and pixel centres half a coarse pixel away from the reference's.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gpcube.geom import SkyGeom

#: (npix of the fine grid, its pixel size, the coarse pixel size): ties (x.5 coarse pixels) and not.
CASES = [
    ((1025, 1001), 0.02, 0.2),  # 102.5 -> 102
    ((1035, 250), 0.02, 0.2),  # 103.5 -> 104
    ((513, 512), 0.1, 0.2),  # 256.5 -> 256
    ((77, 31), 0.05, 0.1),  # 38.5 -> 38, 15.5 -> 16
    ((1643, 456), 0.02, 0.2),  # the survey: 164.3, 45.6
    ((250, 250), 0.02, 0.2),
    ((15, 45), 0.1, 0.3),
    ((41, 43), 0.25, 0.5),  # exact in binary: 20.5 -> 20, 21.5 -> 22
    ((101, 99), 0.04, 0.08),
]
CENTERS = {"icrs": (83.633, 22.014), "galactic": (320.57, -0.89)}


def _reference(frame, projection, npix, binsz, coarse_binsz):
    from gammapy.maps import WcsGeom

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fine = WcsGeom.create(skydir=CENTERS[frame], binsz=binsz, npix=npix, frame=frame, proj=projection)
        return fine.to_binsz(coarse_binsz)


@pytest.mark.parametrize("frame", ["icrs", "galactic"])
@pytest.mark.parametrize("projection", ["CAR", "TAN"])
@pytest.mark.parametrize(("npix", "binsz", "coarse_binsz"), CASES)
def test_coarse_grid_is_gammapys(frame, projection, npix, binsz, coarse_binsz):
    """Same pixel counts, reference pixel and pixel centres (corners and centre of the grid)."""
    fine = SkyGeom.create(CENTERS[frame], binsz, npix=npix, frame=frame, projection=projection)
    ours = fine.to_binsz(coarse_binsz)
    theirs = _reference(frame, projection, npix, binsz, coarse_binsz)
    assert ours.npix == tuple(int(np.ravel(n)[0]) for n in theirs.npix)
    np.testing.assert_array_equal(ours.wcs.wcs.crpix, theirs.wcs.wcs.crpix)
    np.testing.assert_allclose(ours.wcs.wcs.crval, theirs.wcs.wcs.crval, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(ours.wcs.wcs.cdelt, theirs.wcs.wcs.cdelt)
    nx, ny = ours.npix
    x = np.array([0, nx - 1, 0, nx - 1, (nx - 1) // 2])
    y = np.array([0, 0, ny - 1, ny - 1, (ny - 1) // 2])
    coord = theirs.wcs.pixel_to_world(x, y)
    lon, lat = ours.pix_to_world(x, y)
    np.testing.assert_allclose(lat, coord.spherical.lat.deg, rtol=0, atol=1e-9)
    dlon = (lon - coord.spherical.lon.deg + 180) % 360 - 180
    np.testing.assert_allclose(dlon, 0, atol=1e-9)


def test_the_cases_include_ties():
    """The cases test the rounding: some widths are exact half pixels, where half up would differ."""
    ratios = [binsz * n / coarse for npix, binsz, coarse in CASES for n in npix]
    ties = [r for r in ratios if abs(r - np.floor(r) - 0.5) < 1e-9]
    assert len(ties) >= 6
    assert any(np.rint(r) < r for r in ties) and any(np.rint(r) > r for r in ties)
