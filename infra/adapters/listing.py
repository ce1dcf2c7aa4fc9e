"""Plain directory listings: an HTTP(S) index page (Apache/nginx autoindex style) or an object-store/file prefix.

This is how GOSAT and TanSat files arrive: no catalog, just files whose names carry the product and times
(parsed by :func:`transforms.granules.parse_granule_name`; files it cannot parse are ignored). ``collections``
of the sources-file entry maps a product to a sub-path under ``url``. Sub-directories named like a year
(``2020/``) outside the window are not walked.
"""

from __future__ import annotations

import datetime as dt
import posixpath
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import requests

from infra.adapters.base import Download, SourceConfig, overlaps
from infra.sources import UpstreamGranule, redact_url
from transforms.errors import GranuleNameError, SourceError
from transforms.granules import parse_granule_name

MAX_DEPTH = 6
YEAR = re.compile(r"^(19|20)\d\d$")


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)


class ListingAdapter:
    """Granules found by walking a directory listing (HTTP index pages, or any fsspec prefix such as s3://)."""

    credential_hint = "the source's credentials"

    def __init__(self, config: SourceConfig) -> None:
        self.config = config
        self.name = config.name
        self.max_connections = config.max_connections

    def _roots(self, product: str) -> list[str]:
        base = self.config.url.rstrip("/") + "/"
        subs = self.config.collections_for(product) or [""]
        return [base + s.strip("/") + "/" if s.strip("/") else base for s in subs]

    def search(
        self, product: str, start: dt.datetime, end: dt.datetime, *, timeliness: str | None = None
    ) -> Iterator[UpstreamGranule]:
        for root in self._roots(product):
            files = self._walk_http(root, start, end) if root.startswith("http") else self._walk_fs(root)
            for href, size in files:
                try:
                    name = parse_granule_name(posixpath.basename(urlsplit(href).path))
                except GranuleNameError:
                    continue
                if name.product != product:
                    continue
                if timeliness is not None and name.mode.lower() != timeliness.lower():
                    continue
                g = UpstreamGranule(
                    name, href, size, None, _item(name.id, href, start_end=(name.start, name.end))
                )
                if overlaps(g, start, end):
                    yield g

    def _walk_http(self, root: str, start: dt.datetime, end: dt.datetime) -> Iterator[tuple[str, int | None]]:
        todo, seen = [(root, 0)], set()
        while todo:
            url, depth = todo.pop()
            if url in seen:
                continue
            seen.add(url)
            try:
                resp = requests.get(url, timeout=60)
            except requests.RequestException as exc:
                raise SourceError(
                    f"listing {redact_url(url)} ({self.name}) failed: {type(exc).__name__}"
                ) from exc
            if resp.status_code != 200:
                raise SourceError(f"listing {redact_url(url)} ({self.name}): HTTP {resp.status_code}")
            parser = _Links()
            parser.feed(resp.text)
            for href in parser.hrefs:
                target = urljoin(url, href)
                if not target.startswith(url) or target == url or "?" in href:
                    continue  # parent directory, sort links, other hosts
                if target.endswith("/"):
                    segment = target[len(url) :].strip("/")
                    if depth < MAX_DEPTH and not (
                        YEAR.match(segment) and not start.year <= int(segment) <= end.year
                    ):
                        todo.append((target, depth + 1))
                else:
                    yield target, None

    def _walk_fs(self, root: str) -> Iterator[tuple[str, int | None]]:
        import fsspec

        try:
            fs, path = fsspec.core.url_to_fs(root)
            found = fs.find(path, maxdepth=MAX_DEPTH, detail=True)
        except FileNotFoundError:
            raise SourceError(
                f"listing {redact_url(root)} ({self.name}) not found: check the source's url"
            ) from None
        except Exception as exc:
            raise SourceError(
                f"listing {redact_url(root)} ({self.name}) failed: {type(exc).__name__}: {exc}"
            ) from exc
        for path, info in sorted(found.items()):
            href = fs.unstrip_protocol(path)
            size = info.get("size")
            yield href, int(size) if size is not None else None

    def authorize(self, granule: UpstreamGranule, *, refresh: bool = False) -> Download:
        return Download(granule.href)


def _item(granule_id: str, href: str, *, start_end: tuple[dt.datetime, dt.datetime]) -> dict[str, object]:
    """A minimal STAC item for provenance (listings publish none; no footprint is known before reading)."""
    start, end = start_end
    return {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": granule_id,
        "geometry": None,
        "bbox": None,
        "properties": {
            "datetime": None,
            "start_datetime": start.isoformat(),
            "end_datetime": end.isoformat(),
        },
        "assets": {"data": {"href": redact_url(href)}},
        "links": [],
    }
