"""Field-of-view coordinates: where each sky pixel sits in the camera's frame.

Background models are tabulated in field-of-view (FoV) coordinates centred on the pointing. For a
``RADEC`` alignment the FoV frame is the pointing's offset frame in ICRS: one axis along east (+RA),
one along north (+Dec). For ``ALTAZ`` it is the offset frame in horizontal coordinates (along +alt
and +az), which turns on the sky during an observation by the change of the parallactic angle.

Which signed sky direction each axis of a model table runs along is the *orientation*
(:data:`ORIENTATIONS`). The H.E.S.S. DL3 DR1 tables are ambiguous here; see the background maker's
documentation for the evidence behind the presets.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from gpcube.errors import GpcubeError
from gpcube.makers.registry import ORIENTATIONS  # the named orientations, defined with the other choices

__all__ = [
    "HESS_DR1_EXPORTERS",
    "ORIENTATIONS",
    "auto_orientation",
    "offset_frame_matrix",
    "offset_frame_vectors",
    "oriented_fov_coords",
    "resolve_orientation",
]

#: Events-header (CREATOR, HDUVERS) of the exporters whose tables use the "hess-dr1" orientation.
HESS_DR1_EXPORTERS = {("SASH FITS::EventListWriter", "0.2")}

_DIRECTIONS = {"+lon", "-lon", "+lat", "-lat"}


def auto_orientation(events_attrs: Mapping) -> str:
    """The preset for an observation: "hess-dr1" for the old H.E.S.S. exporter, else "gadf"."""
    key = (str(events_attrs.get("creator", "")).strip(), str(events_attrs.get("hduvers", "")).strip())
    return "hess-dr1" if key in HESS_DR1_EXPORTERS else "gadf"


def resolve_orientation(orientation: str | Mapping[str, str]) -> dict[str, str] | str:
    """The mapping ``{table dim: signed direction}`` of a preset name or an explicit mapping.

    ``"auto"`` is returned as is: it is resolved per observation by :func:`auto_orientation`.
    """
    if isinstance(orientation, str):
        if orientation == "auto":
            return orientation
        if orientation not in ORIENTATIONS:
            raise GpcubeError(
                f"unknown background orientation {orientation!r}; use 'auto', one of "
                f"{sorted(ORIENTATIONS)} or a mapping such as {{'fov_lon': '-lon', 'fov_lat': '+lat'}}"
            )
        return dict(ORIENTATIONS[orientation])
    mapping = dict(orientation)
    directions = sorted(str(v).lstrip("+-") for v in mapping.values())
    if (
        set(mapping) != {"fov_lon", "fov_lat"}
        or not set(mapping.values()) <= _DIRECTIONS
        or directions
        != [
            "lat",
            "lon",
        ]
    ):
        raise GpcubeError(
            f"orientation {orientation!r} must map 'fov_lon' and 'fov_lat' to one of "
            "'+lon'/'-lon' and one of '+lat'/'-lat'"
        )
    return mapping


def _unit_vectors(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
    lon, lat = np.deg2rad(lon), np.deg2rad(lat)
    cos_lat = np.cos(lat)
    return np.stack([cos_lat * np.cos(lon), cos_lat * np.sin(lon), np.sin(lat)])


def offset_frame_matrix(lon0: float, lat0: float) -> np.ndarray:
    """3 x 3 rotation from unit vectors of a frame to the offset frame of ``(lon0, lat0)`` (deg).

    In the offset frame, component 0 points towards the centre, 1 along +lon and 2 along +lat.
    """
    a, d = np.deg2rad(lon0), np.deg2rad(lat0)
    rz = np.array([[np.cos(a), np.sin(a), 0.0], [-np.sin(a), np.cos(a), 0.0], [0.0, 0.0, 1.0]])
    ry = np.array([[np.cos(d), 0.0, np.sin(d)], [0.0, 1.0, 0.0], [-np.sin(d), 0.0, np.cos(d)]])
    return ry @ rz


def offset_frame_vectors(lon: np.ndarray, lat: np.ndarray, lon0: float, lat0: float) -> np.ndarray:
    """Unit vectors of points in the offset frame of ``(lon0, lat0)`` (all deg, one frame).

    Returns ``(3, *shape)``: component 0 towards the centre, 1 along +lon, 2 along +lat.
    """
    vectors = _unit_vectors(np.asarray(lon, float), np.asarray(lat, float))
    return np.tensordot(offset_frame_matrix(lon0, lat0), vectors, axes=1)


def oriented_fov_coords(
    vectors: np.ndarray, orientation: Mapping[str, str], rotation: np.ndarray | None = None
) -> dict[str, np.ndarray]:
    """Table coordinates (deg) of offset-frame ``vectors`` for an orientation.

    ``rotation`` (2 x 2, orthogonal) maps the (lon, lat) components of the sky offset frame onto
    those of the FoV frame (ALTAZ alignment at one instant); None for RADEC alignment.
    """
    x, y, z = vectors
    if rotation is not None:
        y, z = rotation[0, 0] * y + rotation[0, 1] * z, rotation[1, 0] * y + rotation[1, 1] * z
    lon = np.rad2deg(np.arctan2(y, x))
    lat = np.rad2deg(np.arcsin(np.clip(z, -1.0, 1.0)))
    base = {"lon": lon, "lat": lat}
    return {dim: (-1.0 if d[0] == "-" else 1.0) * base[d[1:]] for dim, d in orientation.items()}
