"""The mosaic: a deterministic, chunk-by-chunk sum of the archive's cutouts."""

from gpcube.workflow.mosaic.build import build_mosaic
from gpcube.workflow.mosaic.sum import irf_chunk, overlap, sky_chunk

__all__ = ["build_mosaic", "irf_chunk", "overlap", "sky_chunk"]
