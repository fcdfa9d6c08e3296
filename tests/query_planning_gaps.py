"""Tests that fail with dask's array query planning on (``DASK_ARRAY__QUERY_PLANNING=True``), for
want of support in dask 2026.8's array expressions or in xarray on top of them (docs/makers.rst,
"Dask's array query planning"). With query planning on, ``tests/conftest.py`` marks them
``xfail(strict=True)``: one that starts to pass fails the run, to be taken off this list.
Measured with ``python tools/ci_variants.py query-planning`` (a name covers its parametrisations).
"""

from __future__ import annotations

#: xarray's reductions, ``where``, ``concat`` of lazy arrays call numpy functions, which dask-expr
#: arrays do not dispatch (``Array.__array_function__`` raises ``NotImplementedError``).
XARRAY_OPS = "xarray reductions/where/concat of a lazy array: dask-expr has no __array_function__"

#: ``{(test file, why): test names}``
GAPS: dict[tuple[str, str], tuple[str, ...]] = {
    ("tests/archive/test_export_archive.py", XARRAY_OPS): (
        "test_a_ring_archive_exports_a_mapdatasetonoff",
        "test_an_observation_of_a_ring_archive_exports_its_ring_products",
        "test_the_observations_masked_counts_sum_to_the_mosaics",
    ),
    ("tests/archive/test_faults.py", XARRAY_OPS): (
        "test_a_reader_during_an_update_sees_the_snapshot_it_opened",
    ),
    ("tests/archive/test_ring_archive.py", XARRAY_OPS): (
        "test_adaptive_ring_job",
        "test_mosaic_ring_is_the_sum_of_the_observations",
        "test_the_ring_groups_are_their_own_branch_of_the_datatree",
    ),
    ("tests/estimators/test_archive_significance.py", XARRAY_OPS): (
        "test_cli_significance_and_fits_export",
        "test_in_memory_and_lazy_maps_are_the_same",
        "test_in_memory_by_size",
        "test_read_group_is_open_archive_loaded",
        "test_ring_maps_default_to_the_rings_bands",
        "test_run_with_a_significance_section_makes_the_maps_and_keeps_them_current",
        "test_significance_group_holds_the_estimator_maps",
    ),
    ("tests/estimators/test_correlate.py", XARRAY_OPS): ("test_dataarray_radius_in_degrees_of_the_geometry",),
    ("tests/estimators/test_excess.py", XARRAY_OPS): (
        "test_lazy_on_dask_and_equal_to_numpy",
        "test_on_an_archive_lazily",
    ),
    ("tests/estimators/test_reco_exposure.py", XARRAY_OPS): (
        "test_lazy_equals_in_memory_and_builds_without_computing",
    ),
    ("tests/storage/test_s3.py", XARRAY_OPS): (
        "test_an_archive_on_s3_with_workers_that_share_only_the_url",
    ),
    ("tests/test_accessor.py", XARRAY_OPS): (
        "test_plot_computes_a_lazy_array_once",
        "test_real_counts_product",
    ),
}


def gap_reason(nodeid: str) -> str | None:
    """Why the test ``nodeid`` is expected to fail with query planning, or None."""
    path, _, name = nodeid.partition("::")
    name = name.split("[")[0]
    for (file, why), names in GAPS.items():
        if path == file and name in names:
            return why
    return None
