"""Atomic, idempotent cube days: a day is one object per variable; a fresh day is written in place behind an
intent manifest (a crash is rolled forward when complete, else back to "no data"); re-gridding stages the day
(a crash while staging leaves the cube as it was, a crash while publishing is finished by the next run) and
replaces exactly that day; the axis grows forward and earlier days can be back-filled."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import xarray as xr
import zarr.storage

from transforms.cube import (
    DATA_VARS,
    CubeSpec,
    day_keys,
    ensure_cube,
    open_cube,
    recover_staged,
    staged_days,
    write_day,
    write_days,
)
from transforms.grid import GridSpec

GRID = GridSpec(0.5, (0.0, 40.0, 10.0, 50.0))
SPEC = CubeSpec(
    "no2",
    GRID,
    dt.date(2018, 4, 30),
    "mol m-2",
    "troposphere_mole_content_of_nitrogen_dioxide",
    "tropospheric NO2 column",
    "test cube",
    "unit test",
    chunk_lat=8,
    chunk_lon=8,
)
D1, D2 = dt.date(2020, 3, 3), dt.date(2020, 3, 4)


class CrashingStore(zarr.storage.LocalStore):
    """A real local store whose process 'dies' (raises) on the n-th object write."""

    def __init__(self, root: Path, *, crash_on: int) -> None:
        super().__init__(root)
        self.crash_on = crash_on
        self.writes = 0

    async def set(self, key, value) -> None:  # type: ignore[no-untyped-def]
        self.writes += 1
        if self.writes == self.crash_on:
            raise OSError(f"simulated crash writing {key}")
        await super().set(key, value)


class UndeletableStore(zarr.storage.LocalStore):
    """A real local store whose process 'dies' (raises) when it is asked to delete an object."""

    async def set(self, key, value) -> None:  # type: ignore[no-untyped-def]
        self.keys_set = [*getattr(self, "keys_set", []), key]
        await super().set(key, value)

    async def delete(self, key: str) -> None:
        raise OSError(f"simulated crash deleting {key}")


def _fields(v: float) -> xr.Dataset:
    count = np.full(GRID.shape, 2, dtype=np.int32)
    count[0, 0] = 0
    mean = np.full(GRID.shape, v, dtype=np.float32)
    mean[0, 0] = np.nan
    return xr.Dataset(
        {
            "mean": (("lat", "lon"), mean),
            "uncertainty": (("lat", "lon"), mean / 10),
            "count": (("lat", "lon"), count),
            "weight": (("lat", "lon"), count.astype(np.float32)),
        }
    )


def _digests(root: Path, day: dt.date) -> dict[str, str]:
    return {n: hashlib.sha256((root / k).read_bytes()).hexdigest() for n, k in day_keys(SPEC, day).items()}


def _mean(store, day: dt.date) -> np.ndarray:
    return open_cube(store).sel(time=str(day))["mean"].values


def test_a_day_is_one_object_per_variable_and_a_regrid_touches_only_that_day(tmp_path: Path) -> None:
    root = tmp_path / "cube.zarr"
    store = zarr.storage.LocalStore(root)
    write_day(store, _fields(1.0), day=D1, spec=SPEC)
    write_day(store, _fields(2.0), day=D2, spec=SPEC)
    i = SPEC.day_index(D1)
    for name in DATA_VARS:
        chunks = root / name / "c"
        objects = sorted(p.relative_to(chunks).as_posix() for p in chunks.rglob("*") if p.is_file())
        assert objects == [f"{i}/0/0", f"{i + 1}/0/0"]
    before = _digests(root, D2)
    write_day(store, _fields(3.0), day=D1, spec=SPEC)  # a better granule version arrived
    assert _digests(root, D2) == before
    assert np.nanmax(_mean(store, D1)) == 3.0 and np.nanmax(_mean(store, D2)) == 2.0


def test_a_crash_while_staging_leaves_the_previous_day_readable(tmp_path: Path) -> None:
    store = zarr.storage.LocalStore(tmp_path / "cube.zarr")
    write_day(store, _fields(1.0), day=D1, spec=SPEC)
    before = _digests(tmp_path / "cube.zarr", D1)
    staging = CrashingStore(tmp_path / "staging", crash_on=3)  # dies after two of four shards
    with pytest.raises(OSError, match="simulated crash"):
        write_day(store, _fields(5.0), day=D1, spec=SPEC, staging=staging, record={"day": D1})
    assert _digests(tmp_path / "cube.zarr", D1) == before
    assert np.nanmax(_mean(store, D1)) == 1.0
    assert staged_days(staging) == []  # no manifest: nothing to publish, the next run re-grids
    write_day(store, _fields(5.0), day=D1, spec=SPEC, staging=zarr.storage.LocalStore(tmp_path / "staging"))
    assert np.nanmax(_mean(store, D1)) == 5.0


def test_a_crash_while_publishing_is_finished_by_the_next_run(tmp_path: Path) -> None:
    root = tmp_path / "cube.zarr"
    write_day(zarr.storage.LocalStore(root), _fields(1.0), day=D1, spec=SPEC)
    write_day(zarr.storage.LocalStore(root), _fields(7.0), day=D2, spec=SPEC)
    other = _digests(root, D2)
    crashing = CrashingStore(root, crash_on=2)  # dies after publishing one of four shards
    staging = zarr.storage.LocalStore(tmp_path / "staging")
    with pytest.raises(OSError, match="simulated crash"):
        write_day(crashing, _fields(5.0), day=D1, spec=SPEC, staging=staging, record={"granules": ["g2"]})
    assert staged_days(staging) == [D1]  # eolake readers treat D1 as not committed until it is finished
    store = zarr.storage.LocalStore(root)
    records = recover_staged(store, staging, SPEC)
    assert records == [{"granules": ["g2"]}]
    assert staged_days(staging) == []
    ds = open_cube(store).sel(time=str(D1)).load()
    assert np.nanmax(ds["mean"].values) == 5.0 and np.nanmax(ds["uncertainty"].values) == 0.5
    assert int(ds["count"].sum()) == 2 * (GRID.shape[0] * GRID.shape[1] - 1)
    assert _digests(root, D2) == other
    assert recover_staged(store, staging, SPEC) == []  # idempotent


def test_axis_grows_forward_and_earlier_days_are_backfilled(tmp_path: Path) -> None:
    store = zarr.storage.LocalStore(tmp_path / "cube.zarr")
    write_day(store, _fields(1.0), day=dt.date(2020, 3, 10), spec=SPEC)
    n = open_cube(store).sizes["time"]
    write_day(store, _fields(4.0), day=dt.date(2020, 3, 1), spec=SPEC)  # back-fill: no rewrite of the axis
    assert open_cube(store).sizes["time"] == n
    write_day(store, _fields(6.0), day=dt.date(2020, 3, 20), spec=SPEC)
    ds = open_cube(store)
    assert ds.sizes["time"] == n + 10
    assert np.nanmax(ds["mean"].sel(time="2020-03-01").values) == 4.0
    assert np.isnan(ds["mean"].sel(time="2020-03-15").values).all()


def test_an_all_fill_day_removes_the_days_objects(tmp_path: Path) -> None:
    root = tmp_path / "cube.zarr"
    store = zarr.storage.LocalStore(root)
    write_day(store, _fields(1.0), day=D1, spec=SPEC)
    empty = _fields(1.0)
    for name in ("mean", "uncertainty", "weight"):
        empty[name][:] = np.nan
    empty["count"][:] = 0
    write_day(store, empty, day=D1, spec=SPEC)
    assert not any((root / k).exists() for k in day_keys(SPEC, D1).values())
    assert int(open_cube(store)["count"].sel(time=str(D1)).sum()) == 0


def test_a_fresh_day_is_written_in_place_once_behind_an_intent_manifest(tmp_path: Path) -> None:
    root = tmp_path / "cube.zarr"
    store = zarr.storage.LocalStore(root)
    ensure_cube(store, SPEC, until=D2)  # D1 inside the axis (as when a run grows it first): not a head day
    staging = UndeletableStore(tmp_path / "staging")  # dies when dropping the manifest: all shards written
    with pytest.raises(OSError, match="simulated crash deleting"):
        write_day(store, _fields(2.0), day=D1, spec=SPEC, staging=staging, record={"granules": ["g1"]})
    assert staging.keys_set == [f"{D1.isoformat()}/manifest.json"]  # no shard went through staging
    assert staged_days(staging) == [D1]  # not committed for eolake readers until settled
    plain = zarr.storage.LocalStore(tmp_path / "staging")
    assert recover_staged(store, plain, SPEC) == [{"granules": ["g1"]}]  # complete: rolled forward
    assert staged_days(plain) == [] and np.nanmax(_mean(store, D1)) == 2.0
    assert recover_staged(store, plain, SPEC) == []  # idempotent


def test_a_crash_while_writing_a_fresh_day_is_rolled_back_and_regridded(tmp_path: Path) -> None:
    root = tmp_path / "cube.zarr"
    ensure_cube(zarr.storage.LocalStore(root), SPEC, until=D2)
    write_day(zarr.storage.LocalStore(root), _fields(7.0), day=D2, spec=SPEC)
    other = _digests(root, D2)
    staging = zarr.storage.LocalStore(tmp_path / "staging")
    crashing = CrashingStore(root, crash_on=2)  # dies after one of the four shards
    with pytest.raises(OSError, match="simulated crash"):
        write_day(crashing, _fields(5.0), day=D1, spec=SPEC, staging=staging, record={"granules": ["g2"]})
    assert staged_days(staging) == [D1]  # eolake readers treat D1 as not committed
    store = zarr.storage.LocalStore(root)
    assert recover_staged(store, staging, SPEC) == []  # incomplete: rolled back, not committed
    assert staged_days(staging) == []
    assert not any((root / k).exists() for k in day_keys(SPEC, D1).values())
    assert np.isnan(_mean(store, D1)).all() and _digests(root, D2) == other
    write_day(store, _fields(5.0), day=D1, spec=SPEC, staging=staging)  # the next run re-grids it
    assert np.nanmax(_mean(store, D1)) == 5.0


def test_on_s3_fresh_days_go_in_place_and_a_regrid_is_copied_server_side(s3_server) -> None:  # type: ignore[no-untyped-def]
    """On the real S3 server: a fresh day is written in place (staging gets only its manifest, dropped at
    the end); a re-grid is staged and published by server-side copy; the other day is untouched."""
    from infra.settings import Settings
    from infra.storage import open_lake, zarr_store

    env = s3_server.env
    settings = Settings(
        s3_endpoint_url=env["AWS_ENDPOINT_URL"],
        s3_key=env["AWS_ACCESS_KEY_ID"],
        s3_secret=env["AWS_SECRET_ACCESS_KEY"],  # type: ignore[arg-type]
    )
    lake = open_lake("s3://cube-atomic/lake", settings=settings)
    lake.fs.makedirs("cube-atomic", exist_ok=True)
    store, staging = zarr_store(lake, "cube.zarr"), zarr_store(lake, "staging")
    fs = store.fs
    copies: list[str] = []
    copy = fs._copy

    async def counting_copy(path1: str, path2: str, **kw) -> None:  # type: ignore[no-untyped-def]
        copies.append(path2)
        await copy(path1, path2, **kw)

    fs._copy = counting_copy  # observe the real server-side copies
    try:
        write_day(store, _fields(1.0), day=D1, spec=SPEC, staging=staging)
        write_day(store, _fields(7.0), day=D2, spec=SPEC, staging=staging)
        assert copies == [] and staged_days(staging) == []
        before = open_cube(store).sel(time=str(D2))["mean"].values
        write_day(store, _fields(3.0), day=D1, spec=SPEC, staging=staging)  # re-grid
    finally:
        del fs._copy
    assert sorted(copies) == sorted(lake.path(f"cube.zarr/{k}") for k in day_keys(SPEC, D1).values())
    assert staged_days(staging) == [] and not lake.fs.find(lake.path("staging"))
    assert np.nanmax(_mean(store, D1)) == 3.0
    np.testing.assert_array_equal(open_cube(store).sel(time=str(D2))["mean"].values, before)
    # a crashed head day: shards beyond the axis, found by listing and deleted by the next run's recovery
    d3 = D2 + dt.timedelta(days=1)
    leftovers = [lake.path(f"cube.zarr/{day_keys(SPEC, d3)[n]}") for n in ("mean", "count")]
    for path in leftovers:
        lake.fs.pipe_file(path, b"partial")
    assert recover_staged(store, staging, SPEC) == []
    lake.fs.invalidate_cache()
    assert not any(lake.fs.exists(p) for p in leftovers) and lake.fs.exists(
        lake.path(f"cube.zarr/{day_keys(SPEC, D2)['mean']}")
    )


class ObservedStore(zarr.storage.LocalStore):
    """A real local store after each of whose object writes a plain reader (``xr.open_zarr`` with
    consolidated metadata, no eolake) opens the cube and records what it sees of ``day``: absent from the
    axis, complete, or partial."""

    def __init__(self, root: Path, *, day: dt.date, expected: xr.Dataset) -> None:
        super().__init__(root)
        self.day, self.expected, self.seen = day, expected, []
        self.reader = ThreadPoolExecutor(max_workers=1)  # not the loop's executor: the read needs that one
        self.one_at_a_time = asyncio.Lock()  # concurrent writes land one by one, each looked at

    async def set(self, key, value) -> None:  # type: ignore[no-untyped-def]
        async with self.one_at_a_time:
            await super().set(key, value)
            self.seen.append(await asyncio.get_running_loop().run_in_executor(self.reader, self._look))

    def _look(self) -> str:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            ds = xr.open_zarr(str(self.root), zarr_format=3, consolidated=True)
        if np.datetime64(self.day, "ns") not in ds["time"].values:
            return "absent"
        got = ds.sel(time=str(self.day)).load()
        same = [np.array_equal(got[n].values, self.expected[n].values, equal_nan=True) for n in DATA_VARS]
        return "complete" if all(same) else "partial"


def test_a_plain_reader_never_sees_part_of_a_head_day(tmp_path: Path) -> None:
    """A new day at the head of the axis: its shards go beyond the axis, then one metadata write extends it;
    a plain consolidated reader looking after every object write sees the day absent, then complete."""
    root = tmp_path / "cube.zarr"
    write_day(zarr.storage.LocalStore(root), _fields(1.0), day=D1, spec=SPEC)
    observed = ObservedStore(root, day=D2, expected=_fields(2.0))
    write_day(observed, _fields(2.0), day=D2, spec=SPEC)
    assert "partial" not in observed.seen
    assert observed.seen == ["absent"] * 10 + ["complete"]  # 4 shards, the time chunk, 5 metadata, the root


def test_the_plain_reader_check_catches_a_partial_day_inside_the_axis(tmp_path: Path) -> None:
    """The same reader on a fresh day inside the axis (written in place, decision 0010) does see it partial:
    the check above can fail."""
    root = tmp_path / "cube.zarr"
    ensure_cube(zarr.storage.LocalStore(root), SPEC, until=D2)
    observed = ObservedStore(root, day=D2, expected=_fields(2.0))
    write_day(observed, _fields(2.0), day=D2, spec=SPEC)
    assert "partial" in observed.seen and observed.seen[-1] == "complete"


def test_a_crash_while_writing_a_head_day_is_never_visible_and_is_cleaned(tmp_path: Path) -> None:
    root = tmp_path / "cube.zarr"
    write_day(zarr.storage.LocalStore(root), _fields(1.0), day=D1, spec=SPEC)
    n = open_cube(zarr.storage.LocalStore(root)).sizes["time"]
    with pytest.raises(OSError, match="simulated crash"):  # the third of the four shard writes fails
        write_day(CrashingStore(root, crash_on=3), _fields(5.0), day=D2, spec=SPEC)
    store = zarr.storage.LocalStore(root)
    assert open_cube(store).sizes["time"] == n  # the day is not on the axis any reader sees
    assert sum((root / k).exists() for k in day_keys(SPEC, D2).values()) == 3
    staging = zarr.storage.LocalStore(tmp_path / "staging")
    assert recover_staged(store, staging, SPEC) == []  # nothing to commit; the leftovers are deleted
    assert not any((root / k).exists() for k in day_keys(SPEC, D2).values())
    ensure_cube(store, SPEC, until=D2)  # a later run growing the axis over the day shows no partial data
    assert np.isnan(_mean(store, D2)).all()
    write_day(store, _fields(5.0), day=D2, spec=SPEC)
    assert np.nanmax(_mean(store, D2)) == 5.0 and np.nanmax(_mean(store, D1)) == 1.0


class RootlessStore(zarr.storage.LocalStore):
    """A real local store whose process 'dies' (raises) when it writes the root metadata."""

    async def set(self, key, value) -> None:  # type: ignore[no-untyped-def]
        if key == "zarr.json":
            raise OSError("simulated crash writing the root metadata")
        await super().set(key, value)


def test_a_crash_while_extending_the_axis_is_finished_by_the_next_run(tmp_path: Path) -> None:
    root = tmp_path / "cube.zarr"
    write_day(zarr.storage.LocalStore(root), _fields(1.0), day=D1, spec=SPEC)
    with pytest.raises(OSError, match="simulated crash"):
        write_day(RootlessStore(root), _fields(2.0), day=D2, spec=SPEC)
    store = zarr.storage.LocalStore(root)
    assert str(D2) not in open_cube(store).indexes["time"]  # consolidated readers: the old axis
    assert recover_staged(store, zarr.storage.LocalStore(tmp_path / "staging"), SPEC) == []
    for consolidated in (True, False):  # the arrays' own metadata and the root agree again
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*[Cc]onsolidated metadata.*")
            ds = xr.open_zarr(root, zarr_format=3, consolidated=consolidated)
        assert ds.indexes["time"][-1] == np.datetime64(D2, "ns")
    assert np.nanmax(_mean(store, D2)) == 2.0 and np.nanmax(_mean(store, D1)) == 1.0


def test_write_days_gives_the_bytes_of_write_day_and_extends_the_axis_once(tmp_path: Path) -> None:
    days = [D1 + dt.timedelta(days=k) for k in range(5)]
    one = zarr.storage.LocalStore(tmp_path / "one.zarr")
    for k, day in enumerate(days):
        write_day(one, _fields(float(k + 1)), day=day, spec=SPEC)
    batch = ObservedStore(tmp_path / "batch.zarr", day=days[0], expected=_fields(1.0))
    ensure_cube(zarr.storage.LocalStore(tmp_path / "batch.zarr"), SPEC, until=days[0] - dt.timedelta(days=1))
    records = write_days(
        batch, [(day, _fields(float(k + 1)), {"k": k}) for k, day in enumerate(days)], spec=SPEC
    )
    assert records == [{"k": k} for k in range(5)]
    # 20 shards, the time chunk, 6 metadata objects: the days appear with the last one, the root
    assert batch.seen == ["absent"] * 26 + ["complete"]
    for day in days:
        assert _digests(tmp_path / "one.zarr", day) == _digests(tmp_path / "batch.zarr", day)
    plain = zarr.storage.LocalStore(tmp_path / "batch.zarr")
    xr.testing.assert_identical(open_cube(one).load(), open_cube(plain).load())


def test_concurrent_writers_write_head_days_unseen_and_extend_the_axis_once(tmp_path: Path) -> None:
    """``grow=False``: writers that run side by side (the grid flow's tasks) leave their head days beyond
    the axis; one extension after all of them makes every day visible at once."""
    root = tmp_path / "cube.zarr"
    store = zarr.storage.LocalStore(root)
    ensure_cube(store, SPEC, until=D1 - dt.timedelta(days=1))  # the run creates the cube first
    days = [D1 + dt.timedelta(days=k) for k in range(4)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(
            pool.map(
                lambda k: write_day(store, _fields(k + 1.0), day=days[k], spec=SPEC, grow=False), range(4)
            )
        )
    assert open_cube(store).indexes["time"][-1] < np.datetime64(D1, "ns")  # none visible yet
    ensure_cube(store, SPEC, until=days[-1])
    for k, day in enumerate(days):
        assert np.nanmax(_mean(store, day)) == k + 1.0


def test_a_cube_left_without_consolidated_metadata_is_consolidated_and_grows(tmp_path: Path) -> None:
    """A run that died between creating the cube and consolidating it: the next write consolidates first."""
    import json

    root = tmp_path / "cube.zarr"
    ensure_cube(zarr.storage.LocalStore(root), SPEC, until=D1)
    meta = json.loads((root / "zarr.json").read_text())
    meta.pop("consolidated_metadata")
    (root / "zarr.json").write_text(json.dumps(meta))
    store = zarr.storage.LocalStore(root)
    write_day(store, _fields(2.0), day=D2, spec=SPEC)
    assert open_cube(store).indexes["time"][-1] == np.datetime64(D2, "ns")
    assert np.nanmax(_mean(store, D2)) == 2.0
