"""OSSE scores and release diffs on tables whose answers are known by construction."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from transforms import comparison as cmp
from transforms.errors import InputError
from transforms.truth import builtin_scenario

COUNTRIES = ["DEU", "FRA", "NLD"]


@pytest.fixture(scope="module")
def truth() -> pd.DataFrame:
    return builtin_scenario("2020-03-02", "2020-04-12", countries=COUNTRIES)  # 42 days, DEU steps down


def _recovered(truth: pd.DataFrame, factor: float = 1.0, coverage: float = 0.8) -> pd.DataFrame:
    out = truth.assign(
        value=truth["value"] * factor,
        uncertainty=0.05 * truth["value"],
        coverage=coverage,
        gap_filled=False,
    )
    return out


def test_perfect_recovery_scales_exactly(truth: pd.DataFrame) -> None:
    result = cmp.compare_tables(truth, _recovered(truth, factor=1.02))
    scores = {s.iso3: s for s in result.scores}
    assert set(scores) == set(COUNTRIES) and result.missing == ()
    for s in scores.values():
        assert s.correlation == pytest.approx(1.0)
        assert s.bias == pytest.approx(0.02)
        assert s.mean_coverage == pytest.approx(0.8) and s.checked
        assert s.weekly_true_pct == pytest.approx(s.weekly_recovered_pct)
        assert 5 < s.weekly_true_pct < 20  # weekend dip of the built-in truth
    assert result.meets_goals  # 2% bias is within the 3% goal
    assert not cmp.compare_tables(truth, _recovered(truth, factor=1.04)).meets_goals


def test_the_step_is_found_in_the_truth_and_measured_in_both(truth: pd.DataFrame) -> None:
    ld = truth.attrs["lockdown"]
    flat = truth.copy()  # a recovery that misses the step: DEU's observable sectors without the drop
    inside = (flat["iso3"] == "DEU") & flat["date"].between(ld["start"], ld["end"])
    flat.loc[inside & (flat["sector"] != "Residential"), "value"] /= ld["factor"]
    result = cmp.compare_tables(truth, _recovered(flat))
    steps = result.steps()
    assert list(steps["iso3"]) == ["DEU"]  # no false steps in FRA or NLD
    step = steps.iloc[0]
    assert step["start"] == ld["start"] and step["end"] == ld["end"]
    assert step["true_pct"] == pytest.approx(22.0, abs=2.0)
    assert abs(step["recovered_pct"]) < 3.0 and step["error_pp"] < -18
    deu = next(s for s in result.scores if s.iso3 == "DEU")
    assert not deu.meets_goals and not result.meets_goals
    exact = cmp.compare_tables(truth, _recovered(truth)).steps().iloc[0]
    assert exact["error_pp"] == pytest.approx(0.0, abs=1e-9)


def test_low_coverage_countries_are_reported_but_not_checked(truth: pd.DataFrame) -> None:
    rec = _recovered(truth)
    rec.loc[rec["iso3"] == "NLD", "coverage"] = 0.3
    rec.loc[rec["iso3"] == "NLD", "value"] *= 1.5
    result = cmp.compare_tables(truth, rec)
    nld = next(s for s in result.scores if s.iso3 == "NLD")
    assert not nld.checked and not nld.meets_goals and result.meets_goals
    report = cmp.format_report(result)
    assert "n/a (coverage < 50%)" in report and "goals" in report and "step DEU" in report


def test_aggregates_and_unobservable_sectors_are_ignored(truth: pd.DataFrame) -> None:
    rec = _recovered(truth)
    rec.loc[rec["sector"] == "Residential", "value"] *= 3.0  # not observable: does not count
    world = (
        rec.groupby(["date", "sector"], as_index=False)["value"]
        .sum()
        .assign(
            country="WORLD", iso3="WORLD", is_aggregate=True, uncertainty=0.0, coverage=0.0, gap_filled=False
        )
    )
    result = cmp.compare_tables(truth, pd.concat([rec, world], ignore_index=True))
    assert {s.iso3 for s in result.scores} == set(COUNTRIES)
    assert all(s.bias == pytest.approx(0.0) for s in result.scores)


def test_nothing_in_common_is_an_error(truth: pd.DataFrame) -> None:
    other = builtin_scenario("2020-03-02", "2020-03-09", countries=["ESP"])
    with pytest.raises(InputError, match="none of the truth's countries"):
        cmp.compare_tables(truth, _recovered(other))
    later = builtin_scenario("2021-01-01", "2021-01-05", countries=COUNTRIES)
    with pytest.raises(InputError, match="share no day"):
        cmp.compare_tables(truth, _recovered(later))


def test_plots_are_pngs(truth: pd.DataFrame) -> None:
    rec = _recovered(truth)
    rec.loc[rec.index[:40], "gap_filled"] = True
    result = cmp.compare_tables(truth, rec)
    for draw in (lambda f: cmp.plot_country(result, "DEU", f), lambda f: cmp.plot_overview(result, f)):
        buf = io.BytesIO()
        draw(buf)
        assert buf.getvalue()[:8] == b"\x89PNG\r\n\x1a\n" and len(buf.getvalue()) > 10_000
    with pytest.raises(InputError, match="not in the comparison"):
        cmp.plot_country(result, "ESP", io.BytesIO())


def test_release_diff_counts_and_sizes(truth: pd.DataFrame) -> None:
    previous = _recovered(truth)
    current = previous.copy()
    changed = current.index[(current["iso3"] == "FRA") & (current["sector"] == "Power")][:5]
    current.loc[changed, "value"] *= 1.1
    current = current.drop(current.index[(current["iso3"] == "NLD") & (current["sector"] == "Industry")][:2])
    extra = current[current["date"] == current["date"].max()].assign(
        date=current["date"].max() + pd.Timedelta(days=1)
    )
    current = pd.concat([current, extra], ignore_index=True)
    rows, summary = cmp.diff_tables(previous, current)
    assert summary["changed"] == 5 and summary["removed"] == 2 and summary["added"] == len(extra)
    assert summary["unchanged"] == len(previous) - 7
    assert summary["max_abs_relative"] == pytest.approx(0.1)
    fra = rows[rows["change"] == "changed"]
    np.testing.assert_allclose(fra["delta"], 0.1 * fra["previous"])
    assert (fra["iso3"] == "FRA").all() and (fra["country"] == "France").all()
    same_rows, same = cmp.diff_tables(previous, previous.sample(frac=1.0, random_state=1))
    assert same_rows.empty and same["changed"] == same["added"] == same["removed"] == 0
    with pytest.raises(InputError, match="lacks columns"):
        cmp.diff_tables(previous.drop(columns="value"), current)
