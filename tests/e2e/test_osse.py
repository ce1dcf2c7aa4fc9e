"""A small observing-system simulation experiment through the CLI, as a user runs it: a truth CSV, the real
pipeline (simulate → harvest → grid → derive on separate dask scheduler/worker processes), the comparison
with its plots, the Carbon Monitor export, a second release with its diff, and bad input."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from infra.dask_processes import start_dask
from transforms.truth import read_carbon_monitor_csv

BBOX = "2,45,18,56"
START, END = "2020-03-02", "2020-03-29"  # 28 days: the first country gets a 22% two-week drop
COUNTRIES = "DEU,FRA,NLD,BEL,CZE,AUT,CHE,POL"
PERIOD = ["--start", START, "--end", END]
GRID = ["--bbox=" + BBOX, "--resolution", "0.25"]


@pytest.fixture(scope="module")
def osse(cli_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    from tests.conftest import Cli

    work = tmp_path_factory.mktemp("osse")
    cli = Cli(dict(cli_env), work)
    truth = work / "truth.csv"
    lake = work / "lake"
    cli("emissions", "scenario", "--out", str(truth), "--countries", COUNTRIES, *PERIOD, "--bbox=" + BBOX)
    dask = start_dask(work / "dask", n_workers=1)
    try:
        cli.env["EOLAKE_DASK_ADDRESS"] = dask.address
        demo = cli("demo", "--truth", str(truth), "--lake", str(lake), *PERIOD, *GRID).stdout
        workers_log = "".join(w.log_path.read_text(errors="replace") for w in dask.workers)
    finally:
        dask.stop()
    del cli.env["EOLAKE_DASK_ADDRESS"]
    return {"cli": cli, "work": work, "truth": truth, "lake": lake, "demo": demo, "workers_log": workers_log}


def test_osse_recovers_the_truth(osse: dict[str, Any]) -> None:
    cli, work = osse["cli"], osse["work"]
    assert "emissions table" in osse["demo"]
    out = cli(
        "emissions", "compare", "--truth", str(osse["truth"]), "--lake", str(osse["lake"]), "--out", "cmp"
    ).stdout
    assert "goals" in out and "step DEU" in out
    scores = pd.read_csv(work / "cmp" / "scores.csv").set_index("iso3")
    assert set(COUNTRIES.split(",")) <= set(scores.index)
    deu = scores.loc["DEU"]
    assert deu["mean_coverage"] >= 0.5
    assert deu["correlation"] >= 0.9, scores
    assert abs(deu["bias"]) <= 0.03, scores
    for iso3 in ("NLD", "CZE", "CHE", "BEL", "AUT"):  # the other countries wholly inside the domain
        assert scores.loc[iso3, "mean_coverage"] >= 0.5
        assert scores.loc[iso3, "correlation"] >= 0.9, scores
        assert abs(scores.loc[iso3, "bias"]) <= 0.03, scores
    # France and Poland are cut by the domain: low coverage, reported but not held to the goals
    assert not scores.loc["FRA", "checked"] and not scores.loc["POL", "checked"]
    # the weekly cycle is recovered from the observations (truth ~15%, the method's prior ~9%)
    assert abs(deu["weekly_recovered_pct"] - deu["weekly_true_pct"]) <= 5.0, scores
    steps = pd.read_csv(work / "cmp" / "steps.csv")
    assert list(steps["iso3"]) == ["DEU"]  # found in the truth, nowhere else
    step = steps.iloc[0]
    assert 20 <= step["true_pct"] <= 25
    assert abs(step["error_pp"]) <= 5.0, steps
    for png in ("overview.png", "DEU.png", "FRA.png"):
        assert (work / "cmp" / png).read_bytes()[:4] == b"\x89PNG"
    assert "Traceback" not in osse["workers_log"]


def test_export_is_carbon_monitor_csv(osse: dict[str, Any]) -> None:
    cli, work = osse["cli"], osse["work"]
    cli("emissions", "export", "--format", "carbon-monitor", "--lake", str(osse["lake"]), "--out", "cm.csv")
    text = (work / "cm.csv").read_text()
    assert text.splitlines()[0] == "country,date,sector,value"
    assert "Germany,02/03/2020,Power," in text and "WORLD,29/03/2020,International Aviation," in text
    exported = read_carbon_monitor_csv(io.StringIO(text))  # reads back with the strict reader
    release = pd.read_parquet(osse["lake"] / "tables" / "emissions")
    assert len(exported) == len(release)
    assert set(exported.loc[exported["is_aggregate"], "iso3"]) == {"WORLD", "EU27", "ROW"}
    merged = exported.merge(release, on=["iso3", "date", "sector"], suffixes=("_csv", ""))
    assert len(merged) == len(release)
    pd.testing.assert_series_equal(merged["value_csv"], merged["value"], check_names=False, rtol=1e-12)


def test_missing_days_are_flagged_and_a_new_release_publishes_its_diff(osse: dict[str, Any]) -> None:
    """Deriving over two days before and one after the cube's days: those days are gap-filled and flagged,
    never zero; the new release differs from the first by exactly those rows."""
    cli, lake = osse["cli"], osse["lake"]
    first = pd.read_parquet(lake / "tables" / "emissions")
    cli("emissions", "derive", "--lake", str(lake), "--start", "2020-02-29", "--end", "2020-03-30", *GRID)
    table = pd.read_parquet(lake / "tables" / "emissions")
    releases = sorted(table["release"].astype(str).unique())
    assert len(releases) == 2
    new = table[table["release"].astype(str) == releases[-1]]
    missing = new[new["date"].isin(pd.to_datetime(["2020-02-29", "2020-03-01", "2020-03-30"]))]
    members = missing[~missing["is_aggregate"]]
    observable = members[members["sector"].isin(["Power", "Industry", "Ground Transport"])]
    assert observable["gap_filled"].all() and (observable["coverage"] == 0).all()
    emitters = observable[observable["iso3"].isin(COUNTRIES.split(","))]  # the others emit nothing here
    assert (
        len(emitters) == 3 * 3 * 8 and (emitters["value"] > 0).all() and (emitters["uncertainty"] > 0).all()
    )
    assert missing["value"].notna().all() and (missing["uncertainty"] >= 0).all()
    per_day = len(first) // first["date"].nunique()
    diff = cli("emissions", "diff", "--lake", str(lake)).stdout
    assert f"{3 * per_day} added, 0 removed" in diff, diff
    assert "rows changed" in diff
    item = next((lake / "stac" / "eolake-emissions-daily" / "items").glob(f"emissions-{releases[-1]}.json"))
    assert '"eolake:diff"' in item.read_text() and releases[0] in item.read_text()
    cli("emissions", "diff", "--lake", str(lake), "--release", releases[0])  # the first has no predecessor


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Atlantis,02/03/2020,Power,0.1", "unknown country 'Atlantis'"),
        ("Germany,02/03/2020,Shipping,0.1", "unknown sector"),
        ("Germany,2020-03-02,Power,0.1", "malformed date"),
    ],
)
def test_compare_with_a_bad_truth_fails_cleanly(osse: dict[str, Any], line: str, message: str) -> None:
    cli, work = osse["cli"], osse["work"]
    bad = work / f"bad-{abs(hash(line))}.csv"
    bad.write_text("country,date,sector,value\nGermany,01/03/2020,Power,0.5\n" + line + "\n")
    out_dir = work / f"never-{abs(hash(line))}"
    proc = cli(
        "emissions",
        "compare",
        "--truth",
        str(bad),
        "--lake",
        str(osse["lake"]),
        "--out",
        str(out_dir),
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and proc.stderr.startswith("eolake: error: ")
    assert message in proc.stderr
    assert not out_dir.exists()


def test_bad_emissions_commands_fail_cleanly(osse: dict[str, Any], tmp_path: Path) -> None:
    cli, lake = osse["cli"], str(osse["lake"])
    cases = [
        (["emissions", "derive", "--lake", lake, "--start", "2021-01-01", "--end", "2021-01-05", *GRID],
         "no committed no2 cube days"),
        (["emissions", "export", "--lake", lake, "--out", str(tmp_path / "no" / "x.csv")], "folder does not exist"),
        (["emissions", "export", "--lake", lake, "--release", "nope", "--out", str(tmp_path / "x.csv")],
         "no emissions release 'nope'"),
        (["emissions", "export", "--lake", lake, "--format", "edgar"], "invalid choice"),
        (["emissions", "compare", "--truth", str(tmp_path / "missing.csv"), "--lake", lake], "not found"),
    ]  # fmt: skip
    for args, message in cases:
        proc = cli(*args, check=False)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.strip().count("\n") == 0 and message in proc.stderr, (args, proc.stderr)
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "x.csv.partial").exists()
