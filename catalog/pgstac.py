"""Loading the lake's catalog into pgstac: migrate the schema, then upsert collections and items.

The documents loaded are exactly what the embedded backend serves (asset hrefs made absolute against the
lake), so both backends answer the same. pgstac's ``context`` setting is turned on so searches report
``numberMatched`` as the embedded backend does.

pgstac 0.10.0 looks a paging token's item up with ``id = convert_from(decode(<hex>), 'UTF8')``. The
``'UTF8'`` argument is of type ``name``, whose collation is "C", so the expression is C-collated and the
planner cannot use the (default-collated) primary-key index: every page after the first scanned the whole
items partition (1,000,000 items: 44 ms for page 1, 477–669 ms for page 20). :func:`migrate` re-creates
that one function with the lookups pinned to the column's collation, so a token costs one index probe
(see docs/stac.md, "Deep paging").
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from pypgstac.db import PgstacDB
from pypgstac.load import Loader, Methods
from pypgstac.migrate import Migrate

from catalog.api.engine import StoreCatalog
from catalog.store import CatalogStore, absolute_hrefs

BATCH = 10_000

_UNINDEXED_LOOKUP = re.compile(r"convert_from\(decode\((_parts\[[23]\]), 'hex'\), 'UTF8'\)(?!\s*COLLATE)")
"""A token part decoded to C-collated text, which the items' primary-key index cannot serve."""


def migrate(dsn: str) -> str:
    """Install or upgrade pgstac in the database at ``dsn``, turn on ``context`` and index the paging-token
    lookup; returns pgstac's version."""
    with PgstacDB(dsn=dsn) as db:
        version: str = Migrate(db).run_migration()
        db.query_one(
            "INSERT INTO pgstac_settings (name, value) VALUES ('context', 'on') "
            "ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value RETURNING name"
        )
    with PgstacDB(dsn=dsn) as db:  # a fresh session: the migration leaves a role that doesn't own functions
        index_token_lookup(db)
    return version


def index_token_lookup(db: PgstacDB) -> bool:
    """Re-create ``pgstac.get_token_record`` with its ``collection``/``id`` lookups in the default collation,
    so the primary-key index serves them. Returns whether the function was changed (False when it already
    collates, e.g. a later pgstac fixed it)."""
    source = db.query_one("SELECT pg_get_functiondef('pgstac.get_token_record(text)'::regprocedure)")
    fixed, n = _UNINDEXED_LOOKUP.subn(
        lambda m: f"convert_from(decode({m.group(1)}, 'hex'), 'UTF8') COLLATE \"default\"", str(source)
    )
    if n:
        db.connect().execute(fixed.encode())
    return n > 0


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
