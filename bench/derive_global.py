"""Benchmark: the emissions derivation on the global 0.1° grid, streamed over synthetic cube days.

Builds the static per-grid parts (country mask, sector proxies, footprint layers) and runs
``transforms.emissions.derive_emissions`` over ``--days`` lazily generated days (chunks 1 × 1024², like the
cube) on dask's threaded scheduler. Reports the time of each part and the process's peak memory (RSS): the
static parts cost the same for any number of days, and the days stream chunk by chunk, so the peak should
not grow with ``--days``.

Run: ``uv run python bench/derive_global.py [--days 30]``. Goal (issue 6): bounded memory for a year.
"""

from __future__ import annotations

import argparse
import resource
import time

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from transforms import emissions as em
from transforms.grid import GridSpec
from transforms.regions import country_mask
from transforms.truth import load_base_inventory

GRID = GridSpec(0.1)


def synthetic_cube(days: int) -> xr.Dataset:
    """Background plus noise, 40% of cells unobserved; every chunk made on demand (never held at once)."""

    def block(block_info: dict | None = None) -> np.ndarray:
        assert block_info is not None
        (t0, t1), (y0, y1), (x0, x1) = block_info[None]["array-location"]
        rng = np.random.default_rng([t0, y0, x0])
        out = (1.5e-5 + rng.normal(0.0, 3e-6, (t1 - t0, y1 - y0, x1 - x0))).astype(np.float32)
        out[rng.random(out.shape) < 0.4] = np.nan
        return out

    ny, nx = GRID.shape
    chunks = ((1,) * days, _split(ny), _split(nx))
    mean = da.map_blocks(block, chunks=chunks, dtype=np.float32, meta=np.empty((0, 0, 0), np.float32))
    dims = ("time", "lat", "lon")
    return xr.Dataset(
        {
            "mean": (dims, mean),
            "count": (dims, da.where(da.isnan(mean), 0, 4).astype(np.int32)),
            "uncertainty": (dims, da.full(mean.shape, 1.5e-6, chunks=chunks, dtype=np.float32)),
        },
        coords={"time": pd.date_range("2020-01-01", periods=days), "lat": GRID.lat(), "lon": GRID.lon()},
    )


def _split(n: int, size: int = 1024) -> tuple[int, ...]:
    return tuple(min(size, n - i) for i in range(0, n, size))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--days", type=int, default=30)
    args = ap.parse_args()
    t0 = time.perf_counter()
    mask = country_mask(GRID)
    proxies = em.sector_proxies(GRID, mask)
    t_static = time.perf_counter() - t0
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=2):
        table = em.derive_emissions(
            synthetic_cube(args.days),
            GRID,
            mask=mask,
            proxies=proxies,
            inventory=load_base_inventory(),
            release="b",
        )
    t_derive = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(
        f"global 0.1° ({GRID.shape[0]}×{GRID.shape[1]}), {args.days} days, {table['iso3'].nunique()} regions"
    )
    print(f"  mask + proxies        {t_static:7.1f} s")
    print(f"  derivation (footprint layers, streamed normal equations, smoother, table) {t_derive:7.1f} s")
    print(f"  rows {len(table)}, peak RSS {peak:.2f} GB")


if __name__ == "__main__":
    main()
