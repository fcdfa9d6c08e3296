"""make_psf_map and psf_kernel: lazy, equal to evaluate() at each coarse pixel, closed-form kernels."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr
from scipy.special import erf

import gpcube
from gpcube import GpcubeError
from gpcube.irf import evaluate
from gpcube.makers.psf import (
    RAD_EDGES_DEFAULT,
    containment_radius,
    make_psf_map,
    normalize_rad_profile,
    psf_kernel,
    psf_profile_at,
    rad_coords,
)
from tests import gadf_factory as gf

POINTING = (83.633, 22.0145)
SIGMA = 0.1  # deg, the synthetic Gaussian PSF


def _raising_scheduler(*args, **kwargs):
    raise AssertionError("the graph was computed while it was being built")


def _geom(center=POINTING, width=6.0, emin=0.05, emax=200.0, nbins=8):
    """A 0.05 deg mosaic; its energy_true axis reaches beyond the synthetic IRFs' 0.1-100 TeV."""
    true = gpcube.EnergyAxis.log(emin, emax, nbins, "energy_true")
    reco = gpcube.EnergyAxis.log(0.5, 50, 3, "energy_reco")
    return gpcube.SkyGeom.create(center, 0.05, width=width, axes=[reco, true])


def _observation(tmp_path, psf: gf.IrfHdu):
    store = gf.write_store(tmp_path, [gf.ObsSpec(1, irfs=[psf], n_events=5)], gzip=False)
    return gpcube.DataStore.from_dir(store.root).observation(1)


def _expected(obs, psf_map: xr.DataArray) -> np.ndarray:
    """evaluate() of the observation's PSF at every coarse pixel's offset, energy and rad centre."""
    offset = gpcube.SkyGeom.from_dataarray(psf_map).offset_map(obs.pointing.ra, obs.pointing.dec, "icrs")
    energy = psf_map["energy_true"].values[:, None, None, None]
    return evaluate(obs.psf, energy_true=energy, offset=offset, rad=psf_map["rad"].values[:, None, None])


def _gauss_3gauss(sigma=SIGMA):
    """A single normalised Gaussian written as a psf_3gauss (the other two amplitudes 0)."""
    scale = 1 / (2 * np.pi * np.deg2rad(sigma) ** 2)
    return gf.psf_3gauss({"SCALE": scale, "SIGMA_1": sigma, "AMPL_2": 0.0, "SIGMA_2": 0.2, "AMPL_3": 0.0,
                          "SIGMA_3": 0.3})  # fmt: skip


def _varying_psf(irf_class: str) -> gf.IrfHdu:
    """A PSF whose shape changes with energy and offset (non-separably), so interpolation matters."""
    if irf_class == "psf_table":

        def rpsf(energy_true, offset, rad):
            sigma = 0.04 + 0.03 * offset + 0.02 / (1 + energy_true)
            return np.exp(-0.5 * (rad / sigma) ** 2) / (2 * np.pi * np.deg2rad(sigma) ** 2)

        return gf.psf_table(rpsf, rad=gf.linear_axis("rad", 0.0, 0.6, 30))
    if irf_class == "psf_3gauss":
        return gf.psf_3gauss({
            "SCALE": lambda energy_true, offset: 3e5 / (1 + offset + 0 * energy_true),
            "SIGMA_1": lambda energy_true, offset: 0.03 + 0.02 * offset * np.log1p(energy_true),
            "AMPL_2": 0.5, "SIGMA_2": lambda energy_true, offset: 0.1 + 0.01 * offset + 0 * energy_true,
            "AMPL_3": lambda energy_true, offset: 0.1 + 0.05 * offset + 0 * energy_true, "SIGMA_3": 0.3,
        })  # fmt: skip
    return gf.psf_king({
        "GAMMA": lambda energy_true, offset: 1.5 + offset + 0.1 * np.log1p(energy_true),
        "SIGMA": lambda energy_true, offset: 0.05 + 0.02 * offset + 0 * energy_true,
    })  # fmt: skip


# --- the map -----------------------------------------------------------------------------------------


def test_building_reads_and_computes_nothing(hess_store, monkeypatch):
    def no_read(path):
        raise AssertionError(f"{path} was read while the graph was being built")

    monkeypatch.setattr("gpcube.io.observation.open_fits", no_read)
    with dask.config.set(scheduler=_raising_scheduler):
        psf = make_psf_map(hess_store.observation(23523), _geom(width=8.0), max_offset=3.0, chunk=10)
    assert psf.dims == ("energy_true", "rad", "irf_y", "irf_x")
    assert psf.attrs["energy_type"] == "true" and psf.attrs["units"] == "sr-1"
    assert len(psf.chunks[2]) > 1 and len(psf.chunks[3]) > 1
    coarse = gpcube.SkyGeom.from_dataarray(psf)
    assert coarse.binsz == 0.2 and coarse.shape == psf.shape[2:]
    assert [a.name for a in coarse.axes] == ["energy_true"]
    np.testing.assert_allclose(psf["rad_lo"], RAD_EDGES_DEFAULT[:-1])
    np.testing.assert_allclose(psf["rad_hi"], RAD_EDGES_DEFAULT[1:])
    np.testing.assert_allclose(psf["rad"], np.arange(66) * 0.01 + 0.005)


@pytest.mark.parametrize("irf_class", ["psf_table", "psf_3gauss", "psf_king"])
def test_map_is_evaluate_at_the_pixel_offset(tmp_path, irf_class):
    obs = _observation(tmp_path, _varying_psf(irf_class))
    psf = make_psf_map(obs, _geom(), binsz_irf=0.25, normalize=False, chunk=7).compute(scheduler="sync")
    expected = _expected(obs, psf)
    np.testing.assert_allclose(psf.values, expected, rtol=1e-12, atol=1e-9 * expected.max())
    energy = psf["energy_true"].values
    assert np.all(psf.values[(energy < 0.1) | (energy > 100)] == 0)  # outside the IRF's energies
    offset = gpcube.SkyGeom.from_dataarray(psf).separation(*POINTING)
    assert np.all(psf.values[..., offset > 2.5] == 0)
    core = psf.values[(energy > 0.1) & (energy < 100)][:, psf["rad"].values < 0.1]
    assert core[..., offset < 2].min() > 0


def test_map_is_normalised_within_the_rad_axis(tmp_path):
    obs = _observation(tmp_path, _varying_psf("psf_table"))
    rad = np.linspace(0, 0.3, 31)
    psf = make_psf_map(obs, _geom(), binsz_irf=0.5, rad=rad).compute(scheduler="sync")
    expected = normalize_rad_profile(_expected(obs, psf), rad[:-1], rad[1:])
    np.testing.assert_allclose(psf.values, expected, rtol=1e-12, atol=1e-9 * expected.max())
    ring = np.pi * np.deg2rad(rad[1:] + rad[:-1]) * np.deg2rad(np.diff(rad))
    integral = np.einsum("erij,r->eij", psf.values, ring)
    np.testing.assert_allclose(integral[integral > 0], 1.0, rtol=1e-12)


def test_gaussian_profile_is_the_closed_form(tmp_path):
    obs = _observation(tmp_path, _gauss_3gauss())
    rad = np.linspace(0, 0.8, 401)
    raw = make_psf_map(obs, _geom(width=2), rad=rad, normalize=False).compute(scheduler="sync")
    normed = make_psf_map(obs, _geom(width=2), rad=rad).compute(scheduler="sync")
    r = raw["rad"].values[None, :, None, None]
    gauss = np.exp(-0.5 * (r / SIGMA) ** 2) / (2 * np.pi * np.deg2rad(SIGMA) ** 2)
    energy = raw["energy_true"].values
    inside = (energy > 0.1) & (energy < 100)
    np.testing.assert_allclose(raw.values[inside], np.broadcast_to(gauss, raw[inside].shape), rtol=1e-12)
    # the midpoint sum of 2 pi r dr over 8 sigma is 1 to O((dr / sigma)^2)
    np.testing.assert_allclose(normed.values[inside], np.broadcast_to(gauss, raw[inside].shape), rtol=1e-4)


def test_cutout_and_chunking_give_the_same_pixels(hess_store):
    obs = hess_store.observation(23523)
    full = make_psf_map(obs, _geom(center=(83.633, 22.014)), chunk=64).compute(scheduler="sync")
    cut = make_psf_map(obs, _geom(center=(83.633, 22.014)), max_offset=1.5, chunk=4).compute(scheduler="sync")
    assert cut.sizes["irf_x"] < full.sizes["irf_x"]
    same_pixels = full.sel(irf_y=cut["irf_y"], irf_x=cut["irf_x"])
    np.testing.assert_allclose(cut.values, same_pixels.values, rtol=1e-12)


def test_hess_map_is_normalised_evaluate(hess_store):
    obs = hess_store.observation(23523)
    psf = make_psf_map(obs, _geom(center=(83.633, 22.014), width=5.0)).compute(scheduler="sync")
    expected = normalize_rad_profile(_expected(obs, psf), psf["rad_lo"].values, psf["rad_hi"].values)
    np.testing.assert_allclose(psf.values, expected, rtol=1e-10, atol=1e-10 * expected.max())


@pytest.mark.parametrize("rad", [[0.1], [0.2, 0.1], [-0.1, 0.2], [[0, 1], [1, 2]], [0, np.nan]])
def test_bad_rad_edges_are_refused(hess_store, rad):
    with pytest.raises(GpcubeError, match="rad"):
        make_psf_map(hess_store.observation(23523), _geom(), rad=rad)


# --- the kernel --------------------------------------------------------------------------------------


def _gauss_profile(sigma=SIGMA) -> xr.DataArray:
    coords = rad_coords(np.linspace(0, 1.0, 501))
    r = coords["rad"].values
    values = np.exp(-0.5 * (r / sigma) ** 2) / (2 * np.pi * np.deg2rad(sigma) ** 2)
    return xr.DataArray(values[None], dims=("energy_true", "rad"), coords={"energy_true": [1.0], **coords})


def _gauss_kernel(sigma: float, binsz: float, half: int) -> np.ndarray:
    """The 2-D Gaussian integrated exactly over square pixels, normalised on the (2 half + 1)^2 square."""
    edges = (np.arange(-half, half + 2) - 0.5) * binsz / sigma
    one = np.diff(0.5 * (1 + erf(edges / np.sqrt(2))))
    kernel = np.outer(one, one)
    return kernel / kernel.sum()


@pytest.mark.parametrize("binsz", [0.01, 0.02, 0.05])
def test_gaussian_kernel_is_the_pixel_integral(binsz):
    kernel = psf_kernel(_gauss_profile(), binsz)
    half = kernel.sizes["x"] // 2
    # the default radius contains 99.9 % of the profile: sigma sqrt(-2 ln 0.001) = 0.372 deg
    assert half == int(np.ceil(SIGMA * np.sqrt(-2 * np.log(1e-3)) / binsz - 0.5))
    expected = _gauss_kernel(SIGMA, binsz, half)
    np.testing.assert_allclose(kernel.values[0], expected, rtol=1e-3, atol=1e-4 * expected.max())
    np.testing.assert_allclose(kernel.sum(("y", "x")), 1.0, rtol=1e-12)
    assert kernel.dims == ("energy_true", "y", "x") and kernel.attrs["units"] == ""


def test_kernel_is_symmetric_and_sized_by_max_radius():
    kernel = psf_kernel(_gauss_profile(), 0.02, max_radius=0.1, oversample=3)
    assert kernel.shape == (1, 11, 11) and kernel.attrs["oversample"] == [3]
    values = kernel.values[0]
    np.testing.assert_allclose(values, values.T, rtol=1e-12)
    np.testing.assert_allclose(values, values[::-1, ::-1], rtol=1e-12)
    np.testing.assert_array_equal(kernel["x"], np.arange(-5, 6))


def test_kernel_of_a_zero_profile_is_zero():
    profile = _gauss_profile() * 0
    assert np.all(psf_kernel(profile, 0.02, max_radius=0.1).values == 0)


def test_containment_radius_of_a_gaussian():
    profile = _gauss_profile()
    lo, hi = profile["rad_lo"].values, profile["rad_hi"].values
    radius = containment_radius(profile.values, lo, hi, np.array(0.68))
    np.testing.assert_allclose(radius, SIGMA * np.sqrt(-2 * np.log(0.32)), rtol=1e-4)


def test_kernel_from_lazy_and_computed_map_agree(hess_store):
    lazy = make_psf_map(hess_store.observation(23523), _geom(center=(83.633, 22.014), width=5.0), chunk=8)
    computed = lazy.compute(scheduler="sync")
    centre = psf_profile_at(computed)
    np.testing.assert_allclose(centre.values, computed.isel(irf_y=12, irf_x=12).values, rtol=1e-12)  # 25 x 25
    from_lazy = psf_kernel(lazy, 0.05)
    xr.testing.assert_allclose(from_lazy, psf_kernel(computed, 0.05), rtol=1e-12)
    xr.testing.assert_allclose(from_lazy, psf_kernel(centre, 0.05), rtol=1e-12)


def test_profile_at_interpolates_bilinearly_in_pixels(hess_store):
    psf = make_psf_map(hess_store.observation(23523), _geom(center=(83.633, 22.014), width=5.0))
    psf = psf.isel(energy_true=slice(5, 6)).compute(scheduler="sync")  # a list: not with query planning
    geom = gpcube.SkyGeom.from_dataarray(psf)
    lon, lat = geom.pix_to_world(10.5, 3.25)
    profile = psf_profile_at(psf, (float(lon), float(lat)))
    corners = psf.isel(irf_x=[10, 11], irf_y=[3, 4]).values
    expected = 0.75 * corners[..., 0, :].mean(-1) + 0.25 * corners[..., 1, :].mean(-1)
    np.testing.assert_allclose(profile.values, expected, rtol=1e-10)
    assert profile.dims == ("energy_true", "rad") and profile.attrs["units"] == "sr-1"
    with pytest.raises(GpcubeError, match="position"):
        psf_kernel(profile, 0.02, position=(83.6, 22.0))
