"""The compiled zonal-sum kernels against plain numpy (np.bincount), eager and on dask chunks."""

from __future__ import annotations

import dask
import dask.array as da
import numpy as np
import pytest

from transforms.errors import InputError
from transforms.zonal import observed_sums, zonal_sums


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


def test_observed_sums_follow_their_definition() -> None:
    values, regions, n = _case(1)
    rng = np.random.default_rng(2)
    count = np.where(np.isfinite(values), rng.integers(0, 3, values.shape), 0)
    unc = np.where(rng.random(values.shape) < 0.1, np.nan, 0.1).astype(np.float32)
    weight, foot = rng.random(regions.shape), rng.random(regions.shape)
    ok = (count > 0) & np.isfinite(values) & (regions >= 0)[None]
    sig2 = np.nan_to_num(unc.astype(np.float64)) ** 2
    expected = np.stack(
        [
            _reference(np.where(ok, q, np.nan), regions, n)
            for q in (
                np.broadcast_to(weight, values.shape),
                weight * (values.astype(np.float64) - 0.5),
                np.broadcast_to(weight * foot, values.shape),
                weight**2 * sig2,
            )
        ],
        axis=1,
    )
    # two neighbour layers: cells list up to two other regions (the second only where the first is set)
    nb_idx = rng.integers(-1, n, size=(2, *regions.shape)).astype(np.int32)
    nb_idx[1, nb_idx[0] < 0] = -1
    nb_wh = rng.random((2, *regions.shape))
    cross = np.zeros((values.shape[0], n, n))
    for t in range(values.shape[0]):
        for layer in range(2):
            use = ok[t] & (nb_idx[layer] >= 0)
            np.add.at(cross[t], (regions[use], nb_idx[layer][use]), nb_wh[layer][use])
    kwargs = {"regions": regions, "weight": weight, "footprint": foot, "background": 0.5, "n": n}
    eager = observed_sums(values, count, unc, **kwargs, neighbours=(nb_idx, nb_wh))
    assert eager.shape == (values.shape[0], 4 + n, n)
    np.testing.assert_allclose(eager[:, :4], expected, rtol=1e-10)
    np.testing.assert_allclose(eager[:, 4:], cross, rtol=1e-10)
    np.testing.assert_array_equal(observed_sums(values, count, unc, **kwargs)[:, 4:], 0.0)
    chunked = [da.from_array(a, chunks=(4, 20, 20)) for a in (values, count, unc)]
    with dask.config.set(scheduler="threads"):
        lazy = observed_sums(*chunked, **kwargs, neighbours=(nb_idx, nb_wh))
    np.testing.assert_allclose(lazy, eager, rtol=1e-10)


def test_mismatched_shapes_say_the_fix() -> None:
    values, regions, n = _case()
    with pytest.raises(InputError, match="do not match the region mask"):
        zonal_sums(values[:, :10], regions, n)
