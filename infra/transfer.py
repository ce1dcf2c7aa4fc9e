"""Copy a granule byte-identically from upstream into the lake, verifying it before it becomes visible.

Bytes stream (8 MiB blocks) into ``raw/.partial/`` while their SHA-256 is computed; the size and checksum are
compared with what upstream published, the file is opened with the product reader, and only then is it moved
under its final key. A file that fails goes to ``quarantine/`` instead, so a partial or corrupt object is never
visible under a ``raw/`` key.
"""

from __future__ import annotations

import hashlib
import posixpath
import uuid
from dataclasses import dataclass

import fsspec

from infra.http import UpstreamAuthError, download
from infra.sources import redact_url
from infra.storage import Lake
from transforms.errors import GranuleReadError, SourceError
from transforms.s5p import open_observations

BLOCK = 8 * 2**20


@dataclass(frozen=True)
class TransferResult:
    key: str  # where the bytes now are (raw/... or quarantine/...)
    size: int
    sha256: str
    ok: bool
    reason: str | None = None


def raw_key(product: str, granule_filename: str, day: str) -> str:
    """``raw/s5p/<product>/YYYY/MM/DD/<file>`` (``day`` as YYYY-MM-DD of the granule start)."""
    y, m, d = day.split("-")
    return posixpath.join("raw", "s5p", product, y, m, d, granule_filename)


def _move(lake: Lake, src: str, dst: str) -> None:
    lake.fs.makedirs(posixpath.dirname(dst), exist_ok=True)
    lake.fs.mv(src, dst)


def fetch_granule(
    href: str,
    lake: Lake,
    key: str,
    *,
    product: str,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    headers: dict[str, str] | None = None,
    credential_hint: str = "the source's credentials",
) -> TransferResult:
    """Stream ``href`` into the lake at ``key``; verify; quarantine on failure. Raises SourceError only when
    the source cannot be read at all (the caller decides whether to retry)."""
    partial = lake.path("raw", ".partial", f"{uuid.uuid4().hex}-{posixpath.basename(key)}")
    try:
        if href.startswith(("http://", "https://")):
            size, sha = download(
                href, lambda: lake.fs.open(partial, "wb"), headers=headers, credential_hint=credential_hint
            )
        else:
            size, sha = _copy(href, lake, partial)
    except FileNotFoundError as exc:
        _discard(lake, partial)
        raise SourceError(f"upstream file {redact_url(href)} is missing") from exc
    except (SourceError, UpstreamAuthError):
        _discard(lake, partial)
        raise
    except Exception as exc:
        _discard(lake, partial)
        raise SourceError(f"download of {redact_url(href)} failed: {type(exc).__name__}: {exc}") from exc

    reason = None
    if expected_size is not None and size != expected_size:
        reason = f"size mismatch: got {size} bytes, upstream says {expected_size} (truncated download?)"
    elif expected_sha256 is not None and sha != expected_sha256:
        reason = f"checksum mismatch: sha256 {sha} != upstream {expected_sha256}"
    else:
        try:
            with lake.fs.open(partial, "rb") as f:
                obs = open_observations(f, product=product)
                obs.close()
        except GranuleReadError as exc:
            reason = f"unreadable: {exc}"
    if reason is None:
        _move(lake, partial, lake.path(key))
        return TransferResult(key, size, sha, True)
    qkey = posixpath.join("quarantine", posixpath.basename(key))
    _move(lake, partial, lake.path(qkey))
    return TransferResult(qkey, size, sha, False, reason)


def _copy(href: str, lake: Lake, partial: str) -> tuple[int, str]:
    """Stream a file-system or object-store ``href`` (anything fsspec opens) into ``partial``."""
    digest = hashlib.sha256()
    size = 0
    with fsspec.open(href, "rb") as src, lake.fs.open(partial, "wb") as dst:
        while block := src.read(BLOCK):
            digest.update(block)
            dst.write(block)
            size += len(block)
    return size, digest.hexdigest()


def _discard(lake: Lake, path: str) -> None:
    try:
        if lake.fs.exists(path):
            lake.fs.rm(path)
    except OSError:
        pass
