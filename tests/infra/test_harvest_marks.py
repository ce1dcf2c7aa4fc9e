"""Incremental harvests: their windows, the high-water marks they start from, and what counts as changed
upstream."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pandas as pd

from infra.harvest import incremental_window, plan_harvest
from infra.ledger import last_mark, read_marks, record_mark
from infra.sources import UpstreamGranule
from infra.storage import open_lake
from transforms.granules import parse_granule_name

NOW = dt.datetime(2026, 5, 10, 14, 15, tzinfo=dt.UTC)


def test_the_first_run_takes_days_back_whole_days_and_today_so_far() -> None:
    assert incremental_window(None, NOW, days_back=2) == (dt.datetime(2026, 5, 8, tzinfo=dt.UTC), NOW)


def test_a_run_after_a_recent_one_still_covers_the_days_back_whole_days() -> None:
    mark = NOW - dt.timedelta(hours=1)
    assert incremental_window(mark, NOW, days_back=2) == (dt.datetime(2026, 5, 8, tzinfo=dt.UTC), NOW)


def test_a_run_after_an_outage_reaches_back_to_the_mark() -> None:
    mark = NOW - dt.timedelta(days=9)
    assert incremental_window(mark, NOW, days_back=2)[0] == mark - dt.timedelta(days=2)


def test_marks_are_per_source_and_product_and_never_move_backwards(tmp_path: Path) -> None:
    lake = open_lake(str(tmp_path / "lake"))
    assert last_mark(lake, "cdse", "no2") is None and read_marks(lake).empty
    record_mark(lake, "cdse", "no2", NOW, NOW)
    record_mark(lake, "cdse", "co", NOW - dt.timedelta(days=1), NOW)
    record_mark(lake, "cdse", "no2", NOW - dt.timedelta(days=3), NOW)  # an older window: ignored
    assert last_mark(lake, "cdse", "no2") == pd.Timestamp(NOW)
    assert last_mark(lake, "cdse", "co") == pd.Timestamp(NOW - dt.timedelta(days=1))
    assert last_mark(lake, "planetary-computer", "no2") is None
    assert len(read_marks(lake)) == 2


def test_a_granule_republished_with_another_size_is_fetched_again_when_no_checksum_is_published() -> None:
    name = parse_granule_name(
        "S5P_OFFL_L2__NO2____20200303T013547_20200303T031717_12367_01_010302_20200306T053815.nc"
    )
    ledger = pd.DataFrame(
        [{"granule_id": name.id, "status": "harvested", "attempts": 1, "sha256": "a" * 64, "size": 100}]
    )
    same = UpstreamGranule(name, "https://up/x.nc", 100, None, {})
    other = UpstreamGranule(name, "https://up/x.nc", 101, None, {})
    unknown = UpstreamGranule(name, "https://up/x.nc", None, None, {})
    assert plan_harvest([same], ledger) == [] and plan_harvest([unknown], ledger) == []
    assert plan_harvest([other], ledger) == [other]
