"""Benchmark: one simulated full day of S5P NO2 (14 orbits × 4172 × 450 pixels) onto the global 0.1° grid.

4172 scanlines per orbit, as in real OFFL files: the sunlit half orbit (3639 scanlines of 5.5 km) plus the
daylight part past the orbit's turns near the poles, split evenly between both ends.

Reports pixels/s per core (CPU time of the one thread doing the work, so other load on the machine does
not count) for
- the numpy baseline: centre binning with ``np.bincount`` (the skeleton's implementation, kept here),
- eolake's compiled centre kernel and footprint kernel (``transforms.gridding.GridAccumulator``),
- file-to-grid (read + mask + bin, ``transforms.l3.grid_granules``) over real-structure granule files,
and the ratios against the baseline run in the same process, plus the peak memory (RSS) of the process.

Run: ``uv run python bench/gridding.py [--orbits 14] [--files 14] [--method centre|footprint|both]``.
Goals (issue 4): centre ≥ 3× numpy; footprint ≥ 1/4 of centre; file-to-grid ≥ 15 Mpixel/s; peak < 4 GB.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import tempfile
import time
from pathlib import Path

import numpy as np

from transforms.footprint import warm_up
from transforms.granules import parse_granule_name
from transforms.grid import GridSpec
from transforms.gridding import GridAccumulator
from transforms.l3 import grid_granules
from transforms.products import get_product
from transforms.s5p import read_pixels, write_s5p_l2
from transforms.swath import OrbitModel, Swath, simulate_swath

GRID = GridSpec(0.1)
FIRST_ORBIT = 12367
SCANLINES = 4172  # per orbit, as in a real OFFL NO2 file


def numpy_centres(lat, lon, value, sigma, grid: GridSpec, sums: list[np.ndarray]) -> None:
    """The baseline: the skeleton's np.bincount centre binning (inverse-variance), added into ``sums``."""
    size = grid.shape[0] * grid.shape[1]
    idx = grid.cell_index(lat, lon)
    ok = idx >= 0
    idx, value, sigma = idx[ok], value[ok], sigma[ok]
    w = 1.0 / (sigma * sigma)
    sums[0] += np.bincount(idx, weights=w, minlength=size)
    sums[1] += np.bincount(idx, weights=w * value, minlength=size)
    sums[2] += np.bincount(idx, weights=w * w * sigma * sigma, minlength=size)
    sums[3] += np.bincount(idx, minlength=size)


def _values(
    swath: Swath, rng: np.random.Generator, *, fill: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    shape = swath.latitude.shape
    value = rng.normal(5e-5, 2e-5, shape).astype(np.float32)
    sigma = np.full(shape, 1e-5, dtype=np.float32)
    qa = rng.choice(np.array([0.5, 0.8, 1.0], dtype=np.float32), size=shape)
    if fill:
        value[rng.random(shape) < 0.02] = np.nan
    return value, sigma, qa


def _rate(n: int, seconds: float) -> str:
    return f"{n / seconds / 1e6:7.1f} Mpixel/s"


def bench_kernels(orbits: int, method: str) -> dict[str, float]:
    """Each orbit is simulated, then binned by every method in turn (only the binning is timed)."""
    rng = np.random.default_rng(0)
    warm_up()
    size = GRID.shape[0] * GRID.shape[1]
    sums = [np.zeros(size) for _ in range(4)]
    centre = GridAccumulator(GRID, method="centre")
    fp = GridAccumulator(GRID, method="footprint")
    # Every method's output arrays are touched before the clock starts: the first write to each page of a
    # fresh array (here 207 MB per accumulator) costs a page fault whose price varies ~10x between processes on
    # this VM, and would land on whichever method happens to touch a page first. Binning time is binning.
    for out in (*sums, centre.sums, fp.sums):
        out.fill(0.0)
    seconds = {"numpy": 0.0, "centre": 0.0, "footprint": 0.0}
    n = 0
    for o in range(orbits):
        s = simulate_swath(FIRST_ORBIT + o, scanlines=SCANLINES)
        if s is None:
            continue
        value, sigma, _ = _values(s, rng, fill=False)  # the kernels get masked pixels
        lat, lon = s.latitude.astype(np.float32).ravel(), s.longitude.astype(np.float32).ravel()
        lat_b = s.latitude_bounds.astype(np.float32).reshape(-1, 4)
        lon_b = s.longitude_bounds.astype(np.float32).reshape(-1, 4)
        value, sigma = value.ravel(), sigma.ravel()
        del s
        n += lat.size
        t = time.process_time()
        numpy_centres(lat, lon, value, sigma, GRID, sums)
        seconds["numpy"] += time.process_time() - t
        t = time.process_time()
        centre.add_arrays(value=value, uncertainty=sigma, latitude=lat, longitude=lon)
        seconds["centre"] += time.process_time() - t
        if method in ("footprint", "both"):
            t = time.process_time()
            fp.add_arrays(value=value, uncertainty=sigma, latitude_bounds=lat_b, longitude_bounds=lon_b)
            seconds["footprint"] += time.process_time() - t
    print(f"{orbits} orbits, {n / 1e6:.1f} Mpixel, grid {GRID.grid_id} {GRID.shape}; CPU time of one thread")
    assert np.array_equal(centre.count, sums[3]) and np.allclose(centre.sw, sums[0], rtol=1e-5)
    out = {k: n / v for k, v in seconds.items() if v > 0}
    if "footprint" in out:
        assert np.isclose(fp.sw.sum(), centre.sw.sum(), rtol=1e-6), "footprint binning lost weight"
    for k, v in out.items():
        print(f"  {k:10s} {_rate(1, 1 / v)}   {v / out['numpy']:5.2f}× numpy")
    if "footprint" in out:
        print(f"  footprint / centre = {out['footprint'] / out['centre']:.2f} (goal ≥ 0.25)")
    return out


def _write_granules(root: Path, orbits: int) -> list[Path]:
    rng = np.random.default_rng(1)
    model = OrbitModel()
    paths = []
    for o in range(orbits):
        s = simulate_swath(FIRST_ORBIT + o, model=model, scanlines=SCANLINES)
        if s is None:
            continue
        value, sigma, qa = _values(s, rng)
        start = s.start.strftime("%Y%m%dT%H%M%S")
        stop = s.end.strftime("%Y%m%dT%H%M%S")
        name = f"S5P_OFFL_L2__NO2____{start}_{stop}_{s.orbit:05d}_01_010302_20200306T000000"
        path = root / f"{name}.nc"
        write_s5p_l2(
            path,
            name=parse_granule_name(name),
            latitude=s.latitude,
            longitude=s.longitude,
            latitude_bounds=s.latitude_bounds,
            longitude_bounds=s.longitude_bounds,
            value=value,
            precision=sigma,
            qa_value=qa,
            delta_time_ms=s.delta_time_ms,
            time_reference=s.time_reference,
            include_averaging_kernel=False,
        )
        paths.append(path)
    return paths


def bench_files(files: int, method: str) -> dict[str, float]:
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = _write_granules(Path(tmp), files)
        product = get_product("no2")
        methods = ["centre", "footprint"] if method == "both" else [method]
        # untimed: compiles (or loads from numba's cache) the reader's unshuffle kernels
        read_pixels(paths[0], product=product, corners=True)
        for m in methods:
            handles = [p.open("rb") for p in paths]
            t = time.process_time()
            _, stats = grid_granules(handles, day=dt.date(2020, 3, 3), grid=GRID, product=product, method=m)  # type: ignore[arg-type]
            seconds = time.process_time() - t
            for h in handles:
                h.close()
            out[f"file-to-grid {m}"] = stats.pixels_read / seconds
            print(
                f"  file-to-grid {m:9s} {_rate(stats.pixels_read, seconds)}  ({len(paths)} files, "
                f"{stats.pixels_read / 1e6:.1f} Mpixel read, {stats.pixels_used / 1e6:.1f} M used)"
            )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--orbits", type=int, default=14)
    ap.add_argument("--files", type=int, default=14)
    ap.add_argument("--method", choices=["centre", "footprint", "both"], default="both")
    args = ap.parse_args()
    bench_kernels(args.orbits, args.method)
    if args.files:
        bench_files(args.files, args.method)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print(f"peak memory (RSS) {peak:.2f} GB (goal < 4 GB)")


if __name__ == "__main__":
    main()
