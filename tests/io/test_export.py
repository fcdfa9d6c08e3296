"""write_map_dataset: the FITS layout gammapy's MapDataset reads, checked with astropy only."""

from __future__ import annotations

import dask
import dask.array
import numpy as np
import pytest
import xarray as xr
from astropy.io import fits
from astropy.wcs import WCS

import gpcube
from gpcube.errors import GpcubeError
from gpcube.io.export import write_map_dataset
from gpcube.makers.psf import rad_coords

RAD_EDGES = np.linspace(0.0, 0.3, 7)
RECO = gpcube.EnergyAxis.log(0.5, 50, 3, "energy_reco")
TRUE = gpcube.EnergyAxis.log(0.3, 100, 4, "energy_true")
EXPECTED_HDUS = [
    "PRIMARY",
    *("COUNTS", "COUNTS_BANDS", "EXPOSURE", "EXPOSURE_BANDS", "BACKGROUND", "BACKGROUND_BANDS"),
    *("EDISP", "EDISP_BANDS", "EDISP_EXPOSURE", "EDISP_EXPOSURE_BANDS"),
    *("PSF", "PSF_BANDS", "PSF_EXPOSURE", "PSF_EXPOSURE_BANDS"),
    *("MASK_SAFE", "MASK_SAFE_BANDS"),
]


def _geom(frame="icrs", projection="CAR"):
    center = (83.6, 22.0) if frame == "icrs" else (184.6, -5.8)
    return gpcube.SkyGeom.create(
        center, 0.1, width=(2.0, 1.4), frame=frame, projection=projection, axes=[RECO, TRUE]
    )


def _array(geom, dims, values, units="", extra=None):
    coords = {k: v for k, v in geom.to_coords().items() if v.dims[0] in dims}
    return xr.DataArray(values, dims=dims, coords={**coords, **(extra or {})}, attrs={"units": units})


def _mosaic(geom, rng):
    reco, true = (RECO.nbins, *geom.shape), (TRUE.nbins, *geom.shape)
    dims_reco, dims_true = ("energy_reco", "y", "x"), ("energy_true", "y", "x")
    data = {
        "counts": _array(geom, dims_reco, rng.poisson(3.0, reco)),
        "exposure": _array(geom, dims_true, rng.uniform(1e9, 2e9, true), "m2 s"),
        "background": _array(geom, dims_reco, rng.uniform(0, 5, reco)),
        "mask_safe": _array(geom, dims_reco, rng.uniform(size=reco) > 0.3),
        "significance": _array(geom, ("y", "x"), rng.normal(size=geom.shape)),  # not exported
    }
    return xr.Dataset(data, attrs={"geom": geom.to_attrs()})


def _irf(geom, rng):
    coarse = geom.to_binsz(0.5)
    n_rad, shape = len(RAD_EDGES) - 1, coarse.shape
    psf = _array(
        coarse, ("energy_true", "rad", "irf_y", "irf_x"), rng.uniform(size=(TRUE.nbins, n_rad, *shape)),
        "sr-1", rad_coords(RAD_EDGES),
    )  # fmt: skip
    edisp = rng.uniform(size=(TRUE.nbins, RECO.nbins, *shape))
    data = {
        "psf": psf.transpose("rad", "irf_x", "energy_true", "irf_y"),  # any dims order is accepted
        "edisp": _array(coarse, ("energy_true", "energy_reco", "irf_y", "irf_x"), edisp),
        "exposure_irf": _array(
            coarse, ("energy_true", "irf_y", "irf_x"), rng.uniform(1, 2, (TRUE.nbins, *shape)), "m2 s"
        ),
    }
    return xr.Dataset(data, attrs={"geom": coarse.to_attrs()})


def _chunked(ds):
    chunks = {"y": 4, "x": 6, "irf_y": 4, "irf_x": 6}
    return ds.chunk({dim: size for dim, size in chunks.items() if dim in ds.dims})


@pytest.fixture
def inputs():
    rng = np.random.default_rng(1)
    geom = _geom()
    return geom, _mosaic(geom, rng), _irf(geom, rng)


def _edges(table, col_min, col_max, mask=None):
    lo, hi = table[col_min], table[col_max]
    lo, hi = (lo, hi) if mask is None else (lo[mask], hi[mask])
    return np.append(lo, hi[-1])


# ------------------------------------------------------------------------------------------ layout
@pytest.mark.parametrize("backend", ["numpy", "dask"])
def test_hdu_list_shapes_dtypes_and_units(tmp_path, inputs, backend):
    geom, mosaic, irf = inputs
    if backend == "dask":
        mosaic, irf = _chunked(mosaic), _chunked(irf)
    path = write_map_dataset(tmp_path / "ds.fits", mosaic, irf, name="crab")
    assert path == tmp_path / "ds.fits"
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == EXPECTED_HDUS
        assert hdul[0].header["NAME"] == "crab"
        assert hdul[0].header["CREATOR"].startswith("gpcube")
        ny, nx = geom.shape
        cy, cx = geom.to_binsz(0.5).shape
        expected = {
            "COUNTS": ((3, ny, nx), np.float32, ""),
            "EXPOSURE": ((4, ny, nx), np.float32, "m2 s"),
            "BACKGROUND": ((3, ny, nx), np.float32, ""),
            "EDISP": ((4, 3, cy, cx), np.float32, ""),
            "EDISP_EXPOSURE": ((4, 1, cy, cx), np.float32, "m2 s"),
            "PSF": ((4, 6, cy, cx), np.float32, "sr-1"),
            "PSF_EXPOSURE": ((4, 1, cy, cx), np.float32, "m2 s"),
            "MASK_SAFE": ((3, ny, nx), np.uint8, ""),
        }
        for extname, (shape, dtype, unit) in expected.items():
            hdu = hdul[extname]
            assert hdu.data.shape == shape, extname
            assert hdu.data.dtype.type is dtype, extname
            assert hdu.header["BUNIT"] == unit, extname
            assert hdu.header["BANDSHDU"] == f"{extname}_BANDS"
            assert hdu.header["WCSAXES"] == 2
            assert hdu.header["WCSSHAPE"] == "(" + ",".join(str(n) for n in shape[::-1]) + ")"


def test_values_round_trip(tmp_path, inputs):
    _, mosaic, irf = inputs
    path = write_map_dataset(tmp_path / "ds.fits", _chunked(mosaic), irf)
    with fits.open(path) as hdul:
        np.testing.assert_array_equal(hdul["COUNTS"].data, mosaic["counts"].values)
        np.testing.assert_array_equal(hdul["EXPOSURE"].data, mosaic["exposure"].values.astype(np.float32))
        np.testing.assert_array_equal(hdul["BACKGROUND"].data, mosaic["background"].values.astype(np.float32))
        np.testing.assert_array_equal(hdul["MASK_SAFE"].data.astype(bool), mosaic["mask_safe"].values)
        psf = irf["psf"].transpose("energy_true", "rad", "irf_y", "irf_x").values
        np.testing.assert_array_equal(hdul["PSF"].data, psf.astype(np.float32))
        np.testing.assert_array_equal(hdul["EDISP"].data, irf["edisp"].values.astype(np.float32))
        exposure = irf["exposure_irf"].values.astype(np.float32)[:, None]
        np.testing.assert_array_equal(hdul["PSF_EXPOSURE"].data, exposure)
        np.testing.assert_array_equal(hdul["EDISP_EXPOSURE"].data, exposure)


@pytest.mark.parametrize(("frame", "projection"), [("icrs", "CAR"), ("galactic", "TAN")])
def test_wcs_matches_the_geometry(tmp_path, frame, projection):
    rng = np.random.default_rng(2)
    geom = _geom(frame, projection)
    path = write_map_dataset(tmp_path / "ds.fits", _mosaic(geom, rng), _irf(geom, rng))
    x, y = np.meshgrid([0, 3, geom.npix[0] - 1], [0, 5, geom.npix[1] - 1])
    with fits.open(path) as hdul:
        for extname, grid in [("COUNTS", geom), ("EXPOSURE", geom), ("PSF", geom.to_binsz(0.5))]:
            wcs = WCS(hdul[extname].header).celestial
            lon, lat = wcs.pixel_to_world_values(x, y)
            lon_ours, lat_ours = grid.pix_to_world(x, y)
            np.testing.assert_allclose(np.stack([lon % 360, lat]), np.stack([lon_ours, lat_ours]), atol=1e-10)
            assert wcs.wcs.ctype[0].endswith(projection)


def test_bands_tables_hold_the_axes(tmp_path, inputs):
    _, mosaic, irf = inputs
    path = write_map_dataset(tmp_path / "ds.fits", mosaic, irf)
    with fits.open(path) as hdul:
        for extname in ("COUNTS", "BACKGROUND", "MASK_SAFE"):
            bands, header = hdul[f"{extname}_BANDS"].data, hdul[extname].header
            assert header["AXCOLS1"] == "E_MIN,E_MAX" and header["INTERP1"] == "log"
            assert "AXCOLS2" not in header
            np.testing.assert_array_equal(bands["CHANNEL"], np.arange(RECO.nbins))
            np.testing.assert_array_equal(_edges(bands, "E_MIN", "E_MAX"), RECO.edges)
            np.testing.assert_allclose(bands["ENERGY"], RECO.centers, rtol=1e-15)
        exposure = hdul["EXPOSURE_BANDS"]
        assert exposure.header["AXCOLS1"] == "ENERGY_TRUE_MIN,ENERGY_TRUE_MAX"
        assert exposure.columns["ENERGY_TRUE"].unit == "TeV"
        np.testing.assert_array_equal(_edges(exposure.data, "ENERGY_TRUE_MIN", "ENERGY_TRUE_MAX"), TRUE.edges)


def test_irf_bands_put_the_first_fits_axis_fastest(tmp_path, inputs):
    _, mosaic, irf = inputs
    path = write_map_dataset(tmp_path / "ds.fits", mosaic, irf)
    with fits.open(path) as hdul:
        header, bands = hdul["EDISP"].header, hdul["EDISP_BANDS"].data
        assert (header["AXCOLS1"], header["AXCOLS2"]) == ("E_MIN,E_MAX", "ENERGY_TRUE_MIN,ENERGY_TRUE_MAX")
        assert len(bands) == RECO.nbins * TRUE.nbins
        first_true = bands["ENERGY_TRUE_MIN"] == TRUE.edges[0]
        np.testing.assert_array_equal(_edges(bands, "E_MIN", "E_MAX", first_true), RECO.edges)
        np.testing.assert_array_equal(np.unique(bands["ENERGY_TRUE_MAX"]), TRUE.hi)
        np.testing.assert_array_equal(bands["E_MIN"][:3], RECO.lo)

        header, bands = hdul["PSF"].header, hdul["PSF_BANDS"].data
        assert (header["AXCOLS1"], header["INTERP1"]) == ("RAD_MIN,RAD_MAX", "lin")
        assert header["AXCOLS2"] == "ENERGY_TRUE_MIN,ENERGY_TRUE_MAX"
        np.testing.assert_allclose(bands["RAD"][:6], 0.5 * (RAD_EDGES[:-1] + RAD_EDGES[1:]))
        assert hdul["PSF_BANDS"].columns["RAD"].unit == "deg"

        squashed = hdul["PSF_EXPOSURE_BANDS"].data
        np.testing.assert_array_equal(squashed["RAD_MIN"], 0.0)
        np.testing.assert_array_equal(squashed["RAD_MAX"], RAD_EDGES[-1])
        squashed = hdul["EDISP_EXPOSURE_BANDS"].data
        np.testing.assert_array_equal(squashed["E_MAX"], RECO.edges[-1])
        np.testing.assert_array_equal(squashed["ENERGY_TRUE_MIN"], TRUE.lo)


def test_geometry_from_the_variables_and_no_irf(tmp_path, inputs):
    geom, mosaic, _ = inputs
    mosaic = mosaic.drop_vars(["exposure", "background"])
    mosaic.attrs = {}
    for name in mosaic.data_vars:
        mosaic[name].attrs["geom"] = geom.to_attrs()
    path = write_map_dataset(tmp_path / "ds.fits", mosaic)
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "COUNTS", "COUNTS_BANDS", "MASK_SAFE", "MASK_SAFE_BANDS"]


def test_energy_edges_fall_back_to_the_geometry(tmp_path, inputs):
    _, mosaic, _ = inputs
    mosaic = mosaic[["counts"]].drop_vars(["energy_reco_lo", "energy_reco_hi"])
    with fits.open(write_map_dataset(tmp_path / "ds.fits", mosaic)) as hdul:
        np.testing.assert_array_equal(_edges(hdul["COUNTS_BANDS"].data, "E_MIN", "E_MAX"), RECO.edges)


def test_large_counts_stay_exact(tmp_path, inputs):
    _, mosaic, _ = inputs
    counts = mosaic["counts"].copy(data=np.full(mosaic["counts"].shape, 2**24 + 1))
    path = write_map_dataset(tmp_path / "ds.fits", xr.Dataset({"counts": counts}, attrs=mosaic.attrs))
    with fits.open(path) as hdul:
        assert hdul["COUNTS"].data.dtype.type is np.float64
        assert hdul["COUNTS"].data[0, 0, 0] == 2**24 + 1


def test_mask_fit_follows_mask_safe(tmp_path, inputs):
    _, mosaic, _ = inputs
    mosaic["mask_fit"] = ~mosaic["mask_safe"]
    with fits.open(write_map_dataset(tmp_path / "ds.fits", mosaic)) as hdul:
        assert [h.name for h in hdul][-4:] == ["MASK_SAFE", "MASK_SAFE_BANDS", "MASK_FIT", "MASK_FIT_BANDS"]
        np.testing.assert_array_equal(hdul["MASK_FIT"].data, ~mosaic["mask_safe"].values)


def test_the_file_gets_the_usual_permissions(tmp_path, inputs):
    _, mosaic, _ = inputs
    plain = tmp_path / "plain.txt"
    plain.write_bytes(b"")
    path = write_map_dataset(tmp_path / "ds.fits", mosaic)
    assert path.stat().st_mode == plain.stat().st_mode


# ------------------------------------------------------------------------------------------ errors
def test_missing_geometry_is_an_error(tmp_path, inputs):
    _, mosaic, _ = inputs
    mosaic.attrs = {}
    with pytest.raises(GpcubeError, match="no geometry"):
        write_map_dataset(tmp_path / "ds.fits", mosaic)
    assert list(tmp_path.iterdir()) == []


def test_disagreeing_geometries_are_an_error(tmp_path, inputs):
    geom, mosaic, _ = inputs
    mosaic["exposure"].attrs["geom"] = geom.to_binsz(0.2).to_attrs()
    with pytest.raises(GpcubeError, match="exposure"):
        write_map_dataset(tmp_path / "ds.fits", mosaic)


def _only(edisp, irf):
    return xr.Dataset({"edisp": edisp}, attrs=irf.attrs)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda m, i: (m.assign(counts=m["counts"].isel(energy_reco=0)), i), "dims must be"),
        (lambda m, i: (m.assign(background=m["background"].rename(energy_reco="energy_true")), i), "dims"),
        (lambda m, i: (m, _only(i["edisp"].isel(energy_reco=[0, 1]), i)), "energy_reco bins differ"),
        (lambda m, i: (m, i.drop_vars(["rad_lo"])), "rad_lo"),
        (lambda m, i: (m.isel(x=slice(1, None)), i), "shape"),
    ],
    ids=["missing-dim", "wrong-dim", "edisp-reco-bins", "no-rad-edges", "shape"],
)
def test_bad_variables_are_errors(tmp_path, inputs, change, match):
    _, mosaic, irf = inputs
    mosaic, irf = change(mosaic, irf)
    with pytest.raises(GpcubeError, match=match):
        write_map_dataset(tmp_path / "ds.fits", mosaic, irf)
    assert list(tmp_path.iterdir()) == []


def test_nothing_to_export_is_an_error(tmp_path, inputs):
    _, mosaic, _ = inputs
    with pytest.raises(GpcubeError, match="nothing to export"):
        write_map_dataset(tmp_path / "ds.fits", mosaic[["significance"]])


def test_an_existing_file_is_kept_without_overwrite(tmp_path, inputs):
    _, mosaic, irf = inputs
    path = tmp_path / "ds.fits"
    path.write_bytes(b"precious")
    with pytest.raises(GpcubeError, match="exists") as info:
        write_map_dataset(path, mosaic, irf)
    assert str(path) in str(info.value)
    assert path.read_bytes() == b"precious"
    write_map_dataset(path, mosaic, irf, overwrite=True)
    with fits.open(path) as hdul:
        assert [h.name for h in hdul] == EXPECTED_HDUS


def _failing(shape):
    def fail(block):
        raise RuntimeError("disk on fire")

    return dask.array.zeros(shape, chunks=shape).map_blocks(fail, dtype=float)


def test_a_failed_write_leaves_no_file(tmp_path, inputs):
    """The failure comes from computing the background, after COUNTS and EXPOSURE were written."""
    _, mosaic, irf = inputs
    path = tmp_path / "ds.fits"
    path.write_bytes(b"precious")
    mosaic["background"] = mosaic["background"].copy(data=_failing(mosaic["background"].shape))
    with pytest.raises(RuntimeError, match="disk on fire"):
        write_map_dataset(path, mosaic, irf, overwrite=True)
    assert path.read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ds.fits"]


def test_validation_happens_before_any_compute(tmp_path, inputs):
    _, mosaic, irf = inputs
    mosaic["background"] = mosaic["background"].copy(data=_failing(mosaic["background"].shape))
    irf = _only(irf["edisp"].isel(energy_reco=[0, 1]), irf)
    with pytest.raises(GpcubeError, match="energy_reco bins differ"):
        write_map_dataset(tmp_path / "ds.fits", mosaic, irf)
    assert list(tmp_path.iterdir()) == []
