"""Comparing emissions tables: a recovered table against a known truth (the OSSE's scores and plots), and one
release against the previous one (the release diff).

Tables have the columns of :func:`transforms.truth.read_carbon_monitor_csv` (country, iso3, date, sector,
value in MtCO2/day, is_aggregate); a recovered table also has uncertainty, coverage and gap_filled
(:data:`transforms.emissions.OUTPUT_COLUMNS`). Scores are on the daily sum of the NO2-observable sectors
(Power, Industry, Ground Transport) of member countries; aggregates are never compared or summed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import numpy as np
import pandas as pd

from transforms.emissions import NO2_OBSERVABLE_SECTORS
from transforms.errors import InputError

#: The OSSE's goals (issue 6), checked for countries with mean coverage >= MIN_MEAN_COVERAGE.
MIN_MEAN_COVERAGE = 0.5
GOAL_CORRELATION = 0.9
GOAL_ABS_BIAS = 0.03
GOAL_STEP_ERROR_PP = 5.0
#: A step change: at least STEP_MIN_DAYS consecutive days whose weekly-adjusted mean departs from the mean of
#: the other days by more than STEP_THRESHOLD (relative); see detect_steps.
STEP_THRESHOLD = 0.10
STEP_MIN_DAYS = 5
#: Days on either side of a step used as its reference level.
STEP_REFERENCE_DAYS = 14


@dataclass(frozen=True)
class Step:
    """A step change found in the truth and its size in both tables (1 - inside mean / reference mean, %)."""

    iso3: str
    start: pd.Timestamp
    end: pd.Timestamp
    true_pct: float
    recovered_pct: float

    @property
    def error_pp(self) -> float:
        return self.recovered_pct - self.true_pct


@dataclass(frozen=True)
class CountryScore:
    """Scores of one country on the observable-sector sum. bias is a fraction, weekly amplitudes in %."""

    iso3: str
    country: str
    days: int
    mean_coverage: float
    gap_filled_days: int
    correlation: float
    bias: float
    true_total_mt: float
    recovered_total_mt: float
    weekly_true_pct: float
    weekly_recovered_pct: float
    steps: tuple[Step, ...] = field(default=())

    @property
    def checked(self) -> bool:
        """Whether the goals apply (mean coverage at least :data:`MIN_MEAN_COVERAGE`)."""
        return self.mean_coverage >= MIN_MEAN_COVERAGE

    @property
    def meets_goals(self) -> bool:
        steps_ok = all(abs(s.error_pp) <= GOAL_STEP_ERROR_PP for s in self.steps)
        return self.correlation >= GOAL_CORRELATION and abs(self.bias) <= GOAL_ABS_BIAS and steps_ok

    def as_row(self) -> dict[str, Any]:
        row = asdict(self)
        row.pop("steps")
        row.update(checked=self.checked, meets_goals=self.meets_goals, steps=len(self.steps))
        return row


@dataclass(frozen=True)
class Comparison:
    """The scores of every country both tables hold, and the daily series they were computed from."""

    scores: tuple[CountryScore, ...]
    true: pd.DataFrame  # dims (date, iso3), MtCO2/day
    recovered: pd.DataFrame  # dims (date, iso3), MtCO2/day
    uncertainty: pd.DataFrame  # dims (date, iso3), 1σ MtCO2/day
    gap_filled: pd.DataFrame  # dims (date, iso3), bool
    missing: tuple[str, ...]  # truth countries absent from the recovered table

    def table(self) -> pd.DataFrame:
        """One row per country: the scores as columns."""
        return pd.DataFrame([s.as_row() for s in self.scores])

    def steps(self) -> pd.DataFrame:
        rows = [{**asdict(st), "error_pp": st.error_pp} for s in self.scores for st in s.steps]
        columns = ["iso3", "start", "end", "true_pct", "recovered_pct", "error_pp"]
        return pd.DataFrame(rows, columns=columns)

    @property
    def meets_goals(self) -> bool:
        """Every checked country meets the goals, and at least one country is checked."""
        checked = [s for s in self.scores if s.checked]
        return bool(checked) and all(s.meets_goals for s in checked)


def _members(table: pd.DataFrame, what: str) -> pd.DataFrame:
    missing = {"iso3", "date", "sector", "value"} - set(table.columns)
    if missing:
        raise InputError(f"{what} lacks columns {sorted(missing)}; expected iso3, date, sector, value")
    rows = table[table["sector"].isin(NO2_OBSERVABLE_SECTORS)]
    if "is_aggregate" in rows.columns:
        rows = rows[~rows["is_aggregate"].astype(bool)]
    return rows.assign(date=pd.to_datetime(rows["date"]).dt.normalize())


def observable_series(table: pd.DataFrame, column: str = "value") -> pd.DataFrame:
    """Daily sum of the observable sectors per member country: dims (date, iso3), MtCO2/day."""
    rows = _members(table, "table")
    wide: pd.DataFrame = rows.pivot_table(index="date", columns="iso3", values=column, aggfunc="sum")
    return wide.sort_index()


def _weekly_factors(series: pd.Series) -> np.ndarray:
    """Median per weekday over the overall median (Monday..Sunday); 1 where a weekday has no data."""
    level = float(series.median())
    dow = pd.DatetimeIndex(series.index).day_of_week
    out = np.ones(7)
    for j in range(7):
        values = series[dow == j]
        if len(values) and level > 0:
            out[j] = float(values.median()) / level
    return out


def detect_steps(
    series: pd.Series,
    *,
    threshold: float = STEP_THRESHOLD,
    min_days: int = STEP_MIN_DAYS,
    max_steps: int = 3,
) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Step changes in a daily truth series (index: dates), as (first day, last day) windows.

    The series is divided by its weekday factors (median per weekday over the median), then the window of at
    least ``min_days`` days that best separates its mean from the mean of the other days (the largest
    |difference| × sqrt(n_in·n_out/n), an "epidemic" change-point statistic) is taken if the two means differ
    by more than ``threshold`` (relative); repeated on the remaining days up to ``max_steps`` times. At least
    ``min_days`` days must stay outside every window as the reference.
    """
    series = series.dropna()
    n = len(series)
    if n < 2 * min_days:
        return []
    factors = _weekly_factors(series)
    z = (series / factors[pd.DatetimeIndex(series.index).day_of_week]).to_numpy(dtype=np.float64)
    free = np.ones(n, dtype=bool)  # days not yet inside a window
    out: list[tuple[pd.Timestamp, pd.Timestamp]] = []
    for _ in range(max_steps):
        best: tuple[float, int, int] | None = None
        total, count = float(z[free].sum()), int(free.sum())
        for i in range(n):
            if not free[i]:
                continue
            s_in = 0.0
            for j in range(i, n):
                if not free[j]:
                    break
                s_in += z[j]
                n_in = j - i + 1
                n_out = count - n_in
                if n_in < min_days:
                    continue
                if n_out < min_days:
                    break
                m_in, m_out = s_in / n_in, (total - s_in) / n_out
                if m_out <= 0 or abs(m_in / m_out - 1.0) <= threshold:
                    continue
                score = abs(m_in - m_out) * math.sqrt(n_in * n_out / count)
                if best is None or score > best[0]:
                    best = (score, i, j)
        if best is None:
            break
        _, i, j = best
        free[i : j + 1] = False
        out.append((pd.Timestamp(series.index[i]), pd.Timestamp(series.index[j])))
    return sorted(out)


def step_size(
    series: pd.Series,
    start: pd.Timestamp,
    end: pd.Timestamp,
    *,
    exclude: Sequence[tuple[pd.Timestamp, pd.Timestamp]] = (),
    reference_days: int = STEP_REFERENCE_DAYS,
) -> float:
    """1 - mean inside [start, end] / mean of the ``reference_days`` days on either side (outside every
    window in ``exclude``), in %. NaN without reference days."""
    index = pd.DatetimeIndex(series.index)
    inside = (index >= start) & (index <= end)
    near = (index >= start - pd.Timedelta(days=reference_days)) & (
        index <= end + pd.Timedelta(days=reference_days)
    )
    reference = near & ~inside
    for a, b in exclude:
        reference &= ~((index >= a) & (index <= b))
    if not reference.any() or not inside.any():
        return math.nan
    return 100.0 * (1.0 - float(series[inside].mean()) / float(series[reference].mean()))


def weekly_cycle(series: pd.Series, *, exclude: Sequence[tuple[pd.Timestamp, pd.Timestamp]] = ()) -> float:
    """Weekly-cycle amplitude: 1 - mean(Saturday, Sunday) / mean(Monday..Friday), in %, outside ``exclude``."""
    index = pd.DatetimeIndex(series.index)
    keep = np.ones(len(index), dtype=bool)
    for a, b in exclude:
        keep &= ~((index >= a) & (index <= b))
    weekend = keep & (index.day_of_week >= 5)
    weekday = keep & (index.day_of_week < 5)
    if not weekend.any() or not weekday.any():
        return math.nan
    return 100.0 * (1.0 - float(series[weekend].mean()) / float(series[weekday].mean()))


def compare_tables(truth: pd.DataFrame, recovered: pd.DataFrame) -> Comparison:
    """Score ``recovered`` against ``truth`` per country on the days both hold (see the module docstring).

    Per country: Pearson correlation of the daily series, bias of the period totals (recovered / true - 1),
    the weekly-cycle amplitude of both, and every step change found in the truth (:func:`detect_steps`)
    with its size in both. Raises :class:`InputError` if the tables share no country or no day.
    """
    true = observable_series(truth)
    rec = observable_series(recovered)
    if "uncertainty" in recovered.columns:
        rows = _members(recovered, "recovered table")
        # the observable sectors are one split of one inferred total: their errors add linearly
        unc = rows.pivot_table(index="date", columns="iso3", values="uncertainty", aggfunc="sum").sort_index()
        gap = rows.pivot_table(index="date", columns="iso3", values="gap_filled", aggfunc="max").sort_index()
        cov = rows.pivot_table(index="date", columns="iso3", values="coverage", aggfunc="mean").sort_index()
    else:
        unc = rec * np.nan
        gap = rec * 0
        cov = rec * np.nan
    countries = [c for c in true.columns if c in rec.columns]
    missing = tuple(sorted(set(true.columns) - set(rec.columns)))
    if not countries:
        raise InputError(
            f"the recovered table holds none of the truth's countries ({', '.join(true.columns[:8])}, ...); "
            "compare against the release derived for the truth's domain"
        )
    days = true.index.intersection(rec.index)
    if days.empty:
        raise InputError(
            f"the truth ({true.index.min().date()}…{true.index.max().date()}) and the recovered table "
            f"({rec.index.min().date()}…{rec.index.max().date()}) share no day"
        )
    true, rec = true.loc[days, countries], rec.loc[days, countries]
    unc, gap, cov = unc.loc[days, countries], gap.loc[days, countries].astype(bool), cov.loc[days, countries]
    names = _names(recovered)
    scores = []
    for iso3 in countries:
        t, r = true[iso3], rec[iso3]
        windows = detect_steps(t)
        steps = tuple(
            Step(
                iso3,
                a,
                b,
                step_size(t, a, b, exclude=[w for w in windows if w != (a, b)]),
                step_size(r, a, b, exclude=[w for w in windows if w != (a, b)]),
            )
            for a, b in windows
        )
        corr = float(np.corrcoef(t.to_numpy(), r.to_numpy())[0, 1]) if len(days) > 2 else math.nan
        total_t, total_r = float(t.sum()), float(r.sum())
        scores.append(
            CountryScore(
                iso3=iso3,
                country=names.get(iso3, iso3),
                days=len(days),
                mean_coverage=float(cov[iso3].mean()),
                gap_filled_days=int(gap[iso3].sum()),
                correlation=corr,
                bias=total_r / total_t - 1.0 if total_t > 0 else math.nan,
                true_total_mt=total_t,
                recovered_total_mt=total_r,
                weekly_true_pct=weekly_cycle(t, exclude=windows),
                weekly_recovered_pct=weekly_cycle(r, exclude=windows),
                steps=steps,
            )
        )
    return Comparison(tuple(scores), true, rec, unc, gap, missing)


def _names(table: pd.DataFrame) -> dict[str, str]:
    if "country" not in table.columns:
        return {}
    pairs = table[["iso3", "country"]].drop_duplicates("iso3")
    return dict(zip(pairs["iso3"].astype(str), pairs["country"].astype(str), strict=True))


def format_report(comparison: Comparison) -> str:
    """A plain-text report: one line per country, one per step change, and the goals' verdict."""
    lines = [
        f"{'iso3':5} {'country':22} {'days':>4} {'cover':>6} {'gaps':>4} {'r':>6} {'bias':>7} "
        f"{'weekly true/rec':>16}  goals",
    ]
    for s in sorted(comparison.scores, key=lambda s: -s.mean_coverage):
        verdict = ("met" if s.meets_goals else "MISSED") if s.checked else "n/a (coverage < 50%)"
        lines.append(
            f"{s.iso3:5} {s.country[:22]:22} {s.days:4d} {s.mean_coverage:6.1%} {s.gap_filled_days:4d} "
            f"{s.correlation:6.3f} {s.bias:+7.2%} {s.weekly_true_pct:7.1f}/{s.weekly_recovered_pct:5.1f} %  "
            f"{verdict}"
        )
    for s in comparison.scores:
        for st in s.steps:
            lines.append(
                f"step {st.iso3} {st.start.date()}…{st.end.date()}: true {st.true_pct:+.1f} %, "
                f"recovered {st.recovered_pct:+.1f} % ({st.error_pp:+.1f} pp)"
            )
    if comparison.missing:
        lines.append(f"not in the recovered table: {', '.join(comparison.missing)}")
    checked = [s for s in comparison.scores if s.checked]
    lines.append(
        f"goals (r >= {GOAL_CORRELATION}, |bias| <= {GOAL_ABS_BIAS:.0%}, steps within ±{GOAL_STEP_ERROR_PP:g} pp, "
        f"for the {len(checked)} countries with mean coverage >= {MIN_MEAN_COVERAGE:.0%}): "
        + ("met" if comparison.meets_goals else "NOT met")
    )
    return "\n".join(lines)


# --- plots --------------------------------------------------------------------------------------------------


def plot_country(comparison: Comparison, iso3: str, out: IO[bytes]) -> None:
    """PNG of one country's recovered vs true observable-sector series (MtCO2/day) with the ±1σ band,
    gap-filled days marked and step windows shaded, written to ``out``."""
    from matplotlib.figure import Figure

    score = next((s for s in comparison.scores if s.iso3 == iso3), None)
    if score is None:
        raise InputError(
            f"{iso3} is not in the comparison; choose one of {[s.iso3 for s in comparison.scores]}"
        )
    fig = Figure(figsize=(9, 3.6), dpi=100)
    ax = fig.add_subplot()
    _draw(ax, comparison, score)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, format="png")


def plot_overview(comparison: Comparison, out: IO[bytes], *, max_countries: int = 12) -> None:
    """PNG of small multiples (the best-covered countries first) written to ``out``."""
    from matplotlib.figure import Figure

    scores = sorted(comparison.scores, key=lambda s: -s.mean_coverage)[:max_countries]
    ncol = 3
    nrow = max(1, math.ceil(len(scores) / ncol))
    fig = Figure(figsize=(5 * ncol, 2.6 * nrow), dpi=90)
    for i, score in enumerate(scores):
        _draw(fig.add_subplot(nrow, ncol, i + 1), comparison, score, small=True)
    fig.tight_layout()
    fig.savefig(out, format="png")


def _draw(ax: Any, comparison: Comparison, score: CountryScore, *, small: bool = False) -> None:
    iso3 = score.iso3
    t, r = comparison.true[iso3], comparison.recovered[iso3]
    u = comparison.uncertainty[iso3]
    gap = comparison.gap_filled[iso3]
    for st in score.steps:
        ax.axvspan(st.start, st.end + pd.Timedelta(hours=23), color="0.9", zorder=0)
    if u.notna().any():
        ax.fill_between(r.index, r - u, r + u, color="tab:blue", alpha=0.2, lw=0, label="recovered ±1σ")
    ax.plot(t.index, t, color="black", lw=1.2, label="truth")
    ax.plot(r.index, r, color="tab:blue", lw=1.2, label="recovered")
    if gap.any():
        ax.plot(r.index[gap], r[gap], "o", mfc="none", color="tab:red", ms=4, label="gap-filled")
    title = (
        f"{score.country} ({iso3}): r={score.correlation:.3f}, bias={score.bias:+.1%}, "
        f"coverage={score.mean_coverage:.0%}"
    )
    ax.set_title(title, fontsize=9 if small else 11)
    ax.set_ylabel("MtCO2/day" + ("" if small else " (Power+Industry+Ground Transport)"), fontsize=8)
    ax.tick_params(labelsize=7)
    for label in ax.get_xticklabels():
        label.set_rotation(30)


# --- release diffs ------------------------------------------------------------------------------------------

DIFF_KEY = ("iso3", "date", "sector")
#: Values closer than this (MtCO2/day) are unchanged (Parquet round trips are exact; this absorbs float noise).
DIFF_TOLERANCE = 1e-12


def diff_tables(previous: pd.DataFrame, current: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Rows that differ between two releases, keyed by (iso3, date, sector), and a summary.

    Rows: iso3, country, date, sector, change ("added", "removed" or "changed"), previous and current value
    (MtCO2/day), delta (current - previous) and relative (delta / previous; NaN when previous is 0 or absent).
    Summary: rows_previous, rows_current, added, removed, changed, unchanged, max_abs_delta,
    sum_abs_delta (MtCO2/day) and max_abs_relative.
    """
    for what, t in (("previous", previous), ("current", current)):
        missing = {*DIFF_KEY, "value"} - set(t.columns)
        if missing:
            raise InputError(f"{what} release lacks columns {sorted(missing)}")
    keys = list(DIFF_KEY)

    def prepare(t: pd.DataFrame) -> pd.DataFrame:
        cols = [*keys, "value", *(["country"] if "country" in t.columns else [])]
        out = t[cols].copy()
        out["iso3"] = out["iso3"].astype(str)
        out["sector"] = out["sector"].astype(str)
        out["date"] = pd.to_datetime(out["date"])
        return out

    merged = prepare(previous).merge(
        prepare(current), on=keys, how="outer", suffixes=("_previous", "_current"), indicator=True
    )
    delta = merged["value_current"] - merged["value_previous"]
    change = np.select(
        [merged["_merge"] == "left_only", merged["_merge"] == "right_only", delta.abs() > DIFF_TOLERANCE],
        ["removed", "added", "changed"],
        default="unchanged",
    )
    country = (
        merged["country_current"].fillna(merged["country_previous"])
        if "country_current" in merged.columns and "country_previous" in merged.columns
        else merged["iso3"]
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        relative = np.where(merged["value_previous"] > 0, delta / merged["value_previous"], np.nan)
    rows = pd.DataFrame(
        {
            "iso3": merged["iso3"],
            "country": country.astype(str),
            "date": merged["date"].astype("datetime64[ns]"),
            "sector": merged["sector"],
            "change": change,
            "previous": merged["value_previous"].astype(np.float64),
            "current": merged["value_current"].astype(np.float64),
            "delta": delta.astype(np.float64),
            "relative": relative.astype(np.float64),
        }
    )
    changed = rows[rows["change"] == "changed"]
    summary: dict[str, Any] = {
        "rows_previous": len(previous),
        "rows_current": len(current),
        "added": int((rows["change"] == "added").sum()),
        "removed": int((rows["change"] == "removed").sum()),
        "changed": len(changed),
        "unchanged": int((rows["change"] == "unchanged").sum()),
        "max_abs_delta": float(changed["delta"].abs().max()) if len(changed) else 0.0,
        "sum_abs_delta": float(changed["delta"].abs().sum()),
        "max_abs_relative": float(np.nanmax(changed["relative"].abs()))
        if changed["relative"].notna().any()
        else 0.0,
    }
    out = rows[rows["change"] != "unchanged"].sort_values([*keys], ignore_index=True)
    return out, summary
