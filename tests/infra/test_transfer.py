"""Granule transfers over real HTTP (the fake upstream on 127.0.0.1) into a local lake and the real S3 server:
cut bodies resume with range requests, a file changed upstream or a server without ranges starts over, and on
S3 a failed or mismatching transfer leaves neither an object under its key nor an unfinished multipart upload."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import h5py
import pytest
from pydantic import SecretStr

from infra.archive import simulate_day, write_archive_catalog
from infra.cubes import cube_spec, grid_day, prepare_cube, quarantine_unreadable
from infra.harvest import harvest_granule
from infra.http import CHUNK, RetryPolicy, download
from infra.ledger import read_granules, upsert_granules
from infra.scenario import load_truth
from infra.services import Service
from infra.settings import Settings
from infra.sources import find_granules
from infra.storage import Lake, open_lake
from infra.transfer import check_decodes, fetch_granule, raw_key
from tests.fakes.damage import publish, scramble_chunk
from tests.fakes.upstream import serve_upstream
from transforms.errors import GranuleReadError, SourceError
from transforms.granules import parse_granule_name
from transforms.grid import GridSpec
from transforms.structure import check_structure

DAY = dt.date(2020, 3, 2)
BBOX = (-10.0, 35.0, 30.0, 65.0)  # wide enough for granules of ~9 MB: larger than a 5 MiB part
FAST = RetryPolicy(attempts=5, backoff_s=0.0)
PART = 5 * 2**20  # S3's smallest part


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("archive")
    items = simulate_day(str(out), DAY, load_truth(None, start=DAY, end=DAY, bounds=BBOX), bounds=BBOX)
    write_archive_catalog(str(out), items)
    return out


@pytest.fixture
def upstream(archive: Path, tmp_path: Path) -> Path:
    """A private copy of the archive (tests rewrite its files)."""
    copy = tmp_path / "upstream"
    shutil.copytree(archive, copy)
    return copy


def _largest(archive: Path) -> Path:
    return max(archive.rglob("*.nc"), key=lambda p: p.stat().st_size)


def _href(api: str, name: str) -> str:
    return f"{api}files/{name}?sig=secret"


class FileSink:
    def __init__(self, path: Path) -> None:
        self.f = path.open("wb")

    def write(self, data: bytes, /) -> object:
        return self.f.write(data)

    def restart(self) -> None:
        self.f.seek(0)
        self.f.truncate()


def _fetch(api: str, src: Path, lake: Lake, **kw: object) -> tuple[str, object]:
    name = parse_granule_name(src.name)
    key = raw_key("no2", src.name, name.start.date().isoformat())
    data = src.read_bytes()
    result = fetch_granule(
        _href(api, src.name),
        lake,
        key,
        product="no2",
        expected_size=len(data),
        expected_sha256=hashlib.sha256(data).hexdigest(),
        policy=FAST,
        **kw,  # type: ignore[arg-type]
    )
    return key, result


def test_a_body_cut_three_times_resumes_and_arrives_once_verified(upstream: Path, tmp_path: Path) -> None:
    src = _largest(upstream)
    size = src.stat().st_size
    cut = 2 * CHUNK + 1000  # each answer (the first and two resumptions) breaks off after this many bytes
    assert 3 * cut < size
    served: Counter[str] = Counter()
    lake = open_lake(str(tmp_path / "lake"))
    with serve_upstream(
        upstream / "catalog.json", faults={src.name: ["cut@" + str(cut)] * 3}, served=served
    ) as api:
        key, result = _fetch(api, src, lake)
    assert result.ok and result.key == key  # type: ignore[attr-defined]
    assert Path(lake.path(key)).read_bytes() == src.read_bytes()
    assert not list(Path(lake.path("raw", ".partial")).iterdir())
    # a restart would have sent the 3 cut bodies again; resuming re-sends at most the partial read of each cut
    assert served[src.name] < size + 3 * cut
    assert size <= result.received <= served[src.name] <= size + 3 * CHUNK  # type: ignore[attr-defined]


def test_the_written_callback_sees_the_whole_file_once_after_resumptions(
    upstream: Path, tmp_path: Path
) -> None:
    """``download(written=...)`` (fetch_granule's readability check, overlapping the hash's last blocks) runs
    once, after the last byte is in the sink, even when the body was cut and resumed; its result is returned."""
    src = _largest(upstream)
    out = tmp_path / "out"
    seen: list[bytes] = []

    def written() -> str:
        sink.f.flush()
        seen.append(out.read_bytes())
        return "checked"

    with serve_upstream(upstream / "catalog.json", faults={src.name: [f"cut@{2 * CHUNK + 7}"] * 2}) as api:
        sink = FileSink(out)
        got = download(_href(api, src.name), sink, policy=FAST, sleep=lambda _s: None, written=written)
        sink.f.close()
    assert seen == [src.read_bytes()] and got.written == "checked" and got.resumed == 2
    assert got.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()


def test_a_failing_written_callback_fails_the_download_after_the_hash_settles(
    upstream: Path, tmp_path: Path
) -> None:
    def written() -> None:
        raise OSError("the check's disk is gone")

    with serve_upstream(upstream / "catalog.json") as api:
        sink = FileSink(tmp_path / "out")
        src = _largest(upstream)
        with pytest.raises(OSError, match="the check's disk is gone"):
            download(_href(api, src.name), sink, policy=FAST, written=written)
        sink.f.close()


def test_a_file_changed_upstream_between_attempts_starts_over(upstream: Path, tmp_path: Path) -> None:
    src = _largest(upstream)
    new = os.urandom(src.stat().st_size // 2)

    def republish(_wait: float) -> None:  # runs between the cut attempt and the next
        src.write_bytes(new)

    with serve_upstream(upstream / "catalog.json", faults={src.name: [f"cut@{3 * CHUNK}"]}) as api:
        sink = FileSink(tmp_path / "out")
        got = download(_href(api, src.name), sink, policy=FAST, sleep=republish)
        sink.f.close()
    assert (tmp_path / "out").read_bytes() == new
    assert got.sha256 == hashlib.sha256(new).hexdigest() and got.size == len(new)
    assert got.restarted == 1 and got.resumed == 0


def test_a_server_without_range_support_restarts(upstream: Path, tmp_path: Path) -> None:
    src = _largest(upstream)
    size = src.stat().st_size
    served: Counter[str] = Counter()
    with serve_upstream(
        upstream / "catalog.json", faults={src.name: [f"cut@{3 * CHUNK}"] * 2}, ranges=False, served=served
    ) as api:
        sink = FileSink(tmp_path / "out")
        got = download(_href(api, src.name), sink, policy=FAST, sleep=lambda _s: None)
        sink.f.close()
    assert (tmp_path / "out").read_bytes() == src.read_bytes()
    assert got.sha256 == hashlib.sha256(src.read_bytes()).hexdigest()
    assert got.restarted == 2 and got.resumed == 0
    assert served[src.name] == size + 2 * 3 * CHUNK


def test_a_signed_url_never_appears_in_a_failure(upstream: Path, tmp_path: Path) -> None:
    src = _largest(upstream)
    sink = FileSink(tmp_path / "out")
    with (
        serve_upstream(upstream / "catalog.json", faults={src.name: ["cut@10"] * 5}) as api,
        pytest.raises(SourceError) as err,
    ):
        download(_href(api, src.name), sink, policy=FAST, sleep=lambda _s: None)
    sink.f.close()
    assert "secret" not in str(err.value) and "failed after 5 attempts" in str(err.value)


def test_a_failing_sink_stops_the_download_with_its_error(upstream: Path) -> None:
    """Writing and hashing run on a worker thread: its error reaches the caller, and nothing hangs."""

    class FullDisk:
        def write(self, data: bytes, /) -> object:
            raise OSError(28, "No space left on device")

        def restart(self) -> None:
            raise AssertionError("not reached")

    src = _largest(upstream)
    with serve_upstream(upstream / "catalog.json") as api, pytest.raises(OSError, match="No space left"):
        download(_href(api, src.name), FullDisk(), policy=FAST)


# --- S3: multipart straight to the final key ---------------------------------------------------------------


@pytest.fixture
def s3_lake(s3_server: Service) -> Iterator[Lake]:
    env = s3_server.env
    settings = Settings(
        s3_endpoint_url=env["AWS_ENDPOINT_URL"],
        s3_key=SecretStr(env["AWS_ACCESS_KEY_ID"]),
        s3_secret=SecretStr(env["AWS_SECRET_ACCESS_KEY"]),
    )
    yield open_lake(f"s3://transfer-{secrets.token_hex(4)}/lake", settings=settings)


def _uploads(lake: Lake) -> list[dict[str, object]]:
    uploads: list[dict[str, object]] = lake.fs.list_multipart_uploads(lake.root.split("/")[0])
    return uploads


def _count_calls(lake: Lake, operation: str) -> list[str]:
    calls: list[str] = []
    lake.fs.s3.meta.events.register(f"before-call.s3.{operation}", lambda **_kw: calls.append(operation))
    return calls


def test_unfinished_uploads_are_listed_by_the_server(s3_lake: Lake) -> None:
    """The listing the other S3 tests rely on does show an upload in progress."""
    f = s3_lake.fs.open(s3_lake.path("probe.bin"), "wb", block_size=PART)
    f.write(os.urandom(PART + 1))  # one part goes up
    assert [u["Key"] for u in _uploads(s3_lake)] == ["lake/probe.bin"]
    f.discard()
    f.closed = True
    assert _uploads(s3_lake) == [] and not s3_lake.fs.exists(s3_lake.path("probe.bin"))


def test_a_granule_larger_than_a_part_streams_as_a_multipart_upload(upstream: Path, s3_lake: Lake) -> None:
    src = _largest(upstream)
    assert src.stat().st_size > PART
    parts = _count_calls(s3_lake, "UploadPart")
    completions = _count_calls(s3_lake, "CompleteMultipartUpload")
    with serve_upstream(upstream / "catalog.json", faults={src.name: ["cut@" + str(3 * CHUNK)]}) as api:
        key, result = _fetch(api, src, s3_lake, part_size=PART)
    assert result.ok  # type: ignore[attr-defined]
    assert s3_lake.fs.cat_file(s3_lake.path(key)) == src.read_bytes()
    assert len(parts) >= 2 and len(completions) == 1
    assert _uploads(s3_lake) == []
    assert not s3_lake.fs.exists(s3_lake.path("raw", ".partial"))  # no second copy anywhere


@pytest.mark.parametrize("fault", [None, "corrupt"])
def test_a_granule_smaller_than_a_part_goes_up_in_one_put(
    fault: str | None, upstream: Path, s3_lake: Lake
) -> None:
    """Upstream's size is below a part: no multipart upload at all; the verified bytes go up in one PutObject
    (whole or not at all), a corrupt body in none."""
    src = _largest(upstream)
    calls = {
        op: _count_calls(s3_lake, op)
        for op in ("PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload")
    }
    faults = {src.name: ["corrupt"]} if fault else {}
    with serve_upstream(upstream / "catalog.json", faults=faults, ranges=False) as api:
        key, result = _fetch(api, src, s3_lake, part_size=src.stat().st_size + 1)
    multipart = [c for op, c in calls.items() if op != "PutObject" and c]
    assert multipart == []  # (rclone answers NoSuchUpload to a listing on a bucket that never had one)
    if fault:
        assert not result.ok and "checksum mismatch" in str(result.reason)  # type: ignore[attr-defined]
        assert calls["PutObject"] == [] and not s3_lake.fs.exists(s3_lake.path(key))
    else:
        assert result.ok and len(calls["PutObject"]) == 1  # type: ignore[attr-defined]
        assert s3_lake.fs.cat_file(s3_lake.path(key)) == src.read_bytes()


@pytest.mark.parametrize("fault", ["corrupt", "cut"])
def test_a_failed_transfer_leaves_no_object_and_no_upload(fault: str, upstream: Path, s3_lake: Lake) -> None:
    """``corrupt``: every byte arrives, the checksum fails after parts went up; ``cut``: every attempt breaks
    off after more than a part."""
    src = _largest(upstream)
    parts = _count_calls(s3_lake, "UploadPart")
    aborts = _count_calls(s3_lake, "AbortMultipartUpload")
    faults = {src.name: ["corrupt"] if fault == "corrupt" else [f"cut@{PART + 2 * CHUNK}"] * 5}
    with serve_upstream(upstream / "catalog.json", faults=faults, ranges=fault == "corrupt") as api:
        if fault == "corrupt":
            key, result = _fetch(api, src, s3_lake, part_size=PART)
            assert not result.ok and "checksum mismatch" in str(result.reason)  # type: ignore[attr-defined]
            assert result.key is None  # type: ignore[attr-defined]
        else:
            with pytest.raises(SourceError, match="failed after 5 attempts"):
                _fetch(api, src, s3_lake, part_size=PART)
            key = raw_key("no2", src.name, parse_granule_name(src.name).start.date().isoformat())
    assert parts and aborts  # parts were uploaded, then the upload was aborted
    assert not s3_lake.fs.exists(s3_lake.path(key))
    assert _uploads(s3_lake) == []
    assert not s3_lake.fs.exists(s3_lake.path("quarantine"))


@pytest.mark.parametrize("where", ["local", "s3"])
def test_an_unreadable_granule_with_matching_checksum_is_quarantined_never_at_its_key(
    where: str, upstream: Path, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """Bytes that verify against what upstream published but that the reader cannot decode go to
    ``quarantine/`` with the reader's reason naming the file (not a temporary path); on S3 the upload to the
    final key is aborted and the checked local spool copy is what lands in quarantine, then deleted."""
    lake = request.getfixturevalue("s3_lake") if where == "s3" else open_lake(str(tmp_path / "lake"))
    src = _largest(upstream)
    data = src.read_bytes()
    src.write_bytes(data[:4096] + bytes(len(data) - 4096))  # HDF5 superblock intact, the rest zeros
    spools = set(Path(tempfile.gettempdir()).glob(f"eolake-*-{src.name}"))
    with serve_upstream(upstream / "catalog.json") as api:
        key, result = _fetch(api, src, lake, part_size=PART)
    assert not result.ok and result.key == f"quarantine/{src.name}"  # type: ignore[attr-defined]
    reason = str(result.reason)  # type: ignore[attr-defined]
    assert reason.startswith(f"unreadable: granule {src.name} ") and ".partial" not in reason, reason
    assert not lake.fs.exists(lake.path(key))
    assert lake.fs.cat_file(lake.path(result.key)) == src.read_bytes()  # type: ignore[attr-defined]
    if where == "s3":
        assert _uploads(lake) == []
    assert set(Path(tempfile.gettempdir()).glob(f"eolake-*-{src.name}")) == spools


# --- the check policy: structure when the published checksum matched, full decode otherwise ---------------

VALUE = "PRODUCT/nitrogendioxide_tropospheric_column"


@pytest.mark.parametrize("check", ["auto", "full"])
def test_a_scrambled_chunk_with_matching_checksum_passes_the_structural_check_only(
    check: str, upstream: Path, tmp_path: Path
) -> None:
    """Upstream published the scrambled bytes' checksum: under ``auto`` the structure is checked (groups,
    dims, chunks inside the file), nothing inflated, and the granule is kept for gridding to judge; ``full``
    decodes the pixel variables and quarantines it."""
    src = _largest(upstream)
    scramble_chunk(src, VALUE)
    lake = open_lake(str(tmp_path / "lake"))
    with serve_upstream(upstream / "catalog.json") as api:
        key, result = _fetch(api, src, lake, check=check)
    if check == "auto":
        assert result.ok and result.key == key  # type: ignore[attr-defined]
        assert lake.fs.cat_file(lake.path(key)) == src.read_bytes()
    else:
        assert not result.ok and result.key == f"quarantine/{src.name}"  # type: ignore[attr-defined]
        assert str(result.reason).startswith(f"unreadable: granule {src.name}")  # type: ignore[attr-defined]
        assert not lake.fs.exists(lake.path(key))


def test_without_a_published_checksum_auto_decodes(upstream: Path, tmp_path: Path) -> None:
    src = _largest(upstream)
    scramble_chunk(src, VALUE)
    lake = open_lake(str(tmp_path / "lake"))
    name = parse_granule_name(src.name)
    key = raw_key("no2", src.name, name.start.date().isoformat())
    with serve_upstream(upstream / "catalog.json") as api:
        result = fetch_granule(_href(api, src.name), lake, key, product="no2", policy=FAST, check="auto")
    assert not result.ok and result.key == f"quarantine/{src.name}"


def test_the_structural_check_names_what_is_missing_or_cut(upstream: Path, tmp_path: Path) -> None:
    src = _largest(upstream)
    assert check_decodes("structure", checksum_matched=False) is False
    assert check_decodes("full", checksum_matched=True) is True
    check_structure(str(src), product="no2")  # an intact granule passes
    cut = tmp_path / src.name
    cut.write_bytes(src.read_bytes()[: src.stat().st_size - 4096])
    with pytest.raises(GranuleReadError, match=src.name):
        check_structure(str(cut), product="no2")
    renamed = tmp_path / "renamed.nc"
    shutil.copy(src, renamed)
    with h5py.File(renamed, "r+") as f:
        del f["PRODUCT/SUPPORT_DATA/GEOLOCATIONS/longitude_bounds"]
    with pytest.raises(GranuleReadError, match="no variable longitude_bounds"):
        check_structure(str(renamed), product="no2")
    with pytest.raises(GranuleReadError, match="product mismatch"):
        check_structure(str(src), product="co")


def test_grid_time_quarantine_on_s3(upstream: Path, s3_lake: Lake) -> None:
    """On S3 too: a granule kept by the structural check but not decodable is left out of its day by
    ``grid_day`` and moved by ``quarantine_unreadable`` from its raw key to ``quarantine/`` (server-side copy,
    ledger, delete)."""
    src = _largest(upstream)
    scramble_chunk(src, VALUE)
    publish(upstream, src.name)
    with serve_upstream(upstream / "catalog.json") as api:
        granules = find_granules(api, product="no2", start=DAY, end=DAY)
        rows = [harvest_granule(g, s3_lake, source=api) for g in granules]
    assert all(r["status"] == "harvested" for r in rows)
    upsert_granules(s3_lake, rows)
    gid = src.name.removesuffix(".nc")
    bad = next(r for r in rows if r["granule_id"] == gid)
    spec = cube_spec("no2", GridSpec.snapped(1.0, BBOX))
    prepare_cube(s3_lake, spec, first=DAY)
    row = grid_day(s3_lake, spec, DAY)
    assert list(row["unreadable"]) == [gid] and gid not in row["granules"] and row["granules"]
    assert row["unreadable"][gid].startswith("unreadable at grid time: ")
    assert quarantine_unreadable(s3_lake, row["unreadable"]) == [(gid, row["unreadable"][gid])]
    ledger = read_granules(s3_lake).set_index("granule_id")
    assert ledger.loc[gid, "status"] == "quarantined" and ledger.loc[gid, "key"] == f"quarantine/{src.name}"
    assert not s3_lake.fs.exists(s3_lake.path(bad["key"]))
    assert s3_lake.fs.cat_file(s3_lake.path("quarantine", src.name)) == src.read_bytes()
