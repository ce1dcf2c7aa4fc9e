"""The simulated upstream archive: granules forward-simulated from a truth table in the real file structure of
each product, with a static STAC catalog.

- S5P L2 NO2: one granule per orbit, in a collection shaped like Planetary Computer's ``sentinel-5p-l2-netcdf``.
- XCO2 (``oco2-xco2``, ``oco3-xco2``, ``acos-xco2``, ``gosat-xco2``, ``tansat-xco2``): one daily file per
  product (Lite FP netCDF4, NIES HDF5, TanSat lite) holding the soundings of every orbit that sees the
  domain that day, in a collection named like the producer's (``OCO2_L2_Lite_FP_11.2r``, ...).

Layout under the archive directory: ``catalog.json`` → ``<collection>/collection.json`` → one item per file;
files under ``data/YYYY/MM/DD/<file>``. Deterministic for the same truth, domain, product and seed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import zlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pystac

from catalog.items import (
    create_granule_collection,
    create_granule_item,
    footprint_geometry,
    footprints_geometry,
)
from transforms.emissions import no2_column_field, sector_proxies
from transforms.errors import InputError
from transforms.gosat import write_nies_l2
from transforms.granules import (
    GranuleName,
    format_granule_name,
    format_nies_name,
    format_oco_lite_name,
    format_tansat_name,
    parse_granule_name,
)
from transforms.grid import GridSpec
from transforms.oco import write_lite
from transforms.products import get_product
from transforms.regions import country_mask
from transforms.s5p import write_s5p_l2
from transforms.simulation import (
    SOUNDING_ORBITS,
    XCO2_MODELS,
    ObservationModel,
    cloud_field,
    observe,
    observe_soundings,
    xco2_field,
)
from transforms.swath import OrbitModel, Swath, clip_swath, simulate_swath
from transforms.tansat import write_tansat_lite

COLLECTION_ID = "sentinel-5p-l2-netcdf"
UPSTREAM_COLLECTIONS = {
    "no2": COLLECTION_ID,
    "oco2-xco2": "OCO2_L2_Lite_FP_11.2r",
    "oco3-xco2": "OCO3_L2_Lite_FP_10.4r",
    "acos-xco2": "ACOS_L2_Lite_FP_9r",
    "gosat-xco2": "GOSAT_TANSO_FTS_SWIR_L2_C01S_V02.95",
    "tansat-xco2": "TanSat_ACGS_L2_XCO2_lite",
}
"""The simulated archive's collection of each product (named like the producers')."""
SIMULATED_PRODUCTS: tuple[str, ...] = tuple(UPSTREAM_COLLECTIONS)
LITE_BUILDS = {"oco2-xco2": ("B11014A", "r"), "oco3-xco2": ("B10400B", "r"), "acos-xco2": ("B9213A", "")}
FIELD_MARGIN_DEG = 2.0
BACKGROUND_ONLY_FIELD = 1.5e-5


def field_grid(bounds: tuple[float, float, float, float]) -> GridSpec:
    """The grid the true field is computed on: the domain widened by a margin, at ≤ 0.05° (coarser for huge
    domains, to keep it under ~4 M cells)."""
    west, south, east, north = bounds
    area = (east - west + 2 * FIELD_MARGIN_DEG) * (north - south + 2 * FIELD_MARGIN_DEG)
    res = 0.05
    while area / (res * res) > 4e6:
        res *= 2
    span = min(east - west + 2 * FIELD_MARGIN_DEG, 360.0)
    w = max(west - FIELD_MARGIN_DEG, -180.0) if span < 360.0 else -180.0
    return GridSpec.snapped(
        res, (w, max(south - FIELD_MARGIN_DEG, -90.0), w + span, min(north + FIELD_MARGIN_DEG, 90.0))
    )


def _seed(*parts: object) -> int:
    return zlib.crc32("|".join(map(str, parts)).encode())


def simulate_day(
    archive_dir: str,
    day: dt.date,
    truth_day: pd.DataFrame,
    *,
    bounds: tuple[float, float, float, float],
    seed: int = 0,
    orbit_model: OrbitModel | None = None,
    observation: ObservationModel | None = None,
    product: str = "no2",
) -> list[dict[str, Any]]:
    """Write the granules of ``product`` for ``day``: S5P NO2, the orbits whose ascending node falls on
    ``day`` and that see the domain; XCO2 products, one daily file of those orbits' soundings (none when no
    orbit sees the domain). Returns their STAC items (dicts, asset hrefs absolute)."""
    if product not in SIMULATED_PRODUCTS:
        raise InputError(f"the simulator writes {', '.join(SIMULATED_PRODUCTS)}, not {product!r}")
    if product != "no2":
        return simulate_sounding_day(archive_dir, day, truth_day, bounds=bounds, seed=seed, product=product)
    orbit_model = orbit_model or OrbitModel()
    observation = observation or ObservationModel()
    grid = field_grid(bounds)
    mask = country_mask(grid)
    proxies = sector_proxies(grid, mask)
    field = no2_column_field(truth_day, grid, mask=mask, proxies=proxies)
    rng = np.random.default_rng(_seed(seed, day.isoformat()))
    clouds = cloud_field(grid, rng=rng, scale_deg=observation.cloud_scale_deg)
    lo = dt.datetime.combine(day, dt.time(), dt.UTC)
    items = []
    _, south, _, north = bounds
    for orbit in orbit_model.orbits_between(lo, lo + dt.timedelta(days=1)):
        full = simulate_swath(orbit, model=orbit_model, lat_range=(south - 1.0, north + 1.0))
        swath = clip_swath(full, bounds) if full is not None else None
        if swath is None:
            continue
        values = observe(
            field, grid, swath, background=float(np.nanmin(field)), clouds=clouds, model=observation, rng=rng
        )
        filename = format_granule_name(
            "no2",
            start=swath.start,
            end=swath.end,
            orbit=orbit,
            mode="OFFL",
            collection="02",
            processor_version="020400",
        )
        name = parse_granule_name(filename)
        rel = os.path.join("data", f"{day:%Y}", f"{day:%m}", f"{day:%d}", filename)
        path = os.path.join(archive_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = path + ".tmp"
        write_s5p_l2(
            tmp,
            name=name,
            latitude=swath.latitude,
            longitude=swath.longitude,
            latitude_bounds=swath.latitude_bounds,
            longitude_bounds=swath.longitude_bounds,
            value=values.value,
            precision=values.precision,
            qa_value=values.qa_value,
            delta_time_ms=swath.delta_time_ms,
            time_reference=swath.time_reference,
            extra_attrs={"history": "simulated by eolake (OSSE forward model); not real satellite data"},
        )
        os.replace(tmp, path)
        geometry, bbox = footprint_geometry(swath.latitude_bounds, swath.longitude_bounds)
        items.append(_item(name, path, geometry, bbox))
    return items


def _item(name: GranuleName, path: str, geometry: dict[str, Any], bbox: list[float]) -> dict[str, Any]:
    with open(path, "rb") as f:
        sha = hashlib.file_digest(f, "sha256").hexdigest()
    item = create_granule_item(
        name,
        href=os.path.abspath(path),
        geometry=geometry,
        bbox=bbox,
        size=os.path.getsize(path),
        checksum_sha256=sha,
    )
    return item.to_dict(include_self_link=False, transform_hrefs=False)


def _daily_name(product: str, day: dt.date) -> GranuleName:
    produced = dt.datetime.combine(day + dt.timedelta(days=60), dt.time(3, 14, 15), dt.UTC)
    family = get_product(product).family
    if family == "oco_lite":
        build, release = LITE_BUILDS[product]
        filename = format_oco_lite_name(
            product, day=day, build=build, release=release, production_time=produced
        )
    elif family == "gosat_nies":
        filename = format_nies_name(day=day, version="0295")
    else:
        filename = format_tansat_name(day=day, mode="ND")
    return parse_granule_name(filename)


def _day_swaths(product: str, day: dt.date, bounds: tuple[float, float, float, float]) -> list[Swath]:
    orbit_model = SOUNDING_ORBITS[product]
    lo = dt.datetime.combine(day, dt.time(), dt.UTC)
    _, south, _, north = bounds
    out = []
    for orbit in orbit_model.orbits_between(lo, lo + dt.timedelta(days=1)):
        full = simulate_swath(orbit, model=orbit_model, lat_range=(south - 1.0, north + 1.0))
        swath = clip_swath(full, bounds) if full is not None else None
        if swath is not None:
            out.append(swath)
    return out


def simulate_sounding_day(
    archive_dir: str,
    day: dt.date,
    truth_day: pd.DataFrame,
    *,
    bounds: tuple[float, float, float, float],
    seed: int = 0,
    product: str,
) -> list[dict[str, Any]]:
    """Write ``product``'s daily file for ``day`` (the soundings of every orbit that sees the domain, on that
    UTC day) in its real format; returns its STAC item (or nothing when no orbit sees the domain).

    The truth is the NO2 field of :func:`simulate_day` turned into XCO2 (:func:`transforms.simulation.xco2_field`).
    NIES files hold only screened soundings, so cloudy ones are left out there; the Lite and TanSat files keep
    them with ``xco2_quality_flag`` 1."""
    swaths = _day_swaths(product, day, bounds)
    lo = np.datetime64(dt.datetime.combine(day, dt.time()), "ns")
    parts = []
    for sw in swaths:
        n_scan, n_pix = sw.latitude.shape
        ref = np.datetime64(sw.time_reference.replace(tzinfo=None), "ns")
        t = ref + (np.asarray(sw.delta_time_ms, dtype=np.int64) * 1_000_000).astype("timedelta64[ns]")
        times = np.repeat(t, n_pix)
        keep = (times >= lo) & (times < lo + np.timedelta64(1, "D"))
        parts.append(
            (
                times[keep],
                sw.latitude.reshape(-1)[keep],
                sw.longitude.reshape(-1)[keep],
                sw.latitude_bounds.reshape(-1, 4)[keep],
                sw.longitude_bounds.reshape(-1, 4)[keep],
                np.tile(np.arange(1, n_pix + 1, dtype=np.int8), n_scan)[keep],
            )
        )
    parts = [p for p in parts if p[0].size]
    if not parts:
        return []
    times, lat, lon, lat_b, lon_b, footprint = (np.concatenate(arrays) for arrays in zip(*parts, strict=True))
    grid = field_grid(bounds)
    mask = country_mask(grid)
    no2 = no2_column_field(truth_day, grid, mask=mask, proxies=sector_proxies(grid, mask))
    field = xco2_field(no2, no2_background=float(np.nanmin(no2)))
    model = XCO2_MODELS[product]
    rng = np.random.default_rng(_seed(seed, product, day.isoformat()))
    clouds = cloud_field(grid, rng=rng, scale_deg=model.cloud_scale_deg)
    values = observe_soundings(field, grid, lat, lon, clouds=clouds, model=model, rng=rng)

    name = _daily_name(product, day)
    path = os.path.join(archive_dir, "data", f"{day:%Y}", f"{day:%m}", f"{day:%d}", name.filename)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    family = get_product(product).family
    flagged: dict[str, Any] = {  # the arguments of the writers of flagged soundings (Lite, TanSat)
        "name": name,
        "time": times,
        "latitude": lat,
        "longitude": lon,
        "xco2": values.xco2,
        "xco2_uncertainty": values.uncertainty,
        "xco2_quality_flag": values.flag,
    }
    if family == "oco_lite":
        vertices: dict[str, Any] = (
            {} if product == "acos-xco2" else {"vertex_latitude": lat_b, "vertex_longitude": lon_b}
        )
        write_lite(
            tmp,
            **flagged,
            footprint=footprint,
            operation_mode="glint" if product == "acos-xco2" else "nadir",
            orbit=swaths[0].orbit,
            extra_attrs={"history": "simulated by eolake (OSSE forward model); not real satellite data"},
            **vertices,
        )
    elif family == "gosat_nies":
        screened = (values.flag == 0) | ~np.isfinite(values.xco2)  # cloudy soundings never reach the file
        write_nies_l2(
            tmp,
            name=name,
            time=times[screened],
            latitude=lat[screened],
            longitude=lon[screened],
            xco2=values.xco2[screened],
            xco2_error=values.uncertainty[screened],
        )
    else:
        write_tansat_lite(tmp, **flagged)
    os.replace(tmp, path)
    geometry, bbox = footprints_geometry([(sw.latitude_bounds, sw.longitude_bounds) for sw in swaths])
    return [_item(name, path, geometry, bbox)]


def write_archive_catalog(archive_dir: str, item_dicts: Sequence[dict[str, Any]]) -> str:
    """(Re)write the archive's static STAC catalog holding ``item_dicts`` plus any items already there.
    Returns the path of ``catalog.json``."""
    root_path = os.path.join(archive_dir, "catalog.json")
    existing: dict[str, dict[str, Any]] = {}
    if os.path.exists(root_path):
        for item in pystac.Catalog.from_file(root_path).get_items(recursive=True):
            item.make_asset_hrefs_absolute()
            existing[item.id] = item.to_dict(include_self_link=False, transform_hrefs=False)
    for d in item_dicts:
        existing[d["id"]] = d
    items = [pystac.Item.from_dict(d) for d in sorted(existing.values(), key=lambda d: d["id"])]
    by_product: dict[str, list[tuple[pystac.Item, GranuleName]]] = {}
    for item in items:
        name = parse_granule_name(_asset_filename(item))
        by_product.setdefault(name.product, []).append((item, name))
    catalog = pystac.Catalog(
        "simulated-upstream", "A simulated carbon-satellite L2 archive for eolake (not real data)."
    )
    for product in sorted(by_product or {"no2": []}, key=SIMULATED_PRODUCTS.index):
        members = by_product.get(product, [])
        bbox = _union_bbox([i.bbox for i, _ in members if i.bbox])
        start = min((n.start for _, n in members), default=dt.datetime(2018, 4, 30, tzinfo=dt.UTC))
        end = max((n.end for _, n in members), default=start)
        collection = create_granule_collection(product, extent_bbox=bbox, start=start, end=end)
        collection.id = UPSTREAM_COLLECTIONS[product]
        collection.title = f"{collection.title} (simulated archive)"
        catalog.add_child(collection)
        for item, _ in members:
            collection.add_item(item)
    catalog.normalize_hrefs(archive_dir)
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root_path


def _asset_filename(item: pystac.Item) -> str:
    """The file name of an item's data asset (S5P item ids are the file stem; others' assets carry it)."""
    for asset in item.assets.values():
        return os.path.basename(asset.href)
    return item.id


def _union_bbox(bboxes: Sequence[Sequence[float]]) -> list[float]:
    if not bboxes:
        return [-180.0, -90.0, 180.0, 90.0]
    if any(b[0] > b[2] for b in bboxes):
        return [-180.0, min(b[1] for b in bboxes), 180.0, max(b[3] for b in bboxes)]
    return [
        min(b[0] for b in bboxes),
        min(b[1] for b in bboxes),
        max(b[2] for b in bboxes),
        max(b[3] for b in bboxes),
    ]
