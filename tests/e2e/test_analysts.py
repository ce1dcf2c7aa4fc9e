"""Analysts' ways in, proven without eolake: the generated intake catalog read from a fresh environment holding
only intake, xarray, zarr, dask, pandas, pyarrow and s3fs (local lake and real S3 server); the lines
``eolake open`` prints, run as they are; the tutorial in docs/analysis.md, run as it is, drawing its figures."""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from infra.services import Service, _wait, free_port
from tests.conftest import REPO, Cli

DOMAIN = ["--start", "2020-03-02", "--bbox", "4,47,12,53", "--resolution", "0.25"]
BASE_PACKAGES = ("intake", "xarray", "zarr", "dask", "pandas", "pyarrow", "s3fs")
EOLAKE_PACKAGES = ("flows", "transforms", "catalog", "infra")


@pytest.fixture(scope="module")
def lake(cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A local demo lake with two emissions releases (a second demo adds a day)."""
    cwd = tmp_path_factory.mktemp("analysts")
    cli = Cli(dict(cli_env), cwd)
    cli("demo", "--lake", str(cwd / "lake"), *DOMAIN, "--end", "2020-03-03")
    cli("demo", "--lake", str(cwd / "lake"), *DOMAIN, "--end", "2020-03-04")
    return cwd / "lake"


@pytest.fixture(scope="module")
def s3_lake(cli_env: dict[str, str], s3_server: Service, tmp_path_factory: pytest.TempPathFactory) -> str:
    cwd = tmp_path_factory.mktemp("analysts-s3")
    cli = Cli({**cli_env, **s3_server.env}, cwd)
    cli(
        "demo",
        "--lake",
        "s3://analysts/lake",
        "--archive",
        str(cwd / "upstream"),
        *DOMAIN,
        "--end",
        "2020-03-03",
    )
    return "s3://analysts/lake"


@pytest.fixture(scope="module")
def fresh_python(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A new virtual environment with only the analysts' packages (same versions as ours, from the registry
    through uv's cache) and nothing of eolake."""
    venv = tmp_path_factory.mktemp("fresh") / "venv"
    uv = shutil.which("uv")
    assert uv, "uv is needed to build the analysts' environment"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    subprocess.run(
        [uv, "venv", "-q", "--python", sys.executable, str(venv)], check=True, env=env, timeout=300
    )
    python = venv / "bin" / "python"
    pins = [f"{p}=={importlib.metadata.version(p)}" for p in BASE_PACKAGES]
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python), *pins], check=True, env=env, timeout=600
    )
    yield python


def run_python(python: Path | str, code: str, cwd: Path, env: dict[str, str] | None = None) -> dict:
    """Run ``code`` in ``python`` (no eolake on its path); it prints one JSON line last."""
    guard = "import sys, json\nsys.path = [p for p in sys.path if p not in ('', '.')]\n"
    tail = f"\nleaked = [m for m in {EOLAKE_PACKAGES!r} if m in sys.modules]\nassert not leaked, leaked\n"
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "EOLAKE_", "PYTHONPATH"))}
    proc = subprocess.run(
        [str(python), "-W", "ignore", "-c", guard + textwrap.dedent(code) + tail],
        cwd=cwd,
        env={**base, "MPLBACKEND": "Agg", **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


READ_EVERY_ENTRY = """
import importlib.util, intake
assert all(importlib.util.find_spec(m) is None for m in ("flows", "transforms", "catalog", "infra", "pystac"))
cat = intake.open_catalog(CATALOG)
ups = cat.user_parameters
got = {"entries": sorted(cat), "read": {}, "meta": {}, "defaults": [ups["start"].default, ups["end"].default]}
for name in cat:
    reader = cat[name]
    kind = reader.metadata["kind"]
    got["meta"][name] = {k: reader.metadata.get(k) for k in ("kind", "license", "citation", "units", "description")}
    if kind == "cube":
        ds = reader.read()
        got["read"][name] = {"lazy": type(ds["mean"].data).__module__, "sizes": dict(ds.sizes),
                             "days": [str(t)[:10] for t in ds.time.values],
                             "unit": reader.metadata["variables"]["mean"]["unit"]}
        sub = cat(start="2020-03-03", end="2020-03-03", bbox=[5, 48, 8, 50])[name].read()
        got["read"][name]["subset"] = dict(sub.sizes)
        got["read"][name]["subset_lon"] = [float(sub.lon.min()), float(sub.lon.max())]
        got["read"][name]["subset_lazy"] = type(sub["mean"].data).__module__
        got["read"][name]["observed"] = int((sub["count"] > 0).sum())
    elif kind == "table":
        df = reader.read()
        days = cat(start="2020-03-03", end="2020-03-03")[name].read()
        got["read"][name] = {"rows": len(df), "days": sorted(str(d)[:10] for d in df.date.unique()),
                             "subset_days": sorted(str(d)[:10] for d in days.date.unique()),
                             "columns": sorted(df.columns)}
    else:  # STAC entries need pystac: intake reports it instead of failing obscurely
        got["read"][name] = {"imports_ok": bool(cat.get_entity(name).check_imports())}
print(json.dumps(got))
"""


def _check_every_entry(got: dict, n_releases: int) -> None:
    cubes = [n for n in got["entries"] if n.startswith("s5p_no2_l3_daily_0p25deg")]
    releases = [n for n in got["entries"] if n.startswith("emissions_")]
    assert len(cubes) == 1 and len(releases) == n_releases
    assert {"emissions", "stac", "stac_search"} <= set(got["entries"])
    cube = got["read"][cubes[0]]
    assert cube["lazy"].startswith("dask") and cube["subset_lazy"].startswith("dask")
    assert cube["sizes"]["lat"] == 24 and cube["sizes"]["lon"] == 32
    # defaults: the lake's extent (all entries, monthly cubes included), not the cube's mission-start axis
    start, end = got["defaults"]
    committed = ["2020-03-02", "2020-03-03"] + (["2020-03-04"] if n_releases == 2 else [])
    assert start <= committed[0] and end >= committed[-1] and start >= "2020-03-01"
    assert cube["days"][0] == start and cube["days"][-1] == end and set(committed) <= set(cube["days"])
    assert cube["subset"] == {"time": 1, "lat": 8, "lon": 12}  # centres 48.125..49.875, 5.125..7.875
    assert cube["subset_lon"] == [5.125, 7.875] and cube["observed"] > 0
    assert cube["unit"] == "mol m-2"
    meta = got["meta"][cubes[0]]
    assert (
        meta["license"]
        and "Copernicus Sentinel data 2020" in meta["citation"]
        and meta["units"] == ["mol m-2"]
    )
    latest = got["read"]["emissions"]
    assert latest == got["read"][sorted(releases)[-1]]
    assert latest["subset_days"] == ["2020-03-03"] and "2020-03-02" in latest["days"]
    assert {"country", "iso3", "date", "sector", "value"} <= set(latest["columns"])
    assert (
        got["meta"]["emissions"]["units"] == "MtCO2/day"
        and got["meta"]["emissions"]["license"] == "CC-BY-4.0"
    )
    assert got["read"]["stac"] == {"imports_ok": False} and got["read"]["stac_search"] == {
        "imports_ok": False
    }


def test_fresh_environment_reads_every_entry_locally(fresh_python: Path, lake: Path, tmp_path: Path) -> None:
    got = run_python(
        fresh_python, READ_EVERY_ENTRY.replace("CATALOG", repr(str(lake / "catalog.yaml"))), tmp_path
    )
    _check_every_entry(got, n_releases=2)
    assert got["read"]["emissions_" + got["entries"][1].split("_", 1)[1]]["days"] == [
        "2020-03-02",
        "2020-03-03",
    ]


def test_fresh_environment_reads_every_entry_from_s3(
    fresh_python: Path, s3_lake: str, s3_server: Service, tmp_path: Path
) -> None:
    env = dict(s3_server.env)
    got = run_python(
        fresh_python, READ_EVERY_ENTRY.replace("CATALOG", repr(f"{s3_lake}/catalog.yaml")), tmp_path, env
    )
    _check_every_entry(got, n_releases=1)


STAC_ENTRIES = """
import intake
cat = intake.open_catalog(CATALOG)
stac = cat.stac.read()
collections = sorted(stac.entries)
cube_id = next(c for c in collections if c.startswith("s5p-no2-l3-daily"))
cube_items = sorted(k for k in stac[cube_id].read().entries if k != "zarr")
found = cat(start="2020-03-03", end="2020-03-03").stac_search.read()
print(json.dumps({"collections": collections, "cube_items": cube_items, "found": sorted(found.entries)}))
"""


@pytest.fixture(scope="module")
def stac_api(lake: Path, cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The lake's STAC API (``eolake stac serve``, embedded backend) on 127.0.0.1, stopped by its PID."""
    port, log = free_port(), tmp_path_factory.mktemp("stac-api") / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "flows.cli", "stac", "serve", "--lake", str(lake), "--host", "127.0.0.1",
             "--port", str(port)],
            env=cli_env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        with urllib.request.urlopen(url + "/_mgmt/ping", timeout=2) as r:
            return bool(r.status == 200)

    service = Service("stac-api", proc, url, log)
    try:
        _wait(healthy, what="STAC API", process=proc, log=log, timeout=60)
        yield url
    finally:
        service.stop()
    assert proc.poll() is not None


def test_stac_entries_with_pystac(fresh_python: Path, lake: Path, stac_api: str, tmp_path: Path) -> None:
    """With pystac and requests added, ``stac`` browses the static catalog and ``stac_search`` searches the
    lake's STAC API (root from ``$EOLAKE_STAC_API``) with the catalog's start/end/bbox."""
    python = tmp_path / "venv"
    shutil.copytree(fresh_python.parent.parent, python, symlinks=True)
    uv = shutil.which("uv")
    assert uv
    pins = [f"{p}=={importlib.metadata.version(p)}" for p in ("pystac", "requests")]
    subprocess.run(
        [uv, "pip", "install", "-q", "--python", str(python / "bin" / "python"), *pins], check=True
    )
    doc = yaml.safe_load((lake / "catalog.yaml").read_text())
    search = doc["entries"][doc["aliases"]["stac_search"]]["kwargs"]
    assert search["query"]["bbox"] == "{bbox}" and "{start}" in search["query"]["datetime"]
    cube_id = next(c for c in search["query"]["collections"] if c.startswith("s5p-no2-l3-daily"))
    code = STAC_ENTRIES.replace("CATALOG", repr(str(lake / "catalog.yaml")))
    got = run_python(python / "bin" / "python", code, tmp_path, {"EOLAKE_STAC_API": stac_api})
    assert {"eolake-emissions-daily", "s5p-l2-no2", cube_id} <= set(got["collections"])
    assert got["cube_items"] == [f"{cube_id}-2020-03-0{d}" for d in (2, 3, 4)]
    monthly_id = cube_id.replace("-l3-daily-", "-l3-monthly-")
    # the search honours start/end: that day's item and the month (so far) that contains it
    assert got["found"] == [f"{cube_id}-2020-03-03", f"{monthly_id}-2020-03"]


def test_pystac_client_search_to_xarray(
    cli_env: dict[str, str], lake: Path, stac_api: str, tmp_path: Path
) -> None:
    """``eolake open <cube> --stac-api``: pystac-client searches the lake's API for the cube's days, whose
    items carry the xarray-assets open kwargs the cube opens with; the printed script runs as it is."""
    cube = next(n for n in _entry_names(str(lake), {}) if n.startswith("s5p_no2"))
    script = Cli(dict(cli_env), tmp_path)("open", cube, "--lake", str(lake), "--stac-api", stac_api).stdout
    assert "client.search(" in script and "xarray:open_kwargs" in script
    check = "\nprint(json.dumps({'days': days, 'kwargs': open_kwargs, 'time': ds.sizes['time']}))"
    got = run_python(sys.executable, script + check, tmp_path)
    assert sorted(got["days"]) == ["2020-03-02", "2020-03-03", "2020-03-04"] and got["time"] > 3
    assert got["kwargs"]["engine"] == "zarr" and got["kwargs"]["chunks"] == {}


def _entry_names(lake_url: str, env: dict[str, str]) -> list[str]:
    if not env:
        return list(yaml.safe_load(Path(lake_url, "catalog.yaml").read_text())["aliases"])
    import s3fs

    fs = s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"],
        secret=env["AWS_SECRET_ACCESS_KEY"],
        client_kwargs={"endpoint_url": env["AWS_ENDPOINT_URL"]},
        skip_instance_cache=True,
    )
    return list(yaml.safe_load(fs.cat_file(f"{lake_url}/catalog.yaml"))["aliases"])


def _open_script(cli: Cli, lake: str, dataset: str) -> str:
    return cli("open", dataset, "--lake", lake).stdout


CHECK_OPENED = """
names = ("ds", "df", "table", "everything", "collections")
out = {k: type(v).__name__ for k, v in dict(globals()).items() if k in names}
if "ds" in globals():
    out["lazy"] = type(ds["mean"].data).__module__
if "df" in globals():
    out["rows"] = len(df)
print(json.dumps(out))
"""


@pytest.mark.parametrize("where", ["local", "s3"])
def test_open_prints_lines_that_run(
    where: str, request: pytest.FixtureRequest, cli_env: dict[str, str], tmp_path: Path
) -> None:
    """``eolake open`` for a cube, the latest table, a release id and ``stac``: its output runs as printed in a
    plain interpreter (intake, xarray, pandas, pyarrow, DuckDB and pystac-client variants)."""
    env: dict[str, str] = {}
    if where == "s3":
        lake_url = request.getfixturevalue("s3_lake")
        env = dict(request.getfixturevalue("s3_server").env)
    else:
        lake_url = str(request.getfixturevalue("lake"))
    cli = Cli({**cli_env, **env}, tmp_path)
    entries = _entry_names(lake_url, env)
    cube = next(n for n in entries if n.startswith("s5p_no2"))
    release = next(n for n in entries if n.startswith("emissions_")).split("_", 1)[1]
    cube_collection = cube.replace("_", "-")
    for dataset in (cube_collection, "emissions", release, "stac"):
        script = _open_script(cli, lake_url, dataset)
        assert lake_url in script and "intake.open_catalog" in script and "pystac_client" in script
        got = run_python(sys.executable, script + CHECK_OPENED, tmp_path, env)
        if dataset == cube_collection:
            assert "xr.open_zarr" in script and got["ds"] == "Dataset" and got["lazy"].startswith("dask")
        elif dataset == "stac":
            assert got["collections"] == "list"
        else:
            assert "duckdb" in script and "pq.read_table" in script
            assert got["df"] == "DataFrame" and got["table"] == "Table" and got["rows"] > 0


def test_open_rejects_unknown_dataset(offline_cli: Cli, lake: Path) -> None:
    proc = offline_cli("open", "no-such-cube", "--lake", str(lake), check=False)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip().startswith(
        "eolake: error: unknown dataset 'no-such-cube': choose one of emissions"
    )
    assert len(proc.stderr.strip().splitlines()) == 1
    missing = offline_cli("open", "emissions", "--lake", str(lake.parent / "nowhere"), check=False)
    assert missing.returncode == 2 and missing.stderr.startswith("eolake: error:")
    assert not (lake.parent / "nowhere").exists()


def tutorial_code() -> str:
    text = (REPO / "docs" / "analysis.md").read_text()
    section = text.split("## Tutorial", 1)[1].split("\n## ", 1)[0]
    return "\n".join(re.findall(r"```python\n(.*?)```", section, flags=re.S))


def test_tutorial_runs_and_draws_its_figures(lake: Path, tmp_path: Path) -> None:
    (tmp_path / "lake").symlink_to(lake)
    run_python(sys.executable, tutorial_code() + "\nprint(json.dumps({}))\n", tmp_path)
    for name in ("no2_map.png", "no2_timeseries.png", "emissions_germany.png", "releases.png"):
        png = tmp_path / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < png.stat().st_size < 300_000
        assert (REPO / "docs" / "figures" / name).exists()  # the committed figures come from this code
