"""Daily country × sector CO2 emissions from tropospheric NO2: the forward model and the first inversion.

Both sides share the physics below (spatial proxies, NOx/CO2 ratios, the column conversion and a Gaussian
transport kernel): that is what an observing-system simulation experiment tests. The inversion never reads a
truth table; its only emission input is the base-year inventory (sector shares and the profile-only sectors).

Forward model, per day (:func:`no2_column_field`)::

    V = V_bg + K · G_σ[ Σ_c Σ_s∈obs E[c,s] · r[c,s] · p[s] / A ]

with E in MtCO2/day, r the NOx/CO2 mass ratio (t NOx as NO2 per t CO2, ``nox_ratios.csv``), p the sector's
spatial proxy (sums to 1 over each country's cells), A the cell area (km²), G_σ a Gaussian of σ
``smoothing_km`` standing in for transport over the NO2 lifetime, and K :data:`COLUMN_PER_NOX_DENSITY`.

Inversion (:func:`derive_emissions`): see its docstring.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import pandas as pd
import shapely
import xarray as xr

from transforms.errors import InputError
from transforms.grid import GridSpec
from transforms.regions import EU27, ROW_EXCLUDES, Country, load_countries, mask_countries
from transforms.truth import SECTORS
from transforms.zonal import observed_sums

METHOD_VERSION = "0.2.1"
NO2_OBSERVABLE_SECTORS: tuple[str, ...] = ("Power", "Industry", "Ground Transport")

#: Clean-air tropospheric NO2 column, mol m-2 (~9e14 molec cm-2, typical of remote mid-latitude land).
NO2_BACKGROUND_MOL_M2 = 1.5e-5
#: Effective NOx lifetime against chemistry and deposition near sources, days (6 h; 3-8 h in the literature).
NOX_LIFETIME_DAYS = 0.25
#: Molar ratio NO2/NOx in the daytime boundary layer (Beirle et al. use NOx = 1.32 × NO2).
NO2_PER_NOX = 1.0 / 1.32
_NO2_MOLAR_MASS_G = 46.0055

#: Column enhancement per NOx emission density: mol m-2 per (Mt NOx, as NO2, per day per km²).
#:
#: Steady-state mass balance of a cell: column = emission flux × lifetime × NO2 share, so
#: 1 Mt/day/km² = 1e12 g / 46.0055 g mol-1 / 1e6 m² = 2.17e4 mol m-2 day-1; × 0.25 day × 0.758 = 4.1e3.
#: Check (Germany): ~2 MtCO2/day, of which ~1.6 Mt/day from Power/Industry/Ground Transport with a mean
#: NOx/CO2 ratio ~1.8e-3 gives 2.9e-3 Mt NOx/day over 357,000 km² = 8.1e-9 Mt/day/km² → 3.3e-5 mol m-2
#: on average, and 5-10e-5 over the proxies' hot spots, above the background of 1.5e-5 mol m-2:
#: the order of magnitude TROPOMI sees over Germany.
COLUMN_PER_NOX_DENSITY = 1e12 / _NO2_MOLAR_MASS_G / 1e6 * NOX_LIFETIME_DAYS * NO2_PER_NOX

#: σ of the Gaussian transport kernel, km (NO2 plumes of a few tens of km at TROPOMI's resolution).
DEFAULT_SMOOTHING_KM = 30.0
#: Days whose observed share of a country's proxy weight is below this are gap-filled.
DEFAULT_MIN_COVERAGE = 0.3
#: 1σ relative uncertainty of the inventory's sector shares used to split the observable total.
SHARE_REL_UNCERTAINTY = 0.10
#: 1σ relative uncertainty of profile-only sectors (inventory / 365 × profile).
PROFILE_REL_UNCERTAINTY = {"Residential": 0.20, "Domestic Aviation": 0.15, "International Aviation": 0.15}
#: Assumed day-to-day variability of a country's observable emissions around the prior's weekly/seasonal
#: shape (1σ, relative; Carbon Monitor's daily activity data move by a few % from day to day).
DAILY_VARIABILITY = 0.03
#: Error of one day's inferred level beyond retrieval noise (1σ, relative): pixel sampling of the plumes,
#: the cell-mean vs model-grid mismatch and the neighbours' spill-over. Set from the OSSE residuals
#: (Germany: 2.2% actual vs 0.8% retrieval error); a real-data validation must re-estimate it.
REPRESENTATION_ERROR = 0.03
#: Gap-filled values: interpolated 1σ × this factor; no observations at all: inventory profile ± 30%.
GAP_FILL_UNCERTAINTY_FACTOR = 1.5
_NO_DATA_REL_UNCERTAINTY = 0.30
_KM_PER_DEGREE = 111.195

# The method's own day-of-week (Monday..Sunday) and seasonal prior profiles (independent of the truth's).
_PRIOR_WEEKLY = {
    "Power": (1.03, 1.03, 1.03, 1.03, 1.01, 0.95, 0.88),
    "Industry": (1.05, 1.05, 1.05, 1.05, 1.03, 0.93, 0.84),
    "Ground Transport": (1.03, 1.03, 1.04, 1.05, 1.07, 0.95, 0.83),
    "Residential": (1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0),
    "Domestic Aviation": (1.02, 0.98, 0.98, 1.02, 1.04, 0.96, 1.0),
    "International Aviation": (1.0, 0.99, 0.99, 1.0, 1.02, 1.0, 1.0),
}
_PRIOR_SEASONAL = {
    "Power": 0.06,
    "Industry": 0.02,
    "Ground Transport": -0.03,
    "Residential": 0.40,
    "Domestic Aviation": -0.06,
    "International Aviation": -0.08,
}

# Spatial proxy recipes: (uniform share, σ of city blobs in km); None = point sources ("plants").
_PROXY_RECIPES: dict[str, tuple[float, float | None]] = {
    "Power": (0.10, None),
    "Industry": (0.20, 25.0),
    "Ground Transport": (0.30, 40.0),
    "Residential": (0.40, 30.0),
    "Domestic Aviation": (0.05, 10.0),
    "International Aviation": (0.05, 10.0),
}
_KM2_PER_CITY = 25_000.0
_KM2_PER_PLANT = 30_000.0


# --- shared tables ------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _nox_ratios() -> pd.DataFrame:
    with resources.files("transforms.data").joinpath("nox_ratios.csv").open("rb") as f:
        return pd.read_csv(f, dtype={"iso3": str, "sector": str, "nox_to_co2": np.float64})


def load_nox_ratios() -> pd.DataFrame:
    """NOx/CO2 emission ratios: columns iso3 ("*" = default), sector, nox_to_co2 (t NOx as NO2 per t CO2)."""
    return _nox_ratios().copy()


def _ratio_matrix(iso3s: Sequence[str], sectors: Sequence[str], ratios: pd.DataFrame | None) -> np.ndarray:
    """Ratios, dims (country, sector); a country's own row where given, else the "*" default."""
    table = _nox_ratios() if ratios is None else ratios
    lookup = {(str(r.iso3), str(r.sector)): float(r.nox_to_co2) for r in table.itertuples()}
    out = np.empty((len(iso3s), len(sectors)))
    for i, iso3 in enumerate(iso3s):
        for j, sector in enumerate(sectors):
            value = lookup.get((iso3, sector), lookup.get(("*", sector)))
            if value is None:
                raise InputError(f"no NOx/CO2 ratio for sector {sector!r}; add a '*,{sector},<ratio>' row")
            out[i, j] = value
    return out


def _present(mask: xr.DataArray, grid: GridSpec) -> tuple[np.ndarray, list[Country]]:
    values = np.asarray(mask.values)
    if values.shape != grid.shape:
        raise InputError(
            f"mask shape {values.shape} does not match grid shape {grid.shape}; use country_mask(grid)"
        )
    countries = mask_countries(mask)
    return values, countries


# --- spatial proxies ----------------------------------------------------------------------------------------


def _distance_km(lat: np.ndarray, lon: np.ndarray, plat: float, plon: float) -> np.ndarray:
    dlon = (lon - plon + 180.0) % 360.0 - 180.0
    dx = dlon * np.cos(np.radians(0.5 * (lat + plat))) * _KM_PER_DEGREE
    dy = (lat - plat) * _KM_PER_DEGREE
    return np.asarray(np.hypot(dx, dy))


def _sites(country: Country, kind: str, per_km2: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deterministic site (lat, lon, weight) inside the country, seeded by its ISO3 code and ``kind``."""
    geom = country.geometry
    centre = geom.representative_point()
    area_km2 = geom.area * math.cos(math.radians(centre.y)) * _KM_PER_DEGREE**2
    n = int(np.clip(round(area_km2 / per_km2), 1, 12))
    rng = np.random.default_rng(zlib.crc32(f"{country.iso3}|{kind}".encode()))
    west, south, east, north = geom.bounds
    lon = rng.uniform(west, east, 4000)
    lat = rng.uniform(south, north, 4000)
    inside = shapely.contains_xy(geom, lon, lat)
    lat, lon = lat[inside][:n], lon[inside][:n]
    if lat.size == 0:
        lat, lon = np.array([centre.y]), np.array([centre.x])
    weight = rng.lognormal(0.0, 0.8, lat.size)
    return lat, lon, weight / weight.sum()


def _sector_shape(country: Country, sector: str, grid: GridSpec, cells: np.ndarray) -> np.ndarray:
    """The sector's unnormalised shape on ``cells`` (flat indices into ``grid``, ascending) of ``country``:
    plant weights on their cells, or Gaussian city blobs."""
    _, sigma = _PROXY_RECIPES[sector]
    shape = np.zeros(cells.size)
    if sigma is None:
        plat, plon, pw = _sites(country, "plants", _KM2_PER_PLANT)
        idx = grid.cell_index(plat, plon)
        pos = np.clip(np.searchsorted(cells, idx), 0, max(cells.size - 1, 0))
        ok = cells[pos] == idx
        np.add.at(shape, pos[ok], pw[ok])
        return shape
    lat = grid.lat()[cells // grid.shape[1]]
    lon = grid.lon()[cells % grid.shape[1]]
    slat, slon, sw = _sites(country, "cities", _KM2_PER_CITY)
    for a, b, w in zip(slat, slon, sw, strict=True):
        shape += w * np.exp(-0.5 * (_distance_km(lat, lon, a, b) / sigma) ** 2)
    return shape


_MAX_NORM_CELLS = 4_000_000


@lru_cache(maxsize=512)
def _whole_country_norms(iso3: str, sector: str, resolution: float) -> tuple[float, float]:
    """(number of cells, sum of the sector's shape) over the WHOLE country on a grid of ``resolution``.

    Computed on the country's own bbox grid (coarsened by powers of 2 to at most ~4 M cells, then scaled
    back: both sums grow with the number of cells, except the plants' point weights)."""
    from transforms.regions import country_mask, resolve_country

    country = resolve_country(iso3)
    west, south, east, north = country.geometry.bounds
    res = resolution
    while (east - west) * (north - south) / (res * res) > _MAX_NORM_CELLS:
        res *= 2.0
    own = GridSpec.snapped(res, (west, south, east, north))
    cells = np.flatnonzero(country_mask(own, [country]).values.ravel() == 0)
    scale = (res / resolution) ** 2
    shape_total = float(_sector_shape(country, sector, own, cells).sum())
    return cells.size * scale, shape_total * (1.0 if _PROXY_RECIPES[sector][1] is None else scale)


def _inside(country: Country, grid: GridSpec) -> bool:
    """Whether the country's whole territory lies inside ``grid`` (always, for a global grid)."""
    gw, gs, ge, gn = grid.bounds
    west, south, east, north = country.geometry.bounds
    if south < gs or north > gn:
        return False
    return ge - gw >= 360.0 - 1e-9 or (west >= gw and east <= ge)


def sector_proxies(
    grid: GridSpec, mask: xr.DataArray, *, sectors: Sequence[str] = NO2_OBSERVABLE_SECTORS
) -> xr.DataArray:
    """Where each sector emits within each country: dims (sector, lat, lon), float64, unitless.

    For every country in ``mask`` (from :func:`~transforms.regions.country_mask`) and sector the weights sum
    to 1 over the country's WHOLE territory (0 elsewhere): over its cells when it lies inside ``grid``, to
    the share of the country inside the grid when the grid cuts it (so a regional domain sees, and a
    simulation on it emits, only that share). Deterministic and independent of the grid's resolution:
    "cities" and "plants" are points drawn inside the country's boundary with a generator seeded by its ISO3
    code (one per ~25,000 km² and ~30,000 km², 1-12 of each, lognormal sizes). Power: 90% on the plants'
    cells, 10% uniform. Industry / Ground Transport / Residential: Gaussian blobs around the cities
    (σ 25 / 40 / 30 km) plus a uniform floor (20 / 30 / 40%). Aviation: tight blobs (σ 10 km) at the cities.
    """
    unknown = [s for s in sectors if s not in _PROXY_RECIPES]
    if unknown:
        raise InputError(f"unknown sectors {unknown}; valid sectors are {', '.join(SECTORS)}")
    values, countries = _present(mask, grid)
    flat = values.ravel()
    order = np.argsort(flat, kind="stable")
    bounds = np.searchsorted(flat[order], np.arange(len(countries) + 1))
    out = np.zeros((len(sectors), *grid.shape))
    out_flat = out.reshape(len(sectors), -1)
    for k, country in enumerate(countries):
        cells = np.sort(order[bounds[k] : bounds[k + 1]])
        if cells.size == 0:
            continue
        whole = _inside(country, grid)
        for j, sector in enumerate(sectors):
            floor, _ = _PROXY_RECIPES[sector]
            shape = _sector_shape(country, sector, grid, cells)
            if whole:
                n_cells, total = float(cells.size), float(shape.sum())
            else:
                n_cells, total = _whole_country_norms(country.iso3, sector, grid.resolution)
            uniform = np.full(cells.size, 1.0 / max(n_cells, cells.size))
            weights = uniform if total <= 0 else floor * uniform + (1.0 - floor) * shape / total
            if whole:
                weights = weights / weights.sum()
            out_flat[j, cells] = np.minimum(weights, 1.0)
    return xr.DataArray(
        out,
        dims=("sector", "lat", "lon"),
        coords={"sector": list(sectors), "lat": grid.lat(), "lon": grid.lon()},
        name="proxy",
        attrs={
            "long_name": "sector spatial proxy, sums to 1 over each country's whole territory",
            "units": "1",
        },
    )


# --- transport kernel ---------------------------------------------------------------------------------------


def _shift_add(out: np.ndarray, src: np.ndarray, offset: int, weight: Any, axis: int, periodic: bool) -> None:
    """out += weight * src shifted by ``offset`` cells along ``axis`` (zero fill unless periodic)."""
    if periodic:
        out += weight * np.roll(src, offset, axis=axis)
        return
    n = src.shape[axis]
    if abs(offset) >= n:
        return
    dst = [slice(None)] * src.ndim
    org = [slice(None)] * src.ndim
    dst[axis] = slice(max(offset, 0), n + min(offset, 0))
    org[axis] = slice(max(-offset, 0), n - max(offset, 0))
    w = weight if np.ndim(weight) == 0 else weight[tuple(dst[:axis] + [slice(None)] * (src.ndim - axis))]
    out[tuple(dst)] += w * src[tuple(org)]


def _smooth(
    field: np.ndarray, lat: np.ndarray, resolution: float, sigma_km: float, periodic: bool
) -> np.ndarray:
    """Separable Gaussian (σ km) on a (lat, lon) field; zero outside the field unless lon is periodic."""
    sig_lat = sigma_km / (_KM_PER_DEGREE * resolution)
    if sig_lat < 0.05:
        return field.copy()
    r = math.ceil(3.0 * sig_lat)
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sig_lat) ** 2)
    k /= k.sum()
    tmp = np.zeros_like(field)
    for o, w in zip(range(-r, r + 1), k, strict=True):
        _shift_add(tmp, field, o, w, 0, False)
    out = np.zeros_like(field)
    n_lon = field.shape[1]
    sig_lon = sig_lat / np.maximum(np.cos(np.radians(lat)), 0.05)  # per row
    radius = np.minimum(np.ceil(3.0 * sig_lon).astype(int), n_lon // 2 if periodic else n_lon)
    band = 64
    for b0 in range(0, field.shape[0], band):
        rows = slice(b0, b0 + band)
        rb = int(radius[rows].max())
        offsets = np.arange(-rb, rb + 1)
        w = np.exp(-0.5 * (offsets[None, :] / sig_lon[rows, None]) ** 2)
        w /= w.sum(axis=1, keepdims=True)
        for j in range(offsets.size):
            _shift_add(out[rows], tmp[rows], int(offsets[j]), w[:, j : j + 1], 1, periodic)
    return out


def gaussian_smooth(
    field: np.ndarray, grid: GridSpec, *, sigma_km: float = DEFAULT_SMOOTHING_KM
) -> np.ndarray:
    """Smooth a (lat, lon) field with a Gaussian of σ ``sigma_km`` (km, isotropic on the sphere).

    Mass-conserving inside the grid; what spreads beyond a regional grid's edge is lost, a global grid wraps
    in longitude. Returns float64, same units as ``field``.
    """
    arr = np.asarray(field, dtype=np.float64)
    if arr.shape != grid.shape:
        raise InputError(f"field shape {arr.shape} does not match grid shape {grid.shape}")
    west, _, east, _ = grid.bounds
    return _smooth(arr, grid.lat(), grid.resolution, sigma_km, east - west >= 360.0 - 1e-9)


# --- forward model ------------------------------------------------------------------------------------------


def _proxy_array(proxies: xr.DataArray, grid: GridSpec, sectors: Sequence[str]) -> np.ndarray:
    missing = [s for s in sectors if s not in list(proxies["sector"].values)]
    if missing:
        raise InputError(f"proxies lack sectors {missing}; build them with sector_proxies(grid, mask)")
    arr = np.asarray(proxies.sel(sector=list(sectors)).values, dtype=np.float64)
    if arr.shape[1:] != grid.shape:
        raise InputError(f"proxies shape {arr.shape[1:]} does not match grid shape {grid.shape}")
    return arr


def no2_column_field(
    day_truth: pd.DataFrame,
    grid: GridSpec,
    *,
    mask: xr.DataArray,
    proxies: xr.DataArray,
    smoothing_km: float = DEFAULT_SMOOTHING_KM,
    background: float = NO2_BACKGROUND_MOL_M2,
    ratios: pd.DataFrame | None = None,
) -> np.ndarray:
    """Tropospheric NO2 column one day's emissions produce, dims (lat, lon), float64, mol m-2.

    ``day_truth``: one day's rows with iso3, sector and value (MtCO2/day); aggregate rows, sectors that NO2
    cannot see and countries without cells in ``mask`` are ignored (a country cut by a regional grid's edge
    emits all of its value from its cells inside). See the module docstring for the formula.
    """
    values, countries = _present(mask, grid)
    if "date" in day_truth.columns and day_truth["date"].nunique() > 1:
        raise InputError("day_truth holds several dates; pass one day's rows (df[df.date == day])")
    rows = day_truth[day_truth["sector"].isin(NO2_OBSERVABLE_SECTORS)]
    if "is_aggregate" in rows.columns:
        rows = rows[~rows["is_aggregate"].astype(bool)]
    if rows.duplicated(["iso3", "sector"]).any():
        raise InputError("day_truth repeats an (iso3, sector) pair; pass one day's rows")
    iso3s = [c.iso3 for c in countries]
    index = {code: k for k, code in enumerate(iso3s)}
    sector_index = {s: j for j, s in enumerate(NO2_OBSERVABLE_SECTORS)}
    emission = np.zeros((len(countries), len(NO2_OBSERVABLE_SECTORS)))  # MtCO2/day
    for r in rows.itertuples():
        k = index.get(str(r.iso3))
        if k is not None:
            emission[k, sector_index[str(r.sector)]] = float(str(r.value))
    nox = emission * _ratio_matrix(iso3s, NO2_OBSERVABLE_SECTORS, ratios)  # Mt NOx/day
    p = _proxy_array(proxies, grid, NO2_OBSERVABLE_SECTORS)
    land = values >= 0
    density = np.zeros(grid.shape)
    for j in range(len(NO2_OBSERVABLE_SECTORS)):
        density[land] += nox[values[land], j] * p[j][land]
    density /= grid.cell_area_km2()
    return background + COLUMN_PER_NOX_DENSITY * gaussian_smooth(density, grid, sigma_km=smoothing_km)


# --- inversion ----------------------------------------------------------------------------------------------


def _prior_factor(dates: pd.DatetimeIndex, sector: str, hemisphere: float) -> np.ndarray:
    """The method's prior profile: day-of-week × seasonal factor, mean ~1 over a year."""
    weekly = np.asarray(_PRIOR_WEEKLY[sector])
    phase = 2.0 * np.pi * (dates.day_of_year.to_numpy() - 15) / 365.25
    out: np.ndarray = weekly[dates.day_of_week.to_numpy()] / weekly.mean()
    out = out * (1.0 + hemisphere * _PRIOR_SEASONAL[sector] * np.cos(phase))
    return out


def _inventory_table(inventory: pd.DataFrame, countries: Sequence[Country]) -> tuple[np.ndarray, np.ndarray]:
    """Annual MtCO2/yr, dims (country, sector in SECTORS), and whether each country had its own rows.

    Countries without rows get the ROW row's share by land area (ROW × area / area of every Natural Earth
    country without rows): a crude prior, used only for its sector split when the country is observed (the
    level then comes from the observations) and as the flagged fallback when it never is.
    """
    missing = {"iso3", "sector", "annual_mt"} - set(inventory.columns)
    if missing:
        raise InputError(f"inventory lacks columns {sorted(missing)}; use truth.load_base_inventory()")
    table = inventory.pivot_table(index="iso3", columns="sector", values="annual_mt", aggfunc="sum")
    table = table.reindex(columns=list(SECTORS)).fillna(0.0)
    if "ROW" not in table.index:
        raise InputError("inventory has no ROW row; it supplies the sector split for countries not listed")
    listed = {str(i) for i in table.index if float(table.loc[i].sum()) > 0}
    rest_km2 = sum(_area_km2(c) for c in load_countries() if c.iso3 not in listed)
    annual = np.empty((len(countries), len(SECTORS)))
    own = np.zeros(len(countries), dtype=bool)
    for k, c in enumerate(countries):
        own[k] = c.iso3 in listed
        row = table.loc[c.iso3 if own[k] else "ROW"].to_numpy(dtype=np.float64)
        annual[k] = row if own[k] else row * _area_km2(c) / max(rest_km2, 1.0)
    return annual, own


def _area_km2(country: Country) -> float:
    """Approximate area (km²) from the boundary's area in degrees² at its representative latitude."""
    lat = country.geometry.representative_point().y
    return float(country.geometry.area * math.cos(math.radians(lat)) * _KM_PER_DEGREE**2)


def _footprints(
    grid: GridSpec,
    compact: np.ndarray,
    weight: np.ndarray,
    reff: np.ndarray,
    sigma_km: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per unit observable CO2 (1 MtCO2/day) of each country (``compact``: its index 0..p-1 per cell, -1
    none; ``reff`` per index): the column enhancement H_c on its own cells (dims (lat, lon), mol m-2), and the
    neighbour layers (index, value), dims (layer, lat, lon): per cell, every other country k whose plume
    reaches it (by more than 0.1% of k's strongest own-cell term) with w_i·H_k(i) (mol m-2).
    """
    p = int(compact.max()) + 1 if compact.size and compact.max() >= 0 else 0
    self_h = np.zeros(grid.shape)
    area = grid.cell_area_km2()
    lat = grid.lat()
    n_lat, n_lon = grid.shape
    west, _, east, _ = grid.bounds
    is_global = east - west >= 360.0 - 1e-9
    r_lat = math.ceil(4.0 * sigma_km / (_KM_PER_DEGREE * grid.resolution)) + 1
    cell_ids = np.arange(compact.size).reshape(grid.shape)
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for k in range(p):
        rows, cols = np.nonzero(compact == k)
        if rows.size == 0:
            continue
        r0, r1 = max(rows.min() - r_lat, 0), min(rows.max() + r_lat + 1, n_lat)
        coslat = max(float(np.cos(np.radians(np.abs(lat[r0:r1]).max()))), 0.05)
        r_lon = math.ceil(r_lat / coslat)
        c0, c1 = cols.min() - r_lon, cols.max() + r_lon + 1
        periodic = is_global and (c0 < 0 or c1 > n_lon)
        c0, c1 = (0, n_lon) if periodic else (max(c0, 0), min(c1, n_lon))
        win = (slice(r0, r1), slice(c0, c1))
        own = compact[win] == k
        src = np.where(own, weight[win], 0.0) / area[win]
        h = COLUMN_PER_NOX_DENSITY * reff[k] * _smooth(src, lat[r0:r1], grid.resolution, sigma_km, periodic)
        self_h[win][own] = h[own]
        wh = weight[win] * h
        tol = 1e-3 * float(wh[own].max()) if own.any() else 0.0
        other = (compact[win] >= 0) & ~own & (wh > tol)
        found.append((cell_ids[win][other], np.full(int(other.sum()), k), wh[other]))
    cells = np.concatenate([f[0] for f in found]) if found else np.zeros(0, dtype=np.int64)
    owner = np.concatenate([f[1] for f in found]) if found else np.zeros(0, dtype=np.int64)
    value = np.concatenate([f[2] for f in found]) if found else np.zeros(0)
    order = np.argsort(cells, kind="stable")
    cells, owner, value = cells[order], owner[order], value[order]
    first = np.searchsorted(cells, cells, side="left")
    slot = np.arange(cells.size) - first  # rank of the neighbour within its cell
    n_layers = int(slot.max()) + 1 if slot.size else 0
    # compact types: these static layers travel with the graph (int16 indices, float32 terms: 6 bytes/cell/layer)
    nb_idx = np.full((n_layers, compact.size), -1, dtype=np.int16 if p < 2**15 else np.int32)
    nb_wh = np.zeros((n_layers, compact.size), dtype=np.float32)
    nb_idx[slot, cells] = owner
    nb_wh[slot, cells] = value
    return self_h, nb_idx.reshape(n_layers, *grid.shape), nb_wh.reshape(n_layers, *grid.shape)


def _day_to_day(y: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Per column, the typical change between consecutive good days (10% of the mean if there are none)."""
    out = np.empty(y.shape[1])
    for k in range(y.shape[1]):
        pairs = ok[1:, k] & ok[:-1, k]
        diffs = np.diff(y[:, k])[pairs]
        level = float(np.mean(y[ok[:, k], k])) if ok[:, k].any() else 0.0
        out[k] = float(np.sqrt(np.mean(diffs**2))) if diffs.size >= 2 else 0.1 * level
    return out


def _regularise(y: np.ndarray, sigma: np.ndarray, shape: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shrink each day's level (y / prior shape; dims (time, country)) towards the median of it and its two
    neighbours, by the gain ν² / (ν² + σ² + τ²): ν = :data:`DAILY_VARIABILITY`, σ the day's retrieval 1σ,
    τ = :data:`REPRESENTATION_ERROR` (both relative to the local median). A median keeps step changes; a
    precise day keeps about half of its own departure, a noisy one little. Returns y and the posterior 1σ
    √(gain · (σ² + τ²)), both MtCO2/day."""
    level = y / shape
    padded = np.concatenate([level[:1], level, level[-1:]])
    local = np.median(np.stack([padded[:-2], padded[1:-1], padded[2:]]), axis=0)
    nu2 = (DAILY_VARIABILITY * local) ** 2
    err2 = (sigma / shape) ** 2 + (REPRESENTATION_ERROR * local) ** 2
    with np.errstate(invalid="ignore", divide="ignore"):
        gain = np.where(nu2 + err2 > 0, nu2 / (nu2 + err2), 0.0)
    out = (local + gain * (level - local)) * shape
    return out, np.sqrt(gain * err2) * shape


def _fill_gaps(y: np.ndarray, ok: np.ndarray) -> np.ndarray:
    """Linear interpolation over days where ``ok`` is False (held constant beyond the ends), per column."""
    out = y.copy()
    t = np.arange(y.shape[0])
    for k in range(y.shape[1]):
        good = ok[:, k]
        if good.any() and not good.all():
            out[~good, k] = np.interp(t[~good], t[good], y[good, k])
    return out


def derive_emissions(
    cube: xr.Dataset,
    grid: GridSpec,
    *,
    mask: xr.DataArray,
    proxies: xr.DataArray,
    inventory: pd.DataFrame,
    release: str,
    smoothing_km: float = DEFAULT_SMOOTHING_KM,
    background: float = NO2_BACKGROUND_MOL_M2,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    ratios: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Daily country × sector emissions (Carbon Monitor vocabulary) from a daily NO2 cube.

    ``cube``: dims (time, lat, lon) on ``grid`` with ``mean`` (tropospheric NO2, mol m-2, NaN unobserved),
    ``count`` (pixels) and ``uncertainty`` (1σ of the mean, mol m-2); numpy or dask. With dask the per-day
    country sums are one graph over the cube's chunks (a compiled kernel per block,
    :func:`transforms.zonal.observed_sums`) and only the (time, country) sums are computed.
    ``inventory``: iso3, sector, annual_mt (MtCO2/yr), e.g. ``truth.load_base_inventory()``.

    Method, per country c and day d (w = the country's NOx-weighted proxy over the observable sectors, with
    the inventory's sector split; sums to 1 over its cells):

    1. A = Σ_obs w (V - V_bg) / Σ_obs w, the proxy-weighted mean enhancement over observed cells;
       coverage = Σ_obs w (the observed share of the country's proxy weight).
    2. The same mean for 1 MtCO2/day of the country's observable sectors, over the same cells: g = Σ_obs w H_c
       / Σ_obs w, with H_c from the shared conversion (:data:`COLUMN_PER_NOX_DENSITY`, NOx ratios, kernel).
       Neighbours' NO2 spilling over borders is removed by solving A_c = g_c Y_c + Σ_c'≠c m[c,c'] Y_c' for
       all countries at once (m[c,c'] = Σ w·H_c' / Σ w over c's cells observed that day),
       giving Y, the observable total, scaled by the day's NOx/CO2 mix (prior sector shapes).
    3. Days with coverage < ``min_coverage`` are gap-filled by linear interpolation between neighbouring
       good days of Y divided by the prior's day-of-week/seasonal shape (``gap_filled=True``); a country
       never observed falls back to its inventory profile (``source="inventory_profile"``). Never silent
       zeros. Each day's level is then shrunk towards the median of it and its neighbours
       (:func:`_regularise`: gain ν²/(ν²+σ²+τ²), so precise days follow the data and steps are kept).
    4. Y is split over Power/Industry/Ground Transport with the inventory's shares × the prior's profiles.
       Residential and aviation follow inventory / 365 × the method's weekly/seasonal profile
       (``source="profile"``); countries absent from the inventory use ROW's sector split scaled to their
       observed mean (``"default_share_profile"``).

    Uncertainty (1σ, MtCO2/day): retrieval noise Σ_obs w²σ² propagated through the solve ⊕ the 3%
    representation error, reduced by the regularisation, ⊕ 10% sector-share uncertainty for observable
    sectors; gap-filled days: the interpolated 1σ × 1.5 ⊕ the series' RMS day-to-day change; profile sectors
    ± 15-20%. Transport-model and
    NOx-ratio errors are not included (an OSSE shares them). Aggregates, ``is_aggregate=True``, uncertainty
    added in quadrature, never counted twice: WORLD (sum over the countries in the grid: the domain total for
    regional runs), EU27 (its members present) and ROW (WORLD minus the countries Carbon Monitor lists
    separately, :data:`~transforms.regions.ROW_EXCLUDES`).

    Returns columns country (Carbon Monitor name), iso3, date (datetime64[ns]), sector, value, uncertainty,
    coverage (0-1; 0 for profile-only rows), gap_filled, is_aggregate, source, method_version, release.
    """
    for v in ("mean", "count", "uncertainty"):
        if v not in cube.data_vars:
            raise InputError(
                f"cube lacks variable {v!r}; expected mean, count and uncertainty on (time, lat, lon)"
            )
        if cube[v].dims != ("time", "lat", "lon"):
            raise InputError(f"cube[{v!r}] has dims {cube[v].dims}; expected ('time', 'lat', 'lon')")
    if tuple(cube.sizes[d] for d in ("lat", "lon")) != grid.shape:
        raise InputError(
            f"cube (lat, lon) sizes differ from grid shape {grid.shape}; pass the cube's own grid"
        )
    values, countries = _present(mask, grid)
    n = len(countries)
    present = np.unique(values[values >= 0])
    iso3s = [c.iso3 for c in countries]
    annual, own_inventory = _inventory_table(inventory, countries)
    obs_j = [SECTORS.index(s) for s in NO2_OBSERVABLE_SECTORS]
    obs_annual = annual[:, obs_j]
    shares = obs_annual / np.maximum(obs_annual.sum(axis=1, keepdims=True), 1e-12)  # CO2 split, (c, s)
    r = _ratio_matrix(iso3s, NO2_OBSERVABLE_SECTORS, ratios)
    reff = (shares * r).sum(axis=1)  # t NOx per t observable CO2
    nox_share = shares * r / reff[:, None]
    p = _proxy_array(proxies, grid, NO2_OBSERVABLE_SECTORS)
    land = values >= 0
    weight = np.zeros(grid.shape)
    for j in range(len(NO2_OBSERVABLE_SECTORS)):
        weight[land] += nox_share[values[land], j] * p[j][land]
    compact = np.full(n + 1, -1, dtype=np.int32)  # mask index → position in ``present`` (-1: none)
    compact[present] = np.arange(present.size, dtype=np.int32)
    regions = np.where(values >= 0, compact[np.where(values >= 0, values, n)], -1).astype(np.int32)
    self_h, nb_idx, nb_wh = _footprints(grid, regions, weight, reff[present], smoothing_km)
    sums = observed_sums(
        cube["mean"].data,
        cube["count"].data,
        cube["uncertainty"].data,
        regions=regions,
        weight=weight,
        footprint=self_h,
        background=background,
        n=present.size,
        neighbours=(nb_idx, nb_wh),
    )
    cross_obs = sums[:, 4:, :]  # (time, c, k): Σ over c's observed cells of w·H_k
    sw, s1, sh, sv = (sums[:, q, :] for q in range(4))
    with np.errstate(invalid="ignore", divide="ignore"):
        coverage = np.clip(sw, 0.0, 1.0)
        a = s1 / sw
        g = sh / sw
        var_a = sv / sw**2
        ok = (coverage >= min_coverage) & (g > 0) & np.isfinite(a)
        first = np.where(ok, a / g, np.nan)
    dates = pd.DatetimeIndex(pd.to_datetime(cube["time"].values)).normalize()
    hemispheres = [1.0 if countries[k].geometry.representative_point().y >= 0 else -1.0 for k in present]
    # gaps are interpolated relative to the prior's day-of-week/seasonal shape (a Sunday stays a Sunday)
    shape = np.stack(
        [
            sum(shares[k, j] * _prior_factor(dates, s, h) for j, s in enumerate(NO2_OBSERVABLE_SECTORS))
            for k, h in zip(present, hemispheres, strict=True)
        ],
        axis=1,
    ).reshape(len(dates), len(present))
    first = _fill_gaps(np.nan_to_num(first) / shape, ok) * shape
    y = np.zeros_like(first)
    sigma = np.zeros_like(first)
    for d in range(y.shape[0]):
        good = ok[d]
        if not good.any():
            continue
        with np.errstate(invalid="ignore", divide="ignore"):  # rows of unobserved countries are unused
            off = cross_obs[d] / sw[d][:, None]  # neighbours' part of each country's observed mean
        matrix = off[np.ix_(good, good)] + np.diag(g[d, good])
        rhs = a[d, good] - off[np.ix_(good, ~good)] @ first[d, ~good]
        inverse = np.linalg.inv(matrix)
        y[d, good] = inverse @ rhs
        sigma[d, good] = np.sqrt((inverse**2) @ var_a[d, good])
    # the day's NOx/CO2 ratio follows the prior's sector mix (traffic dips more at weekends than power)
    mix = np.stack(
        [
            [shares[k, j] * _prior_factor(dates, s, h) for j, s in enumerate(NO2_OBSERVABLE_SECTORS)]
            for k, h in zip(present, hemispheres, strict=True)
        ]
    ).reshape(len(present), len(NO2_OBSERVABLE_SECTORS), len(dates))  # (country, sector, time)
    daily_shares = mix / np.maximum(mix.sum(axis=1, keepdims=True), 1e-12)
    reff_day = (daily_shares * r[present][:, :, None]).sum(axis=1)  # (country, time)
    ratio = np.where(reff_day > 0, reff[present][:, None] / np.where(reff_day > 0, reff_day, 1.0), 1.0).T
    y, sigma = y * ratio, sigma * ratio
    y = np.maximum(_fill_gaps(y / shape, ok) * shape, 0.0)
    sigma = _fill_gaps(sigma / shape, ok) * shape
    y, sigma = _regularise(y, sigma, shape)
    gap = ~ok
    sigma = np.where(gap, np.hypot(sigma * GAP_FILL_UNCERTAINTY_FACTOR, _day_to_day(y, ok)[None, :]), sigma)

    frames = []
    for col, k in enumerate(present):
        c = countries[k]
        hemisphere = hemispheres[col]
        never = not ok[:, col].any()
        if never:  # no usable observation in the period: inventory profile, flagged
            yk = sum(
                annual[k, j] / 365.0 * _prior_factor(dates, s, hemisphere)
                for j, s in zip(obs_j, NO2_OBSERVABLE_SECTORS, strict=True)
            )
            yk = np.asarray(yk, dtype=np.float64)
            sk = _NO_DATA_REL_UNCERTAINTY * yk
        else:
            yk, sk = y[:, col], sigma[:, col]
        scale = 1.0
        if not own_inventory[k]:  # ROW split scaled to this country's observed level
            scale = float(yk.mean() * 365.0 / max(obs_annual[k].sum(), 1e-12)) if yk.size else 0.0
        for j, sector in enumerate(SECTORS):
            if sector in NO2_OBSERVABLE_SECTORS:
                share = daily_shares[col, NO2_OBSERVABLE_SECTORS.index(sector)]
                value = yk * share
                unc = np.hypot(sk * share, value * SHARE_REL_UNCERTAINTY)
                source = "inventory_profile" if never else "no2_activity"
                cov, filled = coverage[:, col], gap[:, col]
            else:
                value = annual[k, j] * scale / 365.0 * _prior_factor(dates, sector, hemisphere)
                unc = value * PROFILE_REL_UNCERTAINTY[sector]
                source = "profile" if own_inventory[k] else "default_share_profile"
                cov, filled = np.zeros(len(dates)), np.zeros(len(dates), dtype=bool)
            frames.append(
                pd.DataFrame(
                    {
                        "country": c.cm_name,
                        "iso3": c.iso3,
                        "date": dates,
                        "sector": sector,
                        "value": value,
                        "uncertainty": unc,
                        "coverage": cov,
                        "gap_filled": filled,
                        "source": source,
                    }
                )
            )
    members = pd.concat(frames, ignore_index=True) if frames else _empty_members()
    members["is_aggregate"] = False
    out = pd.concat([members, *_aggregates(members)], ignore_index=True)
    out["method_version"] = METHOD_VERSION
    out["release"] = release
    out = out[list(OUTPUT_COLUMNS)]
    return out.astype(_OUTPUT_DTYPES)


OUTPUT_COLUMNS: tuple[str, ...] = (
    "country", "iso3", "date", "sector", "value", "uncertainty", "coverage",
    "gap_filled", "is_aggregate", "source", "method_version", "release",
)  # fmt: skip
_OUTPUT_DTYPES: dict[str, Any] = {
    "country": str, "iso3": str, "date": "datetime64[ns]", "sector": str, "value": np.float64,
    "uncertainty": np.float64, "coverage": np.float64, "gap_filled": bool, "is_aggregate": bool,
    "source": str, "method_version": str, "release": str,
}  # fmt: skip


def _empty_members() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=t) for c, t in _OUTPUT_DTYPES.items() if c in _MEMBER_COLUMNS})


_MEMBER_COLUMNS = (
    "country",
    "iso3",
    "date",
    "sector",
    "value",
    "uncertainty",
    "coverage",
    "gap_filled",
    "source",
)


def _aggregates(members: pd.DataFrame) -> list[pd.DataFrame]:
    """WORLD (all member rows), EU27 (its members present) and ROW (members not in ROW_EXCLUDES) per date
    and sector, from members only."""
    out = []
    groups = (
        ("WORLD", members),
        ("EU27", members[members["iso3"].isin(EU27)]),
        ("ROW", members[~members["iso3"].isin(ROW_EXCLUDES)]),
    )
    for code, rows in groups:
        if rows.empty:
            continue
        rows = rows.assign(var=rows["uncertainty"] ** 2, wcov=rows["coverage"] * rows["value"])
        agg = rows.groupby(["date", "sector"], sort=False).agg(
            value=("value", "sum"), var=("var", "sum"), wcov=("wcov", "sum"), gap_filled=("gap_filled", "any")
        )
        agg = agg.reset_index()
        out.append(
            pd.DataFrame(
                {
                    "country": code,
                    "iso3": code,
                    "date": agg["date"],
                    "sector": agg["sector"],
                    "value": agg["value"],
                    "uncertainty": np.sqrt(agg["var"]),
                    "coverage": np.where(
                        agg["value"] > 0, agg["wcov"] / agg["value"].where(agg["value"] > 0), 0.0
                    ),
                    "gap_filled": agg["gap_filled"],
                    "source": "aggregate",
                    "is_aggregate": True,
                }
            )
        )
    return out
