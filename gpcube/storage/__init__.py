"""The archive's storage: zarr I/O and the archive's layout (groups, listing, metadata).

This layer knows zarr and where things live in the archive, nothing of the job's config, the makers or
the estimators (those are in :mod:`gpcube.workflow`, which calls it).
"""
