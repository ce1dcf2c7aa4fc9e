"""Generic STAC adapters: a static catalog (path or URL, read with pystac) and a STAC API (pystac-client).

Neither needs credentials; hrefs are fetched as published. Items are matched to a product by their
``s5p:product_name`` property when present, else by the parsed file name of their netCDF asset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pystac

from infra.adapters.base import Download, SourceConfig, overlaps
from infra.sources import DEFAULT_COLLECTION, UpstreamGranule, granule_from_item, redact_url
from transforms.errors import SourceError

SEARCH_MARGIN = dt.timedelta(days=1)
"""Searches widen the window by this much on both sides: services index an item at its ``datetime`` (often
the granule's middle), while we want every granule whose span overlaps the window."""


class StaticCatalogAdapter:
    """A static STAC catalog or collection (a ``catalog.json`` path or URL, or a directory holding one)."""

    credential_hint = "the source's credentials"

    def __init__(self, name: str, href: str, root: dict[str, Any], *, max_connections: int = 4) -> None:
        self.name = name
        self.href = href
        self.root = root
        self.max_connections = max_connections

    def search(
        self, product: str, start: dt.datetime, end: dt.datetime, *, timeliness: str | None = None
    ) -> Iterator[UpstreamGranule]:
        try:
            catalog = pystac.read_dict(self.root, href=self.href)
        except Exception as exc:
            raise SourceError(f"{redact_url(self.href)} is not a valid STAC catalog: {exc}") from exc
        if not isinstance(catalog, pystac.Catalog):
            raise SourceError(
                f"{redact_url(self.href)} is a STAC {type(catalog).__name__}, not a catalog or collection"
            )
        yield from _matching(catalog.get_items(recursive=True), product, start, end, timeliness)

    def authorize(self, granule: UpstreamGranule, *, refresh: bool = False) -> Download:
        return Download(granule.href)


class StacApiAdapter:
    """A STAC API with item search (paged by pystac-client, following ``next`` links)."""

    credential_hint = "the source's credentials"
    page_size = 250

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.name = config.name
        self.max_connections = config.max_connections

    def collections(self, product: str, timeliness: str | None) -> list[str]:
        return self.config.collections_for(product, timeliness) or [DEFAULT_COLLECTION]

    def query(self, product: str, timeliness: str | None) -> Mapping[str, Any] | None:
        """A STAC ``query`` extension filter, for APIs that match products on properties."""
        return None

    def search(
        self, product: str, start: dt.datetime, end: dt.datetime, *, timeliness: str | None = None
    ) -> Iterator[UpstreamGranule]:
        items = self.search_items(
            self.collections(product, timeliness), start, end, query=self.query(product, timeliness)
        )
        yield from _matching(items, product, start, end, timeliness)

    def search_items(
        self,
        collections: list[str],
        start: dt.datetime,
        end: dt.datetime,
        *,
        query: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[pystac.Item]:
        from pystac_client import Client

        lo, hi = start - SEARCH_MARGIN, end + SEARCH_MARGIN
        try:
            client = Client.open(self.config.url, headers=dict(headers or {}))
            search = client.search(
                collections=collections,
                datetime=(lo, hi),
                limit=self.page_size,
                query=dict(query) if query else None,
            )
            return list(search.items())
        except Exception as exc:
            raise SourceError(
                f"STAC API search at {redact_url(self.config.url)} ({self.name}) failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc

    def authorize(self, granule: UpstreamGranule, *, refresh: bool = False) -> Download:
        return Download(granule.href)


def _matching(
    items: Iterable[pystac.Item], product: str, start: dt.datetime, end: dt.datetime, timeliness: str | None
) -> Iterator[UpstreamGranule]:
    for item in items:
        g = granule_from_item(item, product)
        if g is None or not overlaps(g, start, end):
            continue
        if timeliness is not None and g.name.mode.lower() != timeliness.lower():
            continue
        yield g
