"""Catalog maintenance: keep every collection's extent and item links true to the items it holds."""

from __future__ import annotations

from infra.publish import catalog_store
from infra.storage import Lake


def refresh_collections(lake: Lake) -> list[str]:
    """Re-write each collection from its own items (extents, links); returns the collection ids."""
    store = catalog_store(lake)
    done = []
    for cid in store.collection_ids():
        doc = store.read_collection_dict(cid)
        if doc is not None:
            store.upsert(doc, [])
            done.append(cid)
    return done


def init_catalog(lake: Lake) -> None:
    """Give a new lake an empty, valid STAC catalog and Intake catalog, so services can serve it at once."""
    from infra.publish import publish_intake

    catalog_store(lake).ensure_root()
    publish_intake(lake)


def sync_pgstac(lake: Lake, dsn: str = "") -> dict[str, int]:
    """Bring pgstac up to date with the lake's catalog (upserts; the schema is migrated first when needed).
    ``dsn`` empty means libpq's ``PG*`` environment variables, as for ``eolake stac load-pgstac``."""
    from catalog.pgstac import load_store, migrate

    migrate(dsn)
    return load_store(catalog_store(lake), dsn)
