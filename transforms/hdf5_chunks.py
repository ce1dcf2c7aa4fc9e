"""Chunked HDF5 variables read by inflating their stored chunks with libdeflate, bit-identical to h5py.

HDF5 reading a chunk stored with shuffle + deflate (how netCDF4 and S5P L2 files store their variables)
spends most of its time in zlib's inflate. For a chunked integer or float dataset whose filter pipeline is
exactly ``deflate`` or ``shuffle, deflate``, :func:`read_into` reads each stored chunk's raw bytes
(``H5Dread_chunk``, no filters), inflates them with libdeflate (2.1× zlib on these chunks; it checks the
adler-32 and truncation, and the size is checked here), unshuffles them with compiled loops and copies the
chunk's part of the dataset (edge chunks clipped) into the output. Every other case is read by h5py itself:
other filters or filter order, contiguous, compact or virtual layouts, unwritten chunks, a dtype conversion.
A chunk stored with a filter skipped, or one that does not inflate to exactly one chunk, is read again by h5py
alone; when h5py cannot read it either, :class:`~transforms.errors.GranuleReadError` names the variable and
the chunk.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Any

import deflate
import h5py
import numba
import numpy as np
import numpy.typing as npt

from transforms.errors import GranuleReadError

_DEFLATE = 1  # H5Z_FILTER_DEFLATE
_LITTLE_ENDIAN = sys.byteorder == "little"
_SHUFFLE = 2  # H5Z_FILTER_SHUFFLE


@dataclass(frozen=True)
class ChunkPlan:
    """How to decode a dataset's chunks: chunk ``shape`` (elements per dim), ``itemsize`` (bytes) and whether
    the bytes are ``shuffled`` (HDF5's byte-plane shuffle) before deflate."""

    shape: tuple[int, ...]
    itemsize: int
    shuffled: bool

    @property
    def nbytes(self) -> int:
        """Bytes of one decoded chunk."""
        return math.prod(self.shape) * self.itemsize


def chunk_plan(ds: h5py.Dataset) -> ChunkPlan | None:
    """The plan for reading ``ds`` chunk by chunk, or None when h5py must read it: not chunked, not a plain
    integer/float type, or a filter pipeline other than (shuffle,) deflate."""
    if ds.chunks is None or ds.is_virtual or ds.dtype.kind not in "iuf" or ds.dtype.fields is not None:
        return None
    plist = ds.id.get_create_plist()
    if plist.get_layout() != h5py.h5d.CHUNKED:
        return None
    filters = [plist.get_filter(i) for i in range(plist.get_nfilters())]
    codes = [code for code, *_ in filters]
    if codes == [_DEFLATE]:
        shuffled = False
    elif codes == [_SHUFFLE, _DEFLATE] and tuple(filters[0][2])[:1] == (ds.dtype.itemsize,):
        shuffled = ds.dtype.itemsize > 1  # shuffling 1-byte items changes nothing
    else:
        return None
    return ChunkPlan(tuple(int(c) for c in ds.chunks), ds.dtype.itemsize, shuffled)


def read_into(
    ds: h5py.Dataset, out: npt.NDArray[Any], *, label: str, executor: Executor | None = None
) -> None:
    """Read all of ``ds`` into ``out`` (its shape and dtype, C-contiguous): what ``ds.read_direct(out)``
    gives, bit for bit, through the chunk path when :func:`chunk_plan` allows it. ``executor`` (optional)
    inflates chunks in its threads (libdeflate and the unshuffle loop release the GIL); HDF5 is called from
    this thread only. Raises :class:`GranuleReadError` naming granule ``label``, the variable and the chunk
    when a chunk can be read neither way."""
    if out.shape != ds.shape or out.dtype != ds.dtype or not out.flags.c_contiguous:
        raise ValueError(f"read_into needs a C-contiguous {ds.dtype} array of shape {ds.shape}")
    if out.size == 0:
        return
    plan = chunk_plan(ds)
    expected = math.prod(-(-n // c) for n, c in zip(ds.shape, plan.shape, strict=True)) if plan else 0
    if plan is None or ds.id.get_num_chunks() != expected:  # unallocated chunks read as fill: h5py's job
        ds.read_direct(out)
        return
    chunks = [(offset, *ds.id.read_direct_chunk(offset)) for offset in _chunk_offsets(ds)]
    decode = partial(_decode_chunk, plan=plan, out=out)
    results = executor.map(decode, chunks) if executor is not None else map(decode, chunks)
    for (offset, _, _), failure in zip(chunks, list(results), strict=True):
        if failure is not None:
            _read_chunk_with_h5py(ds, out, offset, plan, failure, label)


def read_array(ds: h5py.Dataset, *, label: str, executor: Executor | None = None) -> npt.NDArray[Any]:
    """All of ``ds`` as a new array, as ``ds[()]`` returns it; chunked integer/float datasets through
    :func:`read_into` (same ``label`` and ``executor``)."""
    if ds.chunks is None or ds.dtype.kind not in "iuf" or ds.dtype.fields is not None:
        return np.asarray(ds[()])
    out = np.empty(ds.shape, dtype=ds.dtype)
    read_into(ds, out, label=label, executor=executor)
    return out


def _chunk_offsets(ds: h5py.Dataset) -> Iterator[tuple[int, ...]]:
    """The element offsets of ``ds``'s stored chunks, in file order when HDF5 can list them that way."""
    if hasattr(ds.id, "chunk_iter"):
        infos: list[Any] = []
        ds.id.chunk_iter(infos.append)
        yield from (tuple(info.chunk_offset) for info in infos)
    else:
        for i in range(ds.id.get_num_chunks()):
            yield tuple(ds.id.get_chunk_info(i).chunk_offset)


def _region(offset: tuple[int, ...], plan: ChunkPlan, shape: tuple[int, ...]) -> tuple[slice, ...]:
    """The chunk's part of the dataset: edge chunks clipped to its shape."""
    return tuple(slice(o, min(o + c, n)) for o, c, n in zip(offset, plan.shape, shape, strict=True))


def _decode_chunk(
    chunk: tuple[tuple[int, ...], int, bytes], plan: ChunkPlan, out: npt.NDArray[Any]
) -> Exception | None:
    """Inflate (and unshuffle) one stored chunk into its region of ``out``; the error instead when its
    filters were partly skipped or it does not inflate to exactly one chunk."""
    offset, filter_mask, raw = chunk
    if filter_mask:
        return ValueError(f"stored with filters skipped (filter mask {filter_mask:#x})")
    try:  # fails unless the zlib stream is whole, its adler-32 right and it fits in one chunk
        data = deflate.zlib_decompress(raw, plan.nbytes)
    except deflate.DeflateError as err:
        return ValueError(f"inflate: {err}")
    if len(data) != plan.nbytes:  # a shorter stream is no error to libdeflate
        return ValueError(f"inflates to {len(data)} bytes, not {plan.nbytes}")
    src = np.frombuffer(data, dtype=np.uint8)
    region = _region(offset, plan, out.shape)
    extent = [s.stop - s.start for s in region]
    flat = out.reshape(-1).view(np.uint8)
    lead = next((k for k, e in enumerate(extent) if e > 1), len(extent) - 1)
    if all(plan.shape[k] == out.shape[k] for k in range(lead + 1, out.ndim)):
        # the region is one contiguous run of ``out`` and the chunk's first elements: decode in place
        start = int(np.ravel_multi_index(tuple(s.start for s in region), out.shape)) * plan.itemsize
        count = math.prod(extent)
        _unshuffle_into(src, plan, flat[start : start + count * plan.itemsize])
    else:
        decoded = np.empty(plan.nbytes, dtype=np.uint8)
        _unshuffle_into(src, plan, decoded)
        out[region] = decoded.view(out.dtype).reshape(plan.shape)[tuple(slice(0, e) for e in extent)]
    return None


def _unshuffle_into(src: npt.NDArray[np.uint8], plan: ChunkPlan, dst: npt.NDArray[np.uint8]) -> None:
    """The first ``len(dst)`` bytes of the decoded chunk whose inflated bytes are ``src``, into ``dst``.
    HDF5's shuffle stores byte b of each of the chunk's n items in plane ``src[b*n:(b+1)*n]``; items of 2, 4
    or 8 bytes are assembled as little-endian words from the planes (loops the compiler vectorises, each
    compiled on first use), others byte by byte."""
    if not plan.shuffled:
        dst[:] = src[: dst.shape[0]]
        return
    size = plan.itemsize
    n = src.shape[0] // size
    p = [src[b * n : (b + 1) * n] for b in range(size)]
    if _LITTLE_ENDIAN and size == 2:
        _words2(p[0], p[1], dst.view(np.uint16))
    elif _LITTLE_ENDIAN and size == 4:
        _words4(p[0], p[1], p[2], p[3], dst.view(np.uint32))
    elif _LITTLE_ENDIAN and size == 8:
        _words8(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], dst.view(np.uint64))
    else:
        _interleave(src, size, dst)


@numba.njit(cache=True, nogil=True)
def _words2(p0: Any, p1: Any, out: Any) -> None:
    """``out[i]`` (uint16) from byte planes ``p0`` (low) and ``p1``."""
    for i in range(out.shape[0]):
        out[i] = np.uint16(p0[i]) | (np.uint16(p1[i]) << 8)


@numba.njit(cache=True, nogil=True)
def _words4(p0: Any, p1: Any, p2: Any, p3: Any, out: Any) -> None:
    """``out[i]`` (uint32) from byte planes ``p0`` (low) … ``p3``."""
    for i in range(out.shape[0]):
        out[i] = (
            np.uint32(p0[i]) | (np.uint32(p1[i]) << 8) | (np.uint32(p2[i]) << 16) | (np.uint32(p3[i]) << 24)
        )


@numba.njit(cache=True, nogil=True)
def _words8(p0: Any, p1: Any, p2: Any, p3: Any, p4: Any, p5: Any, p6: Any, p7: Any, out: Any) -> None:
    """``out[i]`` (uint64) from byte planes ``p0`` (low) … ``p7``."""
    for i in range(out.shape[0]):
        lo = np.uint64(p0[i]) | (np.uint64(p1[i]) << 8) | (np.uint64(p2[i]) << 16) | (np.uint64(p3[i]) << 24)
        hi = np.uint64(p4[i]) | (np.uint64(p5[i]) << 8) | (np.uint64(p6[i]) << 16) | (np.uint64(p7[i]) << 24)
        out[i] = lo | (hi << 32)


@numba.njit(cache=True, nogil=True)
def _interleave(src: Any, size: Any, dst: Any) -> None:
    """The first ``len(dst) // size`` items of ``size`` bytes, byte by byte, from the planes of ``src``."""
    n = src.shape[0] // size
    for b in range(size):
        for i in range(dst.shape[0] // size):
            dst[i * size + b] = src[b * n + i]


def _read_chunk_with_h5py(
    ds: h5py.Dataset,
    out: npt.NDArray[Any],
    offset: tuple[int, ...],
    plan: ChunkPlan,
    failure: Exception,
    label: str,
) -> None:
    """Read one chunk's region through h5py's own filters; if that fails too the chunk is corrupt."""
    region = _region(offset, plan, ds.shape)
    try:
        ds.read_direct(out, source_sel=region, dest_sel=region)
    except (OSError, ValueError, RuntimeError) as err:
        raise GranuleReadError(
            f"granule {label}: variable {ds.name} is corrupt: its chunk at {offset} cannot be decoded "
            f"({failure}; HDF5: {err}); download it again"
        ) from err
