"""``eolake open <dataset>``: print the Python lines that open a dataset of the lake, without eolake.

The datasets are the entries of the lake's generated ``catalog.yaml`` (a cube, an emissions release,
``emissions`` for the latest, ``stac``); a STAC collection id or a release id names the same entry. The output
is a runnable script: an intake variant, a plain xarray/pandas/pyarrow/DuckDB variant and a pystac-client one.
"""

from __future__ import annotations

import argparse
from typing import Any

from flows.cli import _fail, _lake, add_lake

FSSPEC_STAC_IO = [
    "import fsspec",
    "from pystac_client.stac_api_io import StacApiIO",
    "",
    "",
    "class FsspecStacIO(StacApiIO):  # pystac-client reads http(s) and local files; fsspec adds s3://",
    "    def request(self, href, *args, **kwargs):",
    "        with fsspec.open(str(href), 'rt') as f:",
    "            return f.read()",
    "",
    "",
]


def load_entries(lake: Any) -> dict[str, dict[str, Any]]:
    """Entry name → its metadata, from the lake's ``catalog.yaml``."""
    import yaml

    from infra.publish import INTAKE_KEY

    path = lake.path(INTAKE_KEY)
    if not lake.fs.exists(path):
        _fail(
            f"no {INTAKE_KEY} in {lake.url}: run `eolake publish --lake {lake.url}` (or `eolake demo`) first"
        )
    doc = yaml.safe_load(lake.fs.cat_file(path))
    return {name: doc["entries"][tok].get("metadata", {}) for name, tok in doc["aliases"].items()}


def resolve(entries: dict[str, dict[str, Any]], dataset: str) -> str:
    """The entry name for ``dataset``: an entry name, a STAC collection id, a release id or a STAC item id."""
    if dataset in entries:
        return dataset
    for name, meta in sorted(entries.items()):
        if meta.get("kind") == "cube" and dataset == meta.get("stac_collection"):
            return name
        if (
            meta.get("kind") == "table"
            and name != "emissions"
            and dataset
            in (
                meta.get("release"),
                meta.get("stac_item"),
            )
        ):
            return name
    choices = ", ".join(sorted(entries))
    _fail(f"unknown dataset {dataset!r}: choose one of {choices} (or a STAC collection or release id)")


def cube_lines(lake_url: str, name: str, meta: dict[str, Any], stac_api: str | None) -> list[str]:
    url, cid = f"{lake_url}/{meta['path']}", meta["stac_collection"]
    start, end = meta.get("temporal_extent", ["2020-03-02", "2020-03-08"])
    w, s, e, n = meta.get("spatial_extent", [-180, -90, 180, 90])
    return [
        "# intake (pip install intake xarray zarr dask [s3fs]); lazy, dask-backed",
        "import intake",
        "",
        f"cat = intake.open_catalog({lake_url + '/catalog.yaml'!r})",
        f"ds = cat[{name!r}].read()",
        f"ds = cat(start={start!r}, end={end!r}, bbox=[{w}, {s}, {e}, {n}])[{name!r}].read()  # subset",
        "",
        "# xarray",
        "import xarray as xr",
        "",
        f"ds = xr.open_zarr({url!r}, zarr_format=3, consolidated=True)",
        f"ds = ds.sel(time=slice({start!r}, {end!r}))  # the time axis starts at the mission start",
        "",
        *_pystac_client(lake_url, stac_api),
        f"collection = client.get_collection({cid!r})",
        "asset = collection.assets['zarr']",
        "ds = xr.open_dataset(asset.get_absolute_href(), **asset.extra_fields['xarray:open_kwargs'])",
        *(
            [
                f"found = client.search(collections=[{cid!r}], datetime={start + '/' + end!r})",
                "items = found.item_collection_as_dict()['features']  # hrefs as the API serves them",
                "days = [item['properties']['start_datetime'][:10] for item in items]",
                "open_kwargs = items[0]['assets']['zarr']['xarray:open_kwargs']  # on every cube-day item",
            ]
            if stac_api
            else []
        ),
    ]


def table_lines(lake_url: str, name: str, meta: dict[str, Any], stac_api: str | None) -> list[str]:
    url = f"{lake_url}/{meta['path']}"
    every = url.rsplit("/", 1)[0]
    remote = "://" in lake_url
    protocol = lake_url.split("://", 1)[0] if remote else "file"
    duck = (
        [
            "con = duckdb.connect()",
            f"con.register_filesystem(fsspec.filesystem({protocol!r}))  # through fsspec: no httpfs download",
        ]
        if remote
        else ["con = duckdb.connect()"]
    )
    return [
        "# intake (pip install intake pandas pyarrow [s3fs]); MtCO2/day",
        "import intake",
        "",
        f"cat = intake.open_catalog({lake_url + '/catalog.yaml'!r})",
        f"df = cat[{name!r}].read()",
        "",
        "# pandas, pyarrow and DuckDB on the Parquet files",
        "import duckdb",
        "import fsspec",
        "import pandas as pd",
        "import pyarrow.parquet as pq",
        "",
        f"df = pd.read_parquet({url!r})",
        f"table = pq.read_table({url.split('://', 1)[-1]!r}, filesystem=fsspec.filesystem({protocol!r}))",
        f"everything = pd.read_parquet({every!r})  # every release, hive column `release`",
        *duck,
        f"df = con.sql(\"SELECT * FROM read_parquet('{url}/[!_]*.parquet')\").df()  # not _-prefixed side files",
        "",
        *_pystac_client(lake_url, stac_api),
        f"item = client.get_collection({meta['stac_collection']!r}).get_item({meta['stac_item']!r})",
        "df = pd.read_parquet(item.assets['data'].get_absolute_href())",
    ]


PYSTAC_FSSPEC_IO = [
    "import fsspec",
    "from pystac.stac_io import DefaultStacIO, StacIO",
    "",
    "",
    "class FsspecPystacIO(DefaultStacIO):  # pystac reads s3:// through fsspec",
    "    def read_text(self, source, *args, **kwargs):",
    "        with fsspec.open(str(source), 'rt') as f:",
    "            return f.read()",
    "",
    "",
    "StacIO.set_default(FsspecPystacIO)",
]


def stac_lines(lake_url: str, name: str, stac_api: str | None) -> list[str]:
    remote = "://" in lake_url and not lake_url.startswith(("http://", "https://"))
    return [
        "# intake (also pip install pystac requests)",
        *(PYSTAC_FSSPEC_IO if remote else []),
        "import intake",
        "",
        f"cat = intake.open_catalog({lake_url + '/catalog.yaml'!r})",
        f"stac = cat[{name!r}].read()  # an intake catalog of the STAC collections / found items",
        "",
        *_pystac_client(lake_url, stac_api),
        "collections = [c.id for c in client.get_collections()]",
    ]


def _pystac_client(lake_url: str, stac_api: str | None) -> list[str]:
    if stac_api:
        return [
            "# pystac-client on the lake's STAC API",
            "from pystac_client import Client",
            "",
            f"client = Client.open({stac_api!r})",
        ]
    root = f"{lake_url}/stac/catalog.json"
    if "://" in lake_url and not lake_url.startswith(("http://", "https://")):
        return [
            "# pystac-client on the static catalog",
            *FSSPEC_STAC_IO,
            "from pystac_client import Client",
            "",
            f"client = Client.open({root!r}, stac_io=FsspecStacIO())",
        ]
    return [
        "# pystac-client on the static catalog",
        "from pystac_client import Client",
        "",
        f"client = Client.open({root!r})",
    ]


def open_lines(lake_url: str, name: str, meta: dict[str, Any], stac_api: str | None = None) -> list[str]:
    kind = meta.get("kind")
    if kind == "cube":
        return cube_lines(lake_url, name, meta, stac_api)
    if kind == "table":
        return table_lines(lake_url, name, meta, stac_api)
    return stac_lines(lake_url, name, stac_api)


def cmd_open(args: argparse.Namespace) -> None:
    lake = _lake(args.lake, create=False)
    entries = load_entries(lake)
    name = resolve(entries, args.dataset)
    print("\n".join(open_lines(lake.url, name, entries[name], args.stac_api)))


def register(sub: Any) -> None:
    o = sub.add_parser(
        "open", help="print the Python lines that open a dataset (intake, xarray, pystac-client)"
    )
    o.add_argument(
        "dataset", help="an entry of catalog.yaml (e.g. emissions), a STAC collection or release id"
    )
    o.add_argument("--stac-api", help="the lake's STAC API root, for the pystac-client search variant")
    add_lake(o)
    o.set_defaults(func=cmd_open)
