"""Estimators on mosaics: top-hat correlation, Li & Ma / Cash significance, excess and flux maps."""

from gpcube.estimators.correlate import correlate, correlate_array, tophat_kernel
from gpcube.estimators.excess import estimate_excess_map
from gpcube.estimators.stats import cash_significance, li_ma_significance

__all__ = [
    "cash_significance",
    "correlate",
    "correlate_array",
    "estimate_excess_map",
    "li_ma_significance",
    "tophat_kernel",
]
