"""Ring and adaptive-ring background: synthetic cutouts with known answers, laziness, stacking."""

from __future__ import annotations

import dask
import dask.array
import numpy as np
import pytest
import xarray as xr

import gpcube
from gpcube.errors import GpcubeError
from gpcube.geom.world import world_coords
from gpcube.makers import (
    average_alpha,
    combine_ring_sums,
    exclusion_mask_from_circles,
    make_map_adaptive_ring_background,
    make_map_ring_background,
    ring_stack_terms,
)
from gpcube.makers.ring_adaptive import adaptive_ring_radii

BINSZ = 0.25  # binary fractions: radii in pixels are exact
RING = {"r_in": 1.25, "width": 0.75}  # 5 and 3 pixels
RING_PIXELS = 128  # offsets with 25 <= dx**2 + dy**2 <= 64: 197 within 8 px minus 69 within 5 px
NPIX = 41
CENTRE = NPIX // 2


def _geom(nbins=3):
    axis = gpcube.EnergyAxis.log(1, 100, nbins, "energy_reco")
    return gpcube.SkyGeom.create((10.0, 0.0), BINSZ, npix=(NPIX, NPIX), axes=[axis])


def _cube(values, geom, product, chunks=True) -> xr.DataArray:
    coords = {k: v for k, v in geom.to_coords().items() if k.startswith(("energy_reco", "y", "x"))}
    attrs = {"units": "", "energy_type": "reco", "obs_id": 7, "product": product, "geom": geom.to_attrs()}
    data = dask.array.from_array(values, chunks=(1, 16, 16)) if chunks else values
    da = xr.DataArray(data, dims=("energy_reco", "y", "x"), coords=coords, name=product, attrs=attrs)
    return da.assign_coords(world_coords(geom))  # as the makers give them


def _flat(geom, counts=2, acceptance=1.0, chunks=True):
    shape = geom.data_shape("energy_reco")
    return (
        _cube(np.full(shape, counts, dtype=np.int64), geom, "counts", chunks),
        _cube(np.full(shape, acceptance), geom, "background", chunks),
    )


def _direct_ring_sum(image: np.ndarray, r_in: float, r_out: float) -> np.ndarray:
    """Brute-force ring sums (zero outside the image), independent of the FFT code."""
    ny, nx = image.shape
    out = np.zeros_like(image)
    reach = int(np.ceil(r_out))
    for dy in range(-reach, reach + 1):
        for dx in range(-reach, reach + 1):
            if not r_in**2 <= dx * dx + dy * dy <= r_out**2:
                continue
            shifted = np.zeros_like(image)
            ys, yd = slice(max(dy, 0), ny + min(dy, 0)), slice(max(-dy, 0), ny + min(-dy, 0))
            xs, xd = slice(max(dx, 0), nx + min(dx, 0)), slice(max(-dx, 0), nx + min(-dx, 0))
            shifted[yd, xd] = image[ys, xs]
            out += shifted
    return out


def _raising_scheduler(*args, **kwargs):
    raise AssertionError("the graph was computed while it was being built")


# ------------------------------------------------------------------------------------ fixed ring
@pytest.mark.parametrize("backend", ["dask", "numpy"])
def test_flat_field_alpha_is_the_ring_area_ratio(backend):
    geom = _geom()
    counts, acceptance = _flat(geom, chunks=backend == "dask")
    result = make_map_ring_background(counts, acceptance, **RING).compute(scheduler="sync")
    assert result["counts_off"].values[1, CENTRE, CENTRE] == 2 * RING_PIXELS
    np.testing.assert_allclose(result["acceptance_off"].values[:, CENTRE, CENTRE], RING_PIXELS)
    np.testing.assert_allclose(result["alpha"].values[:, CENTRE, CENTRE], 1 / RING_PIXELS, rtol=1e-12)
    # everywhere, borders included: the number of ring pixels inside the cutout
    inside = _direct_ring_sum(np.ones((NPIX, NPIX)), 5, 8)
    np.testing.assert_allclose(result["acceptance_off"].values[0], inside, rtol=1e-12)
    np.testing.assert_array_equal(result["counts_off"].values[2], 2 * inside.astype(np.int64))
    assert result["mask_safe"].values.all()


def test_counts_off_are_exact_integers():
    geom = _geom()
    rng = np.random.default_rng(3)
    values = rng.integers(0, 10**6, geom.data_shape("energy_reco"))
    counts, acceptance = _cube(values, geom, "counts"), _flat(geom)[1]
    result = make_map_ring_background(counts, acceptance, **RING).compute(scheduler="sync")
    assert result["counts_off"].dtype == np.int64
    expected = _direct_ring_sum(values[1], 5, 8)
    np.testing.assert_array_equal(result["counts_off"].values[1], expected)


def test_exclusion_removes_pixels_from_the_ring():
    geom = _geom()
    lon, lat = geom.pix_to_world(CENTRE + 6, CENTRE)  # a circle of 1 px radius on the ring's right
    exclusion = exclusion_mask_from_circles(geom, [(float(lon), float(lat), 1.01 * BINSZ)])
    assert (~exclusion.values).sum() == 5
    result = make_map_ring_background(*_flat(geom), exclusion=exclusion, **RING).compute(scheduler="sync")
    assert result["counts_off"].values[0, CENTRE, CENTRE] == 2 * (RING_PIXELS - 5)
    np.testing.assert_allclose(result["alpha"].values[0, CENTRE, CENTRE], 1 / (RING_PIXELS - 5))
    expected = _direct_ring_sum(exclusion.values.astype(float), 5, 8)
    np.testing.assert_allclose(result["acceptance_off"].values[0], expected, rtol=1e-12)
    # the excluded pixels themselves still get OFF sums (only their counts are not used)
    assert result["mask_safe"].values[0][~exclusion.values].all()


def test_exclusion_as_circles_equals_the_mask():
    geom = _geom()
    lon, lat = geom.pix_to_world(CENTRE + 6, CENTRE)
    circle = [(float(lon), float(lat), 0.5)]
    mask = exclusion_mask_from_circles(geom, circle)
    a = make_map_ring_background(*_flat(geom), exclusion=mask, **RING).compute(scheduler="sync")
    b = make_map_ring_background(*_flat(geom), exclusion=circle, **RING).compute(scheduler="sync")
    xr.testing.assert_identical(a, b)


def test_everything_excluded_gives_alpha_zero_and_unsafe_pixels():
    geom = _geom()
    exclusion = exclusion_mask_from_circles(geom, [(*geom.center, 50.0)])
    result = make_map_ring_background(*_flat(geom), exclusion=exclusion, **RING).compute(scheduler="sync")
    assert (result["counts_off"].values == 0).all() and (result["acceptance_off"].values == 0).all()
    assert (result["alpha"].values == 0).all() and not result["mask_safe"].values.any()


def test_safe_mask_removes_counts_and_acceptance():
    geom = _geom()
    safe = np.ones(geom.data_shape("energy_reco"), dtype=bool)
    safe[0, :, : CENTRE + 1] = False  # left half of bin 0 unsafe
    counts, acceptance = _flat(geom)
    result = make_map_ring_background(counts, acceptance, mask_safe=_cube(safe, geom, "mask_safe"), **RING)
    result = result.compute(scheduler="sync")
    expected = _direct_ring_sum(safe[0].astype(float), 5, 8)
    np.testing.assert_array_equal(result["counts_off"].values[0], 2 * expected.astype(np.int64))
    np.testing.assert_array_equal(result["acceptance"].values[0], safe[0].astype(float))
    assert not result["mask_safe"].values[0, :, : CENTRE + 1].any()
    assert result["mask_safe"].values[1:].all()


def test_energy_bands_sum_the_bins_first():
    geom = _geom(nbins=4)
    rng = np.random.default_rng(5)
    counts = _cube(rng.poisson(3, geom.data_shape("energy_reco")), geom, "counts")
    acceptance = _cube(rng.random(geom.data_shape("energy_reco")), geom, "background")
    safe = np.ones(geom.data_shape("energy_reco"), dtype=bool)
    safe[1, :5] = False
    safe[0, :3] = False
    safe = _cube(safe, geom, "mask_safe")
    edges = geom.axis("energy_reco").edges
    per_bin = make_map_ring_background(counts, acceptance, mask_safe=safe, **RING).compute(scheduler="sync")
    bands = make_map_ring_background(
        counts, acceptance, mask_safe=safe, energy_edges=[edges[0], edges[2], edges[4]], **RING
    ).compute(scheduler="sync")
    assert bands.sizes["energy_band"] == 2 and "energy_reco" not in bands.dims
    assert not [name for name in bands.coords if name.startswith("energy_reco")]
    np.testing.assert_allclose(bands["energy_band_lo"].to_numpy(), edges[[0, 2]])
    np.testing.assert_allclose(bands["energy_band_hi"].to_numpy(), edges[[2, 4]])
    np.testing.assert_allclose(bands["energy_band"].to_numpy(), np.sqrt(edges[[0, 2]] * edges[[2, 4]]))
    for band, bins in enumerate([slice(0, 2), slice(2, 4)]):
        for name in ("counts_off", "acceptance", "acceptance_off"):
            np.testing.assert_allclose(
                bands[name].to_numpy()[band], per_bin[name].to_numpy()[bins].sum(0), rtol=1e-12
            )
    assert bands["counts_off"].dtype == np.int64
    np.testing.assert_array_equal(bands["mask_safe"].to_numpy()[0], safe.to_numpy()[:2].any(0))
    axes = {a["name"]: a for a in bands["counts_off"].attrs["geom"]["axes"]}
    np.testing.assert_allclose(axes["energy_band"]["edges"], edges[[0, 2, 4]])
    assert "energy_reco" not in axes
    assert bands["counts_off"].sky.geom.axis("energy_band").nbins == 2
    # without bands each reco bin is a band, on the same dim
    assert per_bin["counts_off"].dims == ("energy_band", "y", "x")
    np.testing.assert_allclose(per_bin["energy_band_lo"].to_numpy(), edges[:-1])
    np.testing.assert_allclose(per_bin["energy_band_hi"].to_numpy(), edges[1:])


def test_bands_with_one_safe_mask_for_all_bins_equal_the_per_bin_sums():
    # the band sums apply a mask shared by all bins once, after summing: the same numbers
    geom = _geom(nbins=12)
    rng = np.random.default_rng(8)
    counts = _cube(rng.poisson(2, geom.data_shape("energy_reco")), geom, "counts")
    acceptance = _cube(rng.random(geom.data_shape("energy_reco")).astype(np.float32), geom, "background")
    safe = np.ones(geom.data_shape("energy_reco"), dtype=bool)
    safe[:, :, :7] = False  # the same in every bin
    safe[11, :4] = False  # but not in the last bin
    safe = _cube(safe, geom, "mask_safe")
    edges = geom.axis("energy_reco").edges
    per_bin = make_map_ring_background(counts, acceptance, mask_safe=safe, **RING).compute(scheduler="sync")
    bands = make_map_ring_background(
        counts, acceptance, mask_safe=safe, energy_edges=[edges[0], edges[6], edges[12]], **RING
    ).compute(scheduler="sync")
    for band, bins in enumerate([slice(0, 6), slice(6, 12)]):
        np.testing.assert_array_equal(
            bands["counts"].to_numpy()[band], per_bin["counts"].to_numpy()[bins].sum(0)
        )
        expected_safe = safe.to_numpy()[bins].any(0) & (bands["acceptance_off"].to_numpy()[band] > 0)
        np.testing.assert_array_equal(bands["mask_safe"].to_numpy()[band], expected_safe)
        np.testing.assert_allclose(
            bands["acceptance"].to_numpy()[band], per_bin["acceptance"].to_numpy()[bins].sum(0), rtol=1e-6
        )
    assert bands["acceptance"].dtype == np.float32 and per_bin["counts"].dtype == np.int64


def test_many_bands_are_grouped_in_a_few_tasks_with_the_same_results():
    geom = _geom(nbins=12)
    rng = np.random.default_rng(9)
    counts = _cube(rng.poisson(2, geom.data_shape("energy_reco")), geom, "counts")
    acceptance = _flat(geom)[1]
    result = make_map_ring_background(counts, acceptance, **RING)
    assert result["counts_off"].data.numblocks[0] == 3  # 12 bands, at most 5 per task
    result = result.compute(scheduler="sync")
    for index in (0, 7, 11):
        expected = _direct_ring_sum(counts.to_numpy()[index].astype(float), 5, 8).astype(np.int64)
        np.testing.assert_array_equal(result["counts_off"].to_numpy()[index], expected)


def test_circles_far_from_the_cutout_are_skipped_and_the_mask_is_unchanged():
    from gpcube.makers.exclusion import circles_mask

    geom = _geom().with_axes()
    near = (*geom.pix_to_world(3, 4), 0.8)
    circles = [tuple(float(v) for v in near), (float(geom.center[0]) + 30.0, 0.0, 20.0), (200.0, 40.0, 1.0)]
    expected = exclusion_mask_from_circles(geom, circles).values
    mask = circles_mask(geom, tuple(circles))
    np.testing.assert_array_equal(mask, expected)
    assert (~mask).sum() > 20 and not mask.flags.writeable
    # a circle just reaching the cutout's corner pixel is not skipped
    corner_lon, corner_lat = (float(v) for v in geom.pix_to_world(0, 0))
    touching = ((corner_lon - 1.0, corner_lat, 1.0 + 1e-9),)
    expected = exclusion_mask_from_circles(geom, touching).values
    np.testing.assert_array_equal(circles_mask(geom, touching), expected)
    assert not circles_mask(geom, touching)[0, 0]


def test_exclusion_mask_on_a_larger_parent_grid_is_sliced():
    parent = gpcube.SkyGeom.create((10.0, 0.0), BINSZ, npix=(NPIX + 20, NPIX + 10))
    cutout, _ = parent.cutout(parent.center, 0.4 * NPIX * BINSZ)
    axis = gpcube.EnergyAxis.log(1, 100, 2, "energy_reco")
    cutout = cutout.with_axes(axis)
    circle = [(*(float(v) for v in cutout.pix_to_world(CENTRE + 6, CENTRE)), 0.3)]
    mask = exclusion_mask_from_circles(parent, circle)
    counts, acceptance = _flat(cutout)
    a = make_map_ring_background(counts, acceptance, exclusion=mask, **RING).compute(scheduler="sync")
    b = make_map_ring_background(counts, acceptance, exclusion=circle, **RING).compute(scheduler="sync")
    xr.testing.assert_identical(a, b)
    assert a["counts_off"].values.min() < a["counts_off"].values.max()


@pytest.mark.parametrize(
    "energy_edges",
    [[1.0, 3.0], [10.0, 1.0], [1.0], [[1.0, 100.0]]],
    ids=["not-an-edge", "decreasing", "one", "2d"],
)
def test_bad_energy_edges_raise(energy_edges):
    with pytest.raises(GpcubeError, match="energy_edges"):
        make_map_ring_background(*_flat(_geom()), energy_edges=energy_edges, **RING)


def test_bad_inputs_raise():
    counts, acceptance = _flat(_geom())
    with pytest.raises(GpcubeError, match="integers"):
        make_map_ring_background(counts.astype(float), acceptance, **RING)
    with pytest.raises(GpcubeError, match="dims"):
        make_map_ring_background(counts.transpose("y", "x", "energy_reco"), acceptance, **RING)


def test_attrs_and_chunks():
    geom = _geom()
    result = make_map_ring_background(*_flat(geom), energy_edges=[1, 100], **RING)
    for name in ("counts_off", "acceptance", "acceptance_off", "alpha", "mask_safe"):
        attrs = result[name].attrs
        assert attrs["product"] == name and attrs["obs_id"] == 7 and attrs["energy_type"] == "reco"
        assert attrs["units"] == "" and attrs["ring_r_in"] == 1.25
        assert gpcube.SkyGeom.from_attrs(attrs["geom"]).shape == geom.shape
        assert result[name].dims == ("energy_band", "y", "x")
        assert result[name].chunks[1:] == ((NPIX,), (NPIX,))
    assert result.attrs["product"] == "ring_background"
    assert result["mask_safe"].dtype == bool
    np.testing.assert_array_equal(result["x"].values, np.arange(NPIX))
    # the world coordinates keep their index: the ring products select by degrees
    lon, lat = (float(v) for v in geom.pix_to_world(5, 7))
    assert result.sel(lon=lon, lat=lat, method="nearest")["y"].item() == 7


def test_building_the_graph_computes_nothing():
    geom = _geom()
    with dask.config.set(scheduler=_raising_scheduler):
        fixed = make_map_ring_background(*_flat(geom), exclusion=[(*geom.center, 0.5)], **RING)
        adaptive = make_map_adaptive_ring_background(
            *_flat(geom), r_out_max=3.0, energy_edges=[1, 100], threshold_alpha=0.01, **RING
        )
        terms = ring_stack_terms(fixed)
    for result in (fixed, adaptive, terms):
        assert all(isinstance(v.data, dask.array.Array) for v in result.data_vars.values())


# --------------------------------------------------------------------------------- adaptive ring
def test_adaptive_ring_radii():
    assert adaptive_ring_radii(5, 3, 10, 1, "fixed_width") == [(5, 3), (6, 3)]
    assert adaptive_ring_radii(5, 3, 10, 1, "fixed_r_in") == [(5, 3), (5, 4)]
    with pytest.raises(GpcubeError, match="method"):
        adaptive_ring_radii(5, 3, 10, 1, "grow")


def _fixed_rings(counts, acceptance, radii, **options):
    return [
        make_map_ring_background(counts, acceptance, r_in=a * BINSZ, width=b * BINSZ, **options).compute(
            scheduler="sync"
        )
        for a, b in radii
    ]


@pytest.mark.parametrize("method", ["fixed_width", "fixed_r_in"])
@pytest.mark.parametrize("theta", [None, 0.3])
def test_adaptive_ring_takes_the_first_ring_with_alpha_below_threshold(method, theta):
    geom = _geom(nbins=1)
    rng = np.random.default_rng(11)
    counts = _cube(rng.poisson(4, geom.data_shape("energy_reco")), geom, "counts")
    acceptance = _flat(geom)[1]
    lon, lat = geom.pix_to_world(CENTRE + 3, CENTRE + 2)
    options = {"exclusion": [(float(lon), float(lat), 1.5)]}
    # ON acceptance 1 (the pixel) or 5 (theta 0.3 deg = 1.2 px: a disc of 5 pixels): a ring needs more
    # than 100 usable pixels (not exactly 100: round-off decides ties)
    threshold = (1.0 if theta is None else 5.0) / 100.5
    adaptive = make_map_adaptive_ring_background(
        counts, acceptance, r_out_max=4.0, stepsize=0.25, threshold_alpha=threshold, **RING,
        theta=theta, method=method, **options,
    ).compute(scheduler="sync")  # fmt: skip
    radii = adaptive_ring_radii(5, 3, 16, 1, method)
    rings = _fixed_rings(counts, acceptance, radii, **options)
    on = (
        1.0 if theta is None else _direct_ring_sum(np.ones((NPIX, NPIX)), 0, 1.2)
    )  # 5 inside, fewer at borders
    acceptance_off = np.stack([r["acceptance_off"].to_numpy() for r in rings])
    with np.errstate(divide="ignore"):
        qualifies = on / acceptance_off <= threshold
    first = np.where(qualifies.any(0), qualifies.argmax(0), -1)
    assert (first > 0).sum() > 50 and (first == 0).sum() > 50 and len(np.unique(first)) > 4
    found = first >= 0
    for name in ("counts_off", "acceptance_off"):
        stack = np.stack([r[name].to_numpy() for r in rings])
        expected = np.take_along_axis(stack, np.maximum(first, 0)[None], 0)[0]
        np.testing.assert_allclose(adaptive[name].to_numpy()[found], expected[found], rtol=1e-12)
        assert (adaptive[name].to_numpy()[~found] == 0).all()
    np.testing.assert_array_equal(adaptive["mask_safe"].to_numpy(), found)
    np.testing.assert_allclose(adaptive["acceptance"].to_numpy(), acceptance.to_numpy())
    assert adaptive["counts_off"].dtype == np.int64
    assert adaptive.attrs["ring_method"] == method


def test_adaptive_ring_found_nowhere():
    result = make_map_adaptive_ring_background(*_flat(_geom()), r_out_max=3.0, threshold_alpha=1e-4, **RING)
    result = result.compute(scheduler="sync")
    assert not result["mask_safe"].values.any()
    for name in ("counts_off", "acceptance_off", "alpha"):
        assert (result[name].values == 0).all()
    assert (result["acceptance"].values == 1).all()


def test_adaptive_ring_without_room_raises():
    with pytest.raises(GpcubeError, match="r_out_max"):
        make_map_adaptive_ring_background(*_flat(_geom()), r_in=1.0, width=0.5, r_out_max=1.5)


# --------------------------------------------------------------------------------------- stacking
def test_combine_ring_sums_known_answers():
    # pixel 0: two observations, alpha 0.1 x 10 OFF and 0.2 x 30 OFF; pixel 1: no OFF counts;
    # pixel 2: nothing at all
    counts_off = np.array([40, 0, 0])
    alpha_counts_off = np.array([0.1 * 10 + 0.2 * 30, 0.0, 0.0])
    acceptance = np.array([3.0, 2.0, 0.0])
    alpha, acceptance_off = combine_ring_sums(counts_off, alpha_counts_off, acceptance)
    np.testing.assert_allclose(alpha, [7 / 40, 7 / 40, 0.0])
    np.testing.assert_allclose(acceptance_off, [3 / (7 / 40), 2 / (7 / 40), 0.0])
    alpha, _ = combine_ring_sums(counts_off, alpha_counts_off, acceptance, average_alpha_value=0.5)
    np.testing.assert_allclose(alpha, [7 / 40, 0.5, 0.0])


def test_combine_ring_sums_in_chunks_with_a_global_average():
    rng = np.random.default_rng(2)
    counts_off = rng.poisson(0.5, (3, 20, 30))
    alpha_counts_off = counts_off * rng.uniform(0.01, 0.2, counts_off.shape)
    acceptance = rng.random(counts_off.shape)
    whole = combine_ring_sums(counts_off, alpha_counts_off, acceptance)
    average = average_alpha(alpha_counts_off, counts_off)
    halves = [
        combine_ring_sums(counts_off[..., s], alpha_counts_off[..., s], acceptance[..., s], average)
        for s in (slice(0, 13), slice(13, None))
    ]
    for index in range(2):
        np.testing.assert_array_equal(np.concatenate([h[index] for h in halves], axis=-1), whole[index])


def test_ring_stack_terms_are_masked():
    geom = _geom()
    safe = np.ones(geom.data_shape("energy_reco"), dtype=bool)
    safe[:, :10] = False
    ring = make_map_ring_background(*_flat(geom), mask_safe=_cube(safe, geom, "mask_safe"), **RING)
    terms = ring_stack_terms(ring).compute(scheduler="sync")
    ring = ring.compute(scheduler="sync")
    mask = ring["mask_safe"].values
    assert terms["counts_off"].dtype == np.int64
    assert (terms["counts_off"].values[~mask] == 0).all() and (terms["acceptance"].values[~mask] == 0).all()
    np.testing.assert_allclose(
        terms["alpha_counts_off"].values[mask], (ring["alpha"] * ring["counts_off"]).values[mask]
    )
