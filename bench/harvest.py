"""Harvest benchmark (not a test): transfer throughput against a plain copy, and a no-op re-run at 10,000 granules.

1. Throughput. ``--days`` of simulated S5P NO2 granules (~5–9 MB each over the default domain) are served by the
   fake upstream (``tests/fakes/upstream.py``: a STAC API and file server on 127.0.0.1, in a process of its own,
   sending untouched bodies with ``sendfile``). Each round copies all of them several ways and reports
   wall-clock MB/s:

   - local plain: ``requests`` streaming each body to a file (no checks); ``+ fsync``: the same made durable
     before close; ``+ sha256``: the same hashing in the loop and comparing with the published SHA-256 (the
     simplest verified copy);
   - local eolake: ``infra.harvest.harvest_granule`` (streamed to ``raw/.partial``, SHA-256, size and checksum
     checked against the STAC item, the readability check ``infra.transfer._unreadable`` — structural, as the
     published checksum matched (``EOLAKE_HARVEST_CHECK=auto``) — fsynced, renamed);
   - S3 plain: the same body streamed to a local temporary file, then ``s3fs.put`` to the real S3 server
     (``rclone serve s3``, started here and stopped by PID); also reported: streaming the body straight into
     ``s3fs`` ``open('wb')`` (a plain multipart upload);
   - S3 eolake: ``harvest_granule`` into an ``s3://`` lake (a granule smaller than a part: spooled, checked,
     then one PUT; larger: a multipart upload to the final key completed after the checks).

   Every case's output place is made before the round; the cases take turns granule by granule (``--threads``
   granules at a time, as the flow's task runner copies them, the order alternating), each after a ``sync``.
   Ratio = eolake MB/s / plain MB/s in the same round (goal ≥ 0.8). ``full check`` and ``structure check``
   time the two readability checks alone (over the upstream files), ``sha256 alone`` hashes the same files;
   ``transfer only`` is eolake's transfer without the check (stream, hash, verify size and checksum,
   fsync+rename or PUT). Machine CPU per GB of the local copies comes from ``/proc/stat`` (meaningful on an
   otherwise idle machine only).

2. No-op re-run. A catalog of ``--noop-items`` (default 10,000) granule items (synthetic names and footprints,
   nothing to download), served as a STAC API by the same fake upstream and also written as a static catalog;
   a ledger pre-populated with a harvested row for each. Measured in this process: the upstream listing
   (``find_granules``), reading the ledger, ``plan_harvest`` (must plan nothing), ``resolve_versions`` (must
   change nothing); and as whole processes: ``eolake harvest --plan`` and ``eolake harvest`` (the real flow,
   against a Prefect server started here), with the bare interpreter, ``eolake --help`` and the imports of each
   path alone for the split. Every process runs twice: as this environment runs Python (whatever
   ``PYTHONDONTWRITEBYTECODE`` says) and "[bytecode cached]" (bytecode under a temporary
   ``PYTHONPYCACHEPREFIX``, warmed first, as an installed package runs). Goal: under 5 s end to end.

Run: ``PYTHONPATH=. uv run python bench/harvest.py [--days 3] [--rounds 3] [--threads 1] [--noop-items 10000]
[--skip throughput noop]``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from infra.archive import simulate_day, write_archive_catalog  # noqa: E402
from infra.harvest import harvest_granule, ledger_row, plan_harvest, resolve_versions  # noqa: E402
from infra.http import download  # noqa: E402
from infra.ledger import read_granules, upsert_granules  # noqa: E402
from infra.scenario import load_truth  # noqa: E402
from infra.settings import Settings  # noqa: E402
from infra.sources import UpstreamGranule, find_granules  # noqa: E402
from infra.storage import Lake, open_lake  # noqa: E402
from infra.transfer import _unreadable, open_target, raw_key  # noqa: E402
from tests.fakes.upstream import serve_upstream  # noqa: E402

BBOX = (-10.0, 35.0, 30.0, 65.0)
FIRST_DAY = dt.date(2020, 3, 2)


# --- 1. throughput -------------------------------------------------------------------------------------------


def _simulate(out: Path, days: int) -> None:
    items: list[dict[str, Any]] = []
    for i in range(days):
        day = FIRST_DAY + dt.timedelta(days=i)
        truth = load_truth(None, start=day, end=day, bounds=BBOX)
        items += simulate_day(str(out), day, truth, bounds=BBOX)
    write_archive_catalog(str(out), items)


def _plain_to_file(href: str, path: Path, *, fsync: bool = False, sha256: str | None = None) -> int:
    """A plain copy: ``requests`` streams the body into a file; with ``fsync``, the file is flushed to disk
    before it is closed (a durable copy, as ``dd conv=fsync`` or ``rsync --fsync`` make); with ``sha256``, the
    body is hashed in the same loop and checked against it (the simplest verified copy)."""
    n = 0
    digest = hashlib.sha256() if sha256 is not None else None
    with requests.get(href, stream=True, timeout=60) as r, path.open("wb") as f:
        r.raise_for_status()
        for block in r.iter_content(chunk_size=2**20):
            f.write(block)
            if digest is not None:
                digest.update(block)
            n += len(block)
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    assert digest is None or digest.hexdigest() == sha256
    return n


def _machine_busy_s() -> float:
    """CPU seconds that all cores together spent busy since boot (``/proc/stat``: all but idle and iowait):
    the server, the client and the kernel's loopback work alike, and anything else running."""
    with open("/proc/stat") as f:
        ticks = [int(x) for x in f.readline().split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / os.sysconf("SC_CLK_TCK")


def _timed(fn: Callable[[], int]) -> tuple[float, int, float]:
    """(wall seconds, bytes, machine CPU seconds) of ``fn()``."""
    busy = _machine_busy_s()
    t = time.perf_counter()
    n = fn()
    return time.perf_counter() - t, n, _machine_busy_s() - busy


def _sha256_cpu_s_per_gb() -> float:
    """CPU seconds per GB (1e9 bytes) of SHA-256 over bytes already in memory, one thread (what verifying a
    copy adds to it, at the least)."""
    data = os.urandom(64 * 2**20)
    best = float("inf")
    for _ in range(3):
        t = time.process_time()
        hashlib.sha256(data).hexdigest()
        best = min(best, time.process_time() - t)
    return best / len(data) * 1e9


def _fresh_local(root: Path) -> Path:
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    return root


@contextmanager
def _upstream_process(catalog_json: Path) -> Iterator[str]:
    """The fake upstream (``tests/fakes/upstream.py``) in a process of its own, as a real archive is another
    machine: it shares no interpreter (GIL, heap) with the copies being timed. Yields its API root URL; stopped
    by PID."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.upstream", str(catalog_json)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the fake upstream did not start (said {url!r})")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def throughput(
    tmp: Path, *, days: int, rounds: int, threads: int, s3_settings: Settings
) -> list[dict[str, float]]:
    archive = tmp / "archive"
    t = time.perf_counter()
    _simulate(archive, days)
    print(f"simulated {days} day(s) in {time.perf_counter() - t:.1f} s")
    results = []
    with _upstream_process(archive / "catalog.json") as api:
        end = FIRST_DAY + dt.timedelta(days=days - 1)
        granules = find_granules(api, product="no2", start=FIRST_DAY, end=end)
        total = sum(g.size or 0 for g in granules)
        print(f"{len(granules)} granules, {total / 1e6:.1f} MB per copy")
        # Every case writes into a directory or bucket made before the round (the previous round's output
        # deleted) and runs after a ``sync``: deleting files or writing back what another case left dirty is
        # not the timed case's work. The cases take turns granule by granule (``threads`` granules at a
        # time, the order alternating), so that a slow spell of the machine or of the S3 server falls on all
        # of them alike rather than on whichever case ran then.
        dirs: dict[str, Path] = {}
        ready: dict[str, Lake] = {}
        roots: dict[str, str] = {}
        fs = open_lake("s3://plain/x", settings=s3_settings).fs
        upstream_files = {p.name: p for p in archive.rglob("*.nc")}

        def local_plain(g: UpstreamGranule) -> int:
            return _plain_to_file(g.href, dirs["local plain"] / g.name.filename)

        def local_plain_fsync(g: UpstreamGranule) -> int:
            return _plain_to_file(g.href, dirs["local plain + fsync"] / g.name.filename, fsync=True)

        def local_plain_sha256(g: UpstreamGranule) -> int:
            return _plain_to_file(g.href, dirs["local plain + sha256"] / g.name.filename, sha256=g.sha256)

        def s3_plain_put(g: UpstreamGranule) -> int:
            path = dirs["s3 plain put"] / g.name.filename
            n = _plain_to_file(g.href, path)
            fs.put(str(path), f"{roots['s3 plain put']}/{g.name.filename}")
            path.unlink()
            return n

        def s3_plain_stream(g: UpstreamGranule) -> int:
            n = 0
            with (
                requests.get(g.href, stream=True, timeout=60) as r,
                fs.open(f"{roots['s3 plain stream']}/{g.name.filename}", "wb", block_size=16 * 2**20) as f,
            ):
                for block in r.iter_content(chunk_size=2**20):
                    f.write(block)
                    n += len(block)
            return n

        def reader_check(g: UpstreamGranule, *, full: bool) -> int:
            """A readability check of ``infra.transfer._unreadable``, alone, over the upstream file: ``full``
            (decode every pixel variable: no published checksum, or ``EOLAKE_HARVEST_CHECK=full``) or the
            structural check (``auto`` with a matching published checksum, as in this bench)."""
            path = str(upstream_files[g.name.filename])
            assert _unreadable(path, "no2", g.name.filename, full=full) is None
            return g.size or 0

        def sha256_alone(g: UpstreamGranule) -> int:
            """SHA-256 of the upstream file (read from the page cache): the floor of any verified copy."""
            with upstream_files[g.name.filename].open("rb") as f:
                assert hashlib.file_digest(f, "sha256").hexdigest() == g.sha256
            return g.size or 0

        def transfer_only(g: UpstreamGranule, lake: Lake) -> int:
            """fetch_granule without the product-reader pass: stream, hash, verify, commit."""
            target = open_target(lake, lake.path("raw", g.name.filename), expected_size=g.size)
            got = download(g.href, target)
            assert got.sha256 == g.sha256 and got.size == g.size
            target.commit()
            return got.size

        cases: dict[str, Callable[[UpstreamGranule], int]] = {
            "local plain": local_plain,
            "local plain + fsync": local_plain_fsync,
            "local plain + sha256": local_plain_sha256,
            "local eolake": lambda g: _harvest_one(g, ready["local eolake"], api),
            "s3 plain put": s3_plain_put,
            "s3 plain stream": s3_plain_stream,
            "s3 eolake": lambda g: _harvest_one(g, ready["s3 eolake"], api),
            "full check": lambda g: reader_check(g, full=True),
            "structure check": lambda g: reader_check(g, full=False),
            "sha256 alone": sha256_alone,
            "local transfer only": lambda g: transfer_only(g, ready["local transfer only"]),
            "s3 transfer only": lambda g: transfer_only(g, ready["s3 transfer only"]),
        }

        def prepare() -> None:
            """Untimed, before a round: every case's fresh output place."""
            for name in ("local plain", "local plain + fsync", "local plain + sha256", "s3 plain put"):
                dirs[name] = _fresh_local(tmp / name.replace(" ", "-").replace("+", "and"))
            for name in ("local eolake", "local transfer only"):
                ready[name] = open_lake(str(_fresh_local(tmp / name.replace(" ", "-"))))
            for name in ("s3 eolake", "s3 transfer only"):  # their buckets made, as the plain copies' is
                ready[name] = open_lake(f"s3://lake-{secrets.token_hex(3)}/lake", settings=s3_settings)
            for name in ("s3 plain put", "s3 plain stream"):
                roots[name] = f"plain/{name.split()[-1]}-{secrets.token_hex(3)}"

        _harvest_one(granules[0], open_lake(str(_fresh_local(tmp / "warm"))), api)  # imports, connections
        sha_cpu = _sha256_cpu_s_per_gb()
        batches = [granules[i : i + threads] for i in range(0, len(granules), threads)]
        for r in range(rounds):
            prepare()
            secs = dict.fromkeys(cases, 0.0)
            cpu = dict.fromkeys(cases, 0.0)
            copied = dict.fromkeys(cases, 0)
            for b, batch in enumerate(batches):
                order = list(cases) if (r + b) % 2 == 0 else list(reversed(cases))
                for name in order:
                    os.sync()
                    wall, n, busy = _timed(functools.partial(_each, cases[name], batch, threads))
                    secs[name] += wall
                    cpu[name] += busy
                    copied[name] += n
            for name, n in copied.items():
                assert n == total, f"{name} copied {n} of {total} bytes"
            mbps = {k: total / 1e6 / v for k, v in secs.items()}
            # The most a verified copy could reach here: the plain copy's CPU per byte (whole machine) plus a
            # SHA-256 per byte, spread perfectly over every core. Meaningful on an otherwise idle machine only.
            plain_cpu = cpu["local plain"] / (total / 1e9)
            bound = (os.cpu_count() or 1) / (plain_cpu + sha_cpu) * 1e3
            row = {
                **mbps,
                **{
                    f"{k} CPU s/GB (machine)": cpu[k] / (total / 1e9)
                    for k in (
                        "local plain",
                        "local plain + fsync",
                        "local plain + sha256",
                        "local transfer only",
                        "local eolake",
                    )
                },
                "sha256 CPU s/GB (one thread)": sha_cpu,
                "verified-copy bound / local plain": bound / mbps["local plain"],
                "local ratio": mbps["local eolake"] / mbps["local plain"],
                "local ratio (vs plain + fsync)": mbps["local eolake"] / mbps["local plain + fsync"],
                "local ratio (vs plain + sha256)": mbps["local eolake"] / mbps["local plain + sha256"],
                "plain + sha256 / plain": mbps["local plain + sha256"] / mbps["local plain"],
                "s3 ratio (vs put)": mbps["s3 eolake"] / mbps["s3 plain put"],
                "s3 ratio (vs stream)": mbps["s3 eolake"] / mbps["s3 plain stream"],
                "local transfer-only ratio": mbps["local transfer only"] / mbps["local plain"],
                "local transfer-only ratio (vs plain + fsync)": mbps["local transfer only"]
                / mbps["local plain + fsync"],
                "s3 transfer-only ratio (put)": mbps["s3 transfer only"] / mbps["s3 plain put"],
            }
            results.append(row)
            print(f"round {r + 1}: " + ", ".join(f"{k} {v:.2f}" for k, v in row.items()))
    return results


def _harvest_one(g: UpstreamGranule, lake: Lake, source: str) -> int:
    row = harvest_granule(g, lake, source=source)
    assert row["status"] == "harvested", row["reason"]
    return int(row["size"])


def _each(fn: Callable[[UpstreamGranule], int], granules: list[UpstreamGranule], threads: int) -> int:
    """Bytes copied by ``fn`` over all granules, ``threads`` at a time (as the harvest flow's task runner)."""
    if threads == 1:
        return sum(fn(g) for g in granules)
    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(fn, granules))


# --- 2. no-op re-run -----------------------------------------------------------------------------------------


def _synthetic_items(n: int, dummy: Path) -> list[dict[str, Any]]:
    """``n`` NO2 granule items, 14 orbits a day from 2019-01-01, each pointing at its own (absent) file."""
    from catalog.items import create_granule_item
    from transforms.granules import format_granule_name, parse_granule_name

    t0 = dt.datetime(2019, 1, 1, tzinfo=dt.UTC)
    orbit_s = 86400 / 14
    geometry = {"type": "Polygon", "coordinates": [[[4, 47], [12, 47], [12, 53], [4, 53], [4, 47]]]}
    items = []
    for i in range(n):
        start = t0 + dt.timedelta(seconds=i * orbit_s)
        filename = format_granule_name(
            "no2",
            start=start,
            end=start + dt.timedelta(seconds=orbit_s),
            orbit=6000 + i,
            mode="OFFL",
            collection="02",
            processor_version="020400",
        )
        sha = hashlib.sha256(filename.encode()).hexdigest()
        item = create_granule_item(
            parse_granule_name(filename),
            href=str(dummy / filename),
            geometry=geometry,
            bbox=[4, 47, 12, 53],
            size=500_000_000,
            checksum_sha256=sha,
        )
        items.append(item.to_dict(include_self_link=False, transform_hrefs=False))
    return items


def _write_static_catalog(archive: Path, items: list[dict[str, Any]]) -> None:
    """The archive's static catalog, as ``write_archive_catalog`` lays it out (that writes one item through
    pystac and fixes catalog and collection), with the other items written as plain JSON: pystac needs
    minutes on a loaded machine to save 10,000 items, and the writing is not what is measured."""
    write_archive_catalog(str(archive), items[:1])
    collection_path = archive / "sentinel-5p-l2-netcdf" / "collection.json"
    collection = json.loads(collection_path.read_text())
    item_links = [link for link in collection["links"] if link["rel"] == "item"]
    assert len(item_links) == 1
    template = json.loads((collection_path.parent / item_links[0]["href"]).read_text())
    for item in items[1:]:
        d = dict(item, links=template["links"])
        d["assets"] = {
            k: dict(a, href=os.path.relpath(a["href"], collection_path.parent / item["id"]))
            for k, a in item["assets"].items()
        }
        path = collection_path.parent / item["id"] / f"{item['id']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(d))
        collection["links"].append(dict(item_links[0], href=f"./{item['id']}/{item['id']}.json"))
    collection["extent"]["temporal"]["interval"] = [
        [items[0]["properties"]["start_datetime"], items[-1]["properties"]["end_datetime"]]
    ]
    collection_path.write_text(json.dumps(collection))


def _ledger_rows(granules: list[UpstreamGranule], source: str) -> list[dict[str, Any]]:
    """Rows as a harvest writes them, for granules taken as already harvested."""
    return [
        ledger_row(
            g,
            source=source,
            attempts=1,
            key=raw_key(g.name.product, g.name.filename, g.name.start.date().isoformat()),
            size=g.size,
            sha256=g.sha256,
            status="harvested",
            reason=None,
        )
        for g in granules
    ]


def _run(cmd: list[str], env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
    secs = time.perf_counter() - t
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    return secs, proc


PLAN_IMPORTS = (
    "import flows.cli, pandas, pystac_client, infra.adapters, infra.harvest, infra.ledger, infra.sources"
)
"""What ``eolake harvest --plan`` imports before it lists (timed alone as a process)."""
FLOW_IMPORTS = "import flows.cli, flows.harvest, pystac_client, infra.adapters.registry"
"""What ``eolake harvest`` imports before the flow runs."""


def noop(tmp: Path, *, n: int, rounds: int, prefect: bool) -> dict[str, list[float]]:
    archive = tmp / "noop-archive"
    t = time.perf_counter()
    items = _synthetic_items(n, archive / "data")
    _write_static_catalog(archive, items)
    print(f"wrote a static catalog of {n} items in {time.perf_counter() - t:.1f} s")
    last = dt.date.fromisoformat(items[-1]["properties"]["end_datetime"][:10])
    period = ["--start", "2019-01-01", "--end", last.isoformat()]
    times: dict[str, list[float]] = {}

    def note(key: str, secs: float) -> None:
        times.setdefault(key, []).append(secs)

    lake_dir = tmp / "noop-lake"
    lake = open_lake(str(lake_dir))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EOLAKE_"))}
    env["PYTHONPATH"] = str(REPO)
    cli = [sys.executable, "-m", "flows.cli"]
    server = None
    with serve_upstream(archive / "catalog.json") as api:
        t = time.perf_counter()
        upstream = find_granules(api, product="no2", start=dt.date(2019, 1, 1), end=last)
        print(f"first listing: {len(upstream)} granules in {time.perf_counter() - t:.1f} s")
        assert len(upstream) == n, len(upstream)
        upsert_granules(lake, _ledger_rows(upstream, api))
        if prefect:
            from infra.services import start_prefect_server

            server = start_prefect_server(tmp / "prefect-home")
            env.update(server.env)
        cached = {k: v for k, v in env.items() if k != "PYTHONDONTWRITEBYTECODE"}
        # bytecode outside the tree, as an installed package has it
        cached["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        subprocess.run(
            [sys.executable, "-c", f"{FLOW_IMPORTS}; {PLAN_IMPORTS}"], env=cached, cwd=REPO, check=True
        )
        variants = [("", env), (" [bytecode cached]", cached)]
        try:
            for _ in range(rounds):
                t = time.perf_counter()
                upstream = find_granules(api, product="no2", start=dt.date(2019, 1, 1), end=last)
                note("listing (STAC API, in process)", time.perf_counter() - t)
                t = time.perf_counter()
                ledger = read_granules(lake)
                note("read ledger", time.perf_counter() - t)
                t = time.perf_counter()
                todo = plan_harvest(upstream, ledger)
                note("plan_harvest", time.perf_counter() - t)
                assert not todo, f"a no-op run would fetch {len(todo)} granules"
                t = time.perf_counter()
                changes = resolve_versions(ledger)
                note("resolve_versions", time.perf_counter() - t)
                assert changes.empty
                if not times.get("listing (static catalog, in process)"):  # slow: once
                    t = time.perf_counter()
                    static = find_granules(
                        str(archive / "catalog.json"), product="no2", start=dt.date(2019, 1, 1), end=last
                    )
                    note("listing (static catalog, in process)", time.perf_counter() - t)
                    assert len(static) == n
                for label, run_env in variants:
                    secs, _ = _run([sys.executable, "-c", "pass"], run_env)
                    note(f"process{label}: python -c pass (interpreter)", secs)
                    secs, _ = _run([*cli, "--help"], run_env)
                    note(f"process{label}: eolake --help (interpreter + CLI imports)", secs)
                    secs, _ = _run([sys.executable, "-c", PLAN_IMPORTS], run_env)
                    note(f"process{label}: imports of harvest --plan", secs)
                    secs, proc = _run(
                        [*cli, "harvest", "--source", api, "--plan", *period, "--lake", str(lake_dir)],
                        run_env,
                    )
                    assert "0 new and 0 retried" in proc.stdout, proc.stdout[-500:]
                    note(f"process{label}: eolake harvest --plan (API)", secs)
                    if server is not None:
                        secs, _ = _run([sys.executable, "-c", FLOW_IMPORTS], run_env)
                        note(f"process{label}: imports of harvest (flow)", secs)
                        secs, proc = _run(
                            [*cli, "harvest", "--source", api, *period, "--lake", str(lake_dir)], run_env
                        )
                        note(f"process{label}: eolake harvest (API, Prefect flow)", secs)
                        print(proc.stdout.strip().splitlines()[-1][:200])
                print(", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
        finally:
            if server is not None:
                server.stop()
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument(
        "--threads", type=int, default=1, help="granules copied at once, by every case (the flow: 4)"
    )
    ap.add_argument("--noop-items", type=int, default=10_000)
    ap.add_argument("--no-prefect", action="store_true", help="skip the whole `eolake harvest` flow run")
    ap.add_argument("--skip", nargs="*", default=[], choices=["throughput", "noop"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="eolake-bench-harvest-") as d:
        tmp = Path(d)
        if "throughput" not in args.skip:
            from infra.services import start_s3_server

            key, secret = "bench" + secrets.token_hex(4), secrets.token_hex(16)
            server = start_s3_server(tmp / "s3" / "data", key=key, secret=secret)
            try:
                from pydantic import SecretStr

                settings = Settings(
                    s3_endpoint_url=server.url, s3_key=SecretStr(key), s3_secret=SecretStr(secret)
                )
                rows = throughput(
                    tmp, days=args.days, rounds=args.rounds, threads=args.threads, s3_settings=settings
                )
            finally:
                server.stop()
            print("\nthroughput (MB/s; ratios eolake/plain, same round):")
            for k in rows[0]:
                vals = [r[k] for r in rows]
                print(
                    f"  {k:<22} min {min(vals):7.2f}  median {statistics.median(vals):7.2f}  max {max(vals):7.2f}"
                )
        if "noop" not in args.skip:
            times = noop(tmp, n=args.noop_items, rounds=args.rounds, prefect=not args.no_prefect)
            print(f"\nno-op re-run over {args.noop_items} harvested granules (s):")
            for k, v in times.items():
                print(f"  {k:<48} min {min(v):6.2f}  max {max(v):6.2f}")


if __name__ == "__main__":
    main()
