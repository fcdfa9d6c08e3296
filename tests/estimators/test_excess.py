"""estimate_excess_map on synthetic mosaics with known answers; laziness; bands; an archive end to end."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr

import gpcube
from gpcube.errors import GpcubeError
from gpcube.estimators import cash_significance, correlate_array, estimate_excess_map, li_ma_significance
from gpcube.estimators.bands import band_slices, power_law_band_weights
from gpcube.estimators.correlate import tophat_kernel
from gpcube.geom.axes import rename_energy_dim

RECO = np.geomspace(0.5, 50, 5)  # 4 bins, edges 0.5, 1.58, 5, 15.8, 50
TRUE = np.geomspace(0.5, 50, 9)  # 8 bins, nested in the reco bins
BINSZ = 0.05
RADIUS = 0.2  # 4 pixels: 49 pixels in the disc
N_DISC = 49


def _raise_on_compute(*args, **kwargs):
    raise AssertionError("computed while building")


def _geom(reco=RECO, true=TRUE):
    axes = [gpcube.EnergyAxis("energy_reco", reco), gpcube.EnergyAxis("energy_true", true)]
    return gpcube.SkyGeom.create((83.6, 22.0), BINSZ, npix=(40, 30), axes=axes)


def _var(geom, data, dim, units=""):
    coords = {k: v for k, v in geom.to_coords().items() if set(v.dims) <= {dim, "y", "x"}}
    attrs = {"units": units, "geom": geom.to_attrs(), "energy_type": dim.removeprefix("energy_")}
    return xr.DataArray(data, dims=(dim, "y", "x"), coords=coords, attrs=attrs)


def _mosaic(geom=None, counts=None, background=None, exposure=None, mask=None, **extra):
    """A mosaic like open_archive's: counts int32, background float32, exposure m2 s, mask_safe."""
    geom = geom or _geom()
    reco, true = geom.data_shape("energy_reco"), geom.data_shape("energy_true")
    variables = {
        "counts": _var(
            geom, np.broadcast_to(2 if counts is None else counts, reco).astype(np.int32), "energy_reco"
        ),
        "mask_safe": _var(geom, np.broadcast_to(True if mask is None else mask, reco), "energy_reco"),
    }
    if background is not False:
        bkg = np.broadcast_to(1.5 if background is None else background, reco).astype(np.float32)
        variables["background"] = _var(geom, bkg, "energy_reco")
    if exposure is not False:
        expo = np.broadcast_to(1e9 if exposure is None else exposure, true).astype(np.float32)
        variables["exposure"] = _var(geom, expo, "energy_true", "m2 s")
    for name, data in extra.items():
        variables[name] = _var(geom, np.broadcast_to(data, reco), "energy_reco")
    return xr.Dataset(variables, attrs={"geom": geom.to_attrs()})


def _lazy(ds, chunk=12):
    return ds.copy(data={k: v.chunk({"y": chunk, "x": chunk}).data for k, v in ds.data_vars.items()})


def _centre(out, name):
    return float(out[name].values[0, 15, 20])


def test_flat_fields_away_from_the_edges():
    """2 counts and 1.5 background per bin and pixel, 4 bins, 49 pixels: n_on = 392, mu = 294."""
    out = estimate_excess_map(_mosaic(), RADIUS)
    assert out.sizes["energy_band"] == 1 and "energy_reco" not in out.dims
    assert all(var.dims == ("energy_band", "y", "x") for var in out.data_vars.values())
    np.testing.assert_allclose(out["energy_band_lo"], [0.5])
    np.testing.assert_allclose(out["energy_band_hi"], [50])
    assert _centre(out, "counts") == 4 * 2 * N_DISC
    np.testing.assert_allclose(_centre(out, "background"), 4 * 1.5 * N_DISC, rtol=1e-12)
    np.testing.assert_allclose(_centre(out, "excess"), 4 * 0.5 * N_DISC, rtol=1e-12)
    np.testing.assert_allclose(_centre(out, "sqrt_ts"), cash_significance(392, 294), rtol=1e-12)
    # flat exposure: flux = excess / exposure in cm2 s
    np.testing.assert_allclose(_centre(out, "flux"), 98 / (1e9 * 1e4), rtol=1e-6)
    assert out.attrs["statistic"] == "cash" and out.attrs["correlation_radius"] == RADIUS
    assert out["flux"].attrs["units"] == "cm-2 s-1" and out["sqrt_ts"].attrs["units"] == ""
    corner = out["counts"].values[0, 0, 0]
    assert corner == 2 * 4 * tophat_kernel(4.0)[4:, 4:].sum()  # zeros beyond the edges


def test_each_output_is_the_correlated_sum_of_the_band():
    rng = np.random.default_rng(0)
    geom = _geom()
    counts = rng.poisson(1.0, geom.data_shape("energy_reco"))
    background = rng.uniform(0.5, 1.5, geom.data_shape("energy_reco"))
    out = estimate_excess_map(_mosaic(geom, counts, background, exposure=False), RADIUS)
    kernel = tophat_kernel(RADIUS / BINSZ)
    n_on, mu = (
        correlate_array(counts.sum(0), kernel),
        correlate_array(background.astype(np.float32).sum(0), kernel),
    )
    np.testing.assert_array_equal(out["counts"].values[0], n_on)
    np.testing.assert_allclose(out["background"].values[0], mu, rtol=1e-6)
    np.testing.assert_allclose(out["sqrt_ts"].values[0], cash_significance(n_on, mu), rtol=1e-5, atol=1e-6)
    assert "flux" not in out and "alpha" not in out


def test_bands_sum_their_own_bins():
    counts = np.zeros(_geom().data_shape("energy_reco"))
    counts[0], counts[3] = 1, 10
    out = estimate_excess_map(_mosaic(counts=counts, background=0.0), RADIUS, energy_edges=[0.5, RECO[2], 50])
    np.testing.assert_allclose(out["energy_band_lo"], [0.5, RECO[2]])
    np.testing.assert_allclose(out["energy_band_hi"], [RECO[2], 50])
    assert out["counts"].values[:, 15, 20].tolist() == [N_DISC, 10 * N_DISC]
    assert out.sky.geom.axis("energy_band").nbins == 2
    with pytest.raises(GpcubeError, match="not a bin edge"):
        estimate_excess_map(_mosaic(), RADIUS, energy_edges=[0.5, 2.0, 50])


def test_outside_the_safe_mask_is_nan_and_unsafe_counts_are_ignored():
    mask = np.ones(_geom().data_shape("energy_reco"), bool)
    mask[:, :, 25:] = False  # lon >= 25 unsafe in every bin
    mask[2, :, :10] = False  # one bin unsafe on the left: the band stays safe there (OR over the band)
    counts = np.where(mask, 2, 1000)
    out = estimate_excess_map(_mosaic(counts=counts, mask=mask), RADIUS)
    for name in out.data_vars:
        assert np.isnan(out[name].values[0, :, 25:]).all() and np.isfinite(out[name].values[0, :, :25]).all()
    assert out["counts"].values[0, 15, 21] == 4 * 2 * (N_DISC - 1)  # one disc pixel (dx = 4) is at lon 25
    assert out["counts"].values[0, 15, 5] == 3 * 2 * N_DISC


def test_flux_weights_the_true_exposure_by_the_power_law():
    """Exposure rising as E_true: <exposure> = sum_j w_j e_j, with w_j the E**-2 share of bin j."""
    geom = _geom()
    centres = np.sqrt(TRUE[:-1] * TRUE[1:])
    exposure = np.broadcast_to(1e8 * centres[:, None, None], geom.data_shape("energy_true"))
    out = estimate_excess_map(_mosaic(geom, exposure=exposure), RADIUS, spectral_index=2.0)
    share = 1 / TRUE[:-1] - 1 / TRUE[1:]
    mean = (share * 1e8 * centres).sum() / (1 / 0.5 - 1 / 50)
    np.testing.assert_allclose(_centre(out, "flux"), 98 / (mean * 1e4), rtol=1e-6)
    assert out.attrs["spectral_index"] == 2.0


def test_flux_mean_exposure_is_over_the_safe_pixels_in_the_disc():
    geom = _geom()
    exposure = np.zeros(geom.data_shape("energy_true"))
    exposure[:, :, :20] = 1e9
    exposure[:, :, 20:] = 3e9
    mask = np.ones(geom.data_shape("energy_reco"), bool)
    mask[:, :, 21:] = False
    out = estimate_excess_map(_mosaic(geom, exposure=exposure, mask=mask), RADIUS)
    disc = tophat_kernel(4.0)
    in_mask = disc[:, :5].sum()  # lon 16..20 of the disc around lon 20 are safe
    mean = (disc[:, :4].sum() * 1e9 + disc[:, 4].sum() * 3e9) / in_mask
    excess = 0.5 * 4 * in_mask
    np.testing.assert_allclose(_centre(out, "flux"), excess / (mean * 1e4), rtol=1e-6)


def test_power_law_band_weights():
    w = power_law_band_weights(np.array([1.0, 2.0, 4.0]), np.array([1.0, 1.5]), np.array([4.0, 3.0]), 2.0)
    # band [1, 4]: shares 1/2 and 1/4 of 3/4; band [1.5, 3]: 1/1.5 - 1/2 and 1/2 - 1/3
    np.testing.assert_allclose(w, [[2 / 3, 1 / 3], [0.5, 0.5]], rtol=1e-12)
    w1 = power_law_band_weights(np.array([1.0, 2.0, 4.0]), np.array([1.0]), np.array([4.0]), 1.0)
    np.testing.assert_allclose(w1, [[0.5, 0.5]], rtol=1e-12)  # equal log widths
    with pytest.raises(GpcubeError, match="does not cover"):
        power_law_band_weights(np.array([1.0, 2.0]), np.array([0.5]), np.array([2.0]), 2.0)


def test_band_slices():
    lo, hi = RECO[:-1], RECO[1:]
    assert band_slices(lo, hi, [0.5], [50.0]) == [slice(0, 4)]
    assert band_slices(lo, hi, [RECO[1] * (1 + 1e-9)], [RECO[3]]) == [slice(1, 3)]
    with pytest.raises(GpcubeError, match="lo < hi"):
        band_slices(lo, hi, [5.0], [5.0])


def _onoff_expected(n_on, n_off, bkg, kernel):
    on, off, b = (correlate_array(x, kernel) for x in (n_on, n_off, bkg))
    return on, off, b / off, li_ma_significance(on, off, b / off)


def test_onoff_in_the_mosaic_is_li_ma_of_the_correlated_sums():
    rng = np.random.default_rng(8)
    geom = _geom()
    shape = geom.data_shape("energy_reco")
    counts, counts_off = rng.poisson(2.0, shape), rng.poisson(10.0, shape)
    acceptance, acceptance_off = np.full(shape, 0.2), rng.uniform(0.8, 1.2, shape)
    ds = _mosaic(geom, counts, background=False, counts_off=counts_off, acceptance=acceptance,
                 acceptance_off=acceptance_off)  # fmt: skip
    out = estimate_excess_map(ds, RADIUS)
    kernel = tophat_kernel(4.0)
    bkg = (acceptance / acceptance_off * counts_off).sum(0)
    on, off, alpha, sig = _onoff_expected(counts.sum(0), counts_off.sum(0), bkg, kernel)
    np.testing.assert_array_equal(out["counts"].values[0], on)
    np.testing.assert_array_equal(out["counts_off"].values[0], off)
    np.testing.assert_allclose(out["alpha"].values[0], alpha, rtol=1e-12)
    np.testing.assert_allclose(out["sqrt_ts"].values[0], sig, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(out["excess"].values[0], on - alpha * off, rtol=1e-10, atol=1e-9)
    assert out.attrs["statistic"] == "wstat" and out.attrs["correlate_off"] is True
    with_alpha = estimate_excess_map(
        ds.drop_vars(["acceptance"]).assign(alpha=ds.acceptance / ds.acceptance_off), RADIUS
    )
    np.testing.assert_allclose(with_alpha["sqrt_ts"].values, out["sqrt_ts"].values, rtol=1e-12)


def test_onoff_bands_from_a_separate_dataset_and_uncorrelated_off():
    """Ring products on one band [0.5, 50]: counts summed over the 4 bins; correlate_off=False."""
    geom = _geom()
    band = geom.with_axes(gpcube.EnergyAxis("energy_reco", [0.5, 50]))
    shape = band.data_shape("energy_reco")
    off = xr.Dataset({
        "counts_off": _var(band, np.full(shape, 40.0), "energy_reco"),
        "acceptance": _var(band, np.full(shape, 0.1), "energy_reco"),
        "acceptance_off": _var(band, np.full(shape, 2.0), "energy_reco"),
    })  # fmt: skip
    mosaic = _mosaic(geom, background=False)
    out = estimate_excess_map(mosaic, RADIUS, off=off)
    on, n_off, alpha = 8 * N_DISC, 40 * N_DISC, 0.05
    assert _centre(out, "counts") == on and _centre(out, "counts_off") == n_off
    np.testing.assert_allclose(_centre(out, "sqrt_ts"), li_ma_significance(on, n_off, alpha), rtol=1e-12)
    uncorrelated = estimate_excess_map(mosaic, RADIUS, off=off, correlate_off=False)
    np.testing.assert_allclose(_centre(uncorrelated, "alpha"), 0.1 * N_DISC / 2.0, rtol=1e-12)
    assert _centre(uncorrelated, "counts_off") == 40
    np.testing.assert_allclose(_centre(uncorrelated, "excess"), on - 0.1 * N_DISC / 2.0 * 40, rtol=1e-12)
    with pytest.raises(GpcubeError, match="not a bin edge"):
        estimate_excess_map(mosaic, RADIUS, off=off, energy_edges=[0.5, RECO[2], 50])
    # the same OFF maps on the ring products' own dim, energy_band: the same maps
    on_bands = rename_energy_dim(off, "energy_reco", "energy_band")
    assert on_bands["counts_off"].dims == ("energy_band", "y", "x")
    xr.testing.assert_identical(estimate_excess_map(mosaic, RADIUS, off=on_bands), out)


def test_a_mosaic_on_energy_bands_is_taken_with_its_bands_as_bins():
    """The ring products (counts, counts_off, alpha on energy_band) as the mosaic: the bands are the bins."""
    geom = _geom()
    rng = np.random.default_rng(4)
    shape = geom.data_shape("energy_reco")
    ds = _mosaic(geom, rng.poisson(2.0, shape), background=False, counts_off=rng.poisson(20.0, shape),
                 alpha=np.full(shape, 0.1))  # fmt: skip
    on_bins = estimate_excess_map(ds, RADIUS, energy_edges=[0.5, RECO[2], 50])
    bands = rename_energy_dim(ds, "energy_reco", "energy_band")
    assert "energy_reco" not in bands.dims and bands.sky.geom.axis("energy_band").nbins == 4
    xr.testing.assert_identical(estimate_excess_map(bands, RADIUS, energy_edges=[0.5, RECO[2], 50]), on_bins)


def test_zero_off_acceptance_gives_no_background_and_undefined_alpha_nan():
    geom = _geom()
    shape = geom.data_shape("energy_reco")
    acceptance_off = np.ones(shape)
    acceptance_off[:, :, :12] = 0.0
    counts_off = np.where(acceptance_off > 0, 5, 0)
    ds = _mosaic(
        geom,
        background=False,
        counts_off=counts_off,
        acceptance=np.ones(shape),
        acceptance_off=acceptance_off,
    )
    out = estimate_excess_map(ds, RADIUS)
    assert np.isnan(out["alpha"].values[0, :, :7]).all() and np.isnan(out["sqrt_ts"].values[0, :, :7]).all()
    assert (out["background"].values[0, :, :7] == 0).all()  # where no OFF pixel is within the radius
    assert np.isfinite(out["sqrt_ts"].values[0, :, 10:]).all()


def test_lazy_on_dask_and_equal_to_numpy():
    rng = np.random.default_rng(3)
    geom = _geom()
    ds = _mosaic(geom, rng.poisson(1.0, geom.data_shape("energy_reco")))
    with dask.config.set(scheduler=_raise_on_compute):
        lazy = estimate_excess_map(_lazy(ds), RADIUS, energy_edges=[0.5, RECO[2], 50])
    assert all(v.chunks is not None for v in lazy.data_vars.values())
    eager = estimate_excess_map(ds, RADIUS, energy_edges=[0.5, RECO[2], 50])
    computed = lazy.compute(scheduler="sync")
    xr.testing.assert_allclose(computed, eager, rtol=1e-12)
    assert computed.attrs == eager.attrs and list(computed.data_vars) == list(eager.data_vars)
    np.testing.assert_array_equal(computed["counts"].values, eager["counts"].values)


def test_output_geometry_and_image():
    out = estimate_excess_map(_mosaic(), RADIUS)
    geom = out.sky.geom
    assert geom.npix == (40, 30) and geom.axis("energy_band").nbins == 1 and geom.binsz == BINSZ
    assert [axis.name for axis in geom.axes] == ["energy_band"]
    assert out["sqrt_ts"].sky.geom.axes == geom.axes
    image = out["sqrt_ts"].sky.to_image()
    assert image.dims == ("y", "x") and float(image["energy_band_lo"]) == 0.5
    from gpcube.accessor import _title

    assert _title(out["sqrt_ts"].sky.to_image(energy=0)) == "sqrt_ts, energy band 0.5-50 TeV"


def test_missing_variables_and_bad_radius():
    with pytest.raises(GpcubeError, match="'background'"):
        estimate_excess_map(_mosaic(background=False), RADIUS)
    with pytest.raises(GpcubeError, match="radius"):
        estimate_excess_map(_mosaic(), 0.0)
    with pytest.raises(GpcubeError, match="alpha"):
        estimate_excess_map(_mosaic(background=False, counts_off=1), RADIUS)


def test_on_an_archive_lazily(tmp_path):
    """Two Crab runs through the pipeline; the estimator on open_archive computes nothing until asked."""
    from gpcube.workflow import pipeline
    from tests.archive.conftest import job

    config = job(tmp_path / "crab.zarr")
    pipeline.run(config, progress=False)
    mosaic = gpcube.open_archive(config.output)
    with dask.config.set(scheduler=_raise_on_compute):
        out = estimate_excess_map(mosaic, 0.1)
    out = out.compute(scheduler="sync")
    crab = out.sky.geom.coord_to_idx(83.633, 22.014)
    assert out["sqrt_ts"].values[0, crab[1], crab[0]] > 15
    loaded = estimate_excess_map(mosaic.load(), 0.1)
    xr.testing.assert_allclose(out, loaded)


def test_flux_counts_only_the_safe_bins_share_of_the_band():
    """A reco bin unsafe: the exposure holds the band's flux share of the safe bins only (flat exposure)."""
    geom = _geom()
    mask = np.ones(geom.data_shape("energy_reco"), bool)
    mask[0] = False  # [0.5, 1.58] TeV unsafe everywhere
    counts = np.where(mask, 2, 0)
    out = estimate_excess_map(_mosaic(geom, counts=counts, mask=mask), RADIUS)
    safe_share = (1 / RECO[1] - 1 / 50) / (1 / 0.5 - 1 / 50)  # E**-2 flux above 1.58 TeV over the band's
    excess = 3 * 0.5 * N_DISC
    np.testing.assert_allclose(_centre(out, "flux"), excess / (1e9 * safe_share * 1e4), rtol=1e-6)
    assert _centre(out, "counts") == 3 * 2 * N_DISC


@pytest.mark.parametrize("dtype", [np.int32, np.float32, np.float64])
def test_safe_band_sums_equal_the_masked_sum_along_energy(dtype):
    from gpcube.estimators.excess import _safe_sum_block

    rng = np.random.default_rng(4)
    values = rng.integers(0, 50, (5, 6, 7)).astype(dtype)
    if values.dtype.kind == "f":
        values[1, 2, 3] = np.nan  # NaN is skipped, as xarray's sum skips it
    safe = rng.random((5, 6, 7)) > 0.3
    expected = xr.DataArray(values, dims=("e", "y", "x")).where(safe, 0).sum("e").values
    # the block function gets the energy axis first, where the mosaic has it
    out = _safe_sum_block(values, safe)
    assert out.dtype == expected.dtype
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(_safe_sum_block(values), np.nansum(values, axis=0))
