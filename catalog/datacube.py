"""STAC for the daily L3 cubes: one collection per cube (with the whole Zarr store as a collection asset) and
one item per committed day, described with the datacube and xarray-assets extensions."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pystac
from pystac.extensions.datacube import DatacubeExtension

from transforms.cube import CubeSpec
from transforms.products import get_product

DATACUBE_SCHEMA = DatacubeExtension.get_schema_uri()
XARRAY_SCHEMA = "https://stac-extensions.github.io/xarray-assets/v1.0.0/schema.json"
ZARR_MEDIA_TYPE = "application/vnd+zarr"
OPEN_KWARGS = {"engine": "zarr", "consolidated": True, "chunks": {}, "zarr_format": 3}


def cube_collection_id(spec: CubeSpec) -> str:
    return f"{get_product(spec.product).dataset}-l3-{spec.period}-{spec.grid.grid_id}"


def _mission_keywords(product: str) -> list[str]:
    p = get_product(product)
    if p.family == "s5p":
        return ["Sentinel-5P", "TROPOMI", p.name.upper()]
    return list(dict.fromkeys([p.platform, p.instrument, "XCO2"]))


def _producer(product: str) -> str:
    """Who produced (and licenses) the L2 data the cube is binned from."""
    p = get_product(product)
    return "ESA / Copernicus" if p.family == "s5p" else p.institution


def cube_day_item_id(spec: CubeSpec, day: dt.date) -> str:
    return f"{cube_collection_id(spec)}-{day.isoformat()}"


def _grid_geometry(spec: CubeSpec) -> tuple[dict[str, Any], list[float]]:
    west, south, east, north = spec.grid.bounds
    if east <= 180.0:
        ring = [[west, south], [east, south], [east, north], [west, north], [west, south]]
        return {"type": "Polygon", "coordinates": [ring]}, [west, south, east, north]
    # crosses the antimeridian: two polygons, bbox with west > east (RFC 7946 §5.2)
    e2 = east - 360.0
    a = [[west, south], [180.0, south], [180.0, north], [west, north], [west, south]]
    b = [[-180.0, south], [e2, south], [e2, north], [-180.0, north], [-180.0, south]]
    return {"type": "MultiPolygon", "coordinates": [[a], [b]]}, [west, south, e2, north]


def _dimensions(spec: CubeSpec, start: dt.date, end: dt.date) -> dict[str, Any]:
    west, south, east, north = spec.grid.bounds
    return {
        "time": {"type": "temporal", "extent": [f"{start}T00:00:00Z", f"{end}T00:00:00Z"], "step": spec.step},
        "lat": {
            "type": "spatial",
            "axis": "y",
            "extent": [south, north],
            "step": spec.grid.resolution,
            "reference_system": 4326,
        },
        "lon": {
            "type": "spatial",
            "axis": "x",
            "extent": [west, east],
            "step": spec.grid.resolution,
            "reference_system": 4326,
        },
    }


def _variables(spec: CubeSpec) -> dict[str, Any]:
    dims = ["time", "lat", "lon"]
    return {
        "mean": {
            "type": "data",
            "dimensions": dims,
            "unit": spec.units,
            "description": f"{spec.period} mean {spec.long_name}",
        },
        "uncertainty": {
            "type": "data",
            "dimensions": dims,
            "unit": spec.units,
            "description": "1-sigma uncertainty of the mean",
        },
        "count": {
            "type": "auxiliary",
            "dimensions": dims,
            "description": "number of valid pixels in the cell",
        },
        "weight": {"type": "auxiliary", "dimensions": dims, "description": "sum of binning weights"},
    }


def _zarr_asset(href: str, spec: CubeSpec) -> pystac.Asset:
    return pystac.Asset(
        href=href,
        media_type=ZARR_MEDIA_TYPE,
        title=f"{spec.title} (Zarr v3)",
        roles=["data"],
        extra_fields={"xarray:open_kwargs": dict(OPEN_KWARGS)},
    )


def create_cube_collection(
    spec: CubeSpec, *, store_href: str, start: dt.date, end: dt.date
) -> pystac.Collection:
    """The collection of one cube; ``store_href`` is the Zarr store's URL (absolute or relative to the
    collection document)."""
    _, bbox = _grid_geometry(spec)
    collection = pystac.Collection(
        id=cube_collection_id(spec),
        title=spec.title,
        description=(
            f"{spec.period.capitalize()} L3 {spec.long_name} on a {spec.grid.resolution}° grid "
            f"({spec.grid.grid_id}), binned from {spec.source.split(';')[0]} after fill and QA masking; mean, "
            "1-sigma uncertainty and pixel count."
        ),
        extent=pystac.Extent(
            pystac.SpatialExtent([bbox]),
            pystac.TemporalExtent(
                [[dt.datetime.combine(start, dt.time(), dt.UTC), dt.datetime.combine(end, dt.time(), dt.UTC)]]
            ),
        ),
        license="other",
        keywords=[*_mission_keywords(spec.product), "L3", "Zarr"],
        providers=[
            pystac.Provider(
                _producer(spec.product), roles=[pystac.ProviderRole.PRODUCER, pystac.ProviderRole.LICENSOR]
            ),
            pystac.Provider("eolake", roles=[pystac.ProviderRole.PROCESSOR, pystac.ProviderRole.HOST]),
        ],
        extra_fields={"cube:dimensions": _dimensions(spec, start, end), "cube:variables": _variables(spec)},
    )
    collection.stac_extensions = [DATACUBE_SCHEMA, XARRAY_SCHEMA]
    collection.add_asset("zarr", _zarr_asset(store_href, spec))
    return collection


def create_cube_day_item(
    spec: CubeSpec,
    day: dt.date,
    *,
    store_href: str,
    granule_hrefs: Sequence[str],
    coverage: float,
    pixels: int,
    thumbnail_href: str | None = None,
) -> pystac.Item:
    """One committed day of a cube. ``granule_hrefs`` link the raw-granule items it was derived from;
    ``thumbnail_href`` (when given) is the day's quicklook PNG, added as the ``thumbnail`` asset."""
    geometry, bbox = _grid_geometry(spec)
    start = dt.datetime.combine(day, dt.time(), dt.UTC)
    item = pystac.Item(
        id=cube_day_item_id(spec, day),
        geometry=geometry,
        bbox=bbox,
        datetime=None,
        properties={
            "start_datetime": start.isoformat().replace("+00:00", "Z"),
            "end_datetime": (start + dt.timedelta(days=1) - dt.timedelta(seconds=1))
            .isoformat()
            .replace("+00:00", "Z"),
            "eolake:product": spec.product,
            "eolake:grid": spec.grid.grid_id,
            "eolake:coverage": round(float(coverage), 6),
            "eolake:pixels": int(pixels),
            "cube:dimensions": _dimensions(spec, day, day),
            "cube:variables": _variables(spec),
        },
        stac_extensions=[DATACUBE_SCHEMA, XARRAY_SCHEMA],
    )
    asset = _zarr_asset(store_href, spec)
    asset.extra_fields["xarray:open_kwargs"] = dict(OPEN_KWARGS)
    asset.description = f"Select this day with ds.sel(time='{day.isoformat()}')"
    item.add_asset("zarr", asset)
    if thumbnail_href is not None:
        item.add_asset(
            "thumbnail",
            pystac.Asset(
                href=thumbnail_href,
                media_type=pystac.MediaType.PNG,
                title=f"Quicklook of the daily mean, {day.isoformat()}",
                roles=["thumbnail"],
            ),
        )
    for href in granule_hrefs:
        item.add_link(pystac.Link("derived_from", href, media_type="application/geo+json"))
    return item


def create_cube_month_item(
    spec: CubeSpec,
    month: dt.date,
    *,
    store_href: str,
    day_item_hrefs: Sequence[str],
    last_day: dt.date | None = None,
) -> pystac.Item:
    """One month of a monthly-mean cube (``spec``: the monthly cube, time = first day of the month);
    ``day_item_hrefs`` link the daily items it was derived from. ``last_day``, the last day with data so far,
    ends the item's time span for a month still in progress."""
    geometry, bbox = _grid_geometry(spec)
    first = month.replace(day=1)
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    if last_day is not None and first <= last_day < nxt:
        nxt = last_day + dt.timedelta(days=1)
    start = dt.datetime.combine(first, dt.time(), dt.UTC)
    end = dt.datetime.combine(nxt, dt.time(), dt.UTC) - dt.timedelta(seconds=1)
    item = pystac.Item(
        id=f"{cube_collection_id(spec)}-{first:%Y-%m}",
        geometry=geometry,
        bbox=bbox,
        datetime=None,
        properties={
            "start_datetime": start.isoformat().replace("+00:00", "Z"),
            "end_datetime": end.isoformat().replace("+00:00", "Z"),
            "eolake:product": spec.product,
            "eolake:grid": spec.grid.grid_id,
            "eolake:days": len(day_item_hrefs),
            "cube:dimensions": _dimensions(spec, first, first),
            "cube:variables": _variables(spec),
        },
        stac_extensions=[DATACUBE_SCHEMA, XARRAY_SCHEMA],
    )
    asset = _zarr_asset(store_href, spec)
    asset.description = f"Select this month with ds.sel(time='{first:%Y-%m}')"
    item.add_asset("zarr", asset)
    for href in day_item_hrefs:
        item.add_link(pystac.Link("derived_from", href, media_type="application/geo+json"))
    return item
