"""Instrument response functions: evaluation at arbitrary points (reading is in :mod:`gpcube.io`)."""

from gpcube.irf.evaluate import evaluate, psf_3gauss_profile, psf_king_profile
from gpcube.irf.interp import interp_nodes

__all__ = ["evaluate", "interp_nodes", "psf_3gauss_profile", "psf_king_profile"]
