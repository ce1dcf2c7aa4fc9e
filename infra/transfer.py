"""Copy a granule byte-identically from upstream into the lake, verifying it before it becomes visible.

Bytes stream once, straight to where they will stay, while their SHA-256 is computed (cut bodies resume with
range requests, see :mod:`infra.http`):

- on a local lake into ``raw/.partial/<uuid>-<file>``, fsynced and renamed (``os.replace``) onto the final key
  (the kernel is asked to start writing each block to disk as it is written, so the fsync waits for little);
- on S3 into the final key as a multipart upload (parts of ``part_size`` bytes go up as they fill), which the
  store makes visible only when it is completed; the same bytes also go to a local spool file, deleted after.
  A file upstream says is smaller than a part goes only to the spool and then up in one PUT (atomic as well:
  an object appears whole or not at all), one request instead of a multipart upload's three.

Size and checksum are compared with what upstream published *before* the rename or the completion; on a
mismatch or any failure the temporary file is deleted or the multipart upload aborted, so a partial or
corrupt object never appears under a ``raw/`` key (nor anywhere else). A file whose bytes verify but that
fails the readability check goes to ``quarantine/`` instead of its final key: on a local lake by renaming the
temporary file there; on S3 by aborting the upload and putting the local spool copy there (the check reads
that copy, by path, before the upload is completed; it needs a local path, hence the spool).

The readability check (``EOLAKE_HARVEST_CHECK``, :func:`check_decodes`): bytes equal to what upstream
published (its SHA-256 matched) get a structural check — S5P groups, variables, dims, every stored chunk
inside the file, nothing inflated (:mod:`transforms.structure`) — and gridding quarantines a granule it then
cannot decode (:func:`infra.cubes.quarantine_unreadable`); without a published checksum the pixel variables
are decoded (``full``). Other product families (small files) are always read by their reader. The check runs
as soon as the last byte is written, while the SHA-256 of the last blocks is still being computed; bytes that
then fail size or checksum are discarded whatever it said.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import posixpath
import sys
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any, cast

import fsspec

from infra.http import RetryPolicy, UpstreamAuthError, download, new_digests
from infra.settings import HarvestCheck
from infra.sources import redact_url
from infra.storage import Lake
from infra.workers import Background
from transforms.errors import GranuleReadError, SourceError
from transforms.products import get_product

BLOCK = 8 * 2**20
"""Read size when copying from a file system or object store."""
PART_SIZE = 16 * 2**20
"""S3 multipart part size (S3's minimum is 5 MiB); one part is held in memory per transfer."""


@dataclass(frozen=True)
class TransferResult:
    key: str | None  # where the bytes now are (raw/... or quarantine/...); None when they were discarded
    size: int
    sha256: str
    ok: bool
    reason: str | None = None
    received: int = 0  # bytes that came over the network, all attempts together


def raw_key(product: str, granule_filename: str, day: str) -> str:
    """``raw/<mission>/<product>/YYYY/MM/DD/<file>`` (``day`` as YYYY-MM-DD of the granule start), e.g.
    ``raw/s5p/no2/...`` or ``raw/oco2/oco2-xco2/...``."""
    y, m, d = day.split("-")
    return posixpath.join("raw", get_product(product).mission, product, y, m, d, granule_filename)


class _LocalTarget:
    """A temporary file next to the lake's raw zone, renamed onto the final path on commit."""

    def __init__(self, lake: Lake, path: str) -> None:
        self.path = path
        self.tmp = lake.path("raw", ".partial", f"{uuid.uuid4().hex}-{posixpath.basename(path)}")
        os.makedirs(posixpath.dirname(self.tmp), exist_ok=True)
        self.file: IO[bytes] = open(self.tmp, "wb")  # noqa: SIM115 - closed by commit/abort
        self._sync: Background | None = None

    def write(self, data: bytes, /) -> object:
        n = self.file.write(data)
        _start_writeback(self.file)
        return n

    def restart(self) -> None:
        self.file.seek(0)
        self.file.truncate()

    def readable_copy(self) -> str:
        """Flush, and start the fsync on a thread: it overlaps the readability check, :meth:`commit` waits."""
        self.file.flush()
        if self._sync is None:
            self._sync = Background(os.fsync, self.file.fileno())
        return self.tmp

    def commit(self, dest: str | None = None) -> None:
        self.file.flush()
        sync, self._sync = self._sync, None
        if sync is None:
            os.fsync(self.file.fileno())
        else:
            sync.wait()
        self.file.close()
        dest = dest or self.path
        os.makedirs(posixpath.dirname(dest), exist_ok=True)
        os.replace(self.tmp, dest)

    def abort(self) -> None:
        sync, self._sync = self._sync, None
        if sync is not None:
            with contextlib.suppress(OSError):
                sync.wait()
        self.file.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.tmp)


_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of the range's dirty pages, do not wait for it


@functools.cache
def _sync_file_range() -> Callable[[int, int, int, int], int]:
    """libc's ``sync_file_range`` on Linux; elsewhere a no-op (the fsync does it all)."""
    if not sys.platform.startswith("linux"):
        return lambda fd, offset, nbytes, flags: 0
    fn = ctypes.CDLL(None, use_errno=True).sync_file_range
    fn.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    fn.restype = ctypes.c_int
    return cast(Callable[[int, int, int, int], int], fn)


def _start_writeback(file: IO[bytes]) -> None:
    """Have the kernel start writing ``file``'s dirty pages to disk now, without waiting
    (``sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE)``), so the disk writes overlap the rest of the download
    and the fsync before the rename has little left to wait for."""
    file.flush()
    _sync_file_range()(file.fileno(), 0, 0, _SYNC_FILE_RANGE_WRITE)  # a failure only leaves it to the fsync


class _S3Target:
    """A multipart upload to the final key: invisible until completed, aborted on failure. The same bytes also
    go to a local spool file, which the readability check reads (from the page cache) while the last part
    goes up; the upload is completed only after the check passed. The spool is deleted on commit or abort."""

    def __init__(self, lake: Lake, path: str, part_size: int) -> None:
        self.fs, self.path, self.part_size = lake.fs, path, part_size
        fd, self.spool = tempfile.mkstemp(prefix="eolake-", suffix=f"-{posixpath.basename(path)}")
        self.local: IO[bytes] = os.fdopen(fd, "wb")
        self._last: Background | None = None
        self._start: Background | None = None
        try:
            self.file: Any = self._open()
        except BaseException:
            self._drop_spool()
            raise

    def _open(self) -> Any:
        # autocommit=False: even a file smaller than a part goes up as a (one-part) multipart upload, which
        # stays invisible until commit() completes it. The upload is created on a thread while the first
        # bytes arrive (one round-trip off the transfer); :meth:`_started` waits for it before any part.
        f = self.fs.open(self.path, "wb", block_size=self.part_size, autocommit=False)
        self._start = Background(self._create_upload, f)
        return f

    @staticmethod
    def _create_upload(f: Any) -> None:
        f._initiate_upload()  # what fsspec's first flush does (offset None → 0, then initiate)
        f.offset = 0

    def _started(self) -> None:
        start, self._start = self._start, None
        if start is not None:
            start.wait()

    def write(self, data: bytes, /) -> object:
        self.local.write(data)
        if self._start is not None and self.file.buffer.tell() + len(data) >= self.part_size:
            self._started()  # this write uploads a part
        return self.file.write(data)

    def restart(self) -> None:
        self._discard()
        self.local.seek(0)
        self.local.truncate()
        self.file = self._open()

    def readable_copy(self) -> str:
        """Flush the spool, and upload the remaining bytes as the last part on a thread meanwhile."""
        self.local.flush()
        if self._last is None:
            self._started()
            self._last = Background(self.file.flush, True)
        return self.spool

    def commit(self, dest: str | None = None) -> None:
        """Complete the upload; with ``dest``, abort it and upload the spooled copy to ``dest`` instead (a
        quarantined file never appears at the final key)."""
        try:
            if dest is None:
                self._started()
                last, self._last = self._last, None
                if last is None:
                    self.file.flush(force=True)
                else:
                    last.wait()
                self.file.commit()
                self.file.close()
            else:
                self._discard()
                self.local.flush()
                self.fs.put_file(self.spool, dest)
        finally:
            self._drop_spool()

    def abort(self) -> None:
        try:
            self._discard()
        finally:
            self._drop_spool()

    def _discard(self) -> None:
        """Abort the upload (once its last part is no longer going up); never complete it."""
        with contextlib.suppress(Exception):
            self._started()
        last, self._last = self._last, None
        if last is not None:
            with contextlib.suppress(Exception):
                last.wait()
        if self.file.closed:
            return
        try:
            self.file.discard()
        finally:
            self.file.closed = True  # so that garbage collection does not close it

    def _drop_spool(self) -> None:
        self.local.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.spool)


class _S3PutTarget:
    """A file smaller than a part: spooled locally, checked there, then put to its key in one PUT on commit
    (nothing is sent before, so there is nothing to abort)."""

    def __init__(self, lake: Lake, path: str) -> None:
        self.fs, self.path = lake.fs, path
        fd, self.spool = tempfile.mkstemp(prefix="eolake-", suffix=f"-{posixpath.basename(path)}")
        self.local: IO[bytes] = os.fdopen(fd, "wb")

    def write(self, data: bytes, /) -> object:
        return self.local.write(data)

    def restart(self) -> None:
        self.local.seek(0)
        self.local.truncate()

    def readable_copy(self) -> str:
        self.local.flush()
        return self.spool

    def commit(self, dest: str | None = None) -> None:
        """Put the spooled bytes to the final key (or to ``dest``, a quarantine key) in one PUT."""
        try:
            self.local.close()
            self.fs.put_file(self.spool, dest or self.path)
        finally:
            self.abort()

    def abort(self) -> None:
        self.local.close()
        with contextlib.suppress(FileNotFoundError):
            os.remove(self.spool)


Target = _LocalTarget | _S3Target | _S3PutTarget


def open_target(
    lake: Lake, path: str, *, part_size: int = PART_SIZE, expected_size: int | None = None
) -> Target:
    """Where a transfer's bytes go: a temporary file renamed into place (local lake), one PUT of a spooled
    file (S3, ``expected_size`` below ``part_size``) or a multipart upload (S3, larger or unknown sizes)."""
    if lake.protocol == "file":
        return _LocalTarget(lake, path)
    if expected_size is not None and expected_size < part_size:
        return _S3PutTarget(lake, path)
    return _S3Target(lake, path, part_size)


def fetch_granule(
    href: str,
    lake: Lake,
    key: str,
    *,
    product: str,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    expected_md5: str | None = None,
    part_size: int = PART_SIZE,
    policy: RetryPolicy | None = None,
    headers: dict[str, str] | None = None,
    credential_hint: str = "the source's credentials",
    check: HarvestCheck | None = None,
) -> TransferResult:
    """Stream ``href`` into the lake at ``key``; verify; discard or quarantine on failure (see module doc).
    ``headers`` (a source's auth) go with every request; ``credential_hint`` names the setting to fix on a
    401/403 (raised as UpstreamAuthError). ``check``: the readability check's policy (default the
    ``EOLAKE_HARVEST_CHECK`` setting; see :func:`check_decodes`). Raises SourceError only when the source
    cannot be read at all (the caller decides whether to retry)."""
    final = lake.path(key)
    target = open_target(lake, final, part_size=part_size, expected_size=expected_size)
    full = check_decodes(check, checksum_matched=expected_sha256 is not None or expected_md5 is not None)

    def readability() -> str | None:
        return _unreadable(target.readable_copy(), product, key, full=full)

    try:
        if href.startswith(("http://", "https://")):
            # the readability check runs as soon as every byte is written, while the hashes finish
            got = download(
                href,
                target,
                policy=policy,
                headers=headers,
                credential_hint=credential_hint,
                written=readability,
                md5=expected_md5 is not None,
            )
            size, sha, md5, received, unreadable = got.size, got.sha256, got.md5, got.received, got.written
        else:
            size, sha, md5 = _copy(href, target, md5=expected_md5 is not None)
            received, unreadable = size, readability()
        # bytes that do not match what upstream published are discarded, whatever the check said of them
        reason = _mismatch(size, sha, md5, expected_size, expected_sha256, expected_md5)
        if reason is None and isinstance(unreadable, str):
            reason, qkey = unreadable, quarantine_key(key)
            target.commit(lake.path(qkey))
            return TransferResult(qkey, size, sha, False, reason, received)
        if reason is not None:
            target.abort()
            return TransferResult(None, size, sha, False, reason, received)
        target.commit()
    except BaseException as exc:
        _abort_quietly(target)
        if isinstance(exc, FileNotFoundError):
            raise SourceError(f"upstream file {redact_url(href)} is missing") from exc
        if isinstance(exc, (SourceError, UpstreamAuthError)) or not isinstance(exc, Exception):
            raise
        raise SourceError(f"download of {redact_url(href)} failed: {type(exc).__name__}: {exc}") from exc
    return TransferResult(key, size, sha, True, None, received)


def _mismatch(
    size: int,
    sha: str,
    md5: str | None,
    expected_size: int | None,
    expected_sha256: str | None,
    expected_md5: str | None,
) -> str | None:
    if expected_size is not None and size != expected_size:
        return f"size mismatch: got {size} bytes, upstream says {expected_size} (truncated download?)"
    if expected_sha256 is not None and sha != expected_sha256:
        return f"checksum mismatch: sha256 {sha} != upstream {expected_sha256}"
    if expected_md5 is not None and md5 != expected_md5:
        return f"checksum mismatch: md5 {md5} != upstream {expected_md5}"
    return None


def check_decodes(check: HarvestCheck | None, *, checksum_matched: bool) -> bool:
    """Whether the readability check decodes the data (``full``) rather than checking structure only: always
    for ``full``, never for ``structure``, and for ``auto`` (the default, ``check=None`` reads the setting)
    only when upstream published no checksum — bytes equal to what upstream published are checked for
    structure, and gridding quarantines a granule it then cannot decode."""
    if check is None:
        from infra.settings import get_settings

        check = get_settings().harvest_check
    return check == "full" or (check == "auto" and not checksum_matched)


def _unreadable(path: str, product: str, key: str, *, full: bool = True) -> str | None:
    """Why the local file at ``path`` (the verified bytes, just written) cannot be read as gridding reads it,
    or None. S5P, ``full``: the lean pixel read (:func:`transforms.s5p.read_pixels`) of every variable any
    gridding method uses — value, precision, qa, latitude/longitude, their corners and scan times — each
    decoded whole, without building a Dataset; S5P, not ``full``: their structure, nothing inflated
    (:func:`transforms.structure.check_structure`); other families (small files): their reader. Opened by path
    (HDF5's own file driver). The reason names the granule's file, not the temporary path."""
    spec = get_product(product)
    try:
        if spec.family == "s5p" and not full:
            from transforms.structure import check_structure  # h5py imports: not for --plan

            check_structure(path, product=spec)
        elif spec.family == "s5p":
            from transforms.s5p import read_pixels  # xarray/h5py imports: not for --plan

            read_pixels(path, product=spec, corners=True)
        else:
            from transforms.observations import open_observations

            open_observations(path, product=spec).close()
    except GranuleReadError as exc:
        return f"unreadable: {str(exc).replace(path, posixpath.basename(key))}"
    return None


def quarantine_key(key: str) -> str:
    """``quarantine/<file>`` for the granule at ``raw/.../<file>``."""
    return posixpath.join("quarantine", posixpath.basename(key))


def _abort_quietly(target: Target) -> None:
    # the original error is what matters; an upload left behind is reclaimed by the bucket's lifecycle rule
    with contextlib.suppress(Exception):
        target.abort()


def _copy(href: str, target: Target, *, md5: bool = False) -> tuple[int, str, str | None]:
    """Stream a file-system or object-store ``href`` (anything fsspec opens) into ``target``: its size, SHA-256
    and (with ``md5``) MD5."""
    digests = new_digests(md5)
    size = 0
    with fsspec.open(href, "rb") as src:
        while block := src.read(BLOCK):
            for d in digests.values():
                d.update(block)
            target.write(block)
            size += len(block)
    return size, digests["sha256"].hexdigest(), digests["md5"].hexdigest() if md5 else None
