"""`SkyGeom`: a WCS pixel grid (CAR or TAN, icrs or galactic) plus energy axes."""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError
from gpcube.geom import _projection as proj
from gpcube.geom._util import _int_pair, _pair, _wrap360, skycoord_to_lonlat
from gpcube.geom.axes import EnergyAxis
from gpcube.geom.cutout import cutout as _cutout

if TYPE_CHECKING:
    from astropy.coordinates import SkyCoord
    from astropy.wcs import WCS

__all__ = ["FRAMES", "IRF_DIMS", "PROJECTIONS", "SKY_DIMS", "SkyGeom", "pixel_dims", "remember_header"]

FRAMES = ("icrs", "galactic")
PROJECTIONS = ("CAR", "TAN")
_CTYPES = {"icrs": ("RA---", "DEC--"), "galactic": ("GLON-", "GLAT-")}
ATTRS_KIND = "gpcube.SkyGeom"
#: 2: ``dims`` (the pixel dims' names) in the attrs; version 1 grids had dims ``("lat", "lon")``.
ATTRS_VERSION = 2
#: Pixel dims ``(row, column)`` of the sky (mosaic) grid and of the coarse IRF grid
#: (:meth:`SkyGeom.to_binsz`): distinct names, so that products of both grids fit in one Dataset or
#: DataTree. The world coordinates of a grid with dims ``(P + "y", P + "x")`` are ``P + "lon"`` and
#: ``P + "lat"`` (:func:`gpcube.geom.world.world_coords`).
SKY_DIMS = ("y", "x")
IRF_DIMS = ("irf_y", "irf_x")


@dataclass(frozen=True)
class SkyGeom:
    """A sky pixel grid in a celestial WCS (CAR or TAN) with optional energy axes. Immutable.

    Prefer :meth:`create`; the constructor takes the FITS-like description directly.

    Parameters
    ----------
    frame : {"icrs", "galactic"}
        Celestial frame.
    projection : {"CAR", "TAN"}
        FITS projection code.
    crval : tuple of float
        (lon, lat) in deg of the projection's reference point. The longitude is wrapped to [0, 360).
    binsz : float
        Pixel size in deg (square pixels: ``CDELT1 = -binsz``, ``CDELT2 = +binsz``).
    npix : tuple of int
        (nx, ny): number of pixels along longitude (x) and latitude (y); zero for an empty cutout.
    crpix : tuple of float
        1-based FITS pixel coordinates of the reference point in this grid.
    origin : tuple of int
        (ix0, iy0): index of this grid's first pixel in the parent grid; (0, 0) for a parent.
    axes : tuple of EnergyAxis
        Energy axes, distinct names; may be empty.
    dims : tuple of str
        Names of the pixel dims ``(row, column)``, of the form ``(P + "y", P + "x")``: :data:`SKY_DIMS`
        (the default) or :data:`IRF_DIMS` (the coarse IRF grid).

    See Also
    --------
    SkyGeom.create : A parent grid from its centre, pixel size and width.
    gpcube.geom.cutout : The sub-grid around a circle, on the same pixels.
    EnergyAxis : The energy axes.

    Examples
    --------
    A 5 x 5 deg grid of 0.02 deg pixels around the Crab Nebula, with a reconstructed-energy axis:

    >>> from gpcube.geom import EnergyAxis, SkyGeom
    >>> axis = EnergyAxis.log(0.5, 50, 10, "energy_reco")
    >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.02, width=5.0, axes=[axis])
    >>> geom
    SkyGeom(icrs CAR, npix=(250, 250), binsz=0.02 deg, crval=(83.633, 22.014), origin=(0, 0),
            axes=[energy_reco[10]])
    >>> geom.data_shape("energy_reco")  # (nE, ny, nx): the shape of a counts cube
    (10, 250, 250)
    >>> geom.header["CTYPE1"], geom.header["CDELT1"]
    ('RA---CAR', -0.02)
    """

    frame: str
    projection: str
    crval: tuple[float, float]
    binsz: float
    npix: tuple[int, int]
    crpix: tuple[float, float]
    origin: tuple[int, int] = (0, 0)
    axes: tuple[EnergyAxis, ...] = ()
    dims: tuple[str, str] = SKY_DIMS

    def __post_init__(self) -> None:
        if self.frame not in FRAMES:
            raise GpcubeError(f"frame must be 'icrs' or 'galactic', got {self.frame!r}")
        if self.projection not in PROJECTIONS:
            raise GpcubeError(f"projection must be 'CAR' or 'TAN', got {self.projection!r}")
        lon, lat = _pair(self.crval, "crval")
        if abs(lat) > 90.0:
            raise GpcubeError(f"crval latitude must be within [-90, 90] deg, got {lat!r}")
        binsz = self.binsz
        if isinstance(binsz, bool) or not isinstance(binsz, int | float | np.number) or not 0 < binsz < 180:
            raise GpcubeError(f"binsz must be a number of deg in (0, 180), got {binsz!r}")
        axes = tuple(self.axes)
        if not all(isinstance(a, EnergyAxis) for a in axes) or len({a.name for a in axes}) != len(axes):
            raise GpcubeError(f"axes must be EnergyAxis objects with distinct names, got {self.axes!r}")
        for field, value in [
            ("crval", (_wrap360(lon), lat + 0.0)),
            ("binsz", float(binsz)),
            ("npix", _int_pair(self.npix, "npix", 0)),
            ("crpix", _pair(self.crpix, "crpix")),
            ("origin", _int_pair(self.origin, "origin", None)),
            ("axes", axes),
            ("dims", _pixel_dims(self.dims)),
        ]:
            object.__setattr__(self, field, value)

    def __dask_tokenize__(self) -> tuple:
        """Identity for dask keys: every field (cheaper than dask walking the dataclass)."""
        axes = tuple(ax.__dask_tokenize__() for ax in self.axes)
        return ("gpcube.SkyGeom", self.frame, self.projection, self.crval, self.binsz, self.npix,
                self.crpix, self.origin, axes, self.dims)  # fmt: skip

    # ----------------------------------------------------------------------------------------- creation
    @classmethod
    def create(
        cls,
        center: Any,
        binsz: float,
        width: Any = None,
        npix: Any = None,
        frame: str = "icrs",
        projection: str = "CAR",
        axes: Sequence[EnergyAxis] = (),
    ) -> SkyGeom:
        """A parent grid centred on ``center``, which is also the projection's reference point.

        Parameters
        ----------
        center : tuple of float or astropy.coordinates.SkyCoord
            (lon, lat) in deg in ``frame``, or a SkyCoord (transformed to ``frame``).
        binsz : float
            Pixel size in deg.
        width : float or tuple of float, optional
            (w_lon, w_lat) in deg, or one value for both. ``npix = floor(width / binsz + 0.5)`` per axis
            (round half up, with a 1e-9 tolerance against float noise: 32.85 / 0.02 = 1642.5 gives 1643),
            and at least 1.
        npix : int or tuple of int, optional
            (nx, ny) directly. Give exactly one of ``width`` and ``npix``.
        frame : {"icrs", "galactic"}
        projection : {"CAR", "TAN"}
        axes : sequence of EnergyAxis

        Returns
        -------
        SkyGeom
            With ``crpix = ((nx + 1) / 2, (ny + 1) / 2)``: the centre is exactly the image centre, on a
            pixel corner or edge when a pixel count is even.

        Raises
        ------
        GpcubeError
            For a bad frame, pixel size or width, or unless exactly one of ``width`` and ``npix`` is given.

        See Also
        --------
        SkyGeom.to_binsz : The same field with another pixel size.
        gpcube.geom.cutout : The sub-grid around a circle.

        Examples
        --------
        >>> from gpcube.geom import SkyGeom
        >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.02, width=5.0)
        >>> geom.npix, geom.crpix
        ((250, 250), (125.5, 125.5))
        >>> geom.center
        (83.633, 22.014)

        A galactic TAN grid given by its pixel counts (nx, ny), centred on a SkyCoord:

        >>> from astropy.coordinates import SkyCoord
        >>> center = SkyCoord(0, 0, unit="deg", frame="galactic")
        >>> SkyGeom.create(center, binsz=0.1, npix=(40, 20), frame="galactic", projection="TAN").shape
        (20, 40)
        """
        if frame not in FRAMES:
            raise GpcubeError(f"frame must be 'icrs' or 'galactic', got {frame!r}")
        if hasattr(center, "transform_to"):
            if not center.isscalar:
                raise GpcubeError("center must be a scalar SkyCoord")
            center = tuple(float(v) for v in skycoord_to_lonlat(center, frame))
        if isinstance(binsz, bool) or not isinstance(binsz, int | float | np.number) or not 0 < binsz < 180:
            raise GpcubeError(f"binsz must be a number of deg in (0, 180), got {binsz!r}")
        if (width is None) == (npix is None):
            raise GpcubeError("give exactly one of width and npix")
        if width is not None:
            widths = _pair(width, "width")
            if min(widths) <= 0:
                raise GpcubeError(f"width must be positive, got {width!r}")
            npix = tuple(max(1, math.floor(w / binsz + 0.5 + 1e-9)) for w in widths)
        nx, ny = _int_pair(npix, "npix", 1)
        return cls(
            frame,
            projection,
            _pair(center, "center"),
            binsz,
            (nx, ny),
            ((nx + 1) / 2, (ny + 1) / 2),
            (0, 0),
            tuple(axes),
        )

    # ------------------------------------------------------------------------------------- properties
    @property
    def shape(self) -> tuple[int, int]:
        """Sky shape ``(ny, nx)``, the order of the pixel dims :attr:`dims` (``("y", "x")``)."""
        return self.npix[1], self.npix[0]

    def data_shape(self, axis_name: str | None = None) -> tuple[int, ...]:
        """``(ny, nx)``, or ``(nE, ny, nx)`` for the energy axis ``axis_name``."""
        return self.shape if axis_name is None else (self.axis(axis_name).nbins, *self.shape)

    @property
    def center(self) -> tuple[float, float]:
        """(lon, lat) in deg of the image centre (not necessarily the reference point of a cutout)."""
        lon, lat = self.pix_to_world((self.npix[0] - 1) / 2, (self.npix[1] - 1) / 2)
        return float(lon), float(lat)

    def axis(self, name: str) -> EnergyAxis:
        """The energy axis called ``name``."""
        for ax in self.axes:
            if ax.name == name:
                return ax
        raise GpcubeError(f"no energy axis {name!r} in this geometry (axes: {[a.name for a in self.axes]})")

    def with_axes(self, *axes: EnergyAxis) -> SkyGeom:
        """The same sky grid with ``axes`` as its energy axes (replacing the current ones)."""
        return dataclasses.replace(self, axes=tuple(axes))

    def with_dims(self, dims: tuple[str, str]) -> SkyGeom:
        """The same grid with pixel dims ``dims`` (e.g. :data:`IRF_DIMS`)."""
        return dataclasses.replace(self, dims=tuple(dims))

    @property
    def world_names(self) -> tuple[str, str]:
        """Names of the world coordinates ``(lon, lat)``: ``P + "lon"``, ``P + "lat"`` for dims
        ``(P + "y", P + "x")``, so ``("lon", "lat")`` on the sky grid, ``("irf_lon", "irf_lat")`` on
        the coarse IRF grid."""
        prefix = self.dims[1][:-1]
        return prefix + "lon", prefix + "lat"

    def to_binsz(self, binsz: float, dims: tuple[str, str] = IRF_DIMS) -> SkyGeom:
        """A parent grid of pixel size ``binsz`` with the same centre, frame, projection and axes.

        Used for the coarse IRF grids (PSF and edisp kernel maps): every observation derives the same
        coarse parent grid from the mosaic geometry, so their coarse cutouts sum like the fine ones.

        Parameters
        ----------
        binsz : float
            Pixel size of the new grid in deg.
        dims : tuple of str
            Its pixel dims: by default :data:`IRF_DIMS` (``("irf_y", "irf_x")``), the coarse IRF
            grid's own names, so that its products and the sky grid's sit in one Dataset or DataTree.

        Returns
        -------
        SkyGeom
            Centred on this grid's :attr:`center`, with ``crpix = ((nx + 1) / 2, (ny + 1) / 2)`` and
            ``npix = rint(self.npix * self.binsz / binsz)`` per axis (at least 1): the width divided by
            the new pixel size, rounded half to even (:func:`numpy.rint`), the grid Gammapy's
            ``WcsGeom.to_binsz`` makes of the same grid, so that exported IRF maps line up with the
            reference's. A width of 102.5 coarse pixels gives 102 of them, 103.5 gives 104.

        See Also
        --------
        create : rounds a width half up instead (a grid that a config describes).

        Examples
        --------
        >>> from gpcube.geom import SkyGeom
        >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.02, width=5.0)
        >>> coarse = geom.to_binsz(0.1)
        >>> coarse.npix, coarse.center
        ((50, 50), (83.633, 22.014))
        """
        return _to_binsz(self, float(binsz), tuple(dims))

    # ------------------------------------------------------------------------------------------- WCS
    @property
    def wcs(self) -> WCS:
        """A new 2-D celestial :class:`astropy.wcs.WCS` for this grid (LONPOLE/LATPOLE left to defaults)."""
        from astropy.wcs import WCS

        wcs = WCS(naxis=2)
        lon_type, lat_type = _CTYPES[self.frame]
        wcs.wcs.ctype = [lon_type + self.projection, lat_type + self.projection]
        wcs.wcs.crval = list(self.crval)
        wcs.wcs.crpix = list(self.crpix)
        wcs.wcs.cdelt = [-self.binsz, self.binsz]
        wcs.wcs.cunit = ["deg", "deg"]
        if self.frame == "icrs":
            wcs.wcs.radesys = "ICRS"
        wcs.pixel_shape = self.npix
        wcs.wcs.set()
        return wcs

    @property
    def header(self) -> dict[str, Any]:
        """The WCS header as a plain dict of JSON-able values, with NAXIS1 and NAXIS2 (a new dict)."""
        return dict(self._header)

    @cached_property
    def _header(self) -> dict[str, Any]:
        # astropy's WCS.to_header takes ~2 ms and every lazy product stores the header in its attrs;
        # cutouts of one grid differ only in CRPIX and NAXIS, so astropy runs once per grid.
        out: dict[str, Any] = {"NAXIS": 2, "NAXIS1": self.npix[0], "NAXIS2": self.npix[1]}
        out.update(_header_template(self.frame, self.projection, self.crval, self.binsz))
        out["CRPIX1"], out["CRPIX2"] = float(self.crpix[0]), float(self.crpix[1])
        return out

    # --------------------------------------------------------------------------- pixel <-> world
    @cached_property
    def _rotation(self) -> np.ndarray:
        return proj.rotation_matrix(self.projection, self.crval)

    def _intermediate(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """Intermediate world coordinates (deg) of 0-based pixel coordinates of this grid."""
        xi = -self.binsz * (np.asarray(x, dtype=float) + 1.0 - self.crpix[0])
        eta = self.binsz * (np.asarray(y, dtype=float) + 1.0 - self.crpix[1])
        return xi, eta

    def _native_to_pix(self, n: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
        xi, eta = proj.native_to_intermediate(self.projection, *n)
        return self.crpix[0] - 1.0 - xi / self.binsz, self.crpix[1] - 1.0 + eta / self.binsz

    def _to_native(self, lon: Any, lat: Any) -> tuple[np.ndarray, ...]:
        u = proj.lonlat_to_vec(lon, lat)
        m = self._rotation  # native = m.T @ celestial
        return tuple(m[0, i] * u[0] + m[1, i] * u[1] + m[2, i] * u[2] for i in range(3))

    def pix_to_world(self, x: Any, y: Any) -> tuple[np.ndarray, np.ndarray]:
        """World coordinates of 0-based pixel coordinates (pixel centres at integers).

        Parameters
        ----------
        x, y : array_like
            Pixel coordinates of this grid along longitude and latitude; broadcast together.

        Returns
        -------
        lon, lat : numpy.ndarray
            Degrees in the geometry's frame, lon in [0, 360); NaN outside the projection's domain
            (CAR: beyond the native poles or 180 deg from the reference longitude).

        See Also
        --------
        SkyGeom.world_to_pix : The inverse.

        Examples
        --------
        The centre of a 250 x 250 grid is the corner of its four central pixels, 124 and 125:

        >>> from gpcube.geom import SkyGeom
        >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.02, width=5.0)
        >>> lon, lat = geom.pix_to_world([124.5, 0.0], [124.5, 0.0])
        >>> lon.round(3), lat.round(3)
        (array([83.633, 86.272]), array([22.014, 19.503]))
        """
        n = proj.intermediate_to_native(self.projection, *self._intermediate(x, y))
        m = self._rotation
        return proj.vec_to_lonlat(*(m[i, 0] * n[0] + m[i, 1] * n[1] + m[i, 2] * n[2] for i in range(3)))

    def pixel_vectors(self, matrix: np.ndarray | None = None) -> np.ndarray:
        """Unit vectors of every pixel centre: ``(3, ny, nx)``, in the geometry's frame.

        Parameters
        ----------
        matrix : numpy.ndarray, optional
            A 3 x 3 rotation applied to the vectors (e.g. to another frame), folded into the one
            rotation from the projection's native frame.

        Returns
        -------
        numpy.ndarray
            NaN for pixels outside the projection's domain.
        """
        rotation = self._rotation if matrix is None else np.asarray(matrix, dtype=float) @ self._rotation
        x, y = np.arange(self.npix[0])[None, :], np.arange(self.npix[1])[:, None]
        n = proj.intermediate_to_native(self.projection, *self._intermediate(x, y))
        return np.stack([r[0] * n[0] + r[1] * n[1] + r[2] * n[2] for r in rotation])

    def world_to_pix(self, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        """0-based pixel coordinates of world coordinates (deg, in the geometry's frame).

        Returns NaN for points that do not project (TAN: the hemisphere away from the reference point;
        latitudes outside [-90, 90]). Points outside the grid get coordinates outside ``[-0.5, n - 0.5)``.

        Parameters
        ----------
        lon, lat : array_like
            Degrees in the geometry's frame; broadcast together.

        Returns
        -------
        x, y : numpy.ndarray
            Pixel coordinates along longitude and latitude (pixel centres at integers).

        See Also
        --------
        SkyGeom.pix_to_world : The inverse.
        SkyGeom.coord_to_idx : Integer pixel indices.

        Examples
        --------
        >>> import numpy as np
        >>> from gpcube.geom import SkyGeom
        >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.02, width=5.0)
        >>> x, y = geom.world_to_pix([83.633, 83.633], [22.014, 23.014])
        >>> np.round(x, 6), np.round(y, 6)  # 1 deg north is 50 pixels up
        (array([124.5, 124.5]), array([124.5, 174.5]))
        """
        return self._native_to_pix(self._to_native(lon, lat))

    def coord_to_idx(self, lon: Any, lat: Any) -> tuple[np.ndarray, np.ndarray]:
        """Integer pixel indices of world coordinates.

        Parameters
        ----------
        lon, lat : array_like
            Degrees in the geometry's frame; broadcast together.

        Returns
        -------
        ix, iy : numpy.ndarray of int64
            Pixel ``i`` covers ``[i - 0.5, i + 0.5)``; both are -1 where the point is outside the grid or
            does not project.
        """
        x, y = self.world_to_pix(lon, lat)
        ix = np.floor(x + 0.5)
        iy = np.floor(y + 0.5)
        inside = (ix >= 0) & (ix < self.npix[0]) & (iy >= 0) & (iy < self.npix[1])
        return np.where(inside, ix, -1).astype(np.int64), np.where(inside, iy, -1).astype(np.int64)

    def skycoord_to_pix(self, coord: SkyCoord) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`world_to_pix` of a SkyCoord in any frame (transformed to the geometry's frame)."""
        return self.world_to_pix(*skycoord_to_lonlat(coord, self.frame))

    # ------------------------------------------------------------------------ distances and areas
    def _offset_pix(self, center_vec: tuple[float, ...], x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Angular distance (deg) of pixels ``(x, y)`` (broadcast) from a native unit vector; NaN: invalid."""
        n = proj.intermediate_to_native(self.projection, *self._intermediate(x, y))
        return proj.angular_distance(n, center_vec)

    def separation(self, lon: float, lat: float) -> np.ndarray:
        """Angular distance of every pixel centre from one point.

        Parameters
        ----------
        lon, lat : float
            The point, in deg in the geometry's frame.

        Returns
        -------
        numpy.ndarray
            ``(ny, nx)`` distances in deg (NaN for CAR pixels outside the projection's domain).

        See Also
        --------
        SkyGeom.offset_map : The same for a point in another frame.

        Examples
        --------
        The pixels within 1 deg of the centre of a 5 x 5 deg grid:

        >>> from gpcube.geom import SkyGeom
        >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.1, width=5.0)
        >>> offset = geom.separation(83.633, 22.014)
        >>> offset.shape, int((offset <= 1.0).sum())
        ((50, 50), 316)
        """
        center = tuple(float(v) for v in self._to_native(float(lon), float(lat)))
        if not all(math.isfinite(v) for v in center):
            raise GpcubeError(f"(lon, lat) must be finite with |lat| <= 90, got ({lon!r}, {lat!r})")
        return self._offset_pix(center, np.arange(self.npix[0])[None, :], np.arange(self.npix[1])[:, None])

    def offset_map(self, center_lon: float, center_lat: float, frame: str | None = None) -> np.ndarray:
        """Angular distance of every pixel centre from a point given in any frame.

        Parameters
        ----------
        center_lon, center_lat : float
            The point in deg.
        frame : {"icrs", "galactic"}, optional
            Frame of the point; default the geometry's frame.

        Returns
        -------
        numpy.ndarray
            ``(ny, nx)`` distances in deg, as :meth:`separation`.
        """
        if frame is not None and frame != self.frame:
            from astropy.coordinates import SkyCoord

            if frame not in FRAMES:
                raise GpcubeError(f"frame must be 'icrs' or 'galactic', got {frame!r}")
            coord = SkyCoord(center_lon, center_lat, unit="deg", frame=frame)
            center_lon, center_lat = skycoord_to_lonlat(coord, self.frame)
        return self.separation(center_lon, center_lat)

    def solid_angle(self) -> np.ndarray:
        """Pixel solid angles.

        Returns
        -------
        numpy.ndarray
            ``(ny, nx)`` in sr, exact: CAR pixels are native longitude-latitude rectangles of area
            ``dphi * (sin theta2 - sin theta1)``; TAN pixels are tangent-plane rectangles, integrated in
            closed form. Zero for CAR pixels outside the projection's domain.

        Examples
        --------
        The solid angle of a whole grid, 5 x 5 deg on the sky (1 deg2 is 3.046e-4 sr):

        >>> from gpcube.geom import SkyGeom
        >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.02, width=5.0)
        >>> float(geom.solid_angle().sum())
        0.00761
        """
        xi, _ = self._intermediate(np.arange(self.npix[0] + 1) - 0.5, 0.0)
        _, eta = self._intermediate(0.0, np.arange(self.npix[1] + 1) - 0.5)
        func = proj.solid_angle_tan if self.projection == "TAN" else proj.solid_angle_car
        return func(xi, eta)

    # ------------------------------------------------------------------------------- sub-grids
    def slice(self, slices: tuple[slice, slice]) -> SkyGeom:
        """A sub-grid of this grid, on the same pixels.

        Parameters
        ----------
        slices : tuple of slice
            ``(slice_y, slice_x)`` into arrays of shape ``(ny, nx)``; numpy rules (negative and
            out-of-range bounds allowed), step 1.

        Returns
        -------
        SkyGeom
            Same crval and binsz; crpix shifted and origin increased by the slice starts; npix the
            slice lengths.

        See Also
        --------
        gpcube.geom.cutout : The sub-grid around a circle.

        Examples
        --------
        >>> from gpcube.geom import SkyGeom
        >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.02, width=5.0)
        >>> sub = geom.slice((slice(100, 150), slice(50, 250)))
        >>> sub.npix, sub.origin  # (nx, ny) and (ix0, iy0)
        ((200, 50), (50, 100))
        >>> sub.pix_to_world(0, 0) == geom.pix_to_world(50, 100)  # the same pixels
        True
        """
        if not isinstance(slices, tuple) or len(slices) != 2 or not all(isinstance(s, slice) for s in slices):
            raise GpcubeError(f"slices must be a (slice_y, slice_x) tuple, got {slices!r}")
        (y0, y1, ystep), (x0, x1, xstep) = slices[0].indices(self.npix[1]), slices[1].indices(self.npix[0])
        if ystep != 1 or xstep != 1:
            raise GpcubeError(f"slices must have step 1, got {slices!r}")
        return dataclasses.replace(
            self,
            npix=(max(x1 - x0, 0), max(y1 - y0, 0)),
            crpix=(self.crpix[0] - x0, self.crpix[1] - y0),
            origin=(self.origin[0] + x0, self.origin[1] + y0),
        )

    def cutout(self, center: Any, max_offset: float) -> tuple[SkyGeom, tuple[slice, slice]]:
        """See :func:`gpcube.geom.cutout`."""
        return _cutout(self, center, max_offset)

    # ------------------------------------------------------------------------- xarray and JSON
    def to_coords(self) -> dict[str, xr.Variable]:
        """Coordinates for the pixel dims :attr:`dims` (global pixel indices in the parent) plus energy
        axes: what the archive stores. The world coordinates are :func:`gpcube.geom.world.world_coords`."""
        coords = {}
        for ax in self.axes:
            coords.update(ax.to_coords())
        for dim, i in zip(self.dims, (1, 0), strict=True):
            index = self.origin[i] + np.arange(self.npix[i], dtype=np.int64)
            long_name = f"pixel index along {'latitude (y)' if i else 'longitude (x)'} in the parent grid"
            coords[dim] = xr.Variable((dim,), index, {"units": "pix", "long_name": long_name})
        return coords

    def to_attrs(self) -> dict[str, Any]:
        """Plain JSON-serialisable description, stored by products under ``attrs["geom"]``.

        Returns
        -------
        dict
            ``kind``, ``version``, ``frame``, ``projection``, ``crval``, ``crpix``, ``binsz``, ``npix``,
            ``origin``, ``axes`` (energy-axis dicts), ``dims`` (the pixel dims) and ``wcs_header``
            (:attr:`header`).
        """
        return {
            "kind": ATTRS_KIND,
            "version": ATTRS_VERSION,
            "frame": self.frame,
            "projection": self.projection,
            "crval": list(self.crval),
            "crpix": list(self.crpix),
            "binsz": self.binsz,
            "npix": list(self.npix),
            "origin": list(self.origin),
            "axes": [ax.to_dict() for ax in self.axes],
            "dims": list(self.dims),
            "wcs_header": self.header,
        }

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any] | str) -> SkyGeom:
        """Rebuild a geometry from :meth:`to_attrs` output.

        Parameters
        ----------
        attrs : dict or str
            The dict, or its JSON string. ``wcs_header`` is not read: the other fields define the grid.
            Without ``dims`` (version 1 attrs), the grid gets :data:`SKY_DIMS`.

        Returns
        -------
        SkyGeom

        Examples
        --------
        The geometry stored in the attrs of every product, through JSON and back:

        >>> import json
        >>> from gpcube.geom import EnergyAxis, SkyGeom
        >>> axis = EnergyAxis.log(0.5, 50, 10, "energy_reco")
        >>> geom = SkyGeom.create((83.633, 22.014), binsz=0.02, width=5.0, axes=[axis])
        >>> SkyGeom.from_attrs(json.dumps(geom.to_attrs())) == geom
        True
        """
        if isinstance(attrs, str):
            attrs = json.loads(attrs)
        if not isinstance(attrs, dict):
            raise GpcubeError(f"geometry attrs must be a dict, got {type(attrs).__name__}")
        kind, version = attrs.get("kind", ATTRS_KIND), attrs.get("version", ATTRS_VERSION)
        if kind != ATTRS_KIND or version not in range(1, ATTRS_VERSION + 1):
            raise GpcubeError(f"unsupported geometry attrs: kind {kind!r}, version {version!r}")
        missing = [k for k in ("frame", "projection", "crval", "crpix", "binsz", "npix") if k not in attrs]
        if missing:
            raise GpcubeError(f"geometry attrs lack key(s) {missing}")
        axes = tuple(EnergyAxis.from_dict(d) for d in attrs.get("axes", []))
        return cls(
            attrs["frame"],
            attrs["projection"],
            tuple(attrs["crval"]),
            attrs["binsz"],
            tuple(attrs["npix"]),
            tuple(attrs["crpix"]),
            tuple(attrs.get("origin", (0, 0))),
            axes,
            tuple(attrs.get("dims", SKY_DIMS)),
        )

    @classmethod
    def from_dataarray(cls, da: xr.DataArray | xr.Dataset) -> SkyGeom:
        """The geometry stored in ``da.attrs["geom"]``."""
        if "geom" not in da.attrs:
            raise GpcubeError(f"no 'geom' in the attrs of {getattr(da, 'name', None)!r}")
        return cls.from_attrs(da.attrs["geom"])

    def __repr__(self) -> str:
        axes = ", ".join(f"{a.name}[{a.nbins}]" for a in self.axes)
        return (
            f"SkyGeom({self.frame} {self.projection}, npix=({self.npix[0]}, {self.npix[1]}), "
            f"binsz={self.binsz:g} deg, crval=({self.crval[0]:.6g}, {self.crval[1]:.6g}), "
            f"origin=({self.origin[0]}, {self.origin[1]}), axes=[{axes}]"
            + ("" if self.dims == SKY_DIMS else f", dims={self.dims}")
            + ")"
        )


@functools.lru_cache(maxsize=16)
def _to_binsz(geom: SkyGeom, binsz: float, dims: tuple[str, str]) -> SkyGeom:
    """:meth:`SkyGeom.to_binsz`, remembered: every observation derives the same coarse grid.

    The width is ``binsz * npix`` and its ratio to the new pixel size goes through :func:`numpy.rint`,
    the same float operations as the reference's, so ties (and near-ties from float noise) round alike.
    """
    npix = tuple(max(1, int(np.rint(geom.binsz * n / binsz))) for n in geom.npix)
    coarse = SkyGeom.create(
        geom.center, binsz, npix=npix, frame=geom.frame, projection=geom.projection, axes=geom.axes
    )
    return coarse.with_dims(dims)


def pixel_dims(obj: xr.DataArray | xr.Dataset) -> tuple[str, str] | None:
    """The pixel dims of a sky product: :data:`SKY_DIMS` or :data:`IRF_DIMS`, whichever pair ``obj``
    has (the sky grid's first); None if neither."""
    for dims in (SKY_DIMS, IRF_DIMS):
        if set(dims) <= set(obj.dims):
            return dims
    return None


def _pixel_dims(dims: Any) -> tuple[str, str]:
    """``dims`` checked: two strings ``(P + "y", P + "x")`` with the same prefix ``P``."""
    ok = (
        isinstance(dims, tuple | list)
        and len(dims) == 2
        and all(isinstance(d, str) for d in dims)
        and dims[0].endswith("y")
        and dims[1] == dims[0][:-1] + "x"
    )
    if not ok:
        raise GpcubeError(f"dims must be two names (P + 'y', P + 'x') such as ('y', 'x'), got {dims!r}")
    return tuple(dims)


#: WCS header templates by ``(frame, projection, crval, binsz)``: astropy's, or as stored with a grid.
_TEMPLATES: dict[tuple, dict[str, Any]] = {}


def _header_template(frame: str, projection: str, crval: tuple[float, float], binsz: float) -> dict[str, Any]:
    """The WCS header of a grid with these parameters (CRPIX set per grid by the caller)."""
    key = (frame, projection, tuple(crval), binsz)
    if key not in _TEMPLATES:
        _TEMPLATES[key] = wcs_header(frame, projection, crval, binsz)
    return _TEMPLATES[key]


def wcs_header(frame: str, projection: str, crval: tuple[float, float], binsz: float) -> dict[str, Any]:
    """The keywords :meth:`astropy.wcs.WCS.to_header` writes for a grid, with CRPIX 1 and full precision.

    Written here rather than asked of astropy, whose ``astropy.wcs`` import (~0.35 s, it loads
    astropy.coordinates) was the largest cost of creating an archive. The values are wcslib's:
    the tests compare them with astropy's header (which prints 14 significant digits).
    """
    _, lat_pole, lon_pole = proj.native_pole(projection, crval)
    lon_type, lat_type = _CTYPES[frame]
    header: dict[str, Any] = {
        "WCSAXES": 2,
        "CRPIX1": 1.0,
        "CRPIX2": 1.0,
        "CDELT1": -float(binsz),
        "CDELT2": float(binsz),
        "CUNIT1": "deg",
        "CUNIT2": "deg",
        "CTYPE1": lon_type + projection,
        "CTYPE2": lat_type + projection,
        "CRVAL1": float(crval[0]),
        "CRVAL2": float(crval[1]),
        "LONPOLE": float(lon_pole),
        "LATPOLE": float(lat_pole),
        "MJDREF": 0.0,
    }
    if frame == "icrs":
        header["RADESYS"] = "ICRS"
    return header


def remember_header(attrs: dict[str, Any]) -> None:
    """Take the WCS header stored in geometry attrs (:meth:`SkyGeom.to_attrs`) as its grid's template.

    An archive keeps the header it was created with (archives of gpcube 0.1.0.dev0 before
    :func:`wcs_header` hold astropy's, rounded to 14 significant digits): taken as the template, it
    makes the grid's :meth:`SkyGeom.to_attrs` equal to the stored geometry, so adding observations
    neither refuses the archive nor rebuilds its whole mosaic. Attrs without a header, or whose
    header does not describe their grid, are ignored.
    """
    header = attrs.get("wcs_header") if isinstance(attrs, dict) else None
    if not isinstance(header, dict):
        return
    try:
        geom = SkyGeom.from_attrs(attrs)
        lon_type, lat_type = _CTYPES[geom.frame]
        matches = (
            header["CTYPE1"] == lon_type + geom.projection
            and header["CTYPE2"] == lat_type + geom.projection
            and math.isclose(header["CDELT2"], geom.binsz, rel_tol=1e-12)
            and all(math.isclose(header[f"CRVAL{i + 1}"], v, abs_tol=1e-9) for i, v in enumerate(geom.crval))
        )
    except (GpcubeError, KeyError, TypeError, ValueError):
        return
    if matches:
        key = (geom.frame, geom.projection, tuple(geom.crval), geom.binsz)
        template = {k: v for k, v in header.items() if k not in ("NAXIS", "NAXIS1", "NAXIS2")}
        _TEMPLATES[key] = {**template, "CRPIX1": 1.0, "CRPIX2": 1.0}
