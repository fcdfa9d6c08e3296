"""What the archive says of its observations, as the FITS export writes it (GTI, META_TABLE, live time)."""

from __future__ import annotations

import warnings
from collections.abc import Iterable
from pathlib import Path

from gpcube.archive.store import observation_attrs
from gpcube.errors import GpcubeError, GpcubeWarning
from gpcube.io.dataset_meta import ObservationMeta

__all__ = ["observation_meta", "observations_meta"]


def observation_meta(obs_id: int, attrs: dict) -> ObservationMeta:
    """The :class:`~gpcube.io.dataset_meta.ObservationMeta` of an observation group's attributes.

    ``gti`` (stored at reduce time since archive format version 2, see
    :func:`gpcube.archive.reduce.write_observation`) is None for an observation reduced before.
    """
    pointing = attrs.get("pointing_radec") or (float("nan"), float("nan"))
    livetime = attrs.get("livetime") or 0.0
    return ObservationMeta.from_record(obs_id, livetime, pointing, attrs.get("telescope"), attrs.get("gti"))


def observations_meta(archive: str | Path, obs_ids: Iterable[int]) -> list[ObservationMeta]:
    """The :class:`~gpcube.io.dataset_meta.ObservationMeta` of the archive's observations ``obs_ids``.

    Warns (:class:`~gpcube.GpcubeWarning`) when some have no stored GTI: the export then writes no GTI
    table.

    Raises
    ------
    GpcubeError
        If one of them is not a complete observation of the archive.
    """
    obs_ids = [int(i) for i in obs_ids]
    found = observation_attrs(archive, obs_ids)
    missing = [i for i in obs_ids if i not in found]
    if missing:
        raise GpcubeError(f"observations {missing} are not complete in the archive", path=archive)
    out = [observation_meta(i, found[i]) for i in obs_ids]
    without = [obs.obs_id for obs in out if obs.gti is None]
    if without:
        warnings.warn(
            f"{archive}: observations {without} have no stored good time intervals (reduced by an earlier "
            "gpcube): the export has no GTI table",
            GpcubeWarning,
            stacklevel=2,
        )
    return out
