"""Bad input: one clear line, exit status 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import pytest


def _nothing_written(root: Path) -> None:
    assert not (root / "lake").exists()
    assert not (root / "lake-upstream").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["harvest", "--product", "xco9", "--source", "x", "--start", "2020-03-01", "--end", "2020-03-02"],
            "unknown product",
        ),
        (["demo", "--start", "2020-03-05", "--end", "2020-03-01"], "inverted date range"),
        (["demo", "--bbox", "10,50,20,40"], "south must be below north"),
        (["demo", "--bbox", "20,40,10,50"], "west must be below east"),
        (["demo", "--bbox", "1,2,3"], "need 4 numbers"),
        (["demo", "--start", "2020-02-30"], "invalid date"),
        (["demo", "--resolution", "-1"], "out of range"),
        (["demo", "--truth", "missing.csv"], "not found"),
        (["demo", "--start", "2010-01-01", "--end", "2010-01-02"], "before Sentinel-5P"),
        (["grid", "--start", "2020-03-01", "--end", "2020-03-02", "--lake", "does-not-exist"], "no lake at"),
    ],
)
def test_bad_arguments(offline_cli, args: list[str], message: str) -> None:
    proc = (
        offline_cli(*args, "--lake", "lake", check=False)
        if "--lake" not in args
        else offline_cli(*args, check=False)
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("eolake: error:"), proc.stderr
    assert message in lines[0]
    _nothing_written(Path(offline_cli.cwd))


def test_truth_with_unknown_sector(offline_cli) -> None:
    csv = Path(offline_cli.cwd) / "truth.csv"
    csv.write_text(
        "country,date,sector,value\nGermany,02/03/2020,Power,0.5\nGermany,02/03/2020,Shipping,0.1\n"
    )
    proc = offline_cli("demo", "--truth", str(csv), "--lake", "lake", check=False)
    assert proc.returncode == 2
    assert "Shipping" in proc.stderr and proc.stderr.count("\n") == 1
    _nothing_written(Path(offline_cli.cwd))


def test_unreachable_lake(offline_cli) -> None:
    offline_cli.env.update(
        AWS_ENDPOINT_URL="http://127.0.0.1:9", AWS_ACCESS_KEY_ID="x" * 12, AWS_SECRET_ACCESS_KEY="y" * 20
    )
    proc = offline_cli("demo", "--lake", "s3://nowhere/lake", check=False, timeout=120)
    assert proc.returncode == 2
    assert "cannot reach lake" in proc.stderr and proc.stderr.count("\n") == 1
    assert "Could not connect to the endpoint" in proc.stderr  # the connection failed, not the client set-up
    _nothing_written(Path(offline_cli.cwd))
