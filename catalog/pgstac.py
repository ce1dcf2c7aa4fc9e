"""Loading the lake's catalog into pgstac: migrate the schema, then upsert collections and items.

The documents loaded are exactly what the embedded backend serves (asset hrefs made absolute against the
lake), so both backends answer the same. pgstac's ``context`` setting is turned on so searches report
``numberMatched`` as the embedded backend does.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pypgstac.db import PgstacDB
from pypgstac.load import Loader, Methods
from pypgstac.migrate import Migrate

from catalog.api.engine import StoreCatalog
from catalog.store import CatalogStore, absolute_hrefs

BATCH = 10_000


def migrate(dsn: str) -> str:
    """Install or upgrade pgstac in the database at ``dsn``; returns its version."""
    with PgstacDB(dsn=dsn) as db:
        version: str = Migrate(db).run_migration()
        db.query_one(
            "INSERT INTO pgstac_settings (name, value) VALUES ('context', 'on') "
            "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value RETURNING name"
        )
    return version


def load_store(store: CatalogStore, dsn: str, *, collections: list[str] | None = None) -> dict[str, int]:
    """Upsert every collection of ``store`` (or those named) and its items into pgstac at ``dsn``, streaming
    the items ``BATCH`` at a time. Returns items loaded per collection."""
    engine = StoreCatalog(store)
    counts: dict[str, int] = {}
    with PgstacDB(dsn=dsn) as db:
        loader = Loader(db=db)
        cids = [c for c in store.collection_ids() if not collections or c in collections]
        docs = [d for c in cids if (d := engine.get_collection(c)) is not None]
        loader.load_collections(iter(docs), insert_mode=Methods.upsert)
        for cid in cids:
            n = 0

            def items(cid: str = cid) -> Iterator[dict[str, Any]]:
                nonlocal n
                for doc in store.iter_item_dicts(cid, batch_size=BATCH):
                    n += 1
                    yield absolute_hrefs(doc, store, cid)

            loader.load_items(items(), insert_mode=Methods.upsert, chunksize=BATCH)
            counts[cid] = n
    return counts
