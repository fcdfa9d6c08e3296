"""Safe masks against gammapy 2.1's SafeMaskMaker (default DL4 mode): 4 Crab runs and 11 MSH 15-52 runs.

The reference dataset comes from MapDatasetMaker (exposure, edisp, background) on the validation
geometry. SafeMaskMaker always also masks pixels where the dataset's background is zero or not finite;
the single-method comparisons drop the reference's background to switch that off, the others add
gpcube's ``bkg-invalid`` method.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from gpcube.makers.safe import make_safe_mask
from tests.conftest import CRAB_RUNS, MSH_RUNS
from tests.validation.conftest import run_reference_maker

CASES = [("crab", obs_id) for obs_id in CRAB_RUNS] + [("msh", obs_id) for obs_id in MSH_RUNS]
OFFSET_MAX = 2.5
SINGLE = ("offset-max", "aeff-default", "aeff-max", "edisp-bias")
COMBINED = ("offset-max", "aeff-default", "aeff-max", "edisp-bias", "bkg-peak")


def _reference_mask(dataset, observation, methods, keep_background):
    from gammapy.makers import SafeMaskMaker

    dataset = dataset.copy()
    if not keep_background:
        dataset.background = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        maker = SafeMaskMaker(methods=list(methods), offset_max=f"{OFFSET_MAX} deg")
        return maker.run(dataset, observation).mask_safe.data


@pytest.mark.parametrize(("field", "obs_id"), CASES)
def test_safe_mask_matches_reference(hess_store, reference_store, crab_geoms, msh_geoms, field, obs_id):
    geoms = crab_geoms if field == "crab" else msh_geoms
    dataset = run_reference_maker(reference_store, geoms, obs_id, ["exposure", "edisp", "background"])
    ref_obs, obs = reference_store.obs(obs_id), hess_store.observation(obs_id)
    cases = [((m,), (m,), False) for m in SINGLE]
    cases += [(("bkg-peak",), ("bkg-peak", "bkg-invalid"), True)]
    cases += [(COMBINED, (*COMBINED, "bkg-invalid"), True)]
    for ref_methods, methods, keep_background in cases:
        reference = _reference_mask(dataset, ref_obs, ref_methods, keep_background)
        ours = make_safe_mask(obs, geoms[0], methods=methods, offset_max=OFFSET_MAX, chunk=128)
        ours = ours.compute(scheduler="sync").values
        assert ours.dtype == bool and ours.shape == reference.shape
        assert ours.any(), methods
        np.testing.assert_array_equal(ours, reference, err_msg=str(methods))
    assert not ours[0].any() and ours[-1].any()  # combined: the lowest bin is below every threshold
