"""The README's demo, end to end on a tiny domain, on local disk and on a real S3 server; its artefacts are
opened in a fresh process with plain xarray, pystac and intake (no eolake import)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest

from infra.dask_processes import start_dask
from infra.services import Service
from tests.conftest import latest_artifact

BBOX = "4,47,12,53"
ARGS = ["--start", "2020-03-02", "--end", "2020-03-03", "--bbox", BBOX, "--resolution", "0.25"]


def _run_plain(code: str, cwd: Path, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in a new interpreter that must not import eolake's packages; it prints one JSON line."""
    guard = textwrap.dedent(
        """
        import sys, json, warnings
        warnings.simplefilter("ignore")
        sys.path = [p for p in sys.path if p not in ("", ".")]
        """
    )
    tail = textwrap.dedent(
        """
        leaked = [m for m in ("flows", "transforms", "catalog", "infra") if m in sys.modules]
        assert not leaked, leaked
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", guard + textwrap.dedent(code) + tail],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


OPEN_ALL = """
import xarray as xr, pystac, intake, pandas as pd, fsspec
from pystac.stac_io import DefaultStacIO, StacIO

class FsspecStacIO(DefaultStacIO):  # pystac's documented recipe for s3:// (docs/analysis.md)
    def read_text(self, source, *args, **kwargs):
        with fsspec.open(str(source), "rt") as f:
            return f.read()

StacIO.set_default(FsspecStacIO)
lake = LAKE
cat = pystac.Catalog.from_file(lake + "/stac/catalog.json")
collections = {c.id: c for c in cat.get_all_collections()}
items = {c.id: [i for i in c.get_items()] for c in collections.values()}
cube_col = next(c for c in collections if c.startswith("s5p-no2-l3-daily"))
asset = collections[cube_col].assets["zarr"]
ds = xr.open_dataset(asset.get_absolute_href(), **asset.extra_fields["xarray:open_kwargs"])
day = ds.sel(time="2020-03-02")
icat = intake.open_catalog(lake + "/catalog.yaml")
lazy = icat[cube_col.replace("-", "_")].read()
table = icat["emissions"].read()
print(json.dumps({
    "collections": sorted(collections),
    "n_items": {k: len(v) for k, v in items.items()},
    "dims": dict(ds.sizes),
    "observed": int((day["count"] > 0).sum()),
    "mean_range": [float(day["mean"].min()), float(day["mean"].max())],
    "zeros_where_empty": int(((day["count"] == 0) & (day["mean"] == 0)).sum()),
    "lazy": type(lazy["mean"].data).__module__,
    "intake_entries": sorted(icat),
    "table_rows": len(table),
    "table_columns": sorted(table.columns),
    "germany": float(table[(table.iso3 == "DEU") & (table.date == "2020-03-02")].value.sum()),
}))
"""


def _check_artefacts(got: dict) -> None:
    assert "s5p-l2-no2" in got["collections"] and "eolake-emissions-daily" in got["collections"]
    assert got["n_items"]["s5p-l2-no2"] >= 2
    assert got["n_items"]["eolake-emissions-daily"] == 1
    assert got["dims"]["lat"] == 24 and got["dims"]["lon"] == 32
    assert got["observed"] > 100
    lo, hi = got["mean_range"]
    assert 0 < hi < 1e-3 and lo > -1e-4  # tropospheric NO2 in mol m-2
    assert got["zeros_where_empty"] == 0  # empty cells are missing, never zero
    assert got["lazy"].startswith("dask")
    assert "emissions" in got["intake_entries"]
    assert {"country", "date", "sector", "value"} <= set(got["table_columns"])
    assert 0.5 < got["germany"] < 5.0  # MtCO2/day, computed from the cube


def test_demo_local(cli, tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    out = cli("demo", "--lake", str(lake), *ARGS).stdout
    for what in (
        "raw granules",
        "ledger",
        "daily NO2 cube",
        "STAC catalog",
        "emissions table",
        "intake catalog",
        "xr.open_zarr",
    ):
        assert what in out
    ledger = pd.read_parquet(lake / "ledger" / "granules.parquet")
    assert (ledger["status"] == "harvested").all() and len(ledger) >= 2
    raw = sorted(p.name for p in (lake / "raw").rglob("*.nc"))
    upstream = sorted(p.name for p in (tmp_path / "lake-upstream").rglob("*.nc"))
    assert raw == upstream
    for name in raw:  # byte-identical copies
        src = next((tmp_path / "lake-upstream").rglob(name))
        dst = next((lake / "raw").rglob(name))
        assert src.read_bytes() == dst.read_bytes()
    got = _run_plain(OPEN_ALL.replace("LAKE", repr(str(lake))), tmp_path)
    _check_artefacts(got)

    # each flow run reported itself as Prefect artifacts
    api = cli.env["PREFECT_API_URL"]
    assert "| 2020-03-02 |" in latest_artifact(api, "eolake-grid-no2")
    assert latest_artifact(api, "eolake-grid-no2-quicklook").endswith("2020-03-03.png")
    assert "Germany" in latest_artifact(api, "eolake-emissions-release")

    # idempotent: a second demo fetches nothing, rewrites the same days and adds no release
    again = cli("demo", "--lake", str(lake), *ARGS).stdout
    assert "0 fetched" in again and "already there" in again
    assert len(pd.read_parquet(lake / "ledger" / "granules.parquet")) == len(ledger)
    assert len(list((lake / "tables" / "emissions").glob("release=*"))) == 1
    whole = pd.read_parquet(lake / "tables" / "emissions")  # the hive-partitioned table reads as one
    assert whole["release"].nunique() == 1 and len(whole) == got["table_rows"]


@pytest.mark.parametrize("bucket", ["demo"])
def test_demo_on_s3(cli, s3_server: Service, tmp_path: Path, bucket: str) -> None:
    """On S3, with the emissions derived on separate dask scheduler/worker processes (started without any
    S3 credentials in their environment)."""
    cli.env.update(s3_server.env)
    lake = f"s3://{bucket}/lake"
    dask = start_dask(tmp_path / "dask", n_workers=1)
    try:
        cli.env["EOLAKE_DASK_ADDRESS"] = dask.address
        out = cli("demo", "--lake", lake, "--archive", str(tmp_path / "upstream"), *ARGS).stdout
    finally:
        dask.stop()
    assert "s3://demo/lake/cubes/" in out
    _assert_no_secrets(s3_server, bucket, out)
    env = {k: v for k, v in cli.env.items() if k != "PYTHONPATH"}
    got = _run_plain(OPEN_ALL.replace("LAKE", repr(lake)), tmp_path, env)
    _check_artefacts(got)


def _assert_no_secrets(s3_server: Service, bucket: str, output: str) -> None:
    """Neither the CLI's output nor any object in the lake holds the S3 secret or key."""
    import s3fs

    key, secret = s3_server.env["AWS_ACCESS_KEY_ID"], s3_server.env["AWS_SECRET_ACCESS_KEY"]
    assert secret not in output and key not in output
    fs = s3fs.S3FileSystem(
        key=key, secret=secret, client_kwargs={"endpoint_url": s3_server.url}, skip_instance_cache=True
    )
    paths = [p for p in fs.find(bucket) if not p.endswith(".nc")]
    assert any(p.endswith("catalog.yaml") for p in paths)
    blobs = fs.cat(paths)
    leaks = [p for p, data in blobs.items() if secret.encode() in data or key.encode() in data]
    assert leaks == []
