"""The compiled zonal-sum kernels against plain numpy (np.bincount), eager and on dask chunks."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

from transforms.errors import InputError
from transforms.zonal import normal_equations, zonal_sums


def _case(seed: int = 0) -> tuple[np.ndarray, np.ndarray, int]:
    rng = np.random.default_rng(seed)
    regions = rng.integers(-1, 7, size=(37, 53)).astype(np.int16)
    values = rng.normal(1.0, 0.5, size=(9, 37, 53)).astype(np.float32)
    values[rng.random(values.shape) < 0.3] = np.nan
    return values, regions, 7


def _reference(values: np.ndarray, regions: np.ndarray, n: int) -> np.ndarray:
    flat = regions.ravel()
    out = np.zeros((values.shape[0], n))
    for t in range(values.shape[0]):
        v = values[t].ravel().astype(np.float64)
        ok = (flat >= 0) & np.isfinite(v)
        out[t] = np.bincount(flat[ok], weights=v[ok], minlength=n)
    return out


def test_zonal_sums_match_bincount_eager_and_chunked() -> None:
    values, regions, n = _case()
    expected = _reference(values, regions, n)
    np.testing.assert_allclose(zonal_sums(values, regions, n), expected, rtol=1e-12)
    lazy = zonal_sums(da.from_array(values, chunks=(2, 10, 20)), regions, n)
    assert isinstance(lazy, da.Array) and lazy.shape == (9, n)
    with dask.config.set(scheduler="threads"):
        np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-12)


def test_normal_equations_follow_their_definition() -> None:
    """Against a dense least-squares design matrix built cell by cell in numpy, eager and on dask chunks."""
    values, regions, n = _case(1)
    rng = np.random.default_rng(2)
    count = np.where(np.isfinite(values), rng.integers(0, 3, values.shape), 0)
    unc = np.where(rng.random(values.shape) < 0.1, np.nan, 0.1).astype(np.float32)
    weight = rng.random(regions.shape)
    # up to three unknowns per cell (a list ends at the first -1), on land and sea alike
    fp_idx = np.stack([rng.permutation(n)[:3] for _ in range(regions.size)], axis=1).reshape(
        3, *regions.shape
    )
    fp_idx = fp_idx.astype(np.int16)
    fp_idx[2, rng.random(regions.shape) < 0.5] = -1
    fp_idx[1:, rng.random(regions.shape) < 0.2] = -1
    fp_val = rng.random((3, *regions.shape)).astype(np.float32)
    floor = 0.05
    design = np.zeros((regions.size, n + 1))  # H per cell and unknown; the background column is 1
    flat_idx, flat_val = fp_idx.reshape(3, -1), fp_val.reshape(3, -1).astype(np.float64)
    for i in range(regions.size):
        for layer in range(3):
            if flat_idx[layer, i] < 0:
                break
            design[i, flat_idx[layer, i]] = flat_val[layer, i]
    design[:, n] = 1.0
    kwargs = {"regions": regions, "weight": weight, "footprints": (fp_idx, fp_val), "background": 0.5, "n": n}
    eager = normal_equations(values, count, unc, **kwargs, floor=floor)
    for t in range(values.shape[0]):
        ok = ((count[t] > 0) & np.isfinite(values[t])).ravel()
        omega = 1.0 / (np.nan_to_num(unc[t].astype(np.float64)).ravel() ** 2 + floor**2)
        h, w, v = design[ok], omega[ok], values[t].ravel()[ok].astype(np.float64) - 0.5
        np.testing.assert_allclose(eager.matrix[t], h.T @ (w[:, None] * h), rtol=1e-10)
        np.testing.assert_allclose(eager.rhs[t], h.T @ (w * v), rtol=1e-10)
        assert eager.chi2_data[t] == pytest.approx(np.sum(w * v * v), rel=1e-10)
        assert eager.cells[t] == ok.sum()
        land = ok & (regions.ravel() >= 0)
        cov = np.bincount(regions.ravel()[land], weights=weight.ravel()[land], minlength=n)
        np.testing.assert_allclose(eager.coverage[t], cov, rtol=1e-10)
    chunked = [da.from_array(a, chunks=(4, 20, 20)) for a in (values, count, unc)]
    with dask.config.set(scheduler="threads"):
        lazy = normal_equations(*chunked, **kwargs, floor=floor)
    np.testing.assert_allclose(lazy.matrix, eager.matrix, rtol=1e-10)
    np.testing.assert_allclose(lazy.rhs, eager.rhs, rtol=1e-10)
    np.testing.assert_allclose(lazy.coverage, eager.coverage, rtol=1e-10)


def test_mismatched_shapes_say_the_fix() -> None:
    values, regions, n = _case()
    with pytest.raises(InputError, match="do not match the region mask"):
        zonal_sums(values[:, :10], regions, n)
