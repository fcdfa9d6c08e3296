"""Ring and adaptive-ring background against gammapy 2.1: 4 Crab runs and 11 MSH 15-52 runs.

Per run, the reference dataset is ``MapDatasetMaker`` (counts, background) + ``SafeMaskMaker``
(offset-max 2.5 deg) on the cutout (``MapDataset.cutout``, 2 x offset-max wide, trimmed) of the
validation geometry (5 x 5 deg, 0.02 deg, 10 reco bins); gpcube's counts, background and safe mask
are made on the same pixels (the parent grid sliced like the reference cutout) and fed to gpcube's
ring makers. Compared, per run: the integrated band (``to_image()``), every bin (the dataset with
its safe mask applied: ``resample_energy_axis`` onto its own axis) and the adaptive ring on the
integrated band (both methods on the Crab runs, "fixed_width" on the MSH 15-52 runs, for time);
and the stacks over each field (gpcube: numpy sums of :func:`ring_stack_terms` and
:func:`combine_ring_sums`; gammapy: ``MapDatasetOnOff.stack``).

The reference's counts are made from the events' coordinates cast to float64 (gammapy converts
the float32 RA/DEC columns to galactic in float32, which moves a few events to a neighbouring
pixel; see test_survey_reference.py): then counts are identical and so must the OFF counts be.

The reference convolves by FFT and stores float32: its OFF counts are integers up to round-off
(below 1e-3), and where they should be 0 in sparse high-energy bins a few 1e-15 remain. Its
stack tests ``counts_off == 0`` for the average-alpha case, so on those pixels its stacked alpha
is noise over noise; they are left out of the per-bin stack comparison (and counted).
"""

from __future__ import annotations

import warnings

import dask
import numpy as np
import pytest
from astropy import units as u

from gpcube.makers import (
    combine_ring_sums,
    exclusion_mask_from_circles,
    make_map_adaptive_ring_background,
    make_map_background,
    make_map_counts,
    make_map_ring_background,
    make_safe_mask,
    ring_stack_terms,
)
from tests.conftest import CRAB_RUNS, MSH_RUNS
from tests.validation.conftest import CRAB_CENTER

OFFSET_MAX = 2.5
RING = {"r_in": 0.5, "width": 0.3}
# a small first ring and a low threshold, so that rings grow near the exclusion and the edges
ADAPTIVE = {"r_in": 0.3, "width": 0.1, "r_out_max": 1.0, "stepsize": 0.04, "threshold_alpha": 2.5e-3}
FIELDS = {
    "crab": {"runs": CRAB_RUNS, "exclusion": (*CRAB_CENTER, 0.3), "methods": ("fixed_width", "fixed_r_in")},
    # HESS J1514-591 (MSH 15-52), about 0.2 deg across, and RCW 89 0.2 deg north of it
    "msh": {"runs": MSH_RUNS, "exclusion": (320.33, -1.19, 0.4), "methods": ("fixed_width",)},
}
CASES = [
    (f, p)
    for f, setup in FIELDS.items()
    for p in ("image", "bins", *(f"adaptive-{m}" for m in setup["methods"]))
]
RTOL = 1e-3


# ------------------------------------------------------------------------------------- reference
def _float64_events(observation):
    """The observation's events with RA and DEC cast to float64 (see test_survey_reference.py)."""
    from types import SimpleNamespace

    from gammapy.data import EventList

    table = observation.events.table.copy()
    for name in ("RA", "DEC"):
        table[name] = table[name].astype(np.float64)
    return SimpleNamespace(events=EventList(table))


def _reference_run(reference_store, ref_geom, obs_id, exclusion, methods):
    """gammapy's on-off datasets of one run, and the run's cutout slices in the parent grid."""
    from gammapy.datasets import MapDataset
    from gammapy.makers import (
        AdaptiveRingBackgroundMaker,
        MapDatasetMaker,
        RingBackgroundMaker,
        SafeMaskMaker,
    )

    observation = reference_store.obs(obs_id)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        position = observation.get_pointing_icrs(observation.tmid)
        cutout = MapDataset.create(ref_geom).cutout(position, width=2 * OFFSET_MAX * u.deg)
        maker = MapDatasetMaker(selection=["counts", "background"])
        dataset = maker.run(cutout, observation)
        dataset.counts = maker.make_counts(dataset.counts.geom, _float64_events(observation))
        dataset = SafeMaskMaker(methods=["offset-max"], offset_max=f"{OFFSET_MAX} deg").run(
            dataset, observation
        )
        image = dataset.to_image()
        masked = dataset.resample_energy_axis(dataset.counts.geom.axes["energy"])
        ring = RingBackgroundMaker(**{k: f"{v} deg" for k, v in RING.items()}, exclusion_mask=exclusion)
        result = {"image": ring.run(image), "bins": ring.run(masked)}
        angles = {k: (f"{v} deg" if k != "threshold_alpha" else v) for k, v in ADAPTIVE.items()}
        for method in methods:
            maker = AdaptiveRingBackgroundMaker(**angles, method=method, exclusion_mask=exclusion)
            result[f"adaptive-{method}"] = maker.run(image)
    dx, dy = np.round(ref_geom.wcs.wcs.crpix - dataset.counts.geom.wcs.wcs.crpix).astype(int)
    ny, nx = dataset.counts.geom.data_shape[1:]
    return result, (slice(dy, dy + ny), slice(dx, dx + nx))


def _ours_run(hess_store, geom, obs_id, slices, exclusion, methods):
    """gpcube's ring products of one run on the reference cutout's pixels, computed."""
    observation, cutout = hess_store.observation(obs_id), geom.slice(slices)
    counts = make_map_counts(observation, cutout)
    # "auto" reads the H.E.S.S. DR1 bkg_3d tables the way the reference does ("hess-dr1")
    background = make_map_background(observation, cutout, orientation="auto")
    safe = make_safe_mask(observation, cutout, methods=["offset-max"], offset_max=OFFSET_MAX)
    options = {"exclusion": exclusion, "mask_safe": safe}
    band = [float(geom.axis("energy_reco").edges[0]), float(geom.axis("energy_reco").edges[-1])]
    result = {
        "image": make_map_ring_background(counts, background, energy_edges=band, **RING, **options),
        "bins": make_map_ring_background(counts, background, **RING, **options),
    }
    for method in methods:
        result[f"adaptive-{method}"] = make_map_adaptive_ring_background(
            counts, background, method=method, energy_edges=band, **ADAPTIVE, **options
        )
    first = {"r_in": ADAPTIVE["r_in"], "width": ADAPTIVE["width"]}
    result["first"] = make_map_ring_background(counts, background, energy_edges=band, **first, **options)
    computed = dask.compute(*result.values(), scheduler="sync")  # counts and background made once
    return dict(zip(result, computed, strict=True))


# -------------------------------------------------------------------------------------- compare
def _max_rel(ours, ref):
    return float(np.max(np.abs(ours - ref) / np.abs(ref), initial=0.0))


def _compare(ours, ref) -> dict:
    """Differences between gpcube's ring product and gammapy's on-off dataset of one run."""
    ref_off = ref.counts_off.data
    ref_mask = ref.mask_safe.data & np.isfinite(ref_off)  # the adaptive reference leaves NaN
    mask = ours["mask_safe"].values
    both = mask & ref_mask
    return {
        "mask_differs": int((mask != ref_mask).sum()),
        "pixels": int(both.sum()),
        "off_not_integer": float(np.abs(ref_off - np.rint(ref_off))[both].max()),
        "off_differs": int((ours["counts_off"].values != np.rint(ref_off))[both].sum()),
        "alpha": _max_rel(ours["alpha"].values[both], ref.alpha.data[both]),
        "acceptance_off": _max_rel(ours["acceptance_off"].values[both], ref.acceptance_off.data[both]),
        "acceptance": _max_rel(ours["acceptance"].values[both], ref.acceptance.data[both]),
        "dtype": ours["counts_off"].dtype,
    }


def _grown(adaptive, first) -> int:
    """Usable pixels of the adaptive ring product whose ring is not the first (smallest) one."""
    mask = adaptive["mask_safe"].values
    changed = ~np.isclose(
        adaptive["acceptance_off"].values, first["acceptance_off"].values, rtol=1e-9, atol=0
    )
    return int((mask & changed).sum())


def _empty_stack(ref_geom, image):
    from gammapy.datasets import MapDatasetOnOff

    geom = ref_geom.squash("energy") if image else ref_geom
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MapDatasetOnOff.create(geom)


def _run_field(name, hess_store, reference_store, geoms):
    """Per-run comparisons and the stacks (ours as sums, gammapy's as MapDatasetOnOff) of a field."""
    from astropy.coordinates import SkyCoord
    from regions import CircleSkyRegion

    ours_geom, ref_geom, _ = geoms
    setup = FIELDS[name]
    lon, lat, radius = setup["exclusion"]
    region = CircleSkyRegion(SkyCoord(lon, lat, unit="deg", frame=ours_geom.frame), radius * u.deg)
    ref_exclusion = ~ref_geom.to_image().region_mask([region])
    exclusion = exclusion_mask_from_circles(ours_geom, [(lon, lat, radius)])
    assert np.array_equal(exclusion.values, ref_exclusion.data)
    products = ("image", "bins", *(f"adaptive-{m}" for m in setup["methods"]))
    stacks = {p: _empty_stack(ref_geom, p != "bins") for p in products}
    sums = {p: None for p in products}
    runs = {}
    for obs_id in setup["runs"]:
        ref, slices = _reference_run(reference_store, ref_geom, obs_id, ref_exclusion, setup["methods"])
        ours = _ours_run(hess_store, ours_geom, obs_id, slices, exclusion, setup["methods"])
        runs[obs_id] = {p: _compare(ours[p], ref[p]) for p in products}
        for method in setup["methods"]:
            runs[obs_id][f"adaptive-{method}"]["grown"] = _grown(ours[f"adaptive-{method}"], ours["first"])
        for product in products:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                stacks[product].stack(ref[product])
            sums[product] = _add_terms(sums[product], ours[product], ref_geom, slices)
    return {"runs": runs, "stacks": stacks, "sums": sums}


def _add_terms(total, ring, ref_geom, slices):
    terms = ring_stack_terms(ring)
    if total is None:
        shape = (ring.sizes["energy_band"], *ref_geom.data_shape[1:])
        total = {k: np.zeros(shape, dtype=terms[k].dtype) for k in terms.data_vars}
    for key in total:
        total[key][(slice(None), *slices)] += terms[key].values
    return total


@pytest.fixture(scope="module")
def fields(hess_store, reference_store, crab_geoms, msh_geoms):
    """Each field's comparisons, computed once on first use."""
    cache = {}
    geoms = {"crab": crab_geoms, "msh": msh_geoms}

    def get(name):
        if name not in cache:
            cache[name] = _run_field(name, hess_store, reference_store, geoms[name])
        return cache[name]

    return get


# ----------------------------------------------------------------------------------------- tests
@pytest.mark.parametrize(("field", "product"), CASES)
def test_per_run_matches_reference(fields, field, product):
    """Every run: the same usable pixels, the same OFF counts, alpha and OFF acceptance within 1e-3."""
    runs = fields(field)["runs"]
    for obs_id, comparisons in runs.items():
        c = comparisons[product]
        assert c["dtype"] == np.int64
        assert c["mask_differs"] == 0, obs_id
        assert c["pixels"] > 30_000, obs_id
        assert c["off_not_integer"] < 1e-3, obs_id
        assert c["off_differs"] == 0, obs_id
        for key in ("alpha", "acceptance_off", "acceptance"):
            assert c[key] < RTOL, (obs_id, key, c[key])
    worst = {k: max(c[product][k] for c in runs.values()) for k in ("alpha", "acceptance_off", "acceptance")}
    print(f"\n{field} {product}: {len(runs)} runs, OFF counts identical, max rel. diffs {worst}")


def test_adaptive_rings_grow(fields):
    """The adaptive setup is not trivial: in every run many pixels take a larger ring than the first."""
    fractions = []
    for field in FIELDS:
        for obs_id, comparisons in fields(field)["runs"].items():
            for method in FIELDS[field]["methods"]:
                c = comparisons[f"adaptive-{method}"]
                assert c["grown"] > 0.05 * c["pixels"], (field, obs_id, method)
                fractions.append(c["grown"] / c["pixels"])
    share = f"{min(fractions):.0%} to {max(fractions):.0%}"
    print(f"\nadaptive rings: in each run {share} of the usable pixels use a larger ring than the first")


@pytest.mark.parametrize(("field", "product"), CASES)
def test_stack_matches_reference(fields, field, product):
    """Σ OFF counts identical; stacked acceptance, alpha and OFF acceptance within 1e-3."""
    sums, stacked = fields(field)["sums"][product], fields(field)["stacks"][product]
    alpha, acceptance_off = combine_ring_sums(
        sums["counts_off"], sums["alpha_counts_off"], sums["acceptance"]
    )
    ref_off = stacked.counts_off.data
    noise = (ref_off != 0) & (np.abs(ref_off) < 0.5)
    assert noise.sum() < 0.05 * noise.size
    assert np.abs(ref_off - np.rint(ref_off)).max() < 1e-3
    np.testing.assert_array_equal(sums["counts_off"][~noise], np.rint(ref_off[~noise]))
    assert sums["counts_off"][noise].max(initial=0) == 0
    usable = (stacked.acceptance.data > 0) & ~noise
    assert usable.sum() > 50_000
    np.testing.assert_allclose(sums["acceptance"], stacked.acceptance.data, rtol=RTOL, atol=0)
    np.testing.assert_allclose(alpha[usable], stacked.alpha.data[usable], rtol=RTOL)
    np.testing.assert_allclose(acceptance_off[usable], stacked.acceptance_off.data[usable], rtol=RTOL)
    assert (alpha[~usable & ~noise] == 0).all()
    diffs = {
        "alpha": _max_rel(alpha[usable], stacked.alpha.data[usable]),
        "acceptance_off": _max_rel(acceptance_off[usable], stacked.acceptance_off.data[usable]),
    }
    print(f"\n{field} {product} stack: OFF counts identical, max rel. diffs {diffs}, "
          f"{int(noise.sum())} reference noise pixels left out")  # fmt: skip
