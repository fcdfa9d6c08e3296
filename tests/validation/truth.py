"""Injected truth, end to end: a simulated store, gpcube's commands on it, Gammapy fits of the results.

A :class:`Setup` is a simulation (H.E.S.S. DL3 DR1 IRFs of several runs, assigned to the
observations in turn, so their safe thresholds differ inside reco bins; a point and a Gaussian source
with power-law spectra) and the job that reduces it (safe mask ``[offset-max, aeff-default]``, FoV
background with the sources excluded, products counts, exposure, background, psf, edisp).
:func:`run_gpcube` runs ``gpcube simulate``, ``gpcube run``, ``gpcube export`` and ``gpcube
significance`` for one seed; :func:`fit_export` fits the exported ``MapDataset`` with Gammapy 2.1
and :func:`fit_joint` fits the observations jointly, each reduced by Gammapy's own makers;
:func:`pulls` compares a fit with the truth and :func:`flux_ratio` the flux map.

Shared by ``tests/validation/test_truth.py`` (one small seed) and ``benchmarks/truth.py`` (many).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

import gpcube
from gpcube.cli import main
from gpcube.simulate.sampling import power_law_integral

#: Fitted parameters compared with the truth (``sigma`` for Gaussian sources only).
PARAMETERS = ("index", "amplitude", "lon_0", "lat_0")


@dataclass(frozen=True)
class Source:
    """An injected source: galactic position (deg), power law at 1 TeV, Gaussian width (0: a point)."""

    name: str
    position: tuple[float, float]
    amplitude: float
    index: float
    sigma: float = 0.0

    @property
    def exclusion(self) -> float:
        """Radius (deg) of the exclusion region of the FoV background: 0.4 deg plus 2 sigma."""
        return 0.4 + 2 * self.sigma

    def truth(self) -> dict[str, float]:
        """The true values of the fitted parameters."""
        out = dict(index=self.index, amplitude=self.amplitude, lon_0=self.position[0], lat_0=self.position[1])
        return {**out, "sigma": self.sigma} if self.sigma else out


@dataclass(frozen=True)
class Setup:
    """A simulation and the job that reduces it (galactic frame throughout).

    ``runs`` are H.E.S.S. DL3 DR1 observations whose IRFs the simulated observations take in turn;
    ``pointings`` the simulated pointings; axes are ``(min, max, nbins)`` in TeV.
    """

    runs: tuple[int, ...]
    pointings: tuple[tuple[float, float], ...]
    sources: tuple[Source, ...]
    center: tuple[float, float]
    width: tuple[float, float]
    binsz: float
    energy_reco: tuple[float, float, int]
    energy_true: tuple[float, float, int]
    livetime: float = 1800.0
    flux_radius: float = 0.4
    offset_max: float = 2.5

    @property
    def point(self) -> Source:
        """The point source (the flux map's target)."""
        return next(s for s in self.sources if s.sigma == 0)

    def sim_config(self, store: Path, hess_dir: Path, seed: int) -> dict:
        """The ``gpcube simulate`` config."""
        return {
            "output": str(store), "seed": int(seed),
            "pointings": {"frame": "galactic", "list": [list(p) for p in self.pointings]},
            "observation": {"livetime": self.livetime, "max_offset": self.offset_max,
                            "energy": {"min": 0.5 * self.energy_reco[0], "max": 2.0 * self.energy_reco[1]}},
            "irf": {"store": str(hess_dir), "obs_ids": list(self.runs)},
            "sources": [{"name": s.name, "position": list(s.position), "amplitude": s.amplitude,
                         "index": s.index, "sigma": s.sigma} for s in self.sources],
        }  # fmt: skip

    def job_config(self, store: Path, output: Path) -> dict:
        """The ``gpcube run`` job."""
        names = ("min", "max", "nbins")
        axes = {"energy_reco": dict(zip(names, self.energy_reco, strict=True)),
                "energy_true": dict(zip(names, self.energy_true, strict=True))}  # fmt: skip
        return {
            "data": {"store": str(store)},
            "geom": {"frame": "galactic", "projection": "CAR", "center": list(self.center),
                     "width": list(self.width), "binsz": self.binsz, **axes},
            "products": ["counts", "exposure", "background", "psf", "edisp"],
            "safe_mask": {"methods": ["offset-max", "aeff-default"], "offset_max": self.offset_max},
            "background": {"method": "fov",
                           "exclusion": {"circles": [[*s.position, s.exclusion] for s in self.sources]}},
            "output": str(output),
            "cluster": {"n_workers": 1, "processes": False},
        }  # fmt: skip


#: The benchmark's setup: eight H.E.S.S. runs at zenith angles of 24-50 deg (aeff-default thresholds
#: 0.33, 0.41, 0.54, 0.66, 0.71, 0.81, 0.87, 1.07 TeV, each inside its own reco bin of 0.3-30 TeV at 20
#: per decade); eight half-hour pointings 0.7 deg around the midpoint of the two sources. 20 reco bins
#: per decade, because the background makers (gpcube's and Gammapy's) integrate the model over a bin
#: as one power law between its edges: at 8 per decade they predict 21 % fewer background events than
#: these runs' models give in 0.3-0.4 TeV, where the models rise steeply, 8 % fewer in 0.4-0.53 TeV; at
#: 20 per decade they agree within 2-3 %. The point source sits on
#: a pixel corner: Gammapy spreads a point source over the 4 nearest pixels with bilinear weights, so
#: its likelihood has a kink wherever the position crosses a pixel centre, and a fit that ends on one
#: (as it often does when the source is there) gets a Hesse error several times too small.
BENCHMARK = Setup(
    runs=(33791, 33790, 33789, 23559, 23526, 33801, 23523, 33787),
    pointings=((1.2, 0.15), (-0.2, 0.15), (0.5, 0.85), (0.5, -0.55), (1.0, 0.65), (0.0, -0.35), (0.0, 0.65),
               (1.0, -0.35)),
    sources=(Source("point", (0.0, 0.0), 3e-11, 2.6), Source("gauss", (1.0, 0.3), 3e-11, 2.3, sigma=0.2)),
    center=(0.5, 0.16), width=(4.0, 3.0), binsz=0.02, energy_reco=(0.3, 30.0, 40),
    energy_true=(0.1, 100.0, 36),
)  # fmt: skip

#: The test's setup: three runs whose thresholds (0.33, 0.54, 0.87 TeV) make reco bins 1, 6 and 9 of
#: 0.3-30 TeV at 20 per decade their first safe bins; bright sources, 0.04 deg pixels (the point source
#: on a pixel corner).
SMALL = Setup(
    runs=(33791, 33789, 23523),
    pointings=((0.9, 0.15), (0.1, 0.15), (0.5, -0.35)),
    sources=(Source("point", (0.0, 0.0), 2e-10, 2.6), Source("gauss", (1.0, 0.3), 1e-10, 2.3, sigma=0.2)),
    center=(0.48, 0.16), width=(2.8, 2.0), binsz=0.04, energy_reco=(0.3, 30.0, 40),
    energy_true=(0.1, 100.0, 24), flux_radius=0.5,
)  # fmt: skip


@dataclass(frozen=True)
class Products:
    """The files of one seed: the simulated store, the archive and the exported ``MapDataset``."""

    store: Path
    archive: Path
    export: Path


def _write_yaml(path: Path, mapping: dict) -> Path:
    path.write_text(yaml.safe_dump(mapping, sort_keys=False))
    return path


def run_gpcube(setup: Setup, hess_dir: Path, work: Path, seed: int) -> Products:
    """``gpcube simulate``, ``run``, ``export`` and ``significance`` (flux for the point source's index).

    The commands run in this process through :func:`gpcube.cli.main`, with ``-q``; ``work`` is made.
    """
    work.mkdir(parents=True, exist_ok=True)
    paths = Products(work / "store", work / "archive.zarr", work / "export.fits")
    sim = _write_yaml(work / "sim.yaml", setup.sim_config(paths.store, hess_dir, seed))
    job = _write_yaml(work / "job.yaml", setup.job_config(paths.store, paths.archive))
    band = [str(setup.energy_reco[0]), str(setup.energy_reco[1])]
    commands = [
        ["simulate", str(sim), "-q", "--overwrite"],
        ["run", str(job), "-q"],
        ["export", str(paths.archive), str(paths.export), "--overwrite"],
        ["significance", str(paths.archive), "--radius", str(setup.flux_radius), "--spectral-index",
         str(setup.point.index), "--energy-edges", *band],
    ]  # fmt: skip
    for command in commands:
        if main(command) != 0:
            raise RuntimeError(f"gpcube {' '.join(command)} failed")
    return paths


def _sky_model(source: Source):
    """A Gammapy ``SkyModel`` of ``source``, started a little away from the truth."""
    from gammapy.modeling.models import (
        GaussianSpatialModel,
        PointSpatialModel,
        PowerLawSpectralModel,
        SkyModel,
    )

    spectral = PowerLawSpectralModel(
        index=source.index - 0.1, amplitude=f"{0.8 * source.amplitude} cm-2 s-1 TeV-1", reference="1 TeV"
    )
    position = {name: f"{v + 0.01} deg" for name, v in zip(("lon_0", "lat_0"), source.position, strict=True)}
    if source.sigma:
        spatial = GaussianSpatialModel(**position, sigma=f"{0.8 * source.sigma} deg", frame="galactic")
    else:
        spatial = PointSpatialModel(**position, frame="galactic")
    return SkyModel(spectral, spatial, name=source.name)


def _fit(datasets, setup: Setup, start: dict | None = None) -> dict[str, dict[str, tuple[float, float]]]:
    """Fit the sources (and a FoV background norm per dataset); ``{source: {param: (value, error)}}``.

    ``start`` (an earlier result) sets the starting values of the source parameters.
    """
    from gammapy.datasets import Datasets
    from gammapy.modeling import Fit
    from gammapy.modeling.models import FoVBackgroundModel

    datasets = Datasets(datasets)
    models = [_sky_model(source) for source in setup.sources]
    for model in models if start else ():
        for name, (value, _) in start[model.name].items():
            model.parameters[name].value = value
    datasets.models = models + [FoVBackgroundModel(dataset_name=d.name) for d in datasets]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = Fit().run(datasets)
    if not result.success:
        raise RuntimeError(f"the fit did not converge: {result}")
    out = {}
    for model, source in zip(models, setup.sources, strict=True):
        params = model.parameters
        out[source.name] = {name: (params[name].value, params[name].error) for name in source.truth()}
    return out


def fit_export(path: Path, setup: Setup) -> dict[str, dict[str, tuple[float, float]]]:
    """Fit the ``MapDataset`` that ``gpcube export`` wrote (Gammapy 2.1)."""
    from gammapy.datasets import MapDataset

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = MapDataset.read(path, name="gpcube")
    return _fit([dataset], setup)


def joint_datasets(store: Path, setup: Setup) -> list:
    """One ``MapDataset`` per simulated observation, made by Gammapy's makers (the reference)."""
    import astropy.units as u
    from astropy.coordinates import SkyCoord
    from gammapy.data import DataStore
    from gammapy.datasets import MapDataset
    from gammapy.makers import FoVBackgroundMaker, MapDatasetMaker, SafeMaskMaker
    from gammapy.maps import MapAxis, WcsGeom
    from regions import CircleSkyRegion

    reco, true = setup.energy_reco, setup.energy_true
    energy = MapAxis.from_energy_bounds(reco[0], reco[1], reco[2], unit="TeV", name="energy")
    energy_true = MapAxis.from_energy_bounds(true[0], true[1], true[2], unit="TeV", name="energy_true")
    center = SkyCoord(*setup.center, unit="deg", frame="galactic")
    geom = WcsGeom.create(skydir=center, binsz=setup.binsz, width=setup.width, frame="galactic", proj="CAR",
                          axes=[energy])  # fmt: skip
    regions = [CircleSkyRegion(SkyCoord(*s.position, unit="deg", frame="galactic"), s.exclusion * u.deg)
               for s in setup.sources]  # fmt: skip
    template = MapDataset.create(geom, energy_axis_true=energy_true, name="template")
    maker = MapDatasetMaker(selection=["counts", "exposure", "background", "psf", "edisp"])
    safe = SafeMaskMaker(methods=["offset-max", "aeff-default"], offset_max=f"{setup.offset_max} deg")
    fov = FoVBackgroundMaker(method="scale", exclusion_mask=~geom.to_image().region_mask(regions))
    datasets = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for obs in DataStore.from_dir(store).get_observations():
            cutout = template.cutout(obs.get_pointing_icrs(obs.tmid), width=2 * setup.offset_max * u.deg,
                                     name=f"obs-{obs.obs_id}")  # fmt: skip
            datasets.append(fov.run(safe.run(maker.run(cutout, obs), obs)))
    return datasets


def fit_joint(
    store: Path, setup: Setup, start: dict | None = None
) -> dict[str, dict[str, tuple[float, float]]]:
    """The joint fit of the observations, each reduced by Gammapy (:func:`joint_datasets`).

    ``start`` (e.g. the fit of the export) sets the starting values: the same maximum, fewer steps.
    """
    return _fit(joint_datasets(store, setup), setup, start)


def pulls(fitted: dict[str, dict[str, tuple[float, float]]], setup: Setup) -> dict[tuple[str, str], float]:
    """``(fitted - true) / error`` per ``(source, parameter)`` (longitudes compared modulo 360 deg)."""
    out = {}
    for source in setup.sources:
        for name, true in source.truth().items():
            value, error = fitted[source.name][name]
            delta = (value - true + 180.0) % 360.0 - 180.0 if name == "lon_0" else value - true
            out[source.name, name] = delta / error
    return out


def true_band_flux(source: Source, band: tuple[float, float]) -> float:
    """The injected integral flux (cm-2 s-1) of ``source`` over ``band`` (TeV)."""
    return float(source.amplitude * power_law_integral(band[0], band[1], source.index))


def flux_ratio(archive: Path, setup: Setup) -> float:
    """The flux map of ``gpcube significance`` at the point source over its injected band flux."""
    maps = gpcube.open_archive(archive, significance=True)
    geom = maps.sky.geom
    x, y = geom.coord_to_idx(*setup.point.position)
    flux = float(maps["flux"].values[0, int(y), int(x)])
    return flux / true_band_flux(setup.point, setup.energy_reco[:2])


def psf_containment(archive: Path, setup: Setup) -> float:
    """The stacked PSF's containment within the flux radius at the point source, weighted by the counts
    the source is predicted to give per true-energy bin in the band's safe reco bins."""
    irf = gpcube.open_archive(archive, irf=True).load()
    x, y = irf.sky.geom.coord_to_idx(*setup.point.position)
    at = {"irf_y": int(y), "irf_x": int(x)}  # the coarse IRF grid's pixel dims
    edges = np.append(irf["energy_true_lo"].values, irf["energy_true_hi"].values[-1])
    flux = power_law_integral(edges[:-1], edges[1:], setup.point.index)
    weight = flux * (irf["exposure_irf"].isel(at) * irf["edisp"].isel(at).sum("energy_reco")).values
    rad_lo, rad_hi = irf["rad_lo"].values, irf["rad_hi"].values
    ring = 2 * np.pi * (np.cos(np.deg2rad(rad_lo)) - np.cos(np.deg2rad(rad_hi)))
    psf = irf["psf"].isel(at).transpose("energy_true", "rad").values
    inside = (psf * ring)[:, rad_hi <= setup.flux_radius].sum(axis=1)
    return float(np.sum(weight * inside) / np.sum(weight))
