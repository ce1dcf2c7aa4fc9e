"""Publishing what is committed: STAC items for raw granules, cube days and emissions releases, then the
analysts' Intake catalog. Always runs after the data and the ledger state it describes are written."""

from __future__ import annotations

import datetime as dt
import posixpath
from collections.abc import Mapping
from typing import Any

import pandas as pd
import pystac

from catalog.datacube import (
    create_cube_collection,
    create_cube_day_item,
    create_cube_month_item,
    cube_collection_id,
    cube_day_item_id,
)
from catalog.intake import (
    CubeEntry,
    TableEntry,
    build_intake_catalog,
    cube_entry_from_stac,
    table_entries_from_stac,
    write_intake_catalog,
)
from catalog.items import create_granule_collection, create_granule_item
from catalog.items import granule_collection_id as items_granule_collection_id
from catalog.store import CatalogStore
from catalog.tables import EMISSIONS_COLLECTION
from infra.cubes import committed_days, cube_key, monthly_key, monthly_spec, quicklook_days, quicklook_key
from infra.sources import redact_url
from infra.storage import Lake
from transforms.cube import CubeSpec
from transforms.granules import parse_granule_name

STAC_ROOT = "stac"
INTAKE_KEY = "catalog.yaml"


def catalog_store(lake: Lake) -> CatalogStore:
    return CatalogStore(lake.fs, lake.path(STAC_ROOT), title="eolake")


def granule_collection_id(product: str) -> str:
    """``s5p-l2-no2``, ``oco2-l2-xco2``, ...: the one home is :func:`catalog.items.granule_collection_id`."""
    return items_granule_collection_id(product)


def _rel_from_item(key: str) -> str:
    """Href of a lake key as seen from ``stac/<collection>/items/<item>.json``."""
    return posixpath.join("..", "..", "..", key)


def publish_granules(lake: Lake, rows: pd.DataFrame, footprints: Mapping[str, dict[str, Any]]) -> int:
    """Upsert items for harvested granules (``rows`` of the ledger) and drop items of superseded ones.
    ``footprints`` maps granule id → {"geometry", "bbox"} from upstream. Returns the number of items written."""
    if rows.empty:
        return 0
    store = catalog_store(lake)
    written = 0
    for product, group in rows.groupby("product"):
        items = []
        for r in group.itertuples(index=False):
            if r.status != "harvested" or r.granule_id not in footprints:
                continue
            fp = footprints[r.granule_id]
            items.append(
                _with_upstream_link(
                    create_granule_item(
                        parse_granule_name(r.granule_id),
                        href=_rel_from_item(r.key),
                        geometry=fp["geometry"],
                        bbox=fp["bbox"],
                        size=int(r.size),
                        checksum_sha256=r.sha256,
                    ),
                    r.source_href,
                )
            )
        superseded = [r.granule_id for r in group.itertuples(index=False) if r.status == "superseded"]
        cid = granule_collection_id(str(product))
        store.delete_items(cid, superseded)
        starts = pd.to_datetime(group["start"])
        collection = create_granule_collection(
            str(product),
            extent_bbox=[-180.0, -90.0, 180.0, 90.0],
            start=starts.min().to_pydatetime(),
            end=pd.to_datetime(group["end"]).max().to_pydatetime(),
        )
        collection.id = cid
        store.upsert(collection, items)
        written += len(items)
    return written


def _with_upstream_link(item: pystac.Item, source_href: str | None) -> pystac.Item:
    """Link a raw granule's item to the upstream file it was copied from (credentials redacted)."""
    if source_href:
        link = pystac.Link(
            "derived_from",
            redact_url(source_href),
            media_type=item.assets[next(iter(item.assets))].media_type if item.assets else None,
            title="upstream granule",
        )
        item.add_link(link)
    return item


def publish_cube(lake: Lake, spec: CubeSpec) -> int:
    """Upsert the cube's collection and one item per committed day (with its quicklook as ``thumbnail``), and
    the collection of its monthly means when they exist. Returns the number of day items."""
    days = committed_days(lake, spec)
    if days.empty:
        return 0
    store = catalog_store(lake)
    store_href_from_item = _rel_from_item(cube_key(spec))
    with_quicklook = quicklook_days(lake, spec)
    items = []
    for r in days.itertuples(index=False):
        day = pd.Timestamp(r.day).date()
        granule_hrefs = [
            posixpath.join("..", "..", granule_collection_id(spec.product), "items", f"{g}.json")
            for g in r.granules
        ]
        items.append(
            create_cube_day_item(
                spec,
                day,
                store_href=store_href_from_item,
                granule_hrefs=granule_hrefs,
                coverage=r.coverage,
                pixels=r.pixels,
                thumbnail_href=_rel_from_item(quicklook_key(spec, day)) if day in with_quicklook else None,
            )
        )
    start, end = pd.Timestamp(days["day"].min()).date(), pd.Timestamp(days["day"].max()).date()
    collection = create_cube_collection(
        spec, store_href=posixpath.join("..", "..", cube_key(spec)), start=start, end=end
    )
    store.upsert(collection, items)
    if lake.fs.exists(lake.path(monthly_key(spec))):  # the monthly means derived from these days
        mspec = monthly_spec(spec)
        monthly = create_cube_collection(
            mspec,
            store_href=posixpath.join("..", "..", monthly_key(spec)),
            start=start.replace(day=1),
            end=end.replace(day=1),
        )
        by_month: dict[dt.date, list[str]] = {}
        for r in days.itertuples(index=False):
            day = pd.Timestamp(r.day).date()
            href = posixpath.join(
                "..", "..", cube_collection_id(spec), "items", f"{cube_day_item_id(spec, day)}.json"
            )
            by_month.setdefault(day.replace(day=1), []).append(href)
        month_items = [
            create_cube_month_item(
                mspec, m, store_href=_rel_from_item(monthly_key(spec)), day_item_hrefs=hrefs, last_day=end
            )
            for m, hrefs in sorted(by_month.items())
        ]
        store.upsert(monthly, month_items)
    return len(items)


def publish_intake(lake: Lake, *, stac_api: str | None = None) -> str:
    """Regenerate ``<lake>/catalog.yaml`` from the STAC collections present (every collection with a ``zarr``
    asset is a cube; every emissions release a table). Returns its URL."""
    store = catalog_store(lake)
    cubes: list[CubeEntry] = []
    tables: list[TableEntry] = []
    for cid in store.collection_ids():
        doc = store.read_collection_dict(cid) or {}
        if "zarr" in doc.get("assets", {}):
            key = posixpath.normpath(posixpath.join(STAC_ROOT, cid, doc["assets"]["zarr"]["href"]))
            cubes.append(cube_entry_from_stac(cid, doc, key))
        elif cid == EMISSIONS_COLLECTION:
            items_dir = posixpath.join(STAC_ROOT, cid, "items")
            releases = [
                (item, posixpath.normpath(posixpath.join(items_dir, item["assets"]["data"]["href"])))
                for item in store.read_item_dicts(cid)
            ]
            tables.extend(table_entries_from_stac(doc, releases))
    doc = build_intake_catalog(
        cubes,
        tables,
        description="eolake: daily carbon-satellite cubes and emissions tables",
        stac_key=f"{STAC_ROOT}/catalog.json",
        stac_api=stac_api,
    )
    write_intake_catalog(lake.fs, lake.path(INTAKE_KEY), doc)
    return lake.url_of(INTAKE_KEY)


def publish_release_item(lake: Lake, item: pystac.Item, collection: pystac.Collection) -> None:
    catalog_store(lake).upsert(collection, [item])
