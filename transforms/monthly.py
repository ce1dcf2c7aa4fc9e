"""Monthly means from the daily cube: per cell, the weighted mean of all the month's pixels, its propagated
uncertainty, the total pixel count and the total weight.

A daily cell holds ``mean`` = Σwv/Σw, ``weight`` W = Σw and ``uncertainty`` u = √Σw²σ² / Σw over its pixels
(``transforms/gridding.py``). Over the days d of a month, therefore, exactly as if every pixel of the month
had been binned at once:

    mean = Σ_d W_d·mean_d / Σ_d W_d,   uncertainty = √Σ_d (u_d·W_d)² / Σ_d W_d,
    count = Σ_d count_d,               weight = Σ_d W_d.

Days without pixels in a cell (count 0, mean NaN) contribute nothing; a cell no day observed is NaN / 0.
Lazy when handed dask-backed days; nothing is computed here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import numpy as np
import xarray as xr

MONTHLY_VARS = ("mean", "uncertainty", "count", "weight")


def month_of(day: dt.date) -> dt.date:
    """The first day of ``day``'s month (the monthly cube's time label)."""
    return day.replace(day=1)


def months_of(days: Iterable[dt.date]) -> list[dt.date]:
    """The distinct months (first days) of ``days``, sorted."""
    return sorted({month_of(d) for d in days})


def month_days(month: dt.date) -> tuple[dt.date, dt.date]:
    """First and last day of ``month``."""
    first = month_of(month)
    nxt = (first + dt.timedelta(days=32)).replace(day=1)
    return first, nxt - dt.timedelta(days=1)


def monthly_means(days: xr.Dataset) -> xr.Dataset:
    """Combine a month's daily fields into monthly fields.

    ``days``: dims (time, lat, lon) with ``mean`` and ``uncertainty`` (product units), ``count`` (pixels) and
    ``weight`` (Σ binning weights) — the committed days of one month, in any order. Returns dims (lat, lon):
    ``mean``, ``uncertainty`` (float32), ``count`` (int32), ``weight`` (float32), computed in float64.
    """
    missing = [v for v in MONTHLY_VARS if v not in days]
    if missing or "time" not in days.dims:
        raise ValueError(f"days need dims (time, lat, lon) and variables {MONTHLY_VARS}; missing {missing}")
    seen = days["count"] > 0
    w = days["weight"].astype(np.float64).where(seen, 0.0)
    sw = w.sum("time")
    swv = (w * days["mean"].astype(np.float64)).where(seen, 0.0).sum("time")
    var = ((w * days["uncertainty"].astype(np.float64)) ** 2).where(seen, 0.0).sum("time")
    observed = sw > 0
    sw_seen = sw.where(observed)  # NaN, not 0, where no day observed: no 0/0 (and no RuntimeWarning)
    out = xr.Dataset(
        {
            "mean": (swv / sw_seen).astype(np.float32),
            "uncertainty": (var**0.5 / sw_seen).astype(np.float32),
            "count": days["count"].where(seen, 0).sum("time").astype(np.int32),
            "weight": sw.where(observed).astype(np.float32),
        }
    )
    return out
