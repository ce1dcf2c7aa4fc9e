"""The simulated upstream archive: Sentinel-5P L2 NO2 granules forward-simulated from a truth table, in the
real file structure, with a static STAC catalog shaped like Planetary Computer's ``sentinel-5p-l2-netcdf``.

Layout under the archive directory: ``catalog.json`` → ``sentinel-5p-l2-netcdf/collection.json`` → one item
per granule; files under ``data/YYYY/MM/DD/<granule>.nc``. Deterministic for the same truth, domain and seed.
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

from catalog.items import create_granule_collection, create_granule_item, footprint_geometry
from transforms.emissions import no2_column_field, sector_proxies
from transforms.granules import format_granule_name, parse_granule_name
from transforms.grid import GridSpec
from transforms.regions import country_mask
from transforms.s5p import write_s5p_l2
from transforms.simulation import ObservationModel, cloud_field, observe
from transforms.swath import OrbitModel, clip_swath, simulate_swath

COLLECTION_ID = "sentinel-5p-l2-netcdf"
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
) -> list[dict[str, Any]]:
    """Write the granules of the orbits whose ascending node falls on ``day`` and that see the domain.
    Returns their STAC items (dicts, asset hrefs absolute)."""
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
        with open(path, "rb") as f:
            sha = hashlib.file_digest(f, "sha256").hexdigest()
        geometry, bbox = footprint_geometry(swath.latitude_bounds, swath.longitude_bounds)
        item = create_granule_item(
            name,
            href=os.path.abspath(path),
            geometry=geometry,
            bbox=bbox,
            size=os.path.getsize(path),
            checksum_sha256=sha,
        )
        items.append(item.to_dict(include_self_link=False, transform_hrefs=False))
    return items


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
    names = [parse_granule_name(i.id) for i in items]
    bbox = _union_bbox([i.bbox for i in items if i.bbox])
    start = min((n.start for n in names), default=dt.datetime(2018, 4, 30, tzinfo=dt.UTC))
    end = max((n.end for n in names), default=start)
    collection = create_granule_collection("no2", extent_bbox=bbox, start=start, end=end)
    collection.id = COLLECTION_ID
    collection.title = "Sentinel-5P Level-2 (simulated archive)"
    catalog = pystac.Catalog(
        "simulated-upstream", "A simulated Sentinel-5P L2 archive for eolake (not real data)."
    )
    catalog.add_child(collection)
    for item in items:
        collection.add_item(item)
    catalog.normalize_hrefs(archive_dir)
    catalog.make_all_asset_hrefs_relative()
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root_path


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
