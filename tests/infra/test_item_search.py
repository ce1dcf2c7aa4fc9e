"""STAC API item search over real HTTP on 127.0.0.1 (``infra.adapters.item_search``): method choice, next links
(GET, POST, merge, headers), retries, errors, the next page fetched while the current one is read."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from infra.adapters.base import SourceConfig
from infra.adapters.item_search import (
    PageRequest,
    first_request,
    search_pages,
    search_parameters,
)
from infra.adapters.stac import StacApiAdapter
from transforms.errors import SourceError

LO, HI = dt.datetime(2020, 3, 2, tzinfo=dt.UTC), dt.datetime(2020, 3, 4, tzinfo=dt.UTC)


@dataclass
class Seen:
    """What the server was asked: (method, path, query, body, headers) per request."""

    requests: list[tuple[str, str, dict[str, str], dict[str, Any] | None, dict[str, str]]] = field(
        default_factory=list
    )


Answer = Callable[[str, str, dict[str, str], dict[str, Any] | None], tuple[int, Any]]


@contextmanager
def serve(answer: Answer) -> Iterator[tuple[str, Seen]]:
    """A JSON server whose answers come from ``answer(method, path, query, body)``; yields its root URL."""
    seen = Seen()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _handle(self, method: str) -> None:
            url = urlparse(self.path)
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0) or 0))
            body = json.loads(raw) if raw else None
            seen.requests.append((method, url.path, query, body, dict(self.headers)))
            status, doc = answer(method, url.path, query, body)
            data = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._handle("GET")

        def do_POST(self) -> None:
            self._handle("POST")

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def _landing(root: str, methods: tuple[str, ...]) -> dict[str, Any]:
    links = [
        {"rel": "search", "href": f"{root}/search", "type": "application/geo+json", "method": m}
        for m in methods
    ]
    return {"type": "Catalog", "conformsTo": ["https://api.stacspec.org/v1.0.0/item-search"], "links": links}


def _features(ids: range) -> list[dict[str, Any]]:
    return [{"type": "Feature", "id": f"item-{i}"} for i in ids]


def _ids(pages: Iterator[list[dict[str, Any]]]) -> list[str]:
    return [f["id"] for page in pages for f in page]


def test_post_is_used_when_advertised_and_post_next_links_merge_their_body() -> None:
    def answer(method: str, path: str, query: dict[str, str], body: dict[str, Any] | None) -> tuple[int, Any]:
        assert method == "POST" and body is not None
        token = int(body.get("token", 0))
        links = []
        if token < 4:
            nxt = {
                "rel": "next",
                "href": "/search",
                "method": "POST",
                "body": {"token": token + 2},
                "merge": True,
            }
            links.append(nxt)
        return 200, {
            "type": "FeatureCollection",
            "features": _features(range(token, token + 2)),
            "links": links,
        }

    with serve(answer) as (root, seen):
        params = search_parameters(["c1", "c2"], LO, HI, limit=2, query={"s5p:product_name": {"eq": "no2"}})
        first = first_request(root, _landing(root, ("GET", "POST")), params, headers={"X-Key": "k"})
        assert _ids(search_pages(first)) == [f"item-{i}" for i in range(6)]
    bodies = [r[3] for r in seen.requests]
    assert bodies[0] == {
        "collections": ["c1", "c2"],
        "datetime": "2020-03-02T00:00:00Z/2020-03-04T00:00:00Z",
        "limit": 2,
        "query": {"s5p:product_name": {"eq": "no2"}},
    }
    assert all(
        b is not None and b["collections"] == ["c1", "c2"] and b["limit"] == 2 for b in bodies
    )  # merged
    assert [b["token"] for b in bodies[1:] if b] == [2, 4]
    assert all(r[4].get("X-Key") == "k" for r in seen.requests)  # our headers go with every page


def test_get_is_used_when_only_get_is_advertised_and_get_next_links_are_followed_as_given() -> None:
    def answer(method: str, path: str, query: dict[str, str], body: dict[str, Any] | None) -> tuple[int, Any]:
        assert method == "GET" and path == "/search"
        page = int(query.get("page", 1))
        links = [{"rel": "next", "href": f"/search?page={page + 1}"}] if page < 3 else []
        return 200, {"features": _features(range(page * 10, page * 10 + 1)), "links": links}

    with serve(answer) as (root, seen):
        params = search_parameters(["c1", "c2"], LO, HI, limit=5, query={"a": {"eq": 1}})
        assert _ids(search_pages(first_request(root, _landing(root, ("GET",)), params))) == [
            "item-10",
            "item-20",
            "item-30",
        ]
    first_query = seen.requests[0][2]
    assert first_query == {
        "collections": "c1,c2",
        "datetime": "2020-03-02T00:00:00Z/2020-03-04T00:00:00Z",
        "limit": "5",
        "query": '{"a":{"eq":1}}',
    }
    assert [r[2] for r in seen.requests[1:]] == [{"page": "2"}, {"page": "3"}]  # the next href's own query


def test_an_empty_page_ends_the_search_even_with_a_next_link() -> None:
    def answer(method: str, path: str, query: dict[str, str], body: dict[str, Any] | None) -> tuple[int, Any]:
        return 200, {"features": [], "links": [{"rel": "next", "href": "/search?again"}]}

    with serve(answer) as (root, seen):
        assert _ids(search_pages(PageRequest("GET", f"{root}/search"))) == []
    assert len(seen.requests) == 1


def test_a_next_link_that_does_not_advance_is_an_error_not_an_endless_loop() -> None:
    def answer(method: str, path: str, query: dict[str, str], body: dict[str, Any] | None) -> tuple[int, Any]:
        return 200, {"features": _features(range(1)), "links": [{"rel": "next", "href": "/search?token=1"}]}

    with serve(answer) as (root, _), pytest.raises(SourceError, match="next page link repeats"):
        _ids(search_pages(PageRequest("GET", f"{root}/search")))


def test_transient_failures_are_retried_and_other_failures_say_what_the_server_answered() -> None:
    answers = iter(
        [(503, {"code": "busy"}), (429, {}), (200, {"features": _features(range(2)), "links": []})]
    )
    sleeps: list[float] = []
    with serve(lambda *a: next(answers)) as (root, seen):
        pages = search_pages(PageRequest("GET", f"{root}/search"), sleep=sleeps.append)
        assert _ids(pages) == ["item-0", "item-1"]
    assert len(seen.requests) == 3 and sleeps == [0.5, 1.0]

    refused = pytest.raises(SourceError, match=r'HTTP 400: \{"detail": "limit must be at most 500"\}')
    with serve(lambda *a: (400, {"detail": "limit must be at most 500"})) as (root, seen), refused:
        _ids(search_pages(PageRequest("GET", f"{root}/search?sig=SECRET")))
    assert len(seen.requests) == 1  # not retried

    failing = pytest.raises(SourceError, match=r"failed after 3 attempts \(last: HTTP 500\)")
    with serve(lambda *a: (500, {})) as (root, _), failing as info:
        _ids(search_pages(PageRequest("GET", f"{root}/search?sig=SECRET"), sleep=lambda s: None))
    assert "SECRET" not in str(info.value)

    with (
        serve(lambda *a: (200, b"<html>not json</html>")) as (root, _),
        pytest.raises(SourceError, match="did not answer JSON"),
    ):
        _ids(search_pages(PageRequest("GET", f"{root}/search")))


def test_the_next_page_is_fetched_while_the_current_one_is_read() -> None:
    second_asked = threading.Event()

    def answer(method: str, path: str, query: dict[str, str], body: dict[str, Any] | None) -> tuple[int, Any]:
        if query.get("page") == "2":
            second_asked.set()
            return 200, {"features": _features(range(2, 3)), "links": []}
        return 200, {"features": _features(range(2)), "links": [{"rel": "next", "href": "/search?page=2"}]}

    with serve(answer) as (root, _):
        pages = search_pages(PageRequest("GET", f"{root}/search"))
        first = next(pages)
        assert [f["id"] for f in first] == ["item-0", "item-1"]
        assert second_asked.wait(30)  # asked for while the caller still holds the first page
        assert _ids(pages) == ["item-2"]


def test_the_adapter_reads_the_landing_page_once_and_asks_for_its_page_size() -> None:
    def answer(method: str, path: str, query: dict[str, str], body: dict[str, Any] | None) -> tuple[int, Any]:
        if path in ("", "/"):
            return 200, _landing(root, ("POST",))
        assert body is not None
        return 200, {"features": [], "links": []}

    with serve(answer) as (root, seen):
        adapter = StacApiAdapter(SourceConfig("api", "stac-api", root + "/", {}, page_size=123))
        assert list(adapter.search("no2", LO, HI)) == []
        assert list(adapter.search("no2", LO, HI)) == []
    assert [r[1] for r in seen.requests] == ["/", "/search", "/search"]
    assert seen.requests[1][3] is not None and seen.requests[1][3]["limit"] == 123
    assert seen.requests[1][3]["datetime"] == "2020-03-01T00:00:00Z/2020-03-05T00:00:00Z"  # ± SEARCH_MARGIN


def test_an_unreachable_api_names_the_source() -> None:
    adapter = StacApiAdapter(SourceConfig("gone", "stac-api", "http://127.0.0.1:9/stac", {}))
    with pytest.raises(SourceError, match=r"STAC API search at http://127.0.0.1:9/stac \(gone\) failed: GET"):
        list(adapter.search("no2", LO, HI))
