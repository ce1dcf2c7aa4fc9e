"""Benchmark: a year of global daily 0.1° cube days → daily country zonal sums.

The cube is 365 days × 1800 × 3600 float32 cells (9.5 GB if held at once), NaN where unobserved (~40% of
cells, as after cloud and QA screening), chunked like eolake's cubes (one day × 1024 × 1024). Days come from
a pool of 8 distinct fields (each chunk made once, C-contiguous as decompressed from Zarr), so neither
side pays for making data. Compared in the same process:

- the numpy baseline: a precomputed integer country mask (ocean → an extra bin) and one ``np.bincount`` per
  day (NaN → 0 first, which the sum needs); the faster of two variants (all cells, or land cells gathered);
- eolake's ``transforms.zonal.zonal_sums`` on the dask array (compiled kernel per chunk, partial sums added),
  on dask's threaded scheduler with 2 threads, and with 1 thread;
- the derivation's own kernel, ``transforms.zonal.normal_equations`` (one own-country footprint layer), on the
  cube's mean, count and uncertainty, against a plain numpy implementation of the same per-day sums
  (``np.bincount`` per country of ω·H·v, ω·H, ω·H², coverage, plus the background's sums), checked equal;
- a naive ``xarray`` ``groupby(mask).sum()`` on a few days, extrapolated to the year (reference only).

Reports seconds, the ratios against the baseline, the largest difference of the sums, and the process's
peak memory (RSS). Run: ``uv run python bench/zonal_sums.py [--days 365] [--groupby-days 3]``.
Goal (issue 6): eolake ≤ 1.5× the baseline's time on 2 cores.
"""

from __future__ import annotations

import argparse
import resource
import time

import dask
import dask.array as da
import numpy as np
import xarray as xr

from transforms.grid import GridSpec
from transforms.regions import country_mask
from transforms.zonal import normal_equations, zonal_sums

GRID = GridSpec(0.1)
POOL = 8
CHUNK = 1024


def _self_layer(mask: np.ndarray, value: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One footprint layer: each land cell's own country (the least the derivation kernel accumulates)."""
    return mask[None].astype(np.int16), value[None].astype(np.float32)


def make_pool(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    pool = rng.normal(3e-5, 1e-5, (POOL, *shape)).astype(np.float32)
    pool[rng.random(pool.shape) < 0.4] = np.nan
    return pool


def derived_pools(pool: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A cube's ``count`` (int16: 1–4 pixels where the mean is finite, else 0) and ``uncertainty`` (float32,
    mol m-2) matching ``pool``'s means."""
    rng = np.random.default_rng(1)
    count = np.where(np.isfinite(pool), rng.integers(1, 5, pool.shape, dtype=np.int16), 0).astype(np.int16)
    unc = (np.abs(np.nan_to_num(pool)) * 0.3 + 5e-6).astype(np.float32)
    return count, unc


def lazy_year(pool: np.ndarray, days: int) -> da.Array:
    """(days, lat, lon) dask array of one-day chunks; day d is pool[d % POOL]. Each distinct chunk is made once,
    C-contiguous as a chunk decompressed from Zarr would be, so the computation pays nothing for making data."""
    _, ny, nx = pool.shape
    ys, xs = _split(ny), _split(nx)
    y0s, x0s = np.cumsum((0, *ys)), np.cumsum((0, *xs))
    blocks = {
        (p, i, j): np.ascontiguousarray(pool[p : p + 1, y0s[i] : y0s[i + 1], x0s[j] : x0s[j + 1]])
        for p in range(min(POOL, days))
        for i in range(len(ys))
        for j in range(len(xs))
    }

    def block(block_info: dict | None = None) -> np.ndarray:
        assert block_info is not None
        t, i, j = block_info[None]["chunk-location"]
        return blocks[(t % POOL, i, j)]

    chunks = ((1,) * days, ys, xs)
    return da.map_blocks(block, chunks=chunks, dtype=pool.dtype, meta=np.empty((0, 0, 0), pool.dtype))


def _split(n: int) -> tuple[int, ...]:
    return tuple(min(CHUNK, n - i) for i in range(0, n, CHUNK))


def baseline_all(pool: np.ndarray, mask: np.ndarray, n: int, days: int) -> np.ndarray:
    idx = np.where(mask >= 0, mask, n).astype(np.intp).ravel()  # precomputed once
    out = np.empty((days, n))
    for d in range(days):
        v = np.nan_to_num(pool[d % POOL].ravel(), nan=0.0)
        out[d] = np.bincount(idx, weights=v, minlength=n + 1)[:n]
    return out


def baseline_land(pool: np.ndarray, mask: np.ndarray, n: int, days: int) -> np.ndarray:
    land = np.flatnonzero(mask.ravel() >= 0)  # precomputed once
    idx = mask.ravel()[land].astype(np.intp)
    out = np.empty((days, n))
    for d in range(days):
        v = pool[d % POOL].ravel()[land]
        out[d] = np.bincount(idx, weights=np.nan_to_num(v, nan=0.0), minlength=n)
    return out


def baseline_normal(
    pools: tuple[np.ndarray, np.ndarray, np.ndarray],
    mask: np.ndarray,
    weight: np.ndarray,
    n: int,
    days: int,
    background: float,
) -> np.ndarray:
    """The derivation kernel's per-day sums with one own-country footprint layer (H = ``weight``), in plain
    numpy: observed cells, ω = 1/σ², then ``np.bincount`` per country of ω·H·v, ω·H and ω·H², the coverage
    (Σ weight over observed land) and the background's Σω, Σω·v, Σω·v², cells. Returns (day, 4n + 4)."""
    mean, count, unc = pools
    land = np.flatnonzero(mask.ravel() >= 0)  # precomputed once
    idx = mask.ravel()[land].astype(np.intp)
    h = weight.ravel()[land]
    out = np.empty((days, 4 * n + 4))
    for d in range(days):
        v = mean[d % POOL].ravel().astype(np.float64) - background
        seen = (count[d % POOL].ravel() > 0) & np.isfinite(v)
        s = unc[d % POOL].ravel().astype(np.float64)
        omega = np.where(seen, 1.0 / np.where(np.isfinite(s), s * s, 0.0), 0.0)
        vv = np.where(seen, v, 0.0)
        ov = omega * vv
        ol, vl, seen_l = omega[land], vv[land], seen[land]
        out[d, :n] = np.bincount(idx, weights=ol * h * vl, minlength=n)
        out[d, n : 2 * n] = np.bincount(idx, weights=ol * h, minlength=n)
        out[d, 2 * n : 3 * n] = np.bincount(idx, weights=ol * h * h, minlength=n)
        out[d, 3 * n : 4 * n] = np.bincount(idx, weights=np.where(seen_l, h, 0.0), minlength=n)
        out[d, 4 * n :] = (omega.sum(), ov.sum(), (ov * vv).sum(), seen.sum())
    return out


def naive_groupby(pool: np.ndarray, mask: np.ndarray, days: int) -> None:
    labels = xr.DataArray(np.where(mask >= 0, mask, -1), dims=("lat", "lon"), name="country")
    for d in range(days):
        field = xr.DataArray(pool[d % POOL], dims=("lat", "lon"))
        field.where(labels >= 0).groupby(labels.where(labels >= 0)).sum()


def timed(label: str, func, *args):  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    result = func(*args)
    seconds = time.perf_counter() - t0
    print(f"  {label:44s} {seconds:8.2f} s")
    return result, seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--groupby-days", type=int, default=3)
    args = ap.parse_args()
    mask_da = country_mask(GRID)
    mask, n = mask_da.values, len(mask_da.attrs["countries_iso3"])
    pool = make_pool(GRID.shape)
    print(f"{args.days} days × {GRID.shape[0]}×{GRID.shape[1]} cells (0.1° global), {n} countries")
    with dask.config.set(scheduler="threads"):  # compile (or load the cached kernels) for the chunks' types
        zonal_sums(lazy_year(pool, 2), mask, n).compute()
        w = np.zeros(mask.shape)
        normal_equations(
            *[lazy_year(pool, 2)] * 3,
            regions=mask,
            weight=w,
            footprints=_self_layer(mask, w),
            background=0.0,
            n=n,
        )

    ref_all, t_all = timed("numpy baseline, all cells", baseline_all, pool, mask, n, args.days)
    ref_land, t_land = timed("numpy baseline, land cells gathered", baseline_land, pool, mask, n, args.days)
    baseline = min(t_all, t_land)
    lazy = lazy_year(pool, args.days)
    results = {}
    for threads in (2, 1):
        with dask.config.set(scheduler="threads", num_workers=threads):
            got, sec = timed(
                f"eolake zonal_sums, dask {threads} thread(s)", lambda: zonal_sums(lazy, mask, n).compute()
            )
        results[threads] = sec
        err = float(np.max(np.abs(got - ref_land)) / np.max(np.abs(ref_land)))
        assert err < 1e-9, f"sums differ from the baseline by {err:.2e} (relative)"
    weight = np.where(mask >= 0, 1e-4, 0.0)
    count_pool, unc_pool = derived_pools(pool)
    background = 1.5e-5
    ref_normal, t_nb = timed(
        "numpy baseline of the derivation's sums",
        baseline_normal, (pool, count_pool, unc_pool), mask, weight, n, args.days, background,
    )  # fmt: skip
    lazies = (lazy, lazy_year(count_pool, args.days), lazy_year(unc_pool, args.days))
    with dask.config.set(scheduler="threads", num_workers=2):
        eq, t_obs = timed(
            "derivation kernel (normal_equations, own-country footprint), 2 thr",
            lambda: normal_equations(
                *lazies,
                regions=mask,
                weight=weight,
                footprints=_self_layer(mask, weight),
                background=background,
                n=n,
            ),
        )
    k = np.arange(n)
    ours = np.concatenate(
        [eq.rhs[:, :n], eq.matrix[:, k, n], eq.matrix[:, k, k], eq.coverage,
         np.stack([eq.matrix[:, n, n], eq.rhs[:, n], eq.chi2_data, eq.cells], axis=1)], axis=1,
    )  # fmt: skip
    err = float(np.max(np.abs(ours - ref_normal) / np.maximum(np.abs(ref_normal), 1e-300)))
    assert err < 1e-6, f"derivation sums differ from the numpy baseline by {err:.2e} (relative)"
    _, t_gb = timed(
        f"naive xarray groupby, {args.groupby_days} day(s)", naive_groupby, pool, mask, args.groupby_days
    )
    t_gb_year = t_gb / args.groupby_days * args.days
    assert float(np.max(np.abs(ref_all - ref_land))) < 1e-6
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print("ratios against the numpy baseline (time / baseline time; lower is better):")
    print(f"  eolake, 2 threads : {results[2] / baseline:5.2f}×   (goal ≤ 1.5×)")
    print(f"  eolake, 1 thread  : {results[1] / baseline:5.2f}×")
    print(
        f"  derivation kernel : {t_obs / t_nb:5.2f}× its own numpy baseline (the same sums by np.bincount), "
        f"{t_obs / baseline:5.2f}× the zonal-sum baseline (it reads mean, count and uncertainty of every "
        "observed cell, sea too)"
    )
    print(
        f"  naive groupby     : {t_gb_year / baseline:5.1f}×   (extrapolated from {args.groupby_days} days)"
    )
    print(f"peak RSS {peak_gb:.2f} GB (the pool of {POOL} days is {pool.nbytes / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()
