"""The STAC API app: stac-fastapi-pgstac's client and extensions over either backend.

- ``embedded`` (default): :class:`~catalog.api.engine.StoreCatalog` over the lake's catalog store, no database.
  It is reached through the same calls stac-fastapi-pgstac makes to pgstac (``search``,
  ``collection_search``, ``get_collection``, ``get_queryables``), so request parsing, links, paging and
  extensions are literally the same code for both backends.
- ``pgstac``: PostgreSQL + PostGIS + pgstac, loaded with :mod:`catalog.pgstac`.

Both sit behind :class:`~catalog.api.guard.InputGuard` (bad input → 400) and are read-only: the transaction
extensions are not mounted. ``GET /aggregate`` answers item counts per collection per day and coverage
statistics (which pgstac lacks) on both.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Query, Request
from stac_fastapi.pgstac.app import instantiate_api
from stac_fastapi.pgstac.config import PostgresSettings, Settings
from stac_fastapi.pgstac.core import CoreCrudClient
from stac_fastapi.pgstac.db import close_db_connection, connect_to_db
from stac_fastapi.pgstac.models.extensions import Extensions
from stac_fastapi.types.errors import InvalidQueryParameter

from catalog.api.engine import SearchError, StoreCatalog
from catalog.api.guard import BadInput, InputGuard, check_strings
from catalog.store import CatalogStore

_CALL = re.compile(r"FROM\s+(?:pgstac\.)?([a-z_]+)\s*\(", re.IGNORECASE)
_VERSION = re.compile(r"pgstac\.get_version\(\)", re.IGNORECASE)
EMBEDDED_VERSION = "eolake-embedded"


class StoreConnection:
    """Answers stac-fastapi-pgstac's database calls from a :class:`StoreCatalog`."""

    def __init__(self, engine: StoreCatalog) -> None:
        self.engine = engine

    async def fetchval(self, query: str, *params: Any) -> Any:
        if _VERSION.search(query):
            return EMBEDDED_VERSION
        m = _CALL.search(query)
        if m is None:
            raise RuntimeError(f"the embedded backend cannot answer {query!r}")
        name = m.group(1).lower()
        arg = params[0] if params else None
        try:
            if name == "search":
                return self.engine.search(json.loads(arg or "{}"))
            if name == "collection_search":
                return self.engine.collection_search(json.loads(arg or "{}"))
            if name == "get_collection":
                return self.engine.get_collection(str(arg))
            if name == "get_queryables":
                return self.engine.queryables(arg)
        except SearchError as exc:
            raise HTTPException(status_code=400, detail=str(exc)) from None
        raise RuntimeError(f"the embedded backend has no function {name}()")


class EolakeClient(CoreCrudClient):  # type: ignore[misc]
    """stac-fastapi-pgstac's client; items keep ``properties.datetime: null`` (required by STAC when only
    start/end are given), which pgstac strips with every other null."""

    async def _search_base(self, search_request: Any, request: Request) -> Any:
        result = await super()._search_base(search_request, request=request)
        for feature in result.get("features", []):
            props = feature.get("properties")
            if isinstance(props, dict) and "datetime" not in props and "start_datetime" in props:
                props["datetime"] = None
        return result


def _settings(title: str) -> Settings:
    return Settings(
        stac_fastapi_title=title,
        stac_fastapi_landing_id="eolake",
        stac_fastapi_version="1.0.0",
        stac_fastapi_description="Carbon-satellite data lake: raw granules, daily cubes, emissions tables.",
        enable_transactions_extensions=False,  # read-only
        enabled_extensions=None,
    )


def create_embedded_app(store: CatalogStore, *, title: str = "eolake") -> FastAPI:
    """The STAC API served straight from the lake's catalog store."""
    engine = StoreCatalog(store)
    connection = StoreConnection(engine)

    @asynccontextmanager
    async def get_connection(request: Request, readwrite: str = "r") -> AsyncIterator[StoreConnection]:
        yield connection

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.get_connection = get_connection
        yield

    settings = _settings(title)
    api = instantiate_api(
        client=EolakeClient, extensions=Extensions(settings=settings), lifespan=lifespan, settings=settings
    )
    _add_aggregations(api.app, lambda cids: engine_daily(engine, cids))
    api.app.add_middleware(InputGuard)
    app: FastAPI = api.app
    return app


def create_pgstac_app(postgres: PostgresSettings, *, title: str = "eolake") -> FastAPI:
    """The STAC API over pgstac (stac-fastapi-pgstac), with the same guard and aggregations."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await connect_to_db(app, postgres_settings=postgres)
        yield
        await close_db_connection(app)

    settings = _settings(title)
    api = instantiate_api(
        client=EolakeClient, extensions=Extensions(settings=settings), lifespan=lifespan, settings=settings
    )

    async def daily(cids: list[str] | None) -> list[dict[str, Any]]:
        return await pgstac_daily(api.app, cids)

    _add_aggregations(api.app, daily)
    api.app.add_middleware(InputGuard)
    app: FastAPI = api.app
    return app


# ---- aggregations: counts per collection per day, coverage statistics ----


def _add_aggregations(app: FastAPI, daily: Any) -> None:
    @app.get("/aggregate", tags=["Aggregations"], summary="Items per collection per day, and gaps")
    async def aggregate(
        collections: str | None = Query(None, description="comma-separated collection ids (default all)"),
    ) -> dict[str, Any]:
        try:
            check_strings("collections", collections or "")
        except BadInput as exc:  # stac-fastapi answers it as 400 {"code", "description"}, as the guard does
            raise InvalidQueryParameter(str(exc)) from None
        cids = [c for c in collections.split(",") if c] if collections else None
        rows = daily(cids)
        if hasattr(rows, "__await__"):
            rows = await rows
        return summarise(rows)


def engine_daily(engine: StoreCatalog, cids: list[str] | None) -> list[dict[str, Any]]:
    """(collection, day, items, mean eolake:coverage) from the embedded engine."""
    import numpy as np

    out = []
    for cid, index in sorted(engine.indexes().items()):
        if cids and cid not in cids:
            continue
        days = index.start // (86_400 * 10**9)
        cov = index.values("eolake:coverage")
        for day in np.unique(days):
            rows = np.flatnonzero(days == day)
            values = [float(v) for v in cov[rows] if isinstance(v, int | float)]
            out.append(
                {
                    "collection": cid,
                    "day": (dt.date(1970, 1, 1) + dt.timedelta(days=int(day))).isoformat(),
                    "items": len(rows),
                    "coverage": sum(values) / len(values) if values else None,
                }
            )
    return out


async def pgstac_daily(app: FastAPI, cids: list[str] | None) -> list[dict[str, Any]]:
    """The same rows computed in PostgreSQL from pgstac's items table."""
    sql = (
        "SELECT collection, to_char(date_trunc('day', datetime AT TIME ZONE 'UTC'), 'YYYY-MM-DD') AS day, "
        "count(*) AS items, avg((content->'properties'->>'eolake:coverage')::float) AS coverage "
        "FROM pgstac.items WHERE ($1::text[] IS NULL OR collection = ANY($1::text[])) "
        "GROUP BY 1, 2 ORDER BY 1, 2"
    )
    async with app.state.readpool.acquire() as conn:
        records = await conn.fetch(sql, cids)
    return [
        {"collection": r["collection"], "day": r["day"], "items": int(r["items"]), "coverage": r["coverage"]}
        for r in records
    ]


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Per collection: items per day, the days without items between its first and last day (gaps), and
    coverage statistics (mean, min, max of the daily mean ``eolake:coverage`` where items carry it)."""
    by: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault(r["collection"], []).append(r)
    out = []
    for cid, rs in sorted(by.items()):
        rs.sort(key=lambda r: r["day"])
        present = {r["day"] for r in rs}
        first, last = dt.date.fromisoformat(rs[0]["day"]), dt.date.fromisoformat(rs[-1]["day"])
        span = [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
        cov = [round(float(r["coverage"]), 6) for r in rs if r["coverage"] is not None]
        out.append(
            {
                "collection": cid,
                "days": [{"day": r["day"], "items": r["items"]} for r in rs],
                "items": sum(r["items"] for r in rs),
                "gaps": [d for d in span if d not in present],
                "coverage": {"mean": round(sum(cov) / len(cov), 6), "min": min(cov), "max": max(cov)}
                if cov
                else None,
            }
        )
    return {"aggregations": out}
