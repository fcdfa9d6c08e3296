"""Energy axes: bin edges in TeV, log-centres, xarray coordinates and plain-JSON round trip."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from gpcube.errors import GpcubeError

__all__ = ["BAND_DIM", "ENERGY_AXIS_NAMES", "EnergyAxis", "rename_energy_dim"]

#: The dim of energy *bands*: runs of contiguous ``energy_reco`` bins that a product sums (the ring
#: background's bands, the significance maps' bands). Its own name, so that a group on bands aligns
#: with a parent group on the reco bins in one :class:`xarray.DataTree`.
BAND_DIM = "energy_band"
ENERGY_AXIS_NAMES = ("energy_reco", "energy_true", BAND_DIM)


@dataclass(frozen=True, eq=False)
class EnergyAxis:
    """An energy binning: ``edges`` in TeV along the dimension ``name``.

    Parameters
    ----------
    name : {"energy_reco", "energy_true", "energy_band"}
        Dimension name; also tells the energy type (``energy_band``: bands of reco bins, type reco).
    edges : array_like
        Bin edges in TeV: 1-D, finite, positive, strictly increasing, at least 2 entries.
        Stored as a read-only float64 copy.

    See Also
    --------
    EnergyAxis.log : A log-spaced axis.
    EnergyAxis.from_edges : An axis from explicit edges.
    SkyGeom : A sky grid with energy axes.

    Notes
    -----
    Equality compares the name and the edges exactly (``np.array_equal``); the axis is hashable.

    Examples
    --------
    >>> from gpcube.geom import EnergyAxis
    >>> axis = EnergyAxis("energy_reco", [1.0, 10.0, 100.0])
    >>> axis
    EnergyAxis('energy_reco', 2 bins, 1 to 100 TeV)
    >>> axis.centers  # log-centres, sqrt(lo * hi)
    array([ 3.16227766, 31.6227766 ])
    >>> axis.energy_type, axis.nbins
    ('reco', 2)

    Edges that are not strictly increasing are refused:

    >>> EnergyAxis("energy_true", [1.0, 1.0, 2.0])
    Traceback (most recent call last):
    ...
    gpcube.errors.GpcubeError: edges must be strictly increasing
    """

    name: str
    edges: np.ndarray

    def __post_init__(self) -> None:
        if self.name not in ENERGY_AXIS_NAMES:
            raise GpcubeError(f"name must be one of {list(ENERGY_AXIS_NAMES)}, got {self.name!r}")
        try:
            edges = np.array(self.edges, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise GpcubeError(f"edges must be an array of numbers, got {self.edges!r}") from exc
        if edges.ndim != 1 or edges.size < 2:
            raise GpcubeError(f"edges must be 1-D with at least 2 entries, got shape {edges.shape}")
        if not np.all(np.isfinite(edges)) or edges[0] <= 0:
            raise GpcubeError("edges must be finite and positive (TeV)")
        if np.any(np.diff(edges) <= 0):
            raise GpcubeError("edges must be strictly increasing")
        edges.setflags(write=False)
        object.__setattr__(self, "edges", edges)

    @classmethod
    def log(cls, emin: float, emax: float, nbins: int, name: str) -> EnergyAxis:
        """Log-spaced axis with ``nbins`` bins from ``emin`` to ``emax`` (TeV).

        Parameters
        ----------
        emin, emax : float
            First and last edge in TeV, ``0 < emin < emax``.
        nbins : int
            Number of bins, at least 1.
        name : {"energy_reco", "energy_true", "energy_band"}
            Dimension name.

        Returns
        -------
        EnergyAxis

        Raises
        ------
        GpcubeError
            If ``nbins`` is not a positive integer or not ``0 < emin < emax``.

        See Also
        --------
        EnergyAxis.from_edges : An axis from explicit edges.

        Examples
        --------
        >>> from gpcube.geom import EnergyAxis
        >>> axis = EnergyAxis.log(0.5, 50, 4, "energy_reco")
        >>> axis.edges
        array([ 0.5       ,  1.58113883,  5.        , 15.8113883 , 50.        ])
        >>> axis.hi / axis.lo  # each bin spans the same factor, 10 ** 0.5
        array([3.16227766, 3.16227766, 3.16227766, 3.16227766])
        """
        if isinstance(nbins, bool) or not isinstance(nbins, int | np.integer) or nbins < 1:
            raise GpcubeError(f"nbins must be a positive integer, got {nbins!r}")
        if not (np.isfinite(emin) and np.isfinite(emax) and 0 < emin < emax):
            raise GpcubeError(f"emin and emax must satisfy 0 < emin < emax, got emin={emin!r}, emax={emax!r}")
        return cls(name, np.geomspace(float(emin), float(emax), int(nbins) + 1))

    @classmethod
    def from_edges(cls, edges: Any, name: str) -> EnergyAxis:
        """Axis from explicit bin edges in TeV (see the class docstring for the rules).

        Parameters
        ----------
        edges : array_like
            Bin edges in TeV: 1-D, finite, positive, strictly increasing, at least 2 entries.
        name : {"energy_reco", "energy_true", "energy_band"}
            Dimension name.

        Returns
        -------
        EnergyAxis

        See Also
        --------
        EnergyAxis.log : A log-spaced axis.

        Examples
        --------
        >>> from gpcube.geom import EnergyAxis
        >>> axis = EnergyAxis.from_edges([0.3, 1, 3, 10, 100], "energy_true")
        >>> axis
        EnergyAxis('energy_true', 4 bins, 0.3 to 100 TeV)
        >>> axis.hi
        array([  1.,   3.,  10., 100.])
        """
        return cls(name, edges)

    @property
    def lo(self) -> np.ndarray:
        """Lower bin edges (TeV)."""
        return self.edges[:-1]

    @property
    def hi(self) -> np.ndarray:
        """Upper bin edges (TeV)."""
        return self.edges[1:]

    @property
    def centers(self) -> np.ndarray:
        """Logarithmic bin centres ``sqrt(lo * hi)`` (TeV)."""
        return np.sqrt(self.lo * self.hi)

    @property
    def nbins(self) -> int:
        """Number of bins."""
        return self.edges.size - 1

    @property
    def energy_type(self) -> str:
        """``"reco"`` or ``"true"`` (``"reco"`` for ``energy_band``: bands of reco bins)."""
        return "reco" if self.name == BAND_DIM else self.name.removeprefix("energy_")

    def to_coords(self) -> dict[str, xr.Variable]:
        """Coordinates along dimension ``name``: centres as the index, ``<name>_lo`` and ``<name>_hi``.

        Returns
        -------
        dict of str to xarray.Variable
            Ready to pass as ``coords=`` to :class:`xarray.DataArray`; all carry ``units="TeV"``.

        Examples
        --------
        >>> import numpy as np
        >>> import xarray as xr
        >>> from gpcube.geom import EnergyAxis
        >>> axis = EnergyAxis.log(1, 100, 2, "energy_true")
        >>> spectrum = xr.DataArray(np.ones(2), dims="energy_true", coords=axis.to_coords())
        >>> spectrum.energy_true.values, spectrum.energy_true_hi.values
        (array([ 3.16227766, 31.6227766 ]), array([ 10., 100.]))
        >>> spectrum.energy_true.attrs["units"]
        'TeV'
        """
        dims = (self.name,)
        return {
            self.name: xr.Variable(dims, self.centers, {"units": "TeV", "long_name": self._long_name()}),
            f"{self.name}_lo": xr.Variable(dims, self.lo, {"units": "TeV"}),
            f"{self.name}_hi": xr.Variable(dims, self.hi, {"units": "TeV"}),
        }

    def _long_name(self) -> str:
        if self.name == BAND_DIM:
            return "reconstructed energy band (log-centre)"
        return f"{'reconstructed' if self.energy_type == 'reco' else 'true'} energy (bin log-centre)"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable description: ``{"name", "edges", "units"}``.

        Examples
        --------
        >>> from gpcube.geom import EnergyAxis
        >>> EnergyAxis.from_edges([1, 10], "energy_reco").to_dict()
        {'name': 'energy_reco', 'edges': [1.0, 10.0], 'units': 'TeV'}
        """
        return {"name": self.name, "edges": [float(e) for e in self.edges], "units": "TeV"}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnergyAxis:
        """Inverse of :meth:`to_dict`.

        Examples
        --------
        >>> from gpcube.geom import EnergyAxis
        >>> axis = EnergyAxis.log(0.5, 50, 10, "energy_reco")
        >>> EnergyAxis.from_dict(axis.to_dict()) == axis
        True
        """
        if not isinstance(data, dict) or "name" not in data or "edges" not in data:
            raise GpcubeError(f"an energy axis dict needs keys 'name' and 'edges', got {data!r}")
        units = data.get("units", "TeV")
        if units != "TeV":
            raise GpcubeError(f"energy axis units must be 'TeV', got {units!r}")
        return cls(data["name"], data["edges"])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EnergyAxis):
            return NotImplemented
        return self.name == other.name and np.array_equal(self.edges, other.edges)

    def __hash__(self) -> int:
        return hash((self.name, self.edges.tobytes()))

    def __dask_tokenize__(self) -> tuple:
        """Identity for dask keys: the name and the edges (cheaper than walking the dataclass)."""
        return ("gpcube.EnergyAxis", self.name, self.edges.tobytes())

    def __repr__(self) -> str:
        lo, hi = self.edges[0], self.edges[-1]
        return f"EnergyAxis({self.name!r}, {self.nbins} bins, {lo:.4g} to {hi:.4g} TeV)"


def _renamed_geom(geom: Any, old: str, new: str) -> Any:
    """Geometry attrs with the axis ``old`` named ``new`` (an axis already named ``new`` dropped)."""
    if not isinstance(geom, dict) or not any(a.get("name") == old for a in geom.get("axes", [])):
        return geom
    axes = [{**a, "name": new} if a.get("name") == old else a for a in geom["axes"] if a.get("name") != new]
    return {**geom, "axes": axes}


def rename_energy_dim(obj: xr.Dataset | xr.DataArray, old: str, new: str) -> xr.Dataset | xr.DataArray:
    """``obj`` with its energy dim ``old`` renamed ``new``: the dim, ``<old>_lo``/``<old>_hi`` and the
    axis in the ``geom`` attrs (of ``obj`` and of its variables). Unchanged if it has no dim ``old``.

    For the readers that take bands as bins (:data:`BAND_DIM` as ``energy_reco``: the estimators, the
    FITS export, whose format has one reco energy axis).

    Examples
    --------
    >>> import numpy as np
    >>> import xarray as xr
    >>> from gpcube.geom import EnergyAxis
    >>> from gpcube.geom.axes import rename_energy_dim
    >>> bands = xr.DataArray(np.ones(2), dims="energy_band",
    ...                      coords=EnergyAxis("energy_band", [0.5, 5, 50]).to_coords())
    >>> sorted(rename_energy_dim(bands, "energy_band", "energy_reco").coords)
    ['energy_reco', 'energy_reco_hi', 'energy_reco_lo']
    """
    if old not in obj.dims:
        return obj
    if new in obj.dims:
        raise GpcubeError(f"cannot rename the dim {old!r} to {new!r}: there is a {new!r} dim already")
    names = {old: new, **{f"{old}{s}": f"{new}{s}" for s in ("_lo", "_hi") if f"{old}{s}" in obj.coords}}
    out = obj.rename(names)
    if isinstance(out, xr.Dataset):
        out = out.assign({
            name: var.assign_attrs(geom=_renamed_geom(var.attrs["geom"], old, new))
            for name, var in out.data_vars.items() if "geom" in var.attrs
        })  # fmt: skip
    if "geom" in out.attrs:
        out = out.assign_attrs(geom=_renamed_geom(out.attrs["geom"], old, new))
    return out
