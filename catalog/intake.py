"""The lake's Intake 2 catalog (``<lake>/catalog.yaml``), generated from its STAC documents.

One entry per cube collection with a ``zarr`` asset, one per emissions release plus ``emissions`` (the latest),
and STAC entries: ``stac`` (the static catalog) and ``stac_search`` (item search on the lake's STAC API).
Catalog-wide user parameters ``start``, ``end`` (ISO days) and ``bbox`` (W, S, E, N) subset lazily:
``intake.open_catalog(url)(start="2020-03-02", bbox=[4, 47, 8, 50]).<cube>.read()``. Their defaults are the
lake's extent, so an unparameterised read returns everything committed.

Data URLs are relative to the catalog (``{CATALOG_DIR}``): the same file works on local disk, over HTTP and
on S3, and holds no credentials (S3 readers take them from the environment, ``AWS_*``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import fsspec
import yaml

from transforms.storage import put_atomic

Bbox = tuple[float, float, float, float]

# Lazy subsetting, templated on the catalog's user parameters (``{name}`` / ``{bbox[i]}``); ``Dataset.query``
# selects on the coordinates only and keeps the data variables dask-backed.
CUBE_QUERY = {
    "time": "(time >= '{start}') & (time <= '{end}')",
    "lat": "(lat >= {bbox[1]}) & (lat <= {bbox[3]})",
    "lon": "(lon >= {bbox[0]}) & (lon <= {bbox[2]})",
}
TABLE_QUERY = "(date >= '{start}') & (date <= '{end}')"
STAC_API_ENV = "EOLAKE_STAC_API"
SENTINEL_CITATION = "Contains modified Copernicus Sentinel data {years}, processed by eolake."


@dataclass(frozen=True)
class CubeEntry:
    name: str  # entry name, e.g. "s5p_no2_l3_daily_0p1deg_global"
    key: str  # store key relative to the lake root, e.g. "cubes/s5p-no2/0p1deg-global.zarr"
    description: str
    start: str  # first committed day, YYYY-MM-DD
    end: str  # last committed day
    bbox: Bbox  # grid edges as stored (east may exceed 180 for grids across the antimeridian)
    open_kwargs: dict[str, Any] = field(default_factory=dict)  # the asset's xarray:open_kwargs
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TableEntry:
    name: str  # e.g. "emissions" or "emissions_20260101T000000Z"
    key: str  # Parquet dataset directory relative to the lake root
    description: str
    start: str
    end: str
    metadata: dict[str, Any] = field(default_factory=dict)


def _day(stamp: str | None) -> str:
    return (stamp or "")[:10]


def _providers(doc: Mapping[str, Any]) -> list[str]:
    return [str(p.get("name")) for p in doc.get("providers", []) if p.get("name")]


def _license_url(doc: Mapping[str, Any]) -> str | None:
    return next((str(x["href"]) for x in doc.get("links", []) if x.get("rel") == "license"), None)


def cube_entry_from_stac(cid: str, doc: Mapping[str, Any], key: str) -> CubeEntry:
    """The entry of a cube collection ``doc`` (a dict) whose ``zarr`` asset is at lake key ``key``."""
    interval = doc["extent"]["temporal"]["interval"][0]
    start, end = _day(interval[0]), _day(interval[1])
    dims = doc.get("cube:dimensions", {})
    if "lon" in dims and "lat" in dims:
        (west, east), (south, north) = dims["lon"]["extent"], dims["lat"]["extent"]
    else:
        west, south, east, north = doc["extent"]["spatial"]["bbox"][0]
    variables = {
        name: {k: v for k, v in var.items() if k in ("unit", "description", "type")}
        for name, var in doc.get("cube:variables", {}).items()
    }
    years = f"{start[:4]}" if start[:4] == end[:4] else f"{start[:4]}-{end[:4]}"
    asset = doc["assets"]["zarr"]
    metadata = {
        "title": doc.get("title", cid),
        "stac_collection": cid,
        "license": doc.get("license"),
        "license_url": _license_url(doc),
        "providers": _providers(doc),
        "keywords": list(doc.get("keywords", [])),
        "citation": doc.get("sci:citation") or SENTINEL_CITATION.format(years=years),
        "variables": variables,
        "units": sorted({v["unit"] for v in variables.values() if "unit" in v}),
        "temporal_extent": [start, end],
        "spatial_extent": [west, south, east, north],
    }
    return CubeEntry(
        name=cid.replace("-", "_"),
        key=key,
        description=str(doc.get("description", "")),
        start=start,
        end=end,
        bbox=(float(west), float(south), float(east), float(north)),
        open_kwargs=dict(asset.get("xarray:open_kwargs", {})),
        metadata={k: v for k, v in metadata.items() if v not in (None, [], {})},
    )


def table_entries_from_stac(
    collection: Mapping[str, Any], releases: Sequence[tuple[Mapping[str, Any], str]]
) -> list[TableEntry]:
    """Entries for emissions releases: ``releases`` pairs each release item (a dict) with its data's lake key.
    One entry per release (``emissions_<release>``) plus ``emissions`` for the latest."""
    out: list[TableEntry] = []
    ordered = sorted(releases, key=lambda pair: str(pair[0]["properties"]["eolake:release"]))
    for i, (item, key) in enumerate(ordered):
        p = item["properties"]
        release = str(p["eolake:release"])
        columns = {c["name"]: c.get("description", "") for c in p.get("table:columns", []) if "name" in c}
        meta = {
            "title": collection.get("title", "emissions"),
            "stac_collection": collection.get("id"),
            "stac_item": item.get("id"),
            "release": release,
            "method_version": p.get("eolake:method_version"),
            "units": "MtCO2/day",
            "columns": columns,
            "row_count": p.get("table:row_count"),
            "license": collection.get("license"),
            "license_url": _license_url(collection),
            "citation": collection.get("sci:citation")
            or f"eolake daily CO2 emissions by country and sector, release {release} "
            f"(method {p.get('eolake:method_version')}).",
            "temporal_extent": [_day(p.get("start_datetime")), _day(p.get("end_datetime"))],
        }
        meta = {k: v for k, v in meta.items() if v not in (None, [], {})}
        desc = f"Daily CO2 emissions by country and sector, release {release} (MtCO2/day)"
        start, end = _day(p.get("start_datetime")), _day(p.get("end_datetime"))
        out.append(TableEntry(f"emissions_{release}", key, desc, start, end, meta))
        if i == len(ordered) - 1:
            out.append(TableEntry("emissions", key, f"Latest release: {desc}", start, end, meta))
    return out


def lake_extent(cubes: Sequence[CubeEntry], tables: Sequence[TableEntry]) -> tuple[str, str, Bbox]:
    """The union of the entries' days and cube bounding boxes: the user parameters' defaults."""
    spans: list[CubeEntry | TableEntry] = [*cubes, *tables]
    starts = [e.start for e in spans if e.start]
    ends = [e.end for e in spans if e.end]
    if cubes:
        bbox: Bbox = (
            min(c.bbox[0] for c in cubes),
            min(c.bbox[1] for c in cubes),
            max(c.bbox[2] for c in cubes),
            max(c.bbox[3] for c in cubes),
        )
    else:
        bbox = (-180.0, -90.0, 180.0, 90.0)
    return (min(starts) if starts else "1970-01-01", max(ends) if ends else "2100-12-31", bbox)


def build_intake_catalog(
    cubes: Sequence[CubeEntry],
    tables: Sequence[TableEntry],
    *,
    description: str,
    stac_key: str = "stac/catalog.json",
    stac_api: str | None = None,
) -> dict[str, Any]:
    """The catalog as a dict in Intake 2's YAML layout. ``stac_api`` is the lake's STAC API root; without
    it the ``stac_search`` entry reads the root from ``$EOLAKE_STAC_API`` when it is opened."""
    from intake.readers.catalogs import StacCatalogReader, StacSearch
    from intake.readers.datatypes import STACJSON, Parquet, Zarr
    from intake.readers.entry import Catalog
    from intake.readers.readers import PandasParquet, XArrayDatasetReader
    from intake.readers.user_parameters import BaseUserParameter, SimpleUserParameter

    start, end, bbox = lake_extent(cubes, tables)
    params = {
        "start": SimpleUserParameter(
            dtype=str, default=start, description="first day (YYYY-MM-DD) to read; default: lake start"
        ),
        "end": SimpleUserParameter(
            dtype=str, default=end, description="last day (YYYY-MM-DD) to read; default: lake end"
        ),
        "bbox": BaseUserParameter(
            default=list(bbox),
            description="[west, south, east, north] in degrees (cell centres inside); default: lake extent",
        ),
    }
    cat = Catalog(
        metadata={"description": description, "generator": "eolake", "stac": f"{{CATALOG_DIR}}/{stac_key}"},
        user_parameters=params,
    )
    for c in cubes:
        meta = {"description": c.description, "kind": "cube", "path": c.key, **c.metadata}
        kwargs = {"engine": "zarr", "chunks": {}, "consolidated": True, **c.open_kwargs}
        reader = XArrayDatasetReader(Zarr(url=f"{{CATALOG_DIR}}/{c.key}"), metadata=meta, **kwargs).query(
            **CUBE_QUERY
        )
        reader.metadata.update(meta)
        cat.give_name(cat.add_entry(reader), c.name)
    for t in tables:
        meta = {"description": t.description, "kind": "table", "path": t.key, **t.metadata}
        table = PandasParquet(Parquet(url=f"{{CATALOG_DIR}}/{t.key}"), metadata=meta).query(TABLE_QUERY)
        table.metadata.update(meta)
        cat.give_name(cat.add_entry(table), t.name)
    stac = StacCatalogReader(
        STACJSON(url=f"{{CATALOG_DIR}}/{stac_key}"),
        prefer="xarray:Dataset",
        metadata={
            "description": "The lake's static STAC catalog: collections, items and assets (needs pystac)",
            "kind": "stac",
            "path": stac_key,
            "imports": ["pystac"],
        },
    )
    cat.give_name(cat.add_entry(stac), "stac")
    search = StacSearch(
        data=STACJSON(url=stac_api.rstrip("/") if stac_api else f"{{env({STAC_API_ENV})}}"),
        query={
            "collections": [c.metadata.get("stac_collection", c.name) for c in cubes],
            "bbox": "{bbox}",
            "datetime": "{start}T00:00:00Z/{end}T23:59:59Z",
            "limit": 1000,
        },
        metadata={
            "description": "Cube days in [start, end] intersecting bbox, searched on the lake's STAC API "
            f"({stac_api or '$' + STAC_API_ENV}; needs pystac and requests)",
            "kind": "stac_search",
            "path": stac_key,
            "imports": ["pystac", "requests"],
        },
    )
    cat.give_name(cat.add_entry(search), "stac_search")
    doc: dict[str, Any] = cat.to_dict()
    return doc


def write_intake_catalog(fs: fsspec.AbstractFileSystem, path: str, doc: dict[str, Any]) -> None:
    """Write ``doc`` as YAML at ``path`` atomically."""
    put_atomic(fs, path, yaml.safe_dump(doc, sort_keys=True).encode())
