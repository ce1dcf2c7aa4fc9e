"""Damage done to a granule the way upstream can publish it: bytes scrambled inside one stored chunk of a
variable (the file opens, its structure is intact, the chunk no longer inflates), and the archive's STAC item
updated to publish the damaged bytes' size and SHA-256 (so a harvest's checksum matches them)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import h5py


def scramble_chunk(path: Path, variable: str) -> None:
    """Invert 256 bytes in the middle of the first stored chunk of ``variable`` (e.g.
    ``PRODUCT/nitrogendioxide_tropospheric_column``), in place; the file keeps its length."""
    with h5py.File(path, "r") as f:
        ds = f[variable]
        assert ds.chunks is not None and ds.compression, f"{variable} is not a compressed chunked variable"
        info = ds.id.get_chunk_info(0)
    start = info.byte_offset + info.size // 2 - 128
    with path.open("r+b") as fh:
        fh.seek(start)
        block = fh.read(256)
        fh.seek(start)
        fh.write(bytes(b ^ 0xFF for b in block))


def publish(archive: Path, filename: str) -> None:
    """Make the archive's item for ``filename`` publish the file's current size and SHA-256."""
    path = next(archive.rglob(filename))
    data = path.read_bytes()
    for item_path in archive.rglob("*.json"):
        doc = json.loads(item_path.read_text())
        if doc.get("type") != "Feature":
            continue
        for asset in doc["assets"].values():
            if asset["href"].endswith(filename):
                asset["file:size"] = len(data)
                asset["file:checksum"] = "1220" + hashlib.sha256(data).hexdigest()
                item_path.write_text(json.dumps(doc))
