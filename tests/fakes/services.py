"""Replay of the real services the source adapters talk to, over real HTTP on 127.0.0.1.

One server plays both:

- Planetary Computer (``/pc``): STAC API landing page and conformance (the real landing page, captured),
  item search (GET and POST; ``collections``, ``datetime``, ``limit``, the ``query`` extension on
  ``s5p:product_name``/``s5p:processing_mode``; pages as the real service writes them: ``{type, features,
  links}``, and a ``next`` link that repeats the whole search with ``token: "next:<collection>:<last item id>"``
  — POST with the body, GET with the query), the SAS token endpoint ``/pc/api/sas/v1/token/{collection}``, and
  a blob store that only serves a request whose query carries a SAS token it issued, not expired and not
  revoked (else Azure's 403).
- CDSE (``/cdse``): STAC API with one collection per product and timeliness whose items are CDSE's real item
  (its STAC generator's NO2 example) with the granule's values: data asset ``href`` on ``s3://eodata/...``, the
  HTTPS download as ``alternate.https`` on the zipper service ``/cdse/odata/v1/Products(<uuid>)/Nodes(<file>)/$value``
  (``Products(<uuid>)/$value`` is served too), ``file:size`` and an MD5 ``file:checksum`` multihash of the
  served file; the Keycloak token endpoint ``/cdse/auth/realms/CDSE/protocol/openid-connect/token``
  (password, client-credentials and refresh-token grants). Downloads need a valid bearer token.

Documents come from ``tests/data/recorded/<service>/`` (``real/``: captured from the services or written by
their own generators; the rest modelled on their documentation, see its README); the granules are those of a
static catalog made by ``eolake simulate``, so every byte served is a real netCDF file. ``Replay.verbatim``
items are served as they are (no values replaced). The server records what it was asked (searches, token
grants, downloads) and the peak number of concurrent downloads.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlencode, urlparse

import pystac

RECORDED = Path(__file__).resolve().parents[1] / "data" / "recorded"
PC_COLLECTION = "sentinel-5p-l2-netcdf"
PC_STAC = "/pc/api/stac/v1"
CDSE_STAC = "/cdse/stac/v1"
CDSE_TOKEN = "/cdse/auth/realms/CDSE/protocol/openid-connect/token"


def _recorded(service: str, name: str) -> Any:
    return json.loads((RECORDED / service / name).read_text())


PC_LANDING = "real/landing.json"
CDSE_ITEM = "real/item_no2_offl_eometadatatool.json"


@dataclass
class Granule:
    """One simulated granule and how each service presents it."""

    id: str
    path: Path
    product: str  # no2
    mode: str  # OFFL
    product_type: str  # L2__NO2___
    start: str  # ISO instants
    end: str
    orbit: int
    geometry: dict[str, Any] | None
    bbox: list[float] | None
    size: int
    md5: str
    uuid: str = field(default_factory=lambda: str(uuid.uuid4()))


@dataclass
class Replay:
    """What the tests need from a running replay: URLs, credentials, and what the server saw."""

    root: str  # http://127.0.0.1:<port>
    granules: list[Granule]
    username: str = "eolake-user@example.org"
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    searches: list[dict[str, Any]] = field(
        default_factory=list
    )  # {"service", "collections", "datetime", ...}
    token_grants: list[str] = field(default_factory=list)  # grant types asked at the CDSE token endpoint
    sas_requests: list[str] = field(default_factory=list)  # collections asked at the SAS endpoint
    downloads: list[tuple[str, int]] = field(default_factory=list)  # (granule id, HTTP status)
    peak_downloads: int = 0
    # behaviour knobs (set by tests before the requests they affect)
    page_size: int | None = None  # force this page size whatever the client asks
    access_lifetime_s: int = 600
    refresh_lifetime_s: int = 3600
    sas_lifetime_s: int = 3600
    download_delay_s: float = 0.0
    fail_downloads: set[str] = field(default_factory=set)  # granule ids whose file is missing (404)
    corrupt_downloads: set[str] = field(default_factory=set)  # granule ids served scrambled (same length)
    verbatim: dict[str, list[dict[str, Any]]] = field(default_factory=dict)  # service -> items served as is
    # server state
    _access: dict[str, float] = field(default_factory=dict)  # token -> expiry (epoch s)
    _refresh: dict[str, float] = field(default_factory=dict)
    _sas: dict[str, float] = field(default_factory=dict)  # signature -> expiry
    _active: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def pc_url(self) -> str:
        return f"{self.root}{PC_STAC}/"

    @property
    def pc_token_url(self) -> str:
        return f"{self.root}/pc/api/sas/v1/token"

    @property
    def cdse_url(self) -> str:
        return f"{self.root}{CDSE_STAC}/"

    @property
    def cdse_token_url(self) -> str:
        return f"{self.root}{CDSE_TOKEN}"

    def source_urls(self) -> dict[str, str]:
        """``EOLAKE_SOURCE_URLS`` pointing the configured sources at this replay."""
        return {
            "planetary-computer": self.pc_url,
            "planetary-computer.token_url": self.pc_token_url,
            "cdse": self.cdse_url,
            "cdse.token_url": self.cdse_token_url,
        }

    def revoke(self) -> None:
        """Every token and signature issued so far stops working now (as after a key rotation)."""
        with self._lock:
            self._access.clear()
            self._refresh.clear()
            self._sas.clear()


def _load(catalog_json: Path) -> list[Granule]:
    from transforms.granules import parse_granule_name

    out = []
    for item in pystac.Catalog.from_file(str(catalog_json)).get_items(recursive=True):
        item.make_asset_hrefs_absolute()
        for asset in item.assets.values():
            path = Path(asset.get_absolute_href() or asset.href)
            if path.suffix != ".nc":
                continue
            name = parse_granule_name(path.name)
            out.append(
                Granule(
                    id=name.id,
                    path=path,
                    product=name.product,
                    mode=name.mode,
                    product_type=name.product_type,
                    start=name.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    end=name.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    orbit=name.orbit,
                    geometry=item.geometry,
                    bbox=list(item.bbox) if item.bbox else None,
                    size=path.stat().st_size,
                    md5=hashlib.md5(path.read_bytes()).hexdigest(),
                )
            )
    return sorted(out, key=lambda g: (g.start, g.id))


def _overlaps(g: Granule, interval: str | None) -> bool:
    return _spans(g.start, g.end, interval)


def _spans(start: str, end: str, interval: str | None) -> bool:
    """Whether [start, end] (``...Z`` instants) meets a STAC ``datetime`` interval."""
    if not interval:
        return True
    lo, hi = [*interval.split("/"), ".."][:2]
    lo, hi = lo.replace("+00:00", "Z"), hi.replace("+00:00", "Z")
    return (hi in ("..", "") or start <= hi) and (lo in ("..", "") or end >= lo)


def _item_spans(item: dict[str, Any], interval: str | None) -> bool:
    p = item.get("properties") or {}
    start = str(p.get("start_datetime") or p.get("datetime"))
    return _spans(start, str(p.get("end_datetime") or start), interval)


def _pc_item(g: Granule, root: str) -> dict[str, Any]:
    d: dict[str, Any] = copy.deepcopy(_recorded("planetary_computer", "item_no2_offl.json"))
    d["id"] = g.id
    p = d["properties"]
    p.update(
        {
            "start_datetime": g.start,
            "end_datetime": g.end,
            "datetime": g.start,
            "sat:absolute_orbit": g.orbit,
            "s5p:processing_mode": g.mode,
            "s5p:product_type": g.product_type,
            "s5p:product_name": g.product,
        }
    )
    d["geometry"], d["bbox"] = g.geometry, g.bbox
    day = g.start[:10].replace("-", "/")
    (asset,) = d["assets"].values()
    asset["href"] = f"{root}/pc/blob/sentinel-5p/TROPOMI/{g.product_type}/{day}/{g.id}.nc"
    d["assets"] = {g.product: asset}
    for link in d["links"]:
        link["href"] = link["href"].replace("https://planetarycomputer.microsoft.com", f"{root}/pc")
    return d


def cdse_collection(g: Granule) -> str:
    return f"sentinel-5p-l2-{g.product}-{g.mode.lower()}"


def _cdse_item(g: Granule, root: str) -> dict[str, Any]:
    """CDSE's real item (``tests/data/recorded/cdse/real/``) with this granule's values, the links the STAC API
    adds to a stored item (self, parent, collection, root) and its zipper download on this replay."""
    d: dict[str, Any] = copy.deepcopy(_recorded("cdse", CDSE_ITEM))
    recorded_id = d["id"]
    d["id"], d["collection"] = g.id, cdse_collection(g)
    pv = g.id.split("_")[-2]  # processor version 020301 -> processing:version 2.3.1
    d["properties"].update(
        {
            "start_datetime": g.start,
            "end_datetime": g.end,
            "datetime": g.start,
            "sat:absolute_orbit": g.orbit,
            "product:type": g.product_type,
            "product:timeliness_category": g.mode,
            "processing:version": f"{int(pv[:2])}.{int(pv[2:4])}.{int(pv[4:])}",
        }
    )
    d["geometry"], d["bbox"] = g.geometry, g.bbox
    asset = d["assets"]["netcdf"]
    day = g.start[:10].replace("-", "/")
    asset["href"] = f"s3://eodata/Sentinel-5P/TROPOMI/{g.product_type}/{day}/{g.id}.nc"
    asset["file:local_path"] = f"{g.id}.nc"
    asset["file:size"] = g.size
    asset["file:checksum"] = "d50110" + g.md5  # MD5 multihash, as CDSE publishes
    asset["alternate"]["https"]["href"] = f"{root}/cdse/odata/v1/Products({g.uuid})/Nodes({g.id}.nc)/$value"
    here = f"{root}{CDSE_STAC}"
    d["links"] = [
        {
            "rel": "self",
            "type": "application/geo+json",
            "href": f"{here}/collections/{d['collection']}/items/{g.id}",
        },
        {"rel": "parent", "type": "application/json", "href": f"{here}/collections/{d['collection']}"},
        {"rel": "collection", "type": "application/json", "href": f"{here}/collections/{d['collection']}"},
        {"rel": "root", "type": "application/json", "href": f"{here}/"},
        *[
            {**link, "href": link["href"].replace(recorded_id, g.id)} for link in d["links"]
        ],  # version-history
    ]
    return d


@contextmanager
def serve_services(catalog_json: Path) -> Iterator[Replay]:
    """Replay Planetary Computer and CDSE for the granules of a simulated static catalog."""
    granules = _load(catalog_json)
    by_name = {f"{g.id}.nc": g for g in granules}
    by_uuid = {g.uuid: g for g in granules}
    replay = Replay(root="", granules=granules)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, doc: Any, status: int = 200) -> None:
            self._send(status, json.dumps(doc).encode())

        def _landing(self, service: str, prefix: str, real: str) -> None:
            doc = _recorded(service, PC_LANDING if service == "planetary_computer" else "landing.json")
            for link in doc["links"]:
                link["href"] = link["href"].replace(real, f"{replay.root}{prefix}")
            self._json(doc)

        def do_GET(self) -> None:
            url = urlparse(self.path)
            q = {k: v[0] for k, v in parse_qs(url.query).items()}
            path = url.path.rstrip("/")
            if path == PC_STAC:
                self._landing(
                    "planetary_computer", PC_STAC, "https://planetarycomputer.microsoft.com/api/stac/v1"
                )
            elif path == CDSE_STAC:
                self._landing("cdse", CDSE_STAC, "https://stac.dataspace.copernicus.eu/v1")
            elif path in (f"{PC_STAC}/conformance", f"{CDSE_STAC}/conformance"):
                landing = (
                    ("planetary_computer", PC_LANDING) if path.startswith("/pc") else ("cdse", "landing.json")
                )
                self._json({"conformsTo": _recorded(*landing)["conformsTo"]})
            elif path in (f"{PC_STAC}/search", f"{CDSE_STAC}/search"):
                body = dict(q)
                if "query" in body:
                    body["query"] = json.loads(body["query"])
                self._search(path[: -len("/search")], body, post=False)
            elif path.startswith("/pc/api/sas/v1/token/"):
                self._sas_token(path.rsplit("/", 1)[1])
            elif path.startswith("/pc/blob/") and path.rsplit("/", 1)[1] in by_name:
                self._pc_blob(by_name[path.rsplit("/", 1)[1]], q)
            elif path.startswith("/cdse/odata/v1/Products(") and path.endswith(")/$value"):
                product, _, node = path[len("/cdse/odata/v1/Products(") : -len(")/$value")].partition(
                    ")/Nodes("
                )
                g = by_uuid.get(product)
                if g is None or node not in ("", f"{g.id}.nc"):
                    self._json({"detail": "Not found"}, 404)
                else:
                    self._cdse_download(g)
            else:
                self._json({"code": "NotFound", "description": self.path}, 404)

        def do_POST(self) -> None:
            url = urlparse(self.path)
            raw = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            path = url.path.rstrip("/")
            if path in (f"{PC_STAC}/search", f"{CDSE_STAC}/search"):
                self._search(path[: -len("/search")], json.loads(raw or b"{}"), post=True)
            elif path == CDSE_TOKEN:
                self._cdse_token({k: v[0] for k, v in parse_qs(raw.decode()).items()})
            else:
                self._json({"code": "NotFound", "description": self.path}, 404)

        # ---- STAC search, both services ----

        def _search(self, prefix: str, body: dict[str, Any], *, post: bool) -> None:
            service = "pc" if prefix == PC_STAC else "cdse"
            collections = body.get("collections") or []
            if isinstance(collections, str):
                collections = collections.split(",")
            interval = body.get("datetime")
            query = body.get("query") or {}
            with replay._lock:
                replay.searches.append(
                    {
                        "service": service,
                        "collections": list(collections),
                        "datetime": interval,
                        "query": query,
                    }
                )
            if service == "pc":
                sel = [
                    g
                    for g in granules
                    if PC_COLLECTION in collections
                    and _overlaps(g, interval)
                    and g.product == query.get("s5p:product_name", {}).get("eq", g.product)
                    and g.mode == query.get("s5p:processing_mode", {}).get("eq", g.mode)
                ]
                entries: list[tuple[str, str, Any]] = [
                    (PC_COLLECTION, g.id, functools.partial(_pc_item, g, replay.root)) for g in sel
                ]
            else:
                entries = [
                    (cdse_collection(g), g.id, functools.partial(_cdse_item, g, replay.root))
                    for g in granules
                    if cdse_collection(g) in collections and _overlaps(g, interval)
                ]
            entries += [
                (str(d["collection"]), str(d["id"]), functools.partial(copy.deepcopy, d))
                for d in replay.verbatim.get(service, [])
                if d.get("collection") in collections and _item_spans(d, interval)
            ]
            limit = replay.page_size or int(body.get("limit", 10))
            offset = 0
            if body.get(
                "token"
            ):  # "next:<collection>:<id of the previous page's last item>", as pgstac writes
                keys = [f"next:{c}:{i}" for c, i, _ in entries]
                if body["token"] not in keys:
                    self._json({"code": "InvalidToken", "description": f"unknown token {body['token']}"}, 400)
                    return
                offset = keys.index(body["token"]) + 1
            chunk = entries[offset : offset + limit]
            links: list[dict[str, Any]] = []
            if offset + limit < len(entries):
                token = f"next:{chunk[-1][0]}:{chunk[-1][1]}"
                nxt: dict[str, Any] = {"rel": "next", "type": "application/geo+json"}
                if post:  # the whole search again plus the token; no "merge"
                    nxt.update(
                        method="POST", href=f"{replay.root}{prefix}/search", body={**body, "token": token}
                    )
                else:
                    nq = {k: (json.dumps(v) if k == "query" else v) for k, v in body.items()}
                    nq["token"] = token
                    nxt.update(method="GET", href=f"{replay.root}{prefix}/search?{urlencode(nq)}")
                links.append(nxt)
            links += [
                {"rel": "root", "type": "application/json", "href": f"{replay.root}{prefix}/"},
                {"rel": "self", "type": "application/json", "href": f"{replay.root}{prefix}/search"},
            ]
            self._json(
                {"type": "FeatureCollection", "features": [make() for _, _, make in chunk], "links": links}
            )

        # ---- Planetary Computer ----

        def _sas_token(self, collection: str) -> None:
            with replay._lock:
                replay.sas_requests.append(collection)
            if collection != PC_COLLECTION:
                self._json({"detail": f"Collection {collection} not found"}, 404)
                return
            doc = _recorded("planetary_computer", "sas_token.json")
            expiry = time.time() + replay.sas_lifetime_s
            sig = secrets.token_urlsafe(24)
            se = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry))
            st = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 3600))
            parts = dict(p.split("=", 1) for p in doc["token"].split("&"))
            parts.update(st=st.replace(":", "%3A"), se=se.replace(":", "%3A"), sig=sig)
            with replay._lock:
                replay._sas[sig] = expiry
            self._json({"msft:expiry": se, "token": "&".join(f"{k}={v}" for k, v in parts.items())})

        def _pc_blob(self, g: Granule, q: dict[str, str]) -> None:
            sig = q.get("sig", "")
            se = unquote(q.get("se", ""))
            with replay._lock:
                expiry = replay._sas.get(sig)
            ok = (
                expiry is not None
                and expiry > time.time()
                and se == time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(expiry))
            )
            if not ok:
                replay.downloads.append((g.id, 403))
                body = (RECORDED / "planetary_computer" / "blob_403.xml").read_bytes()
                self._send(403, body, "application/xml")
                return
            self._serve_file(g)

        # ---- CDSE ----

        def _cdse_token(self, form: dict[str, str]) -> None:
            grant = form.get("grant_type", "")
            with replay._lock:
                replay.token_grants.append(grant)
            now = time.time()
            if grant == "password":
                good = (
                    form.get("client_id") == "cdse-public"
                    and form.get("username") == replay.username
                    and form.get("password") == replay.password
                )
                if not good:
                    self._json(_recorded("cdse", "token_invalid_grant.json"), 401)
                    return
            elif grant == "refresh_token":
                with replay._lock:
                    expiry = replay._refresh.get(form.get("refresh_token", ""), 0)
                if expiry <= now:
                    self._json(_recorded("cdse", "token_refresh_expired.json"), 400)
                    return
            else:
                self._json({"error": "unsupported_grant_type", "error_description": grant}, 400)
                return
            doc = _recorded("cdse", "token.json")
            doc["access_token"] = "eyJ" + secrets.token_urlsafe(32)
            doc["refresh_token"] = "eyJ" + secrets.token_urlsafe(32)
            doc["expires_in"] = replay.access_lifetime_s
            doc["refresh_expires_in"] = replay.refresh_lifetime_s
            with replay._lock:
                replay._access[doc["access_token"]] = now + replay.access_lifetime_s
                replay._refresh[doc["refresh_token"]] = now + replay.refresh_lifetime_s
            self._json(doc)

        def _cdse_download(self, g: Granule) -> None:
            auth = self.headers.get("Authorization", "")
            token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
            with replay._lock:
                expiry = replay._access.get(token, 0)
            if expiry <= time.time():
                replay.downloads.append((g.id, 401))
                self._json(_recorded("cdse", "download_401.json"), 401)
                return
            self._serve_file(g)

        def _serve_file(self, g: Granule) -> None:
            with replay._lock:
                replay._active += 1
                replay.peak_downloads = max(replay.peak_downloads, replay._active)
            try:
                if replay.download_delay_s:
                    time.sleep(replay.download_delay_s)
                if g.id in replay.fail_downloads:
                    replay.downloads.append((g.id, 404))  # listed, but the file is gone
                    self._json({"detail": "Not found"}, 404)
                    return
                data = g.path.read_bytes()
                if (
                    g.id in replay.corrupt_downloads
                ):  # damaged in storage or on the way: size right, bytes not
                    data = bytes(reversed(data))
                replay.downloads.append((g.id, 200))
                self._send(200, data, "application/x-netcdf")
            finally:
                with replay._lock:
                    replay._active -= 1

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    replay.root = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield replay
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def simulated_catalog(out: Path, start: str, end: str, bbox: tuple[float, float, float, float]) -> Path:
    """A simulated Sentinel-5P archive (real netCDF granules and a static catalog) written in-process, without
    Prefect; returns its ``catalog.json``."""
    import datetime as dt

    import pandas as pd

    from infra.archive import simulate_day, write_archive_catalog
    from infra.scenario import load_truth
    from transforms.truth import COLUMNS

    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    truth = load_truth(None, start=first, end=last, bounds=bbox)
    items = []
    for day in pd.date_range(first, last, freq="D").date:
        rows = truth[pd.to_datetime(truth["date"]).dt.date == day][list(COLUMNS)]
        items += simulate_day(str(out), day, rows, bounds=bbox)
    return Path(write_archive_catalog(str(out), items))
