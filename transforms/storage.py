"""Writing objects through a handed-in fsspec filesystem so readers never see a partial object."""

from __future__ import annotations

import os
import posixpath
import uuid

import fsspec


def is_local(fs: fsspec.AbstractFileSystem) -> bool:
    protocol = fs.protocol if isinstance(fs.protocol, str) else fs.protocol[0]
    return protocol in {"file", "local"}


def put_atomic(fs: fsspec.AbstractFileSystem, path: str, data: bytes) -> None:
    """Put ``data`` at ``path``: local files are written to a temporary sibling, synced and renamed over the
    target; object stores get a single PUT, which is atomic there."""
    if is_local(fs):
        os.makedirs(posixpath.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return
    fs.pipe_file(path, data)
    fs.invalidate_cache(posixpath.dirname(path))
