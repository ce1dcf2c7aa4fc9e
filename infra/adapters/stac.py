"""Generic STAC adapters: a static catalog (path or URL, walked as plain JSON) and a STAC API (item search over
HTTP, :mod:`infra.adapters.item_search`).

Neither needs credentials; hrefs are fetched as published. Items are matched to a product by their
``s5p:product_name`` property when present, else by the parsed file name of their netCDF asset.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from infra.adapters.base import Download, SourceConfig, overlaps
from infra.sources import (
    DEFAULT_COLLECTION,
    UpstreamGranule,
    granule_from_item,
    item_base,
    read_json,
    redact_url,
)
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
        kind = self.root.get("type")
        legacy = kind is None and "links" in self.root and "assets" not in self.root  # STAC < 1.0: no type
        if kind not in {"Catalog", "Collection"} and not legacy:
            what = {"Feature": "Item"}.get(kind, kind) if isinstance(kind, str) else "document without a type"
            raise SourceError(f"{redact_url(self.href)} is a STAC {what}, not a catalog or collection")
        yield from _matching(self._items(), product, start, end, timeliness)

    def _items(self) -> Iterator[tuple[dict[str, Any], str]]:
        """Every item below the root (child links followed, each document once) with the href it lives at:
        plain JSON, as published (no pystac objects: building and migrating them dominated a listing)."""
        from pystac.utils import make_absolute_href

        seen = {self.href}
        stack = [(self.root, self.href)]
        while stack:
            doc, href = stack.pop()
            for link in reversed(doc.get("links") or []):
                if (
                    not isinstance(link, dict)
                    or link.get("rel") not in {"child", "item"}
                    or not link.get("href")
                ):
                    continue
                target = make_absolute_href(str(link["href"]), href)
                if target in seen:
                    continue
                seen.add(target)
                try:
                    child = read_json(target)
                except SourceError as exc:
                    raise SourceError(f"{redact_url(self.href)} has a broken link: {exc}") from exc
                if link["rel"] == "item" or child.get("type") == "Feature":
                    yield child, target
                else:
                    stack.append((child, target))

    def authorize(self, granule: UpstreamGranule, *, refresh: bool = False) -> Download:
        return Download(granule.href)


class StacApiAdapter:
    """A STAC API with item search (:mod:`infra.adapters.item_search`: pages followed by ``next`` links, the
    next one fetched while the current one is read)."""

    credential_hint = "the source's credentials"
    page_size = 1000
    """Items asked for per page (``limit``): the most Planetary Computer and CDSE serve (both cap ``/search`` at
    1000); fewer round trips, and a server that caps lower simply answers with smaller pages. A sources-file
    entry's ``page_size`` overrides it."""

    def __init__(self, config: SourceConfig, *, root: Mapping[str, Any] | None = None) -> None:
        self.config = config
        self.name = config.name
        self.max_connections = config.max_connections
        self._root = root  # the landing page, when the caller already read it

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
    ) -> Iterator[tuple[dict[str, Any], str | None]]:
        """Items of ``collections`` around [start, end) as published JSON, each with its ``self`` href, page by
        page as they arrive."""
        import requests

        from infra.adapters.item_search import (
            PageRequest,
            fetch_page,
            first_request,
            search_pages,
            search_parameters,
        )

        lo, hi = start - SEARCH_MARGIN, end + SEARCH_MARGIN
        limit = self.config.page_size or self.page_size
        try:
            with requests.Session() as session:
                if self._root is None:
                    self._root = fetch_page(
                        session, PageRequest("GET", self.config.url, headers=headers or {})
                    )
                params = search_parameters(collections, lo, hi, limit=limit, query=query)
                request = first_request(self.config.url, self._root, params, headers=headers)
                for features in search_pages(request, session=session):
                    for item in features:
                        yield item, item_base(item)
        except Exception as exc:
            what = str(exc) if isinstance(exc, SourceError) else f"{type(exc).__name__}: {exc}"
            raise SourceError(
                f"STAC API search at {redact_url(self.config.url)} ({self.name}) failed: {what}"
            ) from exc

    def authorize(self, granule: UpstreamGranule, *, refresh: bool = False) -> Download:
        return Download(granule.href)


def _matching(
    items: Iterable[tuple[dict[str, Any], str | None]],
    product: str,
    start: dt.datetime,
    end: dt.datetime,
    timeliness: str | None,
) -> Iterator[UpstreamGranule]:
    for item, base in items:
        g = granule_from_item(item, product, base=base)
        if g is None or not overlaps(g, start, end):
            continue
        if timeliness is not None and g.name.mode.lower() != timeliness.lower():
            continue
        yield g
