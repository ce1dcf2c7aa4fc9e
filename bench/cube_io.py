"""Benchmark: the daily cube's storage layout (transforms/cube.py) on the global 0.1° grid (1800 × 3600).

1. codecs and chunks — one synthetic L3 day (orbit-like gaps, noisy means) encoded with each candidate
   (zstd levels, blosc-zstd with byte shuffle, inner chunks 180/360/900): MB per day, encode time, one-day
   map read and one small-region read per day from a local cube.
2. reads — a one-day global map (all four variables) and a multi-year daily time series of a 2° × 2° region
   from the cube, against the same data in an in-memory numpy array, decoding the same chunks with the same
   codec in a plain loop (map), and a time-optimised Zarr copy (time series).
3. writes — ``--write-days`` new days appended by ``write_days`` (head days: shards beyond the axis, one
   axis extension, encoding overlapped with uploads; decision 0011) and written one ``write_day`` call per
   day into an axis grown first (fresh days inside the axis: intent manifest, in-place write; decision
   0010), to local disk and to the real S3 server (``infra.services.start_s3_server``), against the
   same-codec ideal (compress the same inner chunks with the same codec, write one object per variable-day
   in a plain loop) and a plain put (local file write / ``s3fs.pipe``) of the exact bytes ``write_day``
   stores; the storage half alone for head days, in-axis fresh days and re-gridded days (staged, then
   renamed / copied server-side).

Wall-clock times (I/O is the point), best of ``--repeat``; ratios against baselines run in the same process.
The long time series reuses a few distinct encoded days as hard links (local disk) so that 3 × 365 days need
not be written: the read path (shard index + one inner chunk per day, per file) is the same, the page cache
is warm in every variant. Run: ``uv run python bench/cube_io.py [--ts-days 1095] [--write-days 30]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import secrets
import struct
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
import zarr
import zarr.storage

from transforms.cube import (
    DATA_VARS,
    CubeSpec,
    day_keys,
    encode_day,
    ensure_cube,
    open_cube,
    write_day,
    write_days,
    write_encoded_day,
    write_encoded_days,
)
from transforms.grid import GridSpec

GRID = GridSpec(0.1)
ORIGIN = dt.date(2018, 4, 30)
REGION = (slice(1300, 1320), slice(1900, 1920))  # 2° × 2° around 40°N, 10°E (lat rows, lon columns)


def base_spec(**kw: Any) -> CubeSpec:
    spec = CubeSpec(
        "no2",
        GRID,
        ORIGIN,
        "mol m-2",
        "troposphere_mole_content_of_nitrogen_dioxide",
        "tropospheric NO2 column",
        "bench cube",
        "bench",
    )
    return dataclasses.replace(spec, **kw)


def synthetic_day(seed: int) -> xr.Dataset:
    """A day with the statistics of a real 0.1° L3 NO2 day: ~14 orbit stripes with ~40% of cells empty, 1–6
    pixels per observed cell, noisy means (noise dominates the compressed size)."""
    rng = np.random.default_rng(seed)
    n_lat, n_lon = GRID.shape
    lat = GRID.lat()[:, None]
    lon = GRID.lon()[None, :]
    phase = rng.uniform(0, 360)
    # orbit stripes, wider towards the poles where swaths overlap; no light beyond ~70° in one hemisphere
    stripe = ((lon + phase + 0.3 * lat) % (360 / 14.2)) < (14.6 + 10 * np.abs(np.sin(np.radians(lat))))
    seen = stripe & (lat < 75) & (rng.random((n_lat, n_lon)) > 0.05)
    count = np.where(seen, rng.integers(1, 7, (n_lat, n_lon)), 0).astype(np.int32)
    sigma = np.where(seen, 1e-5 / np.sqrt(np.maximum(count, 1)), np.nan).astype(np.float32)
    base = 3e-5 + 2e-5 * np.cos(np.radians(lat)) ** 2 + 1e-5 * np.sin(np.radians(3 * lon))
    mean = np.where(seen, base + rng.normal(0, 1, (n_lat, n_lon)) * sigma, np.nan).astype(np.float32)
    weight = np.where(seen, count / (1e-5**2), np.nan).astype(np.float32)
    return xr.Dataset(
        {
            "mean": (("lat", "lon"), mean),
            "uncertainty": (("lat", "lon"), sigma),
            "count": (("lat", "lon"), count),
            "weight": (("lat", "lon"), weight),
        }
    )


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def codec_of(spec: CubeSpec) -> Any:
    from zarr.codecs import BloscCodec, ZstdCodec

    if spec.codec == "blosc-zstd":
        return BloscCodec(cname="zstd", clevel=spec.zstd_level, shuffle="shuffle", typesize=4)
    return ZstdCodec(level=spec.zstd_level)


def write_cube(root: Path, spec: CubeSpec, days: list[xr.Dataset], n_days: int) -> zarr.storage.LocalStore:
    """A local cube of ``n_days`` days: the distinct ``days`` written by write_day, the rest hard links to
    them (cycled)."""
    store = zarr.storage.LocalStore(root)
    last = ORIGIN + dt.timedelta(days=n_days - 1)
    ensure_cube(store, spec, until=last)
    for i, fields in enumerate(days):
        write_day(store, fields, day=ORIGIN + dt.timedelta(days=i), spec=spec)
    for i in range(len(days), n_days):
        src = day_keys(spec, ORIGIN + dt.timedelta(days=i % len(days)))
        dst = day_keys(spec, ORIGIN + dt.timedelta(days=i))
        for name in DATA_VARS:
            target = root / dst[name]
            target.parent.mkdir(parents=True, exist_ok=True)
            if (root / src[name]).exists():
                os.link(root / src[name], target)
    return store


def shard_chunks(blob: bytes, n_chunks: int) -> list[bytes]:
    """The inner chunks of a Zarr v3 shard (index at the end: n × (offset, nbytes) uint64 + crc32c)."""
    index = blob[-(16 * n_chunks + 4) : -4]
    out = []
    for k in range(n_chunks):
        off, size = struct.unpack_from("<QQ", index, 16 * k)
        if off != 2**64 - 1:
            out.append(blob[off : off + size])
    return out


def bench_codecs(tmp: Path, day: xr.Dataset, repeat: int) -> None:
    print("\n## 1. codecs and inner chunks (one global 0.1° day, 4 variables)")
    print("| codec | inner chunk | MB/day | encode s | map read s | region read ms |")
    print("|---|---|---|---|---|---|")
    for codec, level, chunk in [
        ("zstd", 1, 360),
        ("zstd", 3, 360),
        ("zstd", 9, 360),
        ("blosc-zstd", 3, 360),
        ("zstd", 3, 180),
        ("zstd", 3, 900),
    ]:
        spec = base_spec(codec=codec, zstd_level=level, chunk_lat=chunk, chunk_lon=chunk)
        blobs = encode_day(day, spec)
        mb = sum(len(b) for b in blobs.values() if b is not None) / 1e6
        t_enc = best(lambda spec=spec: encode_day(day, spec), repeat)
        root = tmp / f"codec-{codec}-{level}-{chunk}.zarr"
        store = write_cube(root, spec, [day], 1)
        ds = open_cube(store)
        t_map = best(lambda ds=ds: ds.isel(time=0).load(), repeat)
        t_reg = best(lambda ds=ds: ds["mean"].isel(time=0, lat=REGION[0], lon=REGION[1]).values, repeat)
        print(f"| {codec}-{level} | {chunk}² | {mb:.1f} | {t_enc:.2f} | {t_map:.2f} | {1e3 * t_reg:.1f} |")


def bench_reads(tmp: Path, spec: CubeSpec, days: list[xr.Dataset], ts_days: int, repeat: int) -> None:
    print(f"\n## 2. reads ({spec.codec}-{spec.zstd_level}, inner chunks {spec.chunk_lat}²)")
    store = write_cube(tmp / "reads.zarr", spec, days, ts_days)
    ds = open_cube(store)
    # --- one-day map
    i = 1
    t_cube = best(lambda: ds.isel(time=i).load(), repeat)
    in_mem = {name: days[i][name].values for name in DATA_VARS}
    t_numpy = best(lambda: {k: v.copy() for k, v in in_mem.items()}, repeat)
    blobs = encode_day(days[i], spec)
    codec = codec_of(spec)
    n_chunks = int(np.prod([s // c for s, c in zip(spec.shards[1:], spec.chunks[1:], strict=True)]))
    chunks = {k: shard_chunks(b, n_chunks) for k, b in blobs.items() if b is not None}

    def _decode_all() -> None:
        for name, parts in chunks.items():
            dtype = in_mem[name].dtype
            for p in parts:
                np.frombuffer(decompress(codec, p), dtype=dtype).reshape(spec.chunks[1:])

    t_decode = best(_decode_all, repeat)
    print("| one-day global map (4 variables) | s | vs cube |")
    print("|---|---|---|")
    print(f"| eolake cube (`ds.isel(time=i).load()`) | {t_cube:.3f} | 1 |")
    print(
        f"| same chunks decoded with the same codec in a plain loop | {t_decode:.3f} | {t_decode / t_cube:.2f} |"
    )
    print(f"| in-memory numpy copy | {t_numpy:.4f} | {t_numpy / t_cube:.3f} |")
    # --- time series of a small region
    t_ts = best(lambda: ds["mean"].isel(lat=REGION[0], lon=REGION[1]).values, max(1, repeat // 2))
    series = ds["mean"].isel(lat=REGION[0], lon=REGION[1]).values
    t_np = best(lambda: series.copy(), repeat)
    # the time-optimised copy: whole time axis per chunk, 40 × 40 cells, same codec, no sharding
    copy = ds[["mean"]].isel(lat=slice(1280, 1360), lon=slice(1880, 1960)).load()
    opt = zarr.storage.LocalStore(tmp / "time-optimised.zarr")
    copy.to_zarr(
        opt,
        zarr_format=3,
        consolidated=False,
        mode="w",
        encoding={"mean": {"chunks": (ts_days, 40, 40), "compressors": (codec,)}},
    )
    ts_opt = xr.open_zarr(opt, zarr_format=3, consolidated=False)
    t_opt = best(lambda: ts_opt["mean"].isel(lat=slice(20, 40), lon=slice(20, 40)).values, repeat)
    assert np.array_equal(
        ts_opt["mean"].isel(lat=slice(20, 40), lon=slice(20, 40)).values, series, equal_nan=True
    )
    print(f"\n| {ts_days}-day time series of a 2° × 2° region (`mean`) | s | vs cube |")
    print("|---|---|---|")
    print(f"| eolake cube (one shard per day: index + one inner chunk) | {t_ts:.2f} | 1 |")
    print(f"| time-optimised Zarr copy (chunks {ts_days} × 40 × 40) | {t_opt:.4f} | {t_opt / t_ts:.4f} |")
    print(f"| in-memory numpy copy | {t_np:.6f} | {t_np / t_ts:.6f} |")


def bench_writes(tmp: Path, spec: CubeSpec, days: list[xr.Dataset], n_write: int, block_days: int) -> None:
    from infra.services import start_s3_server
    from infra.settings import Settings
    from infra.storage import open_lake

    print(
        f"\n## 3. write throughput ({n_write} global 0.1° days, {spec.codec}-{spec.zstd_level}, "
        f"blocks of {block_days} days)"
    )
    print(f"load average at start: {os.getloadavg()[0]:.1f}")
    key, secret = "bench" + secrets.token_hex(4), secrets.token_hex(16)
    server = start_s3_server(tmp / "s3" / "data", key=key, secret=secret)
    try:
        (tmp / "s3" / "data" / "bench").mkdir(parents=True, exist_ok=True)
        settings = Settings(s3_endpoint_url=server.url, s3_key=key, s3_secret=secret)  # type: ignore[arg-type]
        lakes = {
            "local disk": open_lake(str(tmp / "lake")),
            "S3 (rclone)": open_lake("s3://bench/lake", settings=settings),
        }
        blobs = [encode_day(d, spec) for d in days]  # the exact bytes write_day stores for each day
        rows = []
        for label, lake in lakes.items():
            rows.append(write_cases(label, lake, spec, days, blobs, n_write, block_days))
        print(
            "| target | MB | write_days MB/s | write_day (grown axis) MB/s | ideal MB/s | write_days / ideal "
            "| write_day / ideal | plain put MB/s | head storage / put | in-axis fresh / put | re-grid / put |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|---|")
        print("\n".join(rows))
        print(f"load average at end: {os.getloadavg()[0]:.1f}")
    finally:
        server.stop()


def write_cases(
    label: str,
    lake: Any,
    spec: CubeSpec,
    days: list[xr.Dataset],
    blobs: list[dict[str, bytes | None]],
    n_write: int,
    block_days: int,
) -> str:
    """The write cases on one lake, interleaved in blocks of days; a Markdown table row of MB/s and ratios."""
    from infra.storage import zarr_store

    codec = codec_of(spec)
    dates = [ORIGIN + dt.timedelta(days=i) for i in range(n_write)]
    staging = zarr_store(lake, "cubes/.staging/bench")
    cubes = {name: zarr_store(lake, f"cubes/{name}.zarr") for name in ("days", "grown", "head", "fresh")}
    for name in ("grown", "fresh"):
        ensure_cube(cubes[name], spec, until=dates[-1])

    def eolake_days(block: list[int]) -> None:
        """write_days appending a block of new days (head days: shards beyond the axis, one axis
        extension per block; day N+1 encoded while day N uploads)."""
        write_days(cubes["days"], ((dates[i], days[i % len(days)], None) for i in block), spec=spec)

    def eolake_day(block: list[int]) -> None:
        """One write_day per day into an axis grown first (what concurrent writers do: fresh days
        inside the axis, in place behind an intent manifest)."""
        for i in block:
            write_day(cubes["grown"], days[i % len(days)], day=dates[i], spec=spec, staging=staging)

    def ideal(block: list[int]) -> int:
        """Cut the same arrays into the same inner chunks, compress each with the same codec,
        concatenate per variable-day and write the object, in a plain loop."""
        n = 0
        for i in block:
            for name in DATA_VARS:
                arr = days[i % len(days)][name].values
                cl, cw = spec.chunks[1:]
                parts = [
                    compress(codec, np.ascontiguousarray(arr[r : r + cl, c : c + cw]))
                    for r in range(0, arr.shape[0], cl)
                    for c in range(0, arr.shape[1], cw)
                ]
                data = b"".join(parts)
                n += len(data)
                lake.fs.pipe_file(lake.path(f"ideal/{i}/{name}"), data)
        return n

    def put(block: list[int]) -> int:
        """A plain put of the exact bytes write_day stores, one object after the other."""
        n = 0
        for i in block:
            for name, b in blobs[i % len(blobs)].items():
                if b is not None:
                    lake.fs.pipe_file(lake.path(f"put/{i}/{name}"), b)
                    n += len(b)
        return n

    def head(block: list[int]) -> None:
        """eolake's storage half for new days (head days, one axis extension per block)."""
        items = ((dates[i], blobs[i % len(blobs)], None) for i in block)
        write_encoded_days(cubes["head"], items, spec=spec, staging=staging)

    def fresh(block: list[int]) -> None:
        """eolake's storage half for fresh days inside a grown axis, one call per day."""
        for i in block:
            write_encoded_day(cubes["fresh"], blobs[i % len(blobs)], day=dates[i], spec=spec, staging=staging)

    def regrid(block: list[int]) -> None:
        """The same days again with other bytes: staged, then published (rename / server-side copy)."""
        for i in block:
            b = blobs[(i + 1) % len(blobs)]
            write_encoded_day(cubes["fresh"], b, day=dates[i], spec=spec, staging=staging)

    # blocks of days, the variants interleaved (order rotated per block) so that all see the same
    # machine load; each variant's time summed over the blocks
    cases: dict[str, Callable[[list[int]], Any]] = {
        "days": eolake_days,
        "day": eolake_day,
        "ideal": ideal,
        "put": put,
        "head": head,
        "fresh": fresh,
    }
    spent = dict.fromkeys([*cases, "regrid"], 0.0)
    total = stored = 0
    for b, first in enumerate(range(0, n_write, block_days)):
        block = list(range(first, min(first + block_days, n_write)))
        names = list(cases)
        for name in names[b % len(names) :] + names[: b % len(names)]:
            t = time.perf_counter()
            out = cases[name](block)
            spent[name] += time.perf_counter() - t
            total += out if name == "ideal" else 0
            stored += out if name == "put" else 0
        t = time.perf_counter()
        regrid(block)  # after "fresh" wrote the block's days
        spent["regrid"] += time.perf_counter() - t
    mb = stored / 1e6
    return (
        f"| {label} | {mb:.0f} | {mb / spent['days']:.0f} | {mb / spent['day']:.0f} | "
        f"{total / 1e6 / spent['ideal']:.0f} | **{spent['ideal'] / spent['days']:.2f}** | "
        f"{spent['ideal'] / spent['day']:.2f} | {mb / spent['put']:.0f} | "
        f"**{spent['put'] / spent['head']:.2f}** | {spent['put'] / spent['fresh']:.2f} | "
        f"{spent['put'] / spent['regrid']:.2f} |"
    )


def compress(codec: Any, chunk: np.ndarray) -> bytes:
    import numcodecs

    if isinstance(codec, zarr.codecs.BloscCodec):
        return bytes(
            numcodecs.Blosc(cname="zstd", clevel=codec.clevel, shuffle=numcodecs.Blosc.SHUFFLE).encode(chunk)
        )
    return bytes(numcodecs.Zstd(level=codec.level).encode(chunk))


def decompress(codec: Any, data: bytes) -> bytes:
    import numcodecs

    if isinstance(codec, zarr.codecs.BloscCodec):
        return bytes(numcodecs.Blosc().decode(data))
    return bytes(numcodecs.Zstd().decode(data))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ts-days", type=int, default=3 * 365)
    ap.add_argument("--write-days", type=int, default=30)
    ap.add_argument("--block-days", type=int, default=5, help="days per interleaved block of the write cases")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--distinct-days", type=int, default=4)
    ap.add_argument("--skip", nargs="*", default=[], choices=["codecs", "reads", "writes"])
    args = ap.parse_args()
    days = [synthetic_day(s) for s in range(args.distinct_days)]
    spec = base_spec()
    with tempfile.TemporaryDirectory(prefix="eolake-bench-cube-") as d:
        tmp = Path(d)
        if "codecs" not in args.skip:
            bench_codecs(tmp, days[0], args.repeat)
        if "reads" not in args.skip:
            bench_reads(tmp, spec, days, args.ts_days, args.repeat)
        if "writes" not in args.skip:
            bench_writes(tmp, spec, days, args.write_days, args.block_days)


if __name__ == "__main__":
    main()
