"""Daily L3 cubes: one Zarr v3 store per product and grid, dims ``(time, lat, lon)``.

Layout: ``mean`` (product units), ``uncertainty`` (1σ of the mean, product units), ``count`` (pixels) and
``weight`` (sum of binning weights) on a daily time axis that starts at the product's mission start (so no day
ever has to be prepended) and grows forward. Days that were never gridded hold no chunks and read as NaN/0.

Each variable's day is ONE object: a Zarr v3 shard covering the whole map (inner chunks of
``chunk_lat × chunk_lon`` cells, zstd-compressed), key ``<var>/c/<day index>/0/0``. Writing a day therefore
replaces exactly four objects, each with an atomic PUT (S3) or write-and-rename (local disk), and never
touches another day. The day protocol (:func:`write_day`, :func:`write_days`; decisions 0010 and 0011, which
supersede the upload part of 0006):

1. encode the four shards in memory (:func:`write_days` encodes the next day while the current one uploads);
2. a *head* day (beyond the time axis a consolidated reader sees: a new day appended to the record) holds
   nothing anyone can see: its shards go straight to their keys, and when the call's head days are all
   written, one metadata write extends the axis over them (the time values first, then every array's
   metadata and the consolidated root). A plain ``xr.open_zarr`` reader sees the day absent or complete. A
   crash leaves shards beyond the axis: :func:`recover_staged` deletes them (and finishes an extension cut
   short), the day is not committed and the next run re-grids it;
3. a *fresh* day inside the axis (it has no ``count`` object, so it holds no data: a back-filled gap, or a
   day of an axis grown ahead by concurrent writers) is written in place: an intent manifest (the size of
   each shard + the record that commits the day) goes to the staging store first, then the shards to their
   keys, then the manifest is dropped. Every byte is uploaded once. A crash leaves the manifest: eolake
   readers treat the day as not committed, and :func:`recover_staged` keeps the day if all its objects
   exist (each PUT is atomic and the day held none, so they hold the new bytes: roll forward) or deletes
   them (roll back to "no data"; the next run re-grids it);
4. a day that has data (re-gridding) is *staged*: the shards, then a manifest last, go to the staging
   store (a crash here leaves the cube as it was); then each is published to its key (rename on local disk,
   server-side copy on S3, a second PUT elsewhere; a crash here leaves the manifest, and
   :func:`recover_staged` finishes the job on the next run), then the staging objects are dropped.

The caller then records the day as committed (the ledger), then catalogs it.

The stores are handed in (any Zarr v3 store: ``LocalStore``, ``FsspecStore`` on S3, ``MemoryStore``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import hashlib
import json
import warnings
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import xarray as xr
import zarr
from zarr.abc.store import Store
from zarr.core.array import AsyncArray
from zarr.core.buffer import default_buffer_prototype
from zarr.core.group import AsyncGroup, GroupMetadata
from zarr.core.metadata.v3 import ArrayV3Metadata
from zarr.core.sync import sync
from zarr.storage import StorePath

from transforms.grid import GridSpec
from transforms.products import get_product

TIME_UNITS_TEMPLATE = "days since {origin} 00:00:00"
DATA_VARS = ("mean", "uncertainty", "count", "weight")
AXIS_ARRAYS = (*DATA_VARS, "time")  # the arrays along the time axis
Step = Literal["P1D", "P1M"]


@dataclass(frozen=True)
class CubeSpec:
    """What a cube holds: the product's variable metadata, the grid and the time origin."""

    product: str  # short name, e.g. "no2"
    grid: GridSpec
    origin: dt.date  # first day of the time axis (mission start)
    units: str  # units of mean and uncertainty, e.g. "mol m-2"
    standard_name: str  # CF standard name of the mean
    long_name: str
    title: str
    source: str  # e.g. "Sentinel-5P TROPOMI L2 NO2 (OFFL/RPRO), pixel-centre binning"
    chunk_lat: int = 360  # inner chunk (cells): what a map or a small-region read decompresses
    chunk_lon: int = 360
    zstd_level: int = 1  # chosen by measurement: level 3 saves 2% for 1.5x the encode time (docs/cubes.md)
    codec: Literal["zstd", "blosc-zstd"] = "zstd"  # blosc-zstd: byte shuffle, then zstd at zstd_level
    step: Step = "P1D"  # time step: daily cube, or monthly means (time = first day of the month)

    @property
    def chunks(self) -> tuple[int, int, int]:
        """Inner chunk shape (time, lat, lon)."""
        n_lat, n_lon = self.grid.shape
        return (1, min(self.chunk_lat, n_lat), min(self.chunk_lon, n_lon))

    @property
    def shards(self) -> tuple[int, int, int]:
        """Shard shape (time, lat, lon): one day's whole map, a whole number of inner chunks."""
        n_lat, n_lon = self.grid.shape
        _, cl, cw = self.chunks
        return (1, -(-n_lat // cl) * cl, -(-n_lon // cw) * cw)

    @property
    def period(self) -> str:
        """``daily`` or ``monthly``."""
        return "daily" if self.step == "P1D" else "monthly"

    def day_index(self, day: dt.date) -> int:
        """Position of ``day`` (monthly cubes: of its month) on the time axis; ValueError before the origin."""
        if self.step == "P1D":
            i = (day - self.origin).days
        else:
            i = (day.year - self.origin.year) * 12 + day.month - self.origin.month
        if i < 0:
            raise ValueError(f"{day} is before the start of the {self.product} record ({self.origin})")
        return i

    def time_offsets(self, n_steps: int) -> np.ndarray:
        """Days since the origin of the first ``n_steps`` time steps (int32): 0, 1, 2… or the first days of
        successive months."""
        if self.step == "P1D":
            return np.arange(n_steps, dtype=np.int32)
        first = np.datetime64(self.origin, "M") + np.arange(n_steps)
        return (first.astype("datetime64[D]") - np.datetime64(self.origin, "D")).astype(np.int32)


def _keywords(spec: CubeSpec) -> list[str]:
    """The variable, instrument, platform and level, each once (OCO-2 is both platform and instrument)."""
    p = get_product(spec.product)
    return list(dict.fromkeys([spec.long_name, p.instrument, p.platform, "L3"]))


def cube_attrs(spec: CubeSpec) -> dict[str, Any]:
    """CF-1.10 and ACDD-1.3 global attributes."""
    west, south, east, north = spec.grid.bounds
    return {
        "Conventions": "CF-1.10, ACDD-1.3",
        "title": spec.title,
        "summary": (
            f"{spec.period.capitalize()} {spec.long_name} on a regular {spec.grid.resolution}° "
            "latitude/longitude grid, "
            "with per-cell pixel count and propagated uncertainty."
        ),
        "source": spec.source,
        "institution": "eolake",
        "product": spec.product,
        "grid_id": spec.grid.grid_id,
        "geospatial_lat_min": south,
        "geospatial_lat_max": north,
        "geospatial_lon_min": west,
        "geospatial_lon_max": east,
        "geospatial_lat_units": "degrees_north",
        "geospatial_lon_units": "degrees_east",
        "geospatial_lat_resolution": spec.grid.resolution,
        "geospatial_lon_resolution": spec.grid.resolution,
        "time_coverage_resolution": spec.step,
        "cdm_data_type": "Grid",  # ACDD; CF featureType is for discrete sampling geometries, not grids
        "history": f"eolake: {spec.period} L3 binned from {spec.source.split(';')[0]}",
        "keywords": ", ".join(_keywords(spec)),
    }


def variable_attrs(spec: CubeSpec) -> dict[str, dict[str, Any]]:
    """CF attributes of the data variables."""
    return {
        "mean": {
            "standard_name": spec.standard_name,
            "long_name": f"{spec.period} mean {spec.long_name}",
            "units": spec.units,
            "cell_methods": "time: mean area: mean",
            "ancillary_variables": "uncertainty count",
        },
        "uncertainty": {
            "standard_name": f"{spec.standard_name} standard_error",
            "long_name": f"propagated 1-sigma uncertainty of the {spec.period} mean {spec.long_name}",
            "units": spec.units,
        },
        "count": {  # no standard_name: CF 1.10 deprecates the number_of_observations modifier
            "long_name": "number of valid pixels averaged into the cell",
            "units": "1",
        },
        "weight": {
            "long_name": "sum of binning weights (inverse variance: m4 mol-2)",
            "units": "1",
        },
    }


def _template(spec: CubeSpec, n_days: int) -> xr.Dataset:
    import dask.array as da

    n_lat, n_lon = spec.grid.shape
    shape = (n_days, n_lat, n_lon)
    chunks = spec.shards  # dask chunks = Zarr shards (each written whole)
    var_attrs = variable_attrs(spec)
    data_vars = {}
    for name in DATA_VARS:
        dtype = np.int32 if name == "count" else np.float32
        fill = 0 if name == "count" else np.nan
        data_vars[name] = (
            ("time", "lat", "lon"),
            da.full(shape, fill, dtype=dtype, chunks=chunks),  # type: ignore[no-untyped-call]
            var_attrs[name],
        )
    time = (np.datetime64(spec.origin, "D") + spec.time_offsets(n_days)).astype("datetime64[ns]")
    ds = xr.Dataset(
        data_vars,
        coords={
            "time": ("time", time, {"standard_name": "time", "long_name": "time", "axis": "T"}),
            "lat": (
                "lat",
                spec.grid.lat(),
                {"standard_name": "latitude", "units": "degrees_north", "axis": "Y"},
            ),
            "lon": (
                "lon",
                spec.grid.lon(),
                {"standard_name": "longitude", "units": "degrees_east", "axis": "X"},
            ),
        },
        attrs=cube_attrs(spec),
    )
    return ds


def _compressor(spec: CubeSpec) -> Any:
    from zarr.codecs import BloscCodec, ZstdCodec

    if spec.codec == "blosc-zstd":
        return BloscCodec(cname="zstd", clevel=spec.zstd_level, shuffle="shuffle", typesize=4)
    return ZstdCodec(level=spec.zstd_level)


def _encoding(spec: CubeSpec) -> dict[str, dict[str, Any]]:
    enc: dict[str, dict[str, Any]] = {
        name: {
            "chunks": spec.chunks,
            "shards": spec.shards,
            "compressors": (_compressor(spec),),
            "fill_value": 0 if name == "count" else np.nan,
        }
        for name in DATA_VARS
    }
    for coord in ("lat", "lon"):  # CF §2.5.1: coordinate variables have no _FillValue
        enc[coord] = {"_FillValue": None}
    enc["time"] = {
        "units": TIME_UNITS_TEMPLATE.format(origin=spec.origin.isoformat()),
        "calendar": "proleptic_gregorian",
        "dtype": "int32",
        "chunks": (4096,),
    }
    return enc


def _consolidate(store: Store) -> None:
    with warnings.catch_warnings():
        # Consolidated metadata is not in the Zarr v3 spec yet; readers that don't know it ignore it.
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        zarr.consolidate_metadata(store)


def _to_zarr(ds: xr.Dataset, store: Store, **kwargs: Any) -> None:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        ds.to_zarr(store, zarr_format=3, consolidated=False, **kwargs)


def ensure_cube(store: Store, spec: CubeSpec, *, until: dt.date) -> int:
    """Create the cube if absent and grow its time axis so it reaches ``until``. Returns the number of days.

    Growing writes the time coordinate's new values and then every array's metadata with the consolidated
    root (:func:`_extend_axis`); no data chunk is written.
    """
    n_needed = spec.day_index(until) + 1
    n_have = _axis_length(store, spec)
    if n_have is None:
        _create_cube(store, spec, n_needed)
        return n_needed
    if n_needed > n_have:
        _extend_axis(store, spec, n_needed)
        return n_needed
    return n_have


def _create_cube(store: Store, spec: CubeSpec, n_days: int) -> None:
    """A new cube with a time axis of ``n_days`` (may be 0) and no data chunk."""
    _to_zarr(_template(spec, n_days), store, mode="w", encoding=_encoding(spec), compute=False)
    group = zarr.open_group(store, mode="r+", zarr_format=3)
    time = group["time"]
    assert isinstance(time, zarr.Array)
    time[:] = spec.time_offsets(n_days)
    _consolidate(store)


async def _root(store: Store, spec: CubeSpec) -> GroupMetadata | None:
    """The cube's root metadata with its consolidated metadata (one GET), None when there is no cube;
    ValueError when the store holds a cube on another grid."""
    try:
        group = await AsyncGroup.open(StorePath(store), zarr_format=3, use_consolidated=None)
    except (FileNotFoundError, zarr.errors.GroupNotFoundError):
        return None
    existing_grid = group.metadata.attributes.get("grid_id")
    if existing_grid != spec.grid.grid_id:
        raise ValueError(f"the store holds a cube on grid {existing_grid!r}, not {spec.grid.grid_id!r}")
    if group.metadata.consolidated_metadata is None:  # a run died between creating and consolidating
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            group = await zarr.api.asynchronous.consolidate_metadata(store)
    return group.metadata


def _members(root: GroupMetadata) -> dict[str, ArrayV3Metadata]:
    consolidated = root.consolidated_metadata
    assert consolidated is not None  # _root consolidates
    return {k: m for k, m in consolidated.metadata.items() if isinstance(m, ArrayV3Metadata)}


def _axis_length(store: Store, spec: CubeSpec) -> int | None:
    """Length of the time axis a consolidated reader sees; None when there is no cube."""
    root = sync(_root(store, spec))
    return None if root is None else int(_members(root)["time"].shape[0])


async def _axis_and_data(store: Store, spec: CubeSpec, day: dt.date) -> tuple[int | None, bool]:
    """:func:`_axis_length`, and whether ``day`` has a ``count`` object, concurrently."""
    root, has_data = await asyncio.gather(_root(store, spec), store.exists(day_keys(spec, day)["count"]))
    return (None if root is None else int(_members(root)["time"].shape[0])), has_data


def _extend_axis(store: Store, spec: CubeSpec, n_days: int) -> None:
    """Grow the time axis to ``n_days``: every day it adds must already be complete or hold no object."""

    async def run() -> None:
        root = await _root(store, spec)
        if root is None:
            raise FileNotFoundError("no cube in this store: create it with ensure_cube")
        n_have = int(_members(root)["time"].shape[0])
        if n_days > n_have:
            await _write_axis(store, spec, root, n_days, time_from=n_have)

    sync(run())


async def _write_axis(
    store: Store, spec: CubeSpec, root: GroupMetadata, n_days: int, *, time_from: int
) -> None:
    """Set the time axis to ``n_days``: (1) the time coordinate's values from ``time_from`` on, as whole
    chunks (values beyond the current shape are invisible), then (2) the metadata of ``time`` and of each
    data variable and the root's consolidated metadata, concurrently. A consolidated reader (``xr.open_zarr``
    reads only the root ``zarr.json``) sees the old axis or the new one, never a mixture; a crash in (2) is
    finished by :func:`recover_staged`."""
    members = _members(root)
    time_meta = members["time"]
    step = time_meta.chunks[0]
    lo, hi = time_from // step * step, -(-n_days // step) * step
    if hi > lo:
        time = AsyncArray(time_meta.update_shape((hi,)), StorePath(store, "time"))
        await time.setitem(slice(lo, hi), spec.time_offsets(hi)[lo:])
    grown = {k: m.update_shape((n_days, *m.shape[1:])) if k in AXIS_ARRAYS else m for k, m in members.items()}
    consolidated = root.consolidated_metadata
    assert consolidated is not None
    new_root = dataclasses.replace(
        root,
        consolidated_metadata=dataclasses.replace(consolidated, metadata={**consolidated.metadata, **grown}),
    )
    proto = default_buffer_prototype()
    puts = {f"{k}/zarr.json": grown[k].to_buffer_dict(proto)["zarr.json"] for k in AXIS_ARRAYS}
    puts["zarr.json"] = new_root.to_buffer_dict(proto)["zarr.json"]
    await asyncio.gather(*(store.set(k, v) for k, v in puts.items()))


def _settle_axis(store: Store, spec: CubeSpec) -> None:
    """After a crash: finish an axis extension that was cut short (the arrays' own metadata and the
    consolidated root disagree: every day the longer axis covers was complete before it was written, so the
    axis is set to the longest), then delete every shard beyond the axis (a head day whose shards were
    written but whose axis extension never happened: never visible, never committed)."""

    async def run() -> None:
        root = await _root(store, spec)
        if root is None:
            return
        members = _members(root)
        own = await asyncio.gather(*(AsyncArray.open(StorePath(store, k)) for k in AXIS_ARRAYS))
        lengths = [int(members[k].shape[0]) for k in AXIS_ARRAYS] + [int(a.shape[0]) for a in own]
        n_days = max(lengths)
        if min(lengths) != n_days:
            await _write_axis(store, spec, root, n_days, time_from=min(lengths))
        beyond = []
        for name in DATA_VARS:
            async for index in store.list_dir(f"{name}/c"):
                if index.isdigit() and int(index) >= n_days:
                    beyond.append(f"{name}/c/{index}/0/0")
        await asyncio.gather(*(store.delete(k) for k in beyond))

    sync(run())


def day_keys(spec: CubeSpec, day: dt.date) -> dict[str, str]:
    """The object key of each variable's shard of ``day`` in the cube store."""
    i = spec.day_index(day)
    return {name: f"{name}/c/{i}/0/0" for name in DATA_VARS}


def encode_day(fields: xr.Dataset, spec: CubeSpec) -> dict[str, bytes | None]:
    """One day's fields (dims (lat, lon)) encoded as the cube's shards, per variable: the exact bytes the
    cube holds for that day, or None when the day is all fill (Zarr stores no object then)."""
    n_lat, n_lon = spec.grid.shape
    if fields.sizes.get("lat") != n_lat or fields.sizes.get("lon") != n_lon:
        raise ValueError(
            f"fields have shape {dict(fields.sizes)}, cube grid {spec.grid.grid_id} needs {(n_lat, n_lon)}"
        )
    if spec.codec != "zstd":
        return encode_day_with_zarr(fields, spec)
    return {name: _zstd_shard(_day_values(fields, name), spec) for name in DATA_VARS}


def _day_values(fields: xr.Dataset, name: str) -> np.ndarray:
    return np.asarray(fields[name].values, dtype=np.int32 if name == "count" else np.float32)


def _zstd_shard(values: np.ndarray, spec: CubeSpec) -> bytes | None:
    """A Zarr v3 shard of one variable-day (dims (lat, lon)), byte for byte what Zarr's sharding codec writes
    with the cube's codecs (bytes little-endian, zstd; index at the end: (offset, nbytes) uint64 per inner
    chunk in Morton order, then its CRC32C), without Zarr's per-chunk machinery: inner chunks that are all
    fill (NaN, or 0 for ``count``) are left out; None when all are."""
    import google_crc32c
    import numcodecs
    from zarr.core.indexing import morton_order_iter

    _, cl, cw = spec.chunks
    _, sl, sw = spec.shards
    fill_is_nan = values.dtype.kind == "f"
    if values.shape != (sl, sw):  # the shard's edge beyond the grid holds the fill value
        padded = np.full((sl, sw), np.nan if fill_is_nan else 0, dtype=values.dtype)
        padded[: values.shape[0], : values.shape[1]] = values
        values = padded
    zstd = numcodecs.Zstd(level=spec.zstd_level)
    index = np.full((sl // cl, sw // cw, 2), 2**64 - 1, dtype="<u8")
    parts: list[bytes] = []
    offset = 0
    for r, c in morton_order_iter((sl // cl, sw // cw)):
        chunk = values[r * cl : (r + 1) * cl, c * cw : (c + 1) * cw]
        if np.isnan(chunk).all() if fill_is_nan else not chunk.any():
            continue
        data = bytes(zstd.encode(np.ascontiguousarray(chunk, dtype=chunk.dtype.newbyteorder("<"))))
        index[r, c] = (offset, len(data))
        parts.append(data)
        offset += len(data)
    if not parts:
        return None
    raw = index.tobytes()
    return b"".join([*parts, raw, np.array([google_crc32c.value(raw)], dtype="<u4").tobytes()])


def encode_day_with_zarr(fields: xr.Dataset, spec: CubeSpec) -> dict[str, bytes | None]:
    """:func:`encode_day` through Zarr itself (a one-day cube in memory): any codec; the reference the
    direct zstd encoder is tested against."""
    mem = zarr.storage.MemoryStore()
    day_ds = xr.Dataset(
        {name: (("time", "lat", "lon"), _day_values(fields, name)[None]) for name in DATA_VARS}
    )
    enc = {k: v for k, v in _encoding(spec).items() if k in DATA_VARS}
    _to_zarr(day_ds, mem, mode="w", encoding=enc)
    out: dict[str, bytes | None] = {}
    for name in DATA_VARS:
        buf = sync(mem.get(f"{name}/c/0/0/0", prototype=default_buffer_prototype()))
        out[name] = None if buf is None else buf.to_bytes()
    return out


def _put(store: Store, key: str, data: bytes | None) -> None:
    if data is None:
        sync(store.delete(key))
    else:
        sync(store.set(key, default_buffer_prototype().buffer.from_bytes(data)))


def _put_all(store: Store, items: Mapping[str, bytes | None]) -> None:
    """Put (or delete, for None) several objects concurrently; returns when all are done (raises the first
    failure after all have finished)."""

    async def one(key: str, data: bytes | None) -> None:
        if data is None:
            await store.delete(key)
        else:
            await store.set(key, default_buffer_prototype().buffer.from_bytes(data))

    async def all_() -> list[BaseException | None]:
        return await asyncio.gather(*(one(k, v) for k, v in items.items()), return_exceptions=True)

    for outcome in sync(all_()):
        if isinstance(outcome, BaseException):
            raise outcome


def _move_all(src: Store, dst: Store, keys: Mapping[str, str]) -> bool:
    """Move objects from ``src`` to ``dst`` without moving their bytes through this process: rename when both
    stores are local directories on one file system (atomic, no second write), server-side copy (S3
    CopyObject: atomic at the target) when both are fsspec stores on the same object store. Returns False
    (nothing moved) when the stores do not allow it; the caller then puts the bytes."""
    from pathlib import Path

    if type(src) is zarr.storage.FsspecStore and type(dst) is zarr.storage.FsspecStore:
        return _copy_all(src, dst, keys)
    if not (type(src) is zarr.storage.LocalStore and type(dst) is zarr.storage.LocalStore):
        return False  # plain stores only: a subclass may change what set() does
    src_root, dst_root = Path(src.root), Path(dst.root)
    if not src_root.exists() or src_root.stat().st_dev != dst_root.stat().st_dev:
        return False
    for s_key, d_key in keys.items():
        target = dst_root / d_key
        target.parent.mkdir(parents=True, exist_ok=True)
        (src_root / s_key).replace(target)
    return True


def _copy_all(src: Any, dst: Any, keys: Mapping[str, str]) -> bool:
    """Server-side copies between two fsspec stores on one object store (concurrently); False when the
    file systems differ or cannot copy."""
    fs = src.fs
    if fs is not dst.fs or not hasattr(fs, "_copy") or "s3" not in fs.protocol:
        return False

    async def all_() -> list[Any]:
        return await asyncio.gather(
            *(fs._copy(f"{src.path}/{s}", f"{dst.path}/{d}") for s, d in keys.items()),
            return_exceptions=True,
        )

    for outcome in sync(all_()):
        if isinstance(outcome, BaseException):
            raise outcome
    return True


def _exist(store: Store, keys: list[str]) -> list[bool]:
    async def all_() -> list[bool]:
        return list(await asyncio.gather(*(store.exists(k) for k in keys)))

    return sync(all_())


def _sha256(data: bytes | None) -> str | None:
    return None if data is None else hashlib.sha256(data).hexdigest()


def _get(store: Store, key: str) -> bytes | None:
    buf = sync(store.get(key, prototype=default_buffer_prototype()))
    return None if buf is None else buf.to_bytes()


def stage_day(
    staging: Store, blobs: Mapping[str, bytes | None], *, day: dt.date, record: Mapping[str, Any]
) -> dict[str, Any]:
    """Write a day's encoded shards into ``staging``, then its manifest (with ``record``: what commits the
    day, JSON-serialisable) last. Until the manifest exists the staged objects mean nothing. Returns the
    manifest."""
    prefix = day.isoformat()
    with ThreadPoolExecutor(max_workers=len(blobs) or 1) as pool:  # sha256 releases the GIL
        digests = pool.map(_sha256, blobs.values())
        _put_all(staging, {f"{prefix}/{name}": data for name, data in blobs.items() if data is not None})
        entries = dict(zip(blobs, digests, strict=True))
    manifest = {"day": prefix, "objects": entries, "record": dict(record)}
    _put(staging, f"{prefix}/manifest.json", json.dumps(manifest, default=str).encode())
    return manifest


def staged_days(staging: Store) -> list[dt.date]:
    """Days with a manifest in ``staging``: staged and not yet published, or being written in place. Not
    committed until :func:`recover_staged` settles them."""

    async def _list() -> list[str]:
        return [k async for k in staging.list_prefix("")]

    keys = sync(_list())
    return sorted(dt.date.fromisoformat(k.split("/")[0]) for k in keys if k.endswith("/manifest.json"))


def publish_staged(store: Store, staging: Store, spec: CubeSpec, day: dt.date) -> dict[str, Any] | None:
    """Finish a day a crashed run left with a manifest. A staged day: put its shards at their keys in the
    cube, verify them against the manifest, drop the staging objects, return the manifest's record. A fresh
    day written in place: keep it (return the record) when every object the manifest names exists, otherwise
    delete its objects (the day goes back to "no data", to be re-gridded) and return None. Idempotent."""
    prefix = day.isoformat()
    raw = _get(staging, f"{prefix}/manifest.json")
    if raw is None:
        raise FileNotFoundError(f"no staged manifest for {prefix}: stage the day first")
    manifest = json.loads(raw)
    ensure_cube(store, spec, until=day)
    if manifest.get("kind") == "in-place":
        return _settle_in_place(store, staging, spec, day, manifest)
    return _publish(store, staging, spec, day, manifest)


def _settle_in_place(
    store: Store, staging: Store, spec: CubeSpec, day: dt.date, manifest: Mapping[str, Any]
) -> dict[str, Any] | None:
    # The day held no data before the intent and every PUT is atomic, so an object that exists holds exactly
    # its new bytes: the day is complete when every object the manifest names exists.
    keys = day_keys(spec, day)
    names = [name for name, size in manifest["objects"].items() if size is not None]
    complete = all(_exist(store, [keys[name] for name in names]))
    if not complete:
        _put_all(store, {keys[name]: None for name in manifest["objects"]})
    _put(staging, f"{day.isoformat()}/manifest.json", None)
    record: dict[str, Any] = manifest["record"]
    return record if complete else None


def write_in_place(
    store: Store,
    staging: Store,
    blobs: Mapping[str, bytes | None],
    *,
    spec: CubeSpec,
    day: dt.date,
    record: Mapping[str, Any],
) -> dict[str, Any]:
    """Write a fresh day straight to its keys: an intent manifest (the size of each object, None for none,
    and ``record``), the shards, then drop the manifest. Every byte is uploaded once. Returns ``record``.

    Fresh: the day has no ``count`` object. ``count`` is absent exactly when no pixel reached the day, and
    then the committed day (if any) holds no object at all, so writing in place never mixes committed data
    with new data; objects another variable left without ``count`` can only come from an unsettled crash, and
    are replaced or deleted here. Callers settle crashed days (:func:`recover_staged`) before writing."""
    prefix = day.isoformat()
    sizes = {name: None if data is None else len(data) for name, data in blobs.items()}
    manifest = {"day": prefix, "kind": "in-place", "objects": sizes, "record": dict(record)}
    _put(staging, f"{prefix}/manifest.json", json.dumps(manifest, default=str).encode())
    keys = day_keys(spec, day)
    _put_all(store, {keys[name]: blobs.get(name) for name in DATA_VARS})  # None: delete a crash's leftover
    _put(staging, f"{prefix}/manifest.json", None)
    return dict(record)


def _publish(
    store: Store,
    staging: Store,
    spec: CubeSpec,
    day: dt.date,
    manifest: Mapping[str, Any],
    blobs: Mapping[str, bytes | None] | None = None,
) -> dict[str, Any]:
    """Publish a staged day; ``blobs``: the staged bytes still in memory (checked against the manifest like
    the staged copies), so the writer need not read back what it just staged."""
    prefix = day.isoformat()
    keys = day_keys(spec, day)
    fresh = {  # in memory, hashed into the manifest moments ago
        name: blobs[name]
        for name, digest in manifest["objects"].items()
        if digest is not None and blobs is not None and blobs.get(name) is not None
    }
    if not _move_all(staging, store, {f"{prefix}/{name}": keys[name] for name in fresh}):
        _put_all(store, {keys[name]: data for name, data in fresh.items()})
    for name, digest in manifest["objects"].items():
        if name in fresh:
            continue
        data = None if digest is None else _get(staging, f"{prefix}/{name}")
        if digest is not None and (data is None or hashlib.sha256(data).hexdigest() != digest):
            current = _get(store, keys[name])  # published before a crash, staging object already dropped
            if current is not None and hashlib.sha256(current).hexdigest() == digest:
                continue
            raise OSError(f"staged object {prefix}/{name} is missing or corrupt: re-grid {prefix}")
        _put(store, keys[name], data)
    _put_all(staging, {f"{prefix}/{name}": None for name, d in manifest["objects"].items() if d is not None})
    _put(staging, f"{prefix}/manifest.json", None)
    record: dict[str, Any] = manifest["record"]
    return record


def write_day(
    store: Store,
    fields: xr.Dataset,
    *,
    day: dt.date,
    spec: CubeSpec,
    staging: Store | None = None,
    record: Mapping[str, Any] | None = None,
    attrs: Mapping[str, Any] | None = None,
    grow: bool = True,
) -> dict[str, Any]:
    """Write one day's gridded ``fields`` (dims (lat, lon): mean, uncertainty, count, weight) into the cube,
    replacing exactly what that day held, by the protocol of this module (``staging`` defaults to an
    in-memory store: atomic per object, but not resumable). Creates or grows the cube as needed (``grow``:
    see :func:`write_encoded_days`). Returns ``record`` (what the caller commits)."""
    out = write_days(store, [(day, fields, record)], spec=spec, staging=staging, grow=grow)[0]
    if attrs:
        set_cube_attrs(store, attrs)
    return out


DayFields = tuple[dt.date, xr.Dataset, Mapping[str, Any] | None]  # day, fields (dims (lat, lon)), record
DayBlobs = tuple[dt.date, Mapping[str, bytes | None], Mapping[str, Any] | None]  # day, encode_day(), record


def write_days(
    store: Store,
    days: Iterable[DayFields],
    *,
    spec: CubeSpec,
    staging: Store | None = None,
    grow: bool = True,
) -> list[dict[str, Any]]:
    """Write several days (:func:`write_day` for each, in order), encoding day N+1 in a worker thread while
    day N uploads. Days beyond the cube's time axis become visible together, in one metadata write at the
    end (:func:`write_encoded_days`). Returns the records, in order."""
    return write_encoded_days(store, _encode_ahead(days, spec), spec=spec, staging=staging, grow=grow)


def _encode_ahead(days: Iterable[DayFields], spec: CubeSpec) -> Iterator[DayBlobs]:
    """``(day, encode_day(fields), record)`` for each day, the next day's encoding running while the caller
    stores the current one (compression releases the GIL)."""
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = None
        for day, fields, record in days:
            ahead = (day, pool.submit(encode_day, fields, spec), record)
            if pending is not None:
                yield pending[0], pending[1].result(), pending[2]
            pending = ahead
        if pending is not None:
            yield pending[0], pending[1].result(), pending[2]


def write_encoded_day(
    store: Store,
    blobs: Mapping[str, bytes | None],
    *,
    day: dt.date,
    spec: CubeSpec,
    staging: Store | None = None,
    record: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The storage half of :func:`write_day`: ``blobs`` (from :func:`encode_day`)."""
    return write_encoded_days(store, [(day, blobs, record)], spec=spec, staging=staging)[0]


def write_encoded_days(
    store: Store,
    days: Iterable[DayBlobs],
    *,
    spec: CubeSpec,
    staging: Store | None = None,
    grow: bool = True,
) -> list[dict[str, Any]]:
    """Store encoded days (decisions 0010, 0011). A day beyond the time axis a consolidated reader sees (a
    new day at the head; a new cube starts its axis just before its first day) is a *head* day: it holds
    nothing anyone can see, so its shards go straight to their keys, and once every head day of the call is
    written the axis is extended over them in one metadata write (:func:`_write_axis`). A day inside the
    axis is written in place behind an intent manifest when it holds no data (no ``count`` object), staged
    then published otherwise. Returns the records (what the caller commits), in order.

    The axis length is read once per call, so head days need one writer per cube. Writers that run
    concurrently either grow the axis first with :func:`ensure_cube` (then none of their days is a head day),
    or pass ``grow=False`` (head days are written but stay invisible) and, once all of them have returned,
    extend the axis once with :func:`ensure_cube` before committing the days."""
    staging = staging if staging is not None else zarr.storage.MemoryStore()
    n_axis: int | None = None
    head = -1  # the last head day written (index)
    records = []
    for day, blobs, record in days:
        i = spec.day_index(day)
        has_data = None
        if (
            n_axis is None
        ):  # the axis, and whether the first day has data in case it is inside: one round trip
            n_axis, has_data = sync(_axis_and_data(store, spec, day))
            if n_axis is None:
                _create_cube(store, spec, i)
                n_axis = i
        if i >= n_axis:
            keys = day_keys(spec, day)
            _put_all(store, {keys[name]: blobs.get(name) for name in DATA_VARS})  # None: delete a leftover
            head = max(head, i)
            records.append(dict(record or {}))
        else:
            records.append(
                _write_inside_axis(
                    store, staging, blobs, spec=spec, day=day, record=record or {}, has_data=has_data
                )
            )
    if grow and n_axis is not None and head >= n_axis:
        _extend_axis(store, spec, head + 1)
    return records


def _write_inside_axis(
    store: Store,
    staging: Store,
    blobs: Mapping[str, bytes | None],
    *,
    spec: CubeSpec,
    day: dt.date,
    record: Mapping[str, Any],
    has_data: bool | None = None,
) -> dict[str, Any]:
    """A day inside the axis: in place behind an intent manifest when it holds no data (no ``count``
    object; ``has_data``: already checked), else staged."""
    if has_data is None:
        has_data = _exist(store, [day_keys(spec, day)["count"]])[0]
    if not has_data:
        return write_in_place(store, staging, blobs, spec=spec, day=day, record=record)
    manifest = stage_day(staging, blobs, day=day, record=record)
    return _publish(store, staging, spec, day, manifest, blobs)


def set_cube_attrs(store: Store, attrs: Mapping[str, Any]) -> None:
    """Update the cube's global attributes (only when they change) and re-consolidate its metadata."""
    group = zarr.open_group(store, mode="r+", zarr_format=3)
    if all(group.attrs.get(k) == v for k, v in attrs.items()):
        return
    group.attrs.update(dict(attrs))
    _consolidate(store)


def recover_staged(store: Store, staging: Store, spec: CubeSpec) -> list[dict[str, Any]]:
    """Settle what a crashed run left: finish a cut-short axis extension and delete shards beyond the axis
    (head days never made visible), then finish every day with a manifest (:func:`publish_staged`). Returns
    the records of the days that are now complete (to be committed by the caller); the others were rolled
    back."""
    _settle_axis(store, spec)
    records = (publish_staged(store, staging, spec, day) for day in staged_days(staging))
    return [r for r in records if r is not None]


def open_cube(store: Store, *, chunks: dict[str, int] | None = None) -> xr.Dataset:
    """Open a cube lazily (dask-backed). dims (time, lat, lon)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
        ds: xr.Dataset = xr.open_zarr(
            store, zarr_format=3, consolidated=True, chunks=chunks if chunks is not None else {}
        )
    return ds


def netcdf_encoding(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Encoding for ``ds.to_netcdf(path, encoding=netcdf_encoding(ds))`` of (part of) a cube that keeps it
    CF-1.10 compliant: coordinate variables without ``_FillValue`` (CF §2.5.1), data compressed (zlib)."""
    enc: dict[str, dict[str, Any]] = {
        str(name): {"_FillValue": None} for name in ds.coords if name in ("lat", "lon", "time")
    }
    for name in ds.data_vars:
        enc[str(name)] = {"zlib": True, "complevel": 4}
    return enc
