"""Bin swath observations onto a regular lat/lon grid.

Input is a standard observations Dataset (dim ``pixel``; variables ``value``, ``uncertainty``, ``qa``,
``latitude``, ``longitude``, ``time``) as returned by the product readers. Output is one day's L3 fields on a
:class:`~transforms.grid.GridSpec`: dims ``(lat, lon)``, with ``mean`` (value units), ``count`` (pixels),
``uncertainty`` (value units, 1σ of the mean) and ``weight`` (sum of weights). Cells with no valid pixel are NaN
(and count 0), never zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import xarray as xr

from transforms import footprint
from transforms.errors import InputError
from transforms.grid import GridSpec
from transforms.products import ProductSpec, get_product

Weighting = Literal["plain", "inverse_variance"]
Method = Literal["centre", "footprint"]
WEIGHTINGS: tuple[Weighting, ...] = ("plain", "inverse_variance")
METHODS: tuple[Method, ...] = ("centre", "footprint")
_BINNING_NAME = {"centre": "pixel_centre", "footprint": "footprint_area_weighted"}


@dataclass(frozen=True)
class QualityRule:
    """Which pixels of a product are good: ``qa > qa_above`` (S5P ``qa_value``, 0–1) or, for flag products,
    ``qa == flag_good`` (e.g. OCO-2 ``xco2_quality_flag``). ``document`` names where the rule comes from."""

    qa_above: float | None = None
    flag_good: int | None = None
    document: str = ""

    def keep(self, qa: npt.NDArray[np.floating[Any]]) -> npt.NDArray[np.bool_]:
        """Boolean mask of good pixels, dims as ``qa``; NaN (fill) is never good."""
        if self.flag_good is not None:
            return np.asarray(qa == self.flag_good)
        return np.asarray(qa > (self.qa_above if self.qa_above is not None else -np.inf))


_QA_DOCUMENTS = {
    "no2": "S5P NO2 PRF (S5P-KNMI-L2-0021-MA) §8: qa_value > 0.75 for the tropospheric column",
    "co": "S5P CO PRF (SRON-S5P-LEV2-MA-002) §4.1: qa_value > 0.5 (clear sky and mid-level clouds)",
    "ch4": "S5P CH4 PRF (SRON-S5P-LEV2-MA-001) §4.3: qa_value > 0.5",
}
FLAG_RULES: dict[str, QualityRule] = {
    "xco2": QualityRule(flag_good=0, document="OCO-2 L2 Lite DUG: xco2_quality_flag == 0 is good, 1 bad"),
}


def quality_rule(product: str | ProductSpec) -> QualityRule:
    """The default quality rule of ``product``: the S5P products' ``qa_threshold`` (their one home is
    :mod:`transforms.products`) or a flag rule (XCO2)."""
    name = product.name if isinstance(product, ProductSpec) else str(product).lower()
    if name in FLAG_RULES:
        return FLAG_RULES[name]
    spec = get_product(product)
    return QualityRule(qa_above=spec.qa_threshold, document=_QA_DOCUMENTS.get(spec.name, ""))


def mask_observations(
    obs: xr.Dataset, *, qa_threshold: float | None = None, rule: QualityRule | None = None
) -> xr.Dataset:
    """Keep pixels with a finite value, finite geolocation and a good ``qa``: ``qa > qa_threshold`` when
    given, else per ``rule``. dims (pixel,)."""
    if qa_threshold is not None:
        rule = QualityRule(qa_above=qa_threshold)
    if rule is None:
        raise InputError("mask_observations needs qa_threshold or a QualityRule (see quality_rule(product))")
    return obs.isel(pixel=np.flatnonzero(observation_mask(obs, rule=rule)))


def observation_mask(obs: xr.Dataset, *, rule: QualityRule) -> npt.NDArray[np.bool_]:
    """The pixels :func:`mask_observations` keeps, as a boolean array over dim ``pixel``."""
    return pixel_mask(
        value=obs["value"].values,
        uncertainty=obs["uncertainty"].values if "uncertainty" in obs else None,
        latitude=obs["latitude"].values,
        longitude=obs["longitude"].values,
        qa=obs["qa"].values,
        rule=rule,
    )


def pixel_mask(
    *,
    value: npt.NDArray[np.floating[Any]],
    uncertainty: npt.NDArray[np.floating[Any]] | None,
    latitude: npt.NDArray[np.floating[Any]],
    longitude: npt.NDArray[np.floating[Any]],
    qa: npt.NDArray[Any],
    rule: QualityRule,
) -> npt.NDArray[np.bool_]:
    """Good pixels: finite value and geolocation, ``qa`` good per ``rule``, uncertainty (when given) finite
    and > 0. All arrays dims (pixel,); returns a boolean array, dims (pixel,)."""
    keep = rule.keep(qa)
    for arr in (value, latitude, longitude):
        keep &= np.isfinite(arr)
    if uncertainty is not None:
        keep &= np.isfinite(uncertainty)
        keep &= uncertainty > 0
    return keep


def select_day(obs: xr.Dataset, day: np.datetime64 | dt.date) -> xr.Dataset:
    """Pixels whose UTC time falls on ``day``. dims (pixel,)."""
    return obs.isel(pixel=np.flatnonzero(day_mask(obs, day)))


def day_mask(obs: xr.Dataset, day: np.datetime64 | dt.date) -> npt.NDArray[np.bool_]:
    """The pixels :func:`select_day` keeps, as a boolean array over dim ``pixel``."""
    t = obs["time"].values.astype("datetime64[D]")
    mask: npt.NDArray[np.bool_] = t == np.asarray(day).astype("datetime64[D]")
    return mask


class GridAccumulator:
    """Running sums of one day's binning on ``grid``; add observation batches one at a time (so a day never
    has to be in memory at once), then take :meth:`fields`.

    ``method``: ``centre`` puts each pixel in the cell holding its centre; ``footprint`` spreads it over the
    cells its corner polygon (``latitude_bounds``/``longitude_bounds``, dims (pixel, corner)) covers, by area.
    """

    def __init__(
        self, grid: GridSpec, *, method: Method = "centre", weighting: Weighting = "inverse_variance"
    ) -> None:
        if method not in METHODS:
            raise InputError(f"unknown binning method {method!r}: choose one of {', '.join(METHODS)}")
        if weighting not in WEIGHTINGS:
            raise InputError(f"unknown weighting {weighting!r}: choose one of {', '.join(WEIGHTINGS)}")
        self.grid = grid
        self.method: Method = method
        self.weighting: Weighting = weighting
        # per cell: Σfw, Σfwv, Σ(fw)²σ², pixel count (see transforms.footprint)
        self.sums = np.zeros((grid.shape[0] * grid.shape[1], 4))
        self.pixels = 0  # pixels that reached at least one cell

    def add_arrays(
        self,
        *,
        value: npt.NDArray[np.floating[Any]],
        uncertainty: npt.NDArray[np.floating[Any]],
        latitude: npt.NDArray[np.floating[Any]] | None = None,
        longitude: npt.NDArray[np.floating[Any]] | None = None,
        latitude_bounds: npt.NDArray[np.floating[Any]] | None = None,
        longitude_bounds: npt.NDArray[np.floating[Any]] | None = None,
    ) -> int:
        """Add pixels given as arrays: value/uncertainty/latitude/longitude dims (pixel,), bounds (pixel,
        corner); degrees. Pixels with any non-finite input are skipped. Returns the pixels binned."""
        west, south, _, north = self.grid.bounds
        n_lat, n_lon = self.grid.shape
        ivw = self.weighting == "inverse_variance"
        if self.method == "centre":
            if latitude is None or longitude is None:
                raise InputError("centre binning needs latitude and longitude of the pixel centres")
            n = footprint.centre_kernel(
                _flat(latitude), _flat(longitude), _flat(value), _flat(uncertainty), ivw,
                south, west, self.grid.resolution, n_lat, n_lon, north >= 90.0, self.sums,
            )  # fmt: skip
        else:
            if latitude_bounds is None or longitude_bounds is None:
                raise InputError(
                    "footprint binning needs pixel corners (latitude_bounds, longitude_bounds with dims "
                    "(pixel, corner)); use method='centre' for products without them"
                )
            if latitude_bounds.shape[-1] != 4 or longitude_bounds.shape != latitude_bounds.shape:
                raise InputError(
                    "footprint binning needs 4 corners per pixel: latitude_bounds and longitude_bounds of "
                    f"shape (pixel, 4), got {latitude_bounds.shape} and {longitude_bounds.shape}"
                )
            lat_b = np.ascontiguousarray(latitude_bounds).reshape(-1, 4)
            lon_b = np.ascontiguousarray(longitude_bounds).reshape(-1, 4)
            n = footprint.footprint_kernel(
                lat_b, lon_b, _flat(value), _flat(uncertainty), ivw,
                south, west, self.grid.resolution, n_lat, n_lon, self.sums,
            )  # fmt: skip
        self.pixels += int(n)
        return int(n)

    def add(self, obs: xr.Dataset) -> int:
        """Add a masked observations Dataset (dims (pixel,) [, corner]). Returns the pixels binned."""
        if obs.sizes.get("pixel", 0) == 0:
            return 0
        bounds = self.method == "footprint"
        if bounds and "latitude_bounds" not in obs:
            raise InputError(
                "footprint binning needs latitude_bounds/longitude_bounds (pixel, corner) in the observations; "
                "use method='centre' for products without pixel corners"
            )
        return self.add_arrays(
            value=obs["value"].values,
            uncertainty=obs["uncertainty"].values,
            latitude=obs["latitude"].values,
            longitude=obs["longitude"].values,
            latitude_bounds=obs["latitude_bounds"].values if bounds else None,
            longitude_bounds=obs["longitude_bounds"].values if bounds else None,
        )

    @property
    def sw(self) -> npt.NDArray[np.float64]:
        """Σ f·w per cell, flat (cell,)."""
        return self.sums[:, 0]

    @property
    def swv(self) -> npt.NDArray[np.float64]:
        """Σ f·w·v per cell, flat (cell,)."""
        return self.sums[:, 1]

    @property
    def count(self) -> npt.NDArray[np.int64]:
        """Pixels per cell, flat (cell,)."""
        return self.sums[:, 3].astype(np.int64)

    def fields(self) -> xr.Dataset:
        """The day's fields, dims (lat, lon): ``mean`` = Σfwv/Σfw, ``uncertainty`` = sqrt(Σ(fw)²σ²)/Σfw (1σ of
        the weighted mean of independent pixels), ``count`` (pixels touching the cell), ``weight`` = Σfw."""
        shape = self.grid.shape
        mean = np.empty(shape, dtype=np.float32)
        unc = np.empty(shape, dtype=np.float32)
        count = np.empty(shape, dtype=np.int32)
        weight = np.empty(shape, dtype=np.float32)
        footprint.fields_kernel(
            self.sums, mean.reshape(-1), unc.reshape(-1), count.reshape(-1), weight.reshape(-1)
        )
        return xr.Dataset(
            {
                "mean": (("lat", "lon"), mean),
                "uncertainty": (("lat", "lon"), unc),
                "count": (("lat", "lon"), count),
                "weight": (("lat", "lon"), weight),
            },
            coords={"lat": self.grid.lat(), "lon": self.grid.lon()},
            attrs={"weighting": self.weighting, "binning": _BINNING_NAME[self.method]},
        )


def _flat(a: npt.NDArray[Any]) -> npt.NDArray[Any]:
    return np.ascontiguousarray(a).reshape(-1)


def bin_observations(
    obs: xr.Dataset | Sequence[xr.Dataset],
    grid: GridSpec,
    *,
    method: Method = "centre",
    weighting: Weighting = "inverse_variance",
) -> xr.Dataset:
    """Bin one or more masked observation Datasets (dims (pixel,): ``value``, ``uncertainty`` (same units,
    1σ, > 0), ``latitude``, ``longitude`` (degrees) [, ``latitude_bounds``/``longitude_bounds`` (pixel,
    corner)]) onto ``grid``. Weights are 1 (``plain``) or 1/σ² (``inverse_variance``). See
    :meth:`GridAccumulator.fields` for the outputs, dims (lat, lon)."""
    acc = GridAccumulator(grid, method=method, weighting=weighting)
    for part in [obs] if isinstance(obs, xr.Dataset) else obs:
        acc.add(part)
    return acc.fields()


def bin_centres(
    obs: xr.Dataset | Sequence[xr.Dataset], grid: GridSpec, *, weighting: Weighting = "inverse_variance"
) -> xr.Dataset:
    """Pixel-centre binning: :func:`bin_observations` with ``method="centre"``."""
    return bin_observations(obs, grid, method="centre", weighting=weighting)


def bin_footprints(
    obs: xr.Dataset | Sequence[xr.Dataset], grid: GridSpec, *, weighting: Weighting = "inverse_variance"
) -> xr.Dataset:
    """Area-weighted footprint binning: :func:`bin_observations` with ``method="footprint"``."""
    return bin_observations(obs, grid, method="footprint", weighting=weighting)
