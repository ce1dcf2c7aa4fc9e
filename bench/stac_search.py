"""Search latency of the two STAC API backends on the same simulated granule catalog, in one run.

    uv run python bench/stac_search.py --items 100000 [--items 1000000] [--rounds 5]

For each size: N simulated S5P granule items (14 orbits a day, swath-strip footprints, s5p/sat properties)
are upserted into a catalog store (no browsable tree) and loaded into pgstac on a throwaway PostgreSQL; both
APIs are served over real HTTP on 127.0.0.1; a fixed mix of searches (bbox+datetime, CQL2 property filter,
sort, deep pagination) is timed against each. Prints p50/p95 per backend, the embedded/pgstac p95 ratio
(goal ≤ 2 at 100,000 items), and the per-page cost along a walk to the end of a deep result set (every item
at 100,000; the latest 100,000 at 1,000,000; pages of 1000) with its drift, last pages over first (goal:
constant, i.e. about 1).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import fsspec
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from catalog.pgstac import load_store, migrate  # noqa: E402
from catalog.store import CatalogStore  # noqa: E402
from infra.postgres import start_postgres, stop_postgres  # noqa: E402
from infra.services import Service, _wait, free_port  # noqa: E402

CID = "s5p-l2-no2"
T0 = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)


def simulated_items(n: int, *, seed: int = 0, first: int = 0) -> list[dict[str, Any]]:
    """Granules ``first`` … ``first + n - 1`` of one continuous orbit sequence (so batches do not overlap in
    time and ids are unique)."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(first, first + n):
        start = T0 + dt.timedelta(minutes=101.5 * i)
        end = start + dt.timedelta(minutes=101.5)
        lon = float((-25.4 * i) % 360 - 180)
        w, e = lon, min(lon + 26.0, 180.0)
        s, nn = -80.0, 80.0
        ring = [[w, s], [e, s], [e, nn], [w, nn], [w, s]]
        gid = f"S5P_OFFL_L2__NO2____{start:%Y%m%dT%H%M%S}_{end:%Y%m%dT%H%M%S}_{i:05d}_02_020400_X"
        mode = ["OFFL", "NRTI", "RPRO"][int(rng.integers(0, 3))]
        out.append(
            {
                "type": "Feature",
                "stac_version": "1.1.0",
                "stac_extensions": [],
                "id": gid,
                "geometry": {"type": "Polygon", "coordinates": [ring]},
                "bbox": [w, s, e, nn],
                "properties": {
                    "datetime": (start + (end - start) / 2).strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "start_datetime": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "end_datetime": end.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "platform": "Sentinel 5 Precursor",
                    "s5p:processing_mode": mode,
                    "sat:absolute_orbit": 6000 + i,
                    "eolake:cloud_fraction": round(float(rng.random()), 4),
                },
                "links": [],
                "assets": {
                    "no2": {
                        "href": f"../../../raw/{gid}.nc",
                        "type": "application/x-netcdf",
                        "roles": ["data"],
                    }
                },
                "collection": CID,
            }
        )
    return out


def collection() -> dict[str, Any]:
    return {
        "type": "Collection",
        "stac_version": "1.1.0",
        "id": CID,
        "description": "Simulated Sentinel-5P L2 NO2 granules (benchmark)",
        "license": "other",
        "extent": {"spatial": {"bbox": [[-180, -90, 180, 90]]}, "temporal": {"interval": [[None, None]]}},
        "links": [],
    }


def log(msg: str) -> None:
    """Progress on stderr (the results go to stdout as JSON lines)."""
    print(f"{dt.datetime.now(dt.UTC):%H:%M:%S} {msg}", file=sys.stderr, flush=True)


def build_store(root: Path, n: int) -> CatalogStore:
    store = CatalogStore(fsspec.filesystem("file"), str(root), browsable=False)
    batch = 100_000
    for first in range(0, n, batch):
        store.upsert(collection(), simulated_items(min(batch, n - first), seed=first, first=first))
        log(f"store: {min(first + batch, n)}/{n} items")
    return store


def serve(lake: Path, env: dict[str, str], log: Path, *extra: str) -> Service:
    port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "stac", "serve", "--lake", str(lake), "--port", str(port), *extra],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        with urllib.request.urlopen(url + "/_mgmt/ping", timeout=2) as r:
            return bool(r.status == 200)

    _wait(healthy, what="STAC API", process=proc, log=log, timeout=120)
    return Service("stac", proc, url, log)


def timed(url: str) -> tuple[float, dict[str, Any]]:
    t = time.perf_counter()
    with urllib.request.urlopen(url, timeout=600) as r:
        doc = json.loads(r.read())
    return time.perf_counter() - t, doc


def mix(n: int) -> list[str]:
    days = n // 14
    mid = T0 + dt.timedelta(days=days // 2)
    q = [
        {
            "bbox": "0,40,10,50",
            "datetime": f"{mid:%Y-%m-%d}T00:00:00Z/{mid + dt.timedelta(days=3):%Y-%m-%d}T00:00:00Z",
        },
        {"filter": "eolake:cloud_fraction < 0.05 AND s5p:processing_mode = 'OFFL'", "limit": "50"},
        {"sortby": "-sat:absolute_orbit", "limit": "50"},
        {"sortby": "+datetime", "limit": "100", "datetime": f"{mid:%Y-%m-%d}T00:00:00Z/.."},
    ]
    return ["/search?" + urllib.parse.urlencode(p) for p in q]


def walk(url: str) -> list[float]:
    """Follow ``next`` links from ``url`` to the end of the results; the cost of each page (s)."""
    costs = []
    while url:
        s, doc = timed(url)
        costs.append(s)
        url = next((ln["href"] for ln in doc["links"] if ln["rel"] == "next"), "")
    return costs


def deep_walk_url(n: int) -> str:
    """A search whose results are walked to the end in pages of 1000: every item up to 100,000 items, the
    most recent 100,000 (by datetime) beyond."""
    url = "/search?limit=1000&sortby=-datetime"
    if n > 100_000:
        since = T0 + dt.timedelta(minutes=101.5 * (n - 100_000))
        url += "&datetime=" + urllib.parse.quote(f"{since:%Y-%m-%dT%H:%M:%S}Z/..")
    return url


def page_costs(pages: list[float]) -> dict[str, Any]:
    """Per-page cost along a walk: first, median, last pages and the drift (median of the last tenth of the pages
    over the median of the first tenth after page 1, which pays for warming caches; 1.0 = constant cost;
    medians, as a busy machine adds spikes)."""
    body = pages[1:] or pages
    k = max(1, len(body) // 10)
    return {
        "pages": len(pages),
        "page1_ms": round(1000 * pages[0], 1),
        "median_page_ms": round(1000 * statistics.median(body), 1),
        "last_page_ms": round(1000 * pages[-1], 1),
        "drift_last_over_first": round(statistics.median(body[-k:]) / statistics.median(body[:k]), 2),
    }


def run(n: int, rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="eolake-bench-") as tmp:
        lake = Path(tmp) / "lake"
        t = time.perf_counter()
        store = build_store(lake / "stac", n)
        build_s = time.perf_counter() - t
        pg = start_postgres(Path(tmp) / "pg")
        servers: list[Service] = []
        try:
            migrate(pg.url)
            t = time.perf_counter()
            log("pgstac: loading")
            load_store(store, pg.url)
            log("pgstac: loaded")
            load_s = time.perf_counter() - t
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            servers = [
                serve(lake, env, Path(tmp) / "embedded.log"),
                serve(lake, {**env, **pg.env}, Path(tmp) / "pgstac.log", "--backend", "pgstac"),
            ]
            result: dict[str, Any] = {
                "items": n,
                "build_store_s": round(build_s, 1),
                "load_pgstac_s": round(load_s, 1),
            }
            for name, server in zip(("embedded", "pgstac"), servers, strict=True):
                log(f"{name}: searching")
                for url in mix(n):  # warm-up: loading, caches
                    timed(server.url + url)
                lat = [timed(server.url + url)[0] for _ in range(rounds) for url in mix(n)]
                log(f"{name}: walking {deep_walk_url(n)} to the end")
                result[name] = {
                    "p50_ms": round(1000 * statistics.median(lat), 1),
                    "p95_ms": round(1000 * float(np.percentile(lat, 95)), 1),
                    "walk": page_costs(walk(server.url + deep_walk_url(n))),
                }
            result["p95_ratio_embedded_over_pgstac"] = round(
                result["embedded"]["p95_ms"] / result["pgstac"]["p95_ms"], 2
            )
            return result
        finally:
            for s in servers:
                s.stop()
            stop_postgres(pg)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--items", type=int, action="append", help="catalog size (repeatable); default 100000")
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args()
    for n in args.items or [100_000]:
        print(json.dumps(run(n, args.rounds)), flush=True)


if __name__ == "__main__":
    main()
