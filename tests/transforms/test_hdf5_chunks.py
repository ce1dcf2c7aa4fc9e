"""The chunk path reads what h5py reads, falls back to h5py where it must, and names corrupt chunks."""

from __future__ import annotations

import io
import uuid
import zlib
from collections.abc import Iterator
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.transforms.test_s5p import T_REF, _name, _swath
from transforms.errors import GranuleReadError
from transforms.hdf5_chunks import ChunkPlan, _decode_chunk, _interleave, chunk_plan, read_array, read_into
from transforms.s5p import read_pixels, write_s5p_l2


@contextmanager
def _memory_file() -> Iterator[h5py.File]:
    """A throwaway HDF5 file held in memory."""
    with h5py.File(f"mem-{uuid.uuid4().hex}.h5", "w", driver="core", backing_store=False) as f:
        yield f


def _same_as_h5py(ds: h5py.Dataset, *, executor: Executor | None = None) -> npt.NDArray[Any]:
    out = np.empty(ds.shape, dtype=ds.dtype)
    read_into(ds, out, label="test.h5", executor=executor)
    expected = ds[()]
    assert out.dtype == expected.dtype and out.shape == expected.shape
    assert out.tobytes() == expected.tobytes()  # bit for bit: NaN payloads, -0.0, fill values
    return out


@pytest.fixture(scope="module")
def granule(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An NO2 granule of 700 scanlines: chunks of 512 scanlines, so the second one is an edge chunk."""
    path = tmp_path_factory.mktemp("chunks") / _name("no2").filename
    write_s5p_l2(path, name=_name("no2"), time_reference=T_REF, **_swath(700, 20))
    return path


def test_every_variable_of_a_granule_reads_as_h5py_reads_it(granule: Path) -> None:
    chunked = []
    with h5py.File(granule, "r") as f:

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset) and obj.dtype.kind in "iuf":
                np.testing.assert_array_equal(read_array(obj, label=str(granule)), obj[()])
                _same_as_h5py(obj)
                if chunk_plan(obj) is not None:
                    chunked.append(name)

        f.visititems(visit)
    # the chunk path, not the fallback, read the pixel variables (edge chunk included)
    for var in ("PRODUCT/latitude", "PRODUCT/qa_value", "PRODUCT/SUPPORT_DATA/GEOLOCATIONS/latitude_bounds"):
        assert var in chunked
    with h5py.File(granule, "r") as f:
        assert chunk_plan(f["PRODUCT/latitude"]) == ChunkPlan((1, 512, 20), 4, shuffled=True)
        assert chunk_plan(f["PRODUCT/qa_value"]) == ChunkPlan((1, 512, 20), 1, shuffled=False)
        assert f["PRODUCT/latitude"].id.get_num_chunks() == 2


def test_read_pixels_is_unchanged_through_a_file_object(granule: Path) -> None:
    with open(granule, "rb") as fh:
        px = read_pixels(fh, product="no2")
    swath = _swath(700, 20)
    np.testing.assert_array_equal(px.latitude, swath["latitude"].ravel())
    np.testing.assert_array_equal(px.value, swath["value"].ravel())
    np.testing.assert_array_equal(px.qa, read_pixels(io.BytesIO(granule.read_bytes()), product="no2").qa)
    assert px.latitude_bounds is not None
    np.testing.assert_array_equal(px.latitude_bounds, swath["latitude_bounds"].reshape(-1, 4))


_DTYPES = ["i1", "u1", "<i2", "<u2", "<i4", "<f4", ">f4", "<i8", "<f8", ">i8", "<f2"]


@st.composite
def _datasets(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[int, ...], str, bool, int]:
    ndim = draw(st.integers(1, 3))
    shape = tuple(draw(st.lists(st.integers(1, 12), min_size=ndim, max_size=ndim)))
    chunks = tuple(draw(st.integers(1, n)) for n in shape)
    return shape, chunks, draw(st.sampled_from(_DTYPES)), draw(st.booleans()), draw(st.integers(0, 9))


@settings(max_examples=60, deadline=None)
@given(spec=_datasets(), seed=st.integers(0, 2**16))
def test_any_shape_chunking_and_type_reads_bit_identically(
    spec: tuple[tuple[int, ...], tuple[int, ...], str, bool, int], seed: int
) -> None:
    shape, chunks, dtype, shuffle, level = spec
    raw = np.random.default_rng(seed).integers(0, 256, size=int(np.prod(shape)) * np.dtype(dtype).itemsize)
    data = raw.astype(np.uint8).view(dtype).reshape(shape)  # every bit pattern: NaNs, infinities, -0.0
    with _memory_file() as f:
        ds = f.create_dataset(
            "v", data=data, chunks=chunks, compression="gzip", compression_opts=level, shuffle=shuffle
        )
        assert chunk_plan(ds) is not None
        assert _same_as_h5py(ds).tobytes() == data.tobytes()


@pytest.mark.parametrize("itemsize", [1, 2, 3, 4, 8])
def test_the_byte_by_byte_unshuffle_matches_numpy(itemsize: int) -> None:
    """The loop used for odd item sizes and on big-endian hosts (the word loops cover the rest here)."""
    n = 37
    src = np.random.default_rng(itemsize).integers(0, 256, n * itemsize).astype(np.uint8)
    expected = src.reshape(itemsize, n).T.reshape(-1)
    dst = np.empty((n - 5) * itemsize, dtype=np.uint8)  # an edge chunk: only the first items
    _interleave(src, itemsize, dst)
    np.testing.assert_array_equal(dst, expected[: dst.size])


def test_edge_chunks_in_every_dim_and_regions_that_are_not_contiguous() -> None:
    data = np.arange(7 * 13 * 5, dtype=np.float32).reshape(7, 13, 5) * np.float32(1.5)
    with _memory_file() as f:
        for chunks in [(3, 4, 2), (3, 13, 5), (1, 13, 5), (7, 1, 5), (2, 13, 3), (4, 6, 5)]:
            ds = f.create_dataset(f"v{chunks}", data=data, chunks=chunks, compression="gzip", shuffle=True)
            np.testing.assert_array_equal(_same_as_h5py(ds), data)


def test_read_pixels_in_threads_gives_the_same_pixels(granule: Path) -> None:
    alone = read_pixels(granule, product="no2")
    with ThreadPoolExecutor(2) as pool:
        threaded = read_pixels(granule, product="no2", executor=pool)
    for field in (
        "value",
        "uncertainty",
        "qa",
        "latitude",
        "longitude",
        "latitude_bounds",
        "longitude_bounds",
    ):
        assert getattr(threaded, field).tobytes() == getattr(alone, field).tobytes(), field


def test_threads_give_the_same_result(granule: Path) -> None:
    with h5py.File(granule, "r") as f, ThreadPoolExecutor(2) as pool:
        for var in (
            "PRODUCT/longitude",
            "PRODUCT/qa_value",
            "PRODUCT/SUPPORT_DATA/GEOLOCATIONS/longitude_bounds",
        ):
            _same_as_h5py(f[var], executor=pool)


@pytest.mark.parametrize(
    "options",
    [
        {},  # contiguous
        {"chunks": (4, 3)},  # chunked, no filters
        {"chunks": (4, 3), "compression": "gzip", "fletcher32": True},
        {"chunks": (4, 3), "compression": "lzf"},
        {"chunks": (4, 3), "scaleoffset": 0},
        {"chunks": (4, 3), "compression": "gzip", "shuffle": True, "fletcher32": True},
    ],
)
def test_other_layouts_and_pipelines_are_read_by_h5py(options: dict[str, Any]) -> None:
    data = np.arange(10 * 7, dtype=np.int32).reshape(10, 7) - 30
    with _memory_file() as f:
        ds = f.create_dataset("v", data=data, **options)
        assert chunk_plan(ds) is None
        np.testing.assert_array_equal(_same_as_h5py(ds), data)


def test_compact_layout_and_non_numeric_types_are_read_by_h5py() -> None:
    with _memory_file() as f:
        space = h5py.h5s.create_simple((5,))
        plist = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        plist.set_layout(h5py.h5d.COMPACT)
        h5py.h5d.create(f.id, b"compact", h5py.h5t.NATIVE_INT32, space, dcpl=plist)
        f["compact"][...] = np.arange(5, dtype=np.int32)
        assert chunk_plan(f["compact"]) is None
        np.testing.assert_array_equal(_same_as_h5py(f["compact"]), np.arange(5))
        text = f.create_dataset(
            "text", data=["a", "bc"], dtype=h5py.string_dtype(), chunks=(1,), compression="gzip"
        )
        assert chunk_plan(text) is None
        assert list(read_array(text, label="t")) == [b"a", b"bc"]


def test_unwritten_chunks_read_as_the_fill_value() -> None:
    with _memory_file() as f:
        ds = f.create_dataset(
            "v", shape=(10, 4), dtype="<f4", chunks=(3, 4), compression="gzip", shuffle=True, fillvalue=-7.0
        )
        ds[4:5] = 1.0  # only the second chunk is stored
        assert ds.id.get_num_chunks() == 1
        out = _same_as_h5py(ds)
        assert (out[:3] == -7.0).all() and (out[4] == 1.0).all()


@pytest.mark.parametrize("skipped", ["shuffle", "deflate"])
def test_a_chunk_stored_with_a_filter_skipped_is_read_by_h5py(skipped: str) -> None:
    data = np.linspace(0, 1, 6 * 4, dtype="<f4").reshape(6, 4)
    with _memory_file() as f:
        ds = f.create_dataset("v", data=data, chunks=(3, 4), compression="gzip", shuffle=True)
        plain = data[3:].tobytes()
        shuffled = np.ascontiguousarray(np.frombuffer(plain, np.uint8).reshape(-1, 4).T).tobytes()
        # the second chunk stored deflated but not shuffled (mask bit 0) or shuffled but not deflated (bit 1)
        raw, mask = (zlib.compress(plain), 0b01) if skipped == "shuffle" else (shuffled, 0b10)
        ds.id.write_direct_chunk((3, 0), raw, filter_mask=mask)
        assert ds.id.get_chunk_info(1).filter_mask == mask
        np.testing.assert_array_equal(_same_as_h5py(ds), data)


def test_a_chunk_that_inflates_short_is_never_unshuffled_past_its_end() -> None:
    data = np.arange(6 * 4, dtype="<f4").reshape(6, 4)
    with _memory_file() as f:
        ds = f.create_dataset("v", data=data, chunks=(3, 4), compression="gzip", shuffle=True)
        # a whole, valid zlib stream of 40 bytes where the chunk holds 48: HDF5 unshuffles the 10 items it
        # got and leaves the last 2 undefined; the chunk path hands such a chunk to h5py
        ds.id.write_direct_chunk((3, 0), zlib.compress(bytes(range(40))), filter_mask=0)
        defined = slice(0, 12 + 10)
        try:
            expected = ds[()].reshape(-1)[defined]
        except OSError:
            with pytest.raises(GranuleReadError, match=r"chunk at \(3, 0\).*inflates to 40 bytes, not 48"):
                read_array(ds, label="short.h5")
        else:
            assert read_array(ds, label="short.h5").reshape(-1)[defined].tobytes() == expected.tobytes()
        out = np.zeros(data.shape, dtype="<f4")
        failure = _decode_chunk(((3, 0), 0, zlib.compress(bytes(range(40)))), ChunkPlan((3, 4), 4, True), out)
        assert str(failure) == "inflates to 40 bytes, not 48" and not out.any()  # nothing written


def _corrupt_chunk(path: Path, var: str, index: int) -> tuple[int, ...]:
    """Overwrite the middle of the ``index``-th stored chunk of ``var`` with garbage; its offset."""
    with h5py.File(path, "r") as f:
        info = f[var].id.get_chunk_info(index)
    with open(path, "r+b") as fh:
        fh.seek(info.byte_offset + info.size // 2)
        fh.write(bytes(range(7, 7 + 64)))
    return tuple(info.chunk_offset)


def test_a_corrupt_chunk_names_the_variable_and_the_chunk(granule: Path, tmp_path: Path) -> None:
    path = tmp_path / granule.name
    path.write_bytes(granule.read_bytes())
    var = "PRODUCT/nitrogendioxide_tropospheric_column"
    offset = _corrupt_chunk(path, var, 1)
    with h5py.File(path, "r") as f, pytest.raises(GranuleReadError) as info:
        read_array(f[var], label=path.name)
    message = str(info.value)
    assert f"granule {path.name}: variable /{var} is corrupt: its chunk at {offset}" in message
    assert "download it again" in message and "\n" not in message
    with pytest.raises(
        GranuleReadError, match=r"variable /PRODUCT/nitrogendioxide_tropospheric_column is corrupt"
    ):
        read_pixels(path, product="no2", corners=False)


def test_read_into_rejects_an_output_it_cannot_fill(granule: Path) -> None:
    with h5py.File(granule, "r") as f:
        ds = f["PRODUCT/latitude"]
        with pytest.raises(ValueError, match=r"C-contiguous float32 array of shape \(1, 700, 20\)"):
            read_into(ds, np.empty(ds.shape, dtype=np.float64), label="x")
        with pytest.raises(ValueError, match="C-contiguous"):
            read_into(ds, np.empty(ds.shape[::-1], dtype=np.float32).T, label="x")
