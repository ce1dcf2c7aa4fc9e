"""Write the lake's Intake 2 catalog (``<lake>/catalog.yaml``) from what the STAC catalog describes.

Paths are written relative to the catalog (``{CATALOG_DIR}``), so the same file works on local disk and on
S3, and holds no credentials: S3 access comes from the reader's environment (``AWS_*`` variables).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import fsspec
import yaml

from transforms.storage import put_atomic


@dataclass(frozen=True)
class CubeEntry:
    name: str  # entry name, e.g. "s5p_no2_l3_daily_0p1deg_global"
    key: str  # store key relative to the lake root, e.g. "cubes/s5p-no2/0p1deg-global.zarr"
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TableEntry:
    name: str  # e.g. "emissions" or "emissions_20260101T000000Z"
    key: str  # Parquet dataset directory relative to the lake root
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)


def build_intake_catalog(
    cubes: list[CubeEntry], tables: list[TableEntry], *, description: str
) -> dict[str, Any]:
    """The catalog as a dict in Intake 2's YAML layout."""
    from intake.readers.datatypes import Parquet, Zarr
    from intake.readers.entry import Catalog
    from intake.readers.readers import PandasParquet, XArrayDatasetReader

    cat = Catalog(metadata={"description": description, "generator": "eolake"})
    for c in cubes:
        data = Zarr(url=f"{{CATALOG_DIR}}/{c.key}", metadata=dict(c.metadata))
        reader = XArrayDatasetReader(
            data,
            engine="zarr",
            chunks={},
            consolidated=True,
            metadata={"description": c.description, **c.metadata},
        )
        cat.give_name(cat.add_entry(reader), c.name)
    for t in tables:
        reader = PandasParquet(
            Parquet(url=f"{{CATALOG_DIR}}/{t.key}", metadata=dict(t.metadata)),
            metadata={"description": t.description, **t.metadata},
        )
        cat.give_name(cat.add_entry(reader), t.name)
    doc: dict[str, Any] = cat.to_dict()
    return doc


def write_intake_catalog(fs: fsspec.AbstractFileSystem, path: str, doc: dict[str, Any]) -> None:
    """Write ``doc`` as YAML at ``path`` atomically."""
    put_atomic(fs, path, yaml.safe_dump(doc, sort_keys=True).encode())
