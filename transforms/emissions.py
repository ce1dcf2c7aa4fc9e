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
from transforms.profiles import PRIOR
from transforms.regions import EU27, ROW_EXCLUDES, Country, country_mask, load_countries, mask_countries
from transforms.truth import SECTORS
from transforms.zonal import NormalEquations, normal_equations

METHOD_VERSION = "0.3.0"
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
#: Random-walk step of a country's observable level (emission / prior profile) from one day to the next
#: (1σ, relative to the country's inventory level; Carbon Monitor's daily activity moves by a few % a day).
LEVEL_STEP = 0.03
#: 1σ of the first day's level around the inventory's level, relative: a weak prior (the level is inferred).
LEVEL_PRIOR = 1.0
#: The day's background offset: first-day 1σ and day-to-day random-walk step, mol m-2.
BACKGROUND_PRIOR_MOL_M2 = 1e-5
BACKGROUND_STEP_MOL_M2 = 2e-6
#: Padding of the inversion grid beyond the domain, in σ of the transport kernel: sources that close to the
#: domain put NO2 into it, so they are unknowns of the inversion too.
PAD_SIGMAS = 4.0
_NO_DATA_REL_UNCERTAINTY = 0.30
_KM_PER_DEGREE = 111.195

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
    """The method's prior profile (:data:`transforms.profiles.PRIOR`): day-of-week × seasonal, mean ~1."""
    return PRIOR.factor(dates, sector, hemisphere)


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


def inversion_grid(grid: GridSpec, *, smoothing_km: float = DEFAULT_SMOOTHING_KM) -> GridSpec:
    """The grid the inversion models sources on: ``grid`` widened by :data:`PAD_SIGMAS` σ of the transport
    kernel on every side (same resolution and cell edges; latitude clipped at the poles; a global grid, or one
    whose padded width would reach 360°, is not widened in longitude). Sources in the padding put NO2 into
    the domain, so the countries there are unknowns too; observations exist only in ``grid``."""
    if grid.is_global:
        return grid
    west, south, east, north = grid.bounds
    pad_lat = PAD_SIGMAS * smoothing_km / _KM_PER_DEGREE
    edge = min(max(abs(south - pad_lat), abs(north + pad_lat)), 85.0)
    pad_lon = pad_lat / math.cos(math.radians(edge))
    if east - west + 2 * pad_lon >= 360.0:
        pad_lon = 0.0
    padded = GridSpec.snapped(
        grid.resolution, (west - pad_lon, south - pad_lat, east + pad_lon, north + pad_lat)
    )
    _crop(padded, grid)  # the same cell edges
    return padded


#: Sources are modelled on a grid this many times finer than the cube (per axis) while that grid stays under
#: :data:`_MAX_SOURCE_CELLS` cells: a proxy rasterised at the cube's resolution moves sources near borders
#: by up to half a cell, and for a country of a few dozen cells (Luxembourg) that moves its level.
SOURCE_SUPERSAMPLING = 2
_MAX_SOURCE_CELLS = 4_000_000


def _source_grid(padded: GridSpec) -> GridSpec:
    """The grid sources are modelled on: ``padded`` supersampled by :data:`SOURCE_SUPERSAMPLING`, or
    ``padded`` itself when that would exceed :data:`_MAX_SOURCE_CELLS` (global grids)."""
    f = SOURCE_SUPERSAMPLING
    n_lat, n_lon = padded.shape
    if f <= 1 or n_lat * n_lon * f * f > _MAX_SOURCE_CELLS:
        return padded
    return GridSpec(padded.resolution / f, padded.bounds)


def _crop(padded: GridSpec, grid: GridSpec) -> tuple[slice, slice]:
    """Rows and columns of ``padded`` that make up ``grid``."""
    res = grid.resolution
    i0 = round((grid.bounds[1] - padded.bounds[1]) / res)
    j0 = round((grid.bounds[0] - padded.bounds[0]) / res)
    rows, cols = slice(i0, i0 + grid.shape[0]), slice(j0, j0 + grid.shape[1])
    if (
        padded.resolution != res
        or i0 < 0
        or j0 < 0
        or rows.stop > padded.shape[0]
        or cols.stop > padded.shape[1]
        or not np.allclose(padded.lat()[rows], grid.lat())
        or not np.allclose(padded.lon()[cols], grid.lon())
    ):
        raise InputError(f"grid {padded.grid_id} does not contain grid {grid.grid_id} cell for cell")
    return rows, cols


def _footprints(
    padded: GridSpec,
    compact: np.ndarray,
    weight: np.ndarray,
    reff: np.ndarray,
    sigma_km: float,
    crop: tuple[slice, slice],
    factor: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Per unknown country k (``compact``: its index 0..p-1 per cell of ``padded``, -1 none; ``weight`` its
    NOx-weighted proxy there; ``reff`` its NOx/CO2 ratio), the column enhancement H_k 1 MtCO2/day of its
    observable sectors makes on each cell of the domain, wherever the cell lies (its own land, a
    neighbour's, the sea), as sparse layers (index, value), dims (layer, lat, lon) of the domain, values
    mol m-2 per MtCO2/day; a cell lists the k whose H_k there exceeds 0.1% of H_k's peak. ``padded`` may be
    ``factor`` times finer than the domain (sources placed to a fraction of a cell): H_k is then the mean
    over each cell's factor × factor sub-cells, and ``crop`` is in the domain's (coarse) cells.
    """
    p = int(compact.max()) + 1 if compact.size and compact.max() >= 0 else 0
    area = padded.cell_area_km2()
    lat = padded.lat()
    n_lat, n_lon = padded.shape
    rows, cols = crop
    dom_shape = (rows.stop - rows.start, cols.stop - cols.start)
    dom_ids = np.full((n_lat // factor, n_lon // factor), -1, dtype=np.int64)
    dom_ids[rows, cols] = np.arange(dom_shape[0] * dom_shape[1]).reshape(dom_shape)
    is_global = padded.is_global
    r_lat = math.ceil(4.0 * sigma_km / (_KM_PER_DEGREE * padded.resolution)) + 1
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for k in range(p):
        rr, cc = np.nonzero(compact == k)
        if rr.size == 0:
            continue
        r0, r1 = max(rr.min() - r_lat, 0), min(rr.max() + r_lat + 1, n_lat)
        coslat = max(float(np.cos(np.radians(np.abs(lat[r0:r1]).max()))), 0.05)
        r_lon = math.ceil(r_lat / coslat)
        c0, c1 = cc.min() - r_lon, cc.max() + r_lon + 1
        periodic = is_global and (c0 < 0 or c1 > n_lon)
        c0, c1 = (0, n_lon) if periodic else (max(c0, 0), min(c1, n_lon))
        r0, c0 = r0 // factor * factor, c0 // factor * factor  # whole coarse cells
        r1, c1 = -(-r1 // factor) * factor, -(-c1 // factor) * factor
        win = (slice(r0, r1), slice(c0, c1))
        src = np.where(compact[win] == k, weight[win], 0.0) / area[win]
        h = COLUMN_PER_NOX_DENSITY * reff[k] * _smooth(src, lat[r0:r1], padded.resolution, sigma_km, periodic)
        if factor > 1:
            h = h.reshape(h.shape[0] // factor, factor, h.shape[1] // factor, factor).mean(axis=(1, 3))
        ids = dom_ids[r0 // factor : r1 // factor, c0 // factor : c1 // factor]
        keep = (ids >= 0) & (h > 1e-3 * float(h.max()))
        found.append((ids[keep], np.full(int(keep.sum()), k), h[keep]))
    cells = np.concatenate([f[0] for f in found]) if found else np.zeros(0, dtype=np.int64)
    owner = np.concatenate([f[1] for f in found]) if found else np.zeros(0, dtype=np.int64)
    value = np.concatenate([f[2] for f in found]) if found else np.zeros(0)
    order = np.argsort(cells, kind="stable")
    cells, owner, value = cells[order], owner[order], value[order]
    first = np.searchsorted(cells, cells, side="left")
    slot = np.arange(cells.size) - first  # rank of the country within its cell
    n_layers = int(slot.max()) + 1 if slot.size else 0
    # compact types: these static layers travel with the graph (int16 indices, float32 terms: 6 bytes/cell/layer)
    size = dom_shape[0] * dom_shape[1]
    fp_idx = np.full((n_layers, size), -1, dtype=np.int16 if p < 2**15 else np.int32)
    fp_val = np.zeros((n_layers, size), dtype=np.float32)
    fp_idx[slot, cells] = owner
    fp_val[slot, cells] = value
    return fp_idx.reshape(n_layers, *dom_shape), fp_val.reshape(n_layers, *dom_shape)


def _smooth_levels(
    normal: NormalEquations, multiplier: np.ndarray, scale: np.ndarray, inflation: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Kalman filter and Rauch-Tung-Striebel smoother over the days for the state u (unknown / ``scale``):
    every country's level and the background offset (last), dims (unknown,).

    Day d observes x = diag(``multiplier``[d]) · scale · u through its normal equations (information
    matrix / ``inflation``[d]); the state is a random walk (country levels: step :data:`LEVEL_STEP`
    relative to ``scale``; background: :data:`BACKGROUND_STEP_MOL_M2`) from a first-day prior of 1 ±
    :data:`LEVEL_PRIOR` (countries: ``scale`` is the inventory's level) and 0 ± :data:`BACKGROUND_PRIOR_MOL_M2`.
    Returns the smoothed state × scale and its 1σ, dims (time, unknown)."""
    nt, m = normal.rhs.shape
    bg_scale = scale[-1]
    u0 = np.ones(m)
    u0[-1] = 0.0
    p0 = np.full(m, LEVEL_PRIOR**2)
    p0[-1] = (BACKGROUND_PRIOR_MOL_M2 / bg_scale) ** 2
    q = np.full(m, LEVEL_STEP**2)
    q[-1] = (BACKGROUND_STEP_MOL_M2 / bg_scale) ** 2
    x_pred = np.zeros((nt, m))
    p_pred = np.zeros((nt, m, m))
    x_f = np.zeros((nt, m))
    p_f = np.zeros((nt, m, m))
    for d in range(nt):
        if d == 0:
            x_pred[d], p_pred[d] = u0, np.diag(p0)
        else:
            x_pred[d], p_pred[d] = x_f[d - 1], p_f[d - 1] + np.diag(q)
        s = multiplier[d] * scale  # x = s · u
        info = normal.matrix[d] * np.outer(s, s) / inflation[d]
        vec = normal.rhs[d] * s / inflation[d]
        i_pred = _sym_inv(p_pred[d])
        p_f[d] = _sym_inv(i_pred + info)
        x_f[d] = p_f[d] @ (i_pred @ x_pred[d] + vec)
    x_s, p_s = x_f.copy(), p_f.copy()
    for d in range(nt - 2, -1, -1):
        gain = p_f[d] @ _sym_inv(p_pred[d + 1])
        x_s[d] = x_f[d] + gain @ (x_s[d + 1] - x_pred[d + 1])
        p_s[d] = p_f[d] + gain @ (p_s[d + 1] - p_pred[d + 1]) @ gain.T
    sd = np.sqrt(np.clip(np.diagonal(p_s, axis1=1, axis2=2), 0.0, None))
    return x_s * scale, sd * scale


def _sym_inv(a: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.linalg.inv(0.5 * (a + a.T))
    sym: np.ndarray = 0.5 * (out + out.T)
    return sym


def _reduced_chi2(normal: NormalEquations, x: np.ndarray) -> np.ndarray:
    """Per day, Σ ω r² / (cells − unknowns) of the residuals r of the fit x (dims (time, unknown), the
    normal equations' units); 1 when there are too few cells."""
    fit = np.einsum("tk,tk->t", x, normal.rhs)
    quad = np.einsum("tk,tkl,tl->t", x, normal.matrix, x)
    chi2 = normal.chi2_data - 2.0 * fit + quad
    dof = normal.cells - x.shape[1]
    return np.where(dof > 0, np.clip(chi2, 0.0, None) / np.maximum(dof, 1.0), 1.0)


def derive_emissions(
    cube: xr.Dataset,
    grid: GridSpec,
    *,
    inventory: pd.DataFrame,
    release: str,
    mask: xr.DataArray | None = None,
    proxies: xr.DataArray | None = None,
    smoothing_km: float = DEFAULT_SMOOTHING_KM,
    background: float = NO2_BACKGROUND_MOL_M2,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    ratios: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Daily country × sector emissions (Carbon Monitor vocabulary) from a daily NO2 cube.

    ``cube``: dims (time, lat, lon) on ``grid`` with ``mean`` (tropospheric NO2, mol m-2, NaN unobserved),
    ``count`` (pixels) and ``uncertainty`` (1σ of the mean, mol m-2); numpy or dask. With dask the per-day
    normal equations are one graph over the cube's chunks (a compiled kernel per block,
    :func:`transforms.zonal.normal_equations`) and only those small sums are computed.
    ``inventory``: iso3, sector, annual_mt (MtCO2/yr), e.g. ``truth.load_base_inventory()``. ``mask`` and
    ``proxies`` are on :func:`inversion_grid` (``grid`` padded by 4σ of the transport kernel); by default
    they are built there with :func:`~transforms.regions.country_mask` and :func:`sector_proxies`.

    Method (w_k = country k's NOx-weighted proxy over the observable sectors, with the inventory's sector
    split; sums to 1 over its whole territory):

    1. Footprints: H_k, the column enhancement 1 MtCO2/day of k's observable sectors makes on every domain
       cell (its own, its neighbours', the sea), from its sources on the padded grid (the shared conversion
       :data:`COLUMN_PER_NOX_DENSITY`, NOx ratios and transport kernel). Countries in the padding are
       unknowns too: their plumes enter the domain.
    2. Per day, weighted least squares over all observed cells: V_i − V_bg = Σ_k H_k(i)·x_k + b + ε_i,
       weight 1/σ_i² (σ_i the cell's retrieval 1σ), b the day's background offset. The per-day normal
       equations are reduced from the cube in one pass; they separate neighbours from their spill-over
       with the plumes' whole shape instead of per-country sums.
    3. A Kalman filter and smoother over the days: each country's level L (x / the prior's day-of-week,
       seasonal and NOx/CO2-mix shape) is a random walk (:data:`LEVEL_STEP` a day) from a weak first-day prior
       at the inventory's level (± :data:`LEVEL_PRIOR`); cloudy days and the days between observations are
       filled by the smoother from both sides, with their larger posterior 1σ. Each day's observation
       errors are scaled by that day's reduced χ² of a first pass (≥ 1), so model error the retrieval
       noise misses widens the weights instead of entering as signal.
    4. Days whose observed share of the country's proxy weight (``coverage``) is below ``min_coverage`` are
       flagged ``gap_filled``; a country never observed keeps its inventory profile
       (``source="inventory_profile"``, ±30%). Never silent zeros.
    5. The observable total is split over Power/Industry/Ground Transport with the inventory's shares × the
       prior's profiles. Residential and aviation follow inventory / 365 × the method's weekly/seasonal
       profile (``source="profile"``); countries absent from the inventory use ROW's sector split scaled to
       their inferred mean (``"default_share_profile"``).

    Uncertainty (1σ, MtCO2/day): the smoother's posterior ⊕ 10% sector-share uncertainty for observable
    sectors; profile sectors ± 15-20%. Transport-model and NOx-ratio errors are not included (an OSSE
    shares them). Aggregates, ``is_aggregate=True``, uncertainty added in quadrature, never counted twice:
    WORLD (sum over the countries in the grid: the domain total for regional runs), EU27 (its members
    present) and ROW (WORLD minus the countries Carbon Monitor lists separately,
    :data:`~transforms.regions.ROW_EXCLUDES`).

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
    padded = inversion_grid(grid, smoothing_km=smoothing_km)
    crop = _crop(padded, grid)
    if mask is None:
        mask = country_mask(padded)
    if proxies is None:
        proxies = sector_proxies(padded, mask)
    if mask.shape != padded.shape:
        raise InputError(
            f"mask shape {mask.shape} is not the inversion grid's {padded.shape}; "
            "build it with country_mask(inversion_grid(grid))"
        )
    values, countries = _present(mask, padded)
    n = len(countries)
    unknown = np.unique(values[values >= 0])  # countries with sources in the padded grid
    dom_values = values[crop]
    present = np.unique(dom_values[dom_values >= 0])  # countries reported: cells in the domain
    iso3s = [c.iso3 for c in countries]
    annual, own_inventory = _inventory_table(inventory, countries)
    obs_j = [SECTORS.index(s) for s in NO2_OBSERVABLE_SECTORS]
    obs_annual = annual[:, obs_j]
    shares = obs_annual / np.maximum(obs_annual.sum(axis=1, keepdims=True), 1e-12)  # CO2 split, (c, s)
    r = _ratio_matrix(iso3s, NO2_OBSERVABLE_SECTORS, ratios)
    reff = (shares * r).sum(axis=1)  # t NOx per t observable CO2
    nox_share = shares * r / reff[:, None]
    p = _proxy_array(proxies, padded, NO2_OBSERVABLE_SECTORS)
    land = values >= 0
    weight = np.zeros(padded.shape)
    for j in range(len(NO2_OBSERVABLE_SECTORS)):
        weight[land] += nox_share[values[land], j] * p[j][land]
    compact = np.full(n + 1, -1, dtype=np.int32)  # mask index → position in ``unknown`` (-1: none)
    compact[unknown] = np.arange(unknown.size, dtype=np.int32)
    regions = np.where(land, compact[np.where(land, values, n)], -1).astype(np.int32)
    fine = _source_grid(padded)
    if fine == padded:
        fp = _footprints(padded, regions, weight, reff[unknown], smoothing_km, crop)
    else:  # the sources on a finer grid: the same countries, placed to a fraction of a cell
        fine_mask = country_mask(fine)
        fine_values = fine_mask.values
        fine_land = (fine_values >= 0) & (compact[np.where(fine_values >= 0, fine_values, n)] >= 0)
        p_fine = _proxy_array(sector_proxies(fine, fine_mask), fine, NO2_OBSERVABLE_SECTORS)
        fine_weight = np.zeros(fine.shape)
        for j in range(len(NO2_OBSERVABLE_SECTORS)):
            fine_weight[fine_land] += nox_share[fine_values[fine_land], j] * p_fine[j][fine_land]
        fine_regions = np.where(fine_land, compact[np.where(fine_land, fine_values, n)], -1).astype(np.int32)
        factor = round(padded.resolution / fine.resolution)
        fp = _footprints(fine, fine_regions, fine_weight, reff[unknown], smoothing_km, crop, factor)
    normal = normal_equations(
        cube["mean"].data,
        cube["count"].data,
        cube["uncertainty"].data,
        regions=regions[crop],
        weight=weight[crop],
        footprints=fp,
        background=background,
        n=unknown.size,
    )
    dates = pd.DatetimeIndex(pd.to_datetime(cube["time"].values)).normalize()
    hemispheres = np.array([1.0 if c.geometry.representative_point().y >= 0 else -1.0 for c in countries])
    # the prior's day-of-week/seasonal mix of sectors, (country, sector, time), for every unknown
    mix = np.stack(
        [
            [
                shares[k, j] * _prior_factor(dates, s, hemispheres[k])
                for j, s in enumerate(NO2_OBSERVABLE_SECTORS)
            ]
            for k in unknown
        ]
    ).reshape(unknown.size, len(NO2_OBSERVABLE_SECTORS), len(dates))
    shape = mix.sum(axis=1).T  # (time, unknown): the observable total's prior shape
    daily_shares = mix / np.maximum(mix.sum(axis=1, keepdims=True), 1e-12)
    reff_day = (daily_shares * r[unknown][:, :, None]).sum(axis=1).T  # (time, unknown)
    # x (NOx-equivalent at the mean ratio) = level × shape × the day's NOx/CO2 relative to the mean
    multiplier = np.ones((len(dates), unknown.size + 1))
    multiplier[:, :-1] = shape * reff_day / reff[unknown][None, :]
    level = np.maximum(obs_annual[unknown].sum(axis=1) / 365.0, 1e-6)  # the weak prior's mean and scale
    scale = np.append(level, BACKGROUND_PRIOR_MOL_M2)
    inflation = np.ones(len(dates))
    state, state_sd = _smooth_levels(normal, multiplier, scale, inflation)
    inflation = np.maximum(_reduced_chi2(normal, state * multiplier), 1.0)
    state, state_sd = _smooth_levels(normal, multiplier, scale, inflation)
    coverage = np.clip(normal.coverage, 0.0, 1.0)
    ok = coverage >= min_coverage

    frames = []
    for k in present:
        col = int(compact[k])
        c = countries[k]
        hemisphere = hemispheres[k]
        never = not ok[:, col].any()
        if never:  # no usable observation in the period: inventory profile, flagged
            yk = sum(
                annual[k, j] / 365.0 * _prior_factor(dates, s, hemisphere)
                for j, s in zip(obs_j, NO2_OBSERVABLE_SECTORS, strict=True)
            )
            yk = np.asarray(yk, dtype=np.float64)
            sk = _NO_DATA_REL_UNCERTAINTY * yk
        else:
            yk = np.maximum(state[:, col] * shape[:, col], 0.0)
            sk = state_sd[:, col] * shape[:, col]
        scale_k = 1.0
        if not own_inventory[k]:  # ROW split scaled to this country's inferred level
            scale_k = float(yk.mean() * 365.0 / max(obs_annual[k].sum(), 1e-12)) if yk.size else 0.0
        for j, sector in enumerate(SECTORS):
            if sector in NO2_OBSERVABLE_SECTORS:
                share = daily_shares[col, NO2_OBSERVABLE_SECTORS.index(sector)]
                value = yk * share
                unc = np.hypot(sk * share, value * SHARE_REL_UNCERTAINTY)
                source = "inventory_profile" if never else "no2_activity"
                cov, filled = coverage[:, col], ~ok[:, col]
            else:
                value = annual[k, j] * scale_k / 365.0 * _prior_factor(dates, sector, hemisphere)
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
