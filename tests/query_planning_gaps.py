"""Tests that fail with dask's array query planning on (``DASK_ARRAY__QUERY_PLANNING=True``), for
want of support in dask 2026.8's array expressions or in xarray on top of them (docs/makers.rst,
"Dask's array query planning"). With query planning on, ``tests/conftest.py`` marks them
``xfail(strict=True)``: one that starts to pass fails the run, to be taken off this list.
Measured with ``python tools/ci_variants.py query-planning`` (a name covers its parametrisations).
"""

from __future__ import annotations

#: A job with IRF products and the FoV background: dask-expr leaves a rechunk of the IRF safe mask
#: times fov_norm_ok unlowered ("'Rechunk' object has no attribute 'npartitions'").
FOV_IRF = "the archive fixture: psf/edisp with the FoV background, a rechunk dask-expr does not lower"

#: ``{(test file, why): test names}``
GAPS: dict[tuple[str, str], tuple[str, ...]] = {
    ("tests/archive/test_stacking.py", FOV_IRF): (
        "test_an_archive_of_format_version_1_is_refused_with_the_reason",
        "test_stacked_predicted_counts_are_the_sum_of_the_observations",
        "test_stacked_psf_is_exact_for_counts_summed_over_reco_energy",
        "test_the_kernel_of_a_bin_is_averaged_over_the_observations_safe_in_it",
        "test_thresholds_fall_inside_reco_bins",
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
