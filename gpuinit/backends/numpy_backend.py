"""The NumPy backend: numpy arrays and torch CPU tensors, in place, chunk by chunk, on all cores.

Memory stays bounded: each worker holds one chunk of ``CHUNK`` elements (a few MiB of words and
floats), never a full-size temporary, except orthogonal (QR needs the whole matrix) and sparse
(a column's rank needs its keys).
"""
import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import regions
from ..draws import ELEMENTWISE
from ..errors import InitError
from ..kernels import numpy_stream as ks
from . import cpu_kernel

NAME = "numpy"
INSTALL = "numpy"
CHUNK = 1 << 18  # elements per piece: fastest of 2**15..2**20 on 2 cores (bench/cpu.py)
_FLOAT_DTYPES = {"float16", "float32", "float64"}
_TORCH_DTYPES = {"float16", "bfloat16", "float32", "float64"}
_pool = None
_pool_lock = threading.Lock()


def available():
    return None


def accepts(array):
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        return array.device.type in ("cpu", "meta")
    return isinstance(array, np.ndarray)


def num_threads():
    return max(1, int(os.environ.get("GPUINIT_NUM_THREADS", "0")) or os.cpu_count() or 1)


def _executor():
    global _pool
    with _pool_lock:
        if _pool is None or _pool._max_workers != num_threads():
            _pool = ThreadPoolExecutor(num_threads(), thread_name_prefix="gpuinit")
        return _pool


# ---- checks -----------------------------------------------------------------------------------------

def check(array):
    """Raise unless ``array`` is a writable floating-point array whose elements do not overlap."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        name = str(array.dtype).removeprefix("torch.")
        if array.layout != torch.strided:
            raise InitError(f"gpuinit fills strided (dense) tensors, got layout {array.layout}")
        ok = name in _TORCH_DTYPES
        strides, itemsize = array.stride(), 1
    else:
        name = array.dtype.name
        ok = name in _FLOAT_DTYPES
        if ok and not array.flags.writeable:
            raise InitError("the array is read-only")
        strides, itemsize = array.strides, array.itemsize
    if not ok:
        raise InitError(f"gpuinit fills floating-point arrays (float16, bfloat16, float32, float64), got {name}")
    check_no_overlap(tuple(array.shape), strides, itemsize)


def check_no_overlap(shape, strides, itemsize):
    """Sorted by |stride|, each dimension must step past the whole extent of the smaller ones."""
    if 0 in shape:
        return
    extent = itemsize
    for n, s in sorted(((n, abs(s)) for n, s in zip(shape, strides) if n > 1), key=lambda t: t[1]):
        if s < extent:
            raise InitError(f"the array's elements overlap (shape {shape}, strides {strides}): "
                            "gpuinit writes each element once, so it needs distinct memory per element")
        extent = s * (n - 1) + extent


# ---- writing ----------------------------------------------------------------------------------------

def _numpy_view(array):
    """(writable numpy view sharing the memory, True when it holds bfloat16 bits as int16)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        t = array.detach()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy(), True
        return t.numpy(), False
    return array, False


def bfloat16_bits(values):
    """float32 -> bfloat16 bit patterns (int16), round to nearest even."""
    bits = np.ascontiguousarray(values, dtype=np.float32).view(np.uint32)
    bits = (bits + (np.uint32(0x7FFF) + ((bits >> np.uint32(16)) & np.uint32(1)))) >> np.uint32(16)
    return bits.astype(np.uint16).view(np.int16)


def _store(dst, values, bf16):
    values = values.reshape(dst.shape)
    dst[...] = bfloat16_bits(values) if bf16 else values


def fill(array, draw, full_shape, offsets, seed, stream):
    """Fill ``array`` (the block at ``offsets`` of a ``full_shape`` tensor) with ``draw``."""
    view, bf16 = _numpy_view(array)
    if draw.kind in ELEMENTWISE:
        _fill_elementwise(view, bf16, draw, full_shape, offsets, seed, stream)
    elif draw.kind == "orthogonal":
        _orthogonal(view, bf16, draw.params, full_shape, offsets, seed, stream, torch_qr=view is not array)
    else:
        _STRUCTURED[draw.kind](view, bf16, draw.params, full_shape, offsets, seed, stream)
    _bump_version(array)
    return array


def _bump_version(array):
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        torch.autograd.graph.increment_version(array)


def draw_values(kind, params, starts, length, seed, stream):
    """float32 values of runs: the compiled host kernel when it is available, else NumPy (same bits)."""
    lib = cpu_kernel.load()
    if lib is not None:
        return cpu_kernel.draw_values(lib, kind, params, starts, length, seed, stream)
    return ks.draw_values(kind, params, starts, length, seed, stream)


def _fill_elementwise(view, bf16, draw, full_shape, offsets, seed, stream):
    lib = cpu_kernel.load()

    def work(piece):
        index, _, starts, length = piece
        dst = view[index]
        direct = dst.flags.c_contiguous and (bf16 or dst.dtype == np.float32)
        if lib is not None and direct:  # written in place by the kernel, no copy
            out = dst.reshape(len(starts), length)
            cpu_kernel.draw_values(lib, draw.kind, draw.params, starts, length, seed, stream, out=out, bf16=bf16)
        else:
            _store(dst, draw_values(draw.kind, draw.params, starts, length, seed, stream), bf16)

    todo = regions.pieces(view.shape, full_shape, offsets, CHUNK)
    if view.size <= CHUNK or num_threads() == 1:
        for piece in todo:
            work(piece)
    else:
        for _ in _executor().map(work, todo):
            pass


def _scalar(value, bf16):
    return bfloat16_bits(np.float32(value)) if bf16 else value


def _constant(view, bf16, p, full_shape, offsets, seed, stream):
    view[...] = _scalar(p["value"], bf16)


def _eye(view, bf16, p, full_shape, offsets, seed, stream):
    view[...] = 0
    (r0, c0), (r, c) = offsets, view.shape
    d = np.arange(max(r0, c0), min(r0 + r, c0 + c))
    view[d - r0, d - c0] = _scalar(p["gain"], bf16)


def _dirac(view, bf16, p, full_shape, offsets, seed, stream):
    view[...] = 0
    groups = p["groups"]
    per_group = full_shape[0] // groups
    d = np.arange(min(per_group, full_shape[1]))
    rows = (np.arange(groups)[:, None] * per_group + d).reshape(-1)
    idx = [rows, np.tile(d, groups)] + [np.full(rows.size, n // 2) for n in full_shape[2:]]
    local = [i - o for i, o in zip(idx, offsets)]
    inside = np.all([(li >= 0) & (li < n) for li, n in zip(local, view.shape)], axis=0)
    view[tuple(li[inside] for li in local)] = _scalar(1.0, bf16)


def _normal_block(shape, full_shape, offsets, seed, stream, mean=0.0, std=1.0):
    """float32 normal values of a block, gathered piece by piece (used by the host-side schemes)."""
    out = np.empty(shape, np.float32)
    params = {"mean": mean, "std": std}
    for index, _, starts, length in regions.pieces(shape, full_shape, offsets, CHUNK):
        out[index] = draw_values("normal", params, starts, length, seed, stream).reshape(out[index].shape)
    return out


def _orthogonal(view, bf16, p, full_shape, offsets, seed, stream, torch_qr=False):
    """Gaussian of the full tensor from the stream, QR per batch copy, sign fix, then this block."""
    g = _normal_block(full_shape, full_shape, (0,) * len(full_shape), seed, stream)
    work = np.float64 if view.dtype == np.float64 else np.float32
    batch = tuple(p["batch_axis"])
    nb = len(batch)
    moved = np.moveaxis(g.astype(work, copy=False), batch, tuple(range(nb)))
    out_pos = nb + sum(1 for a in range(len(full_shape)) if a not in batch and a < p["out_axis"])
    moved = np.moveaxis(moved, out_pos, nb)
    mats = moved.reshape((math.prod(moved.shape[:nb]), moved.shape[nb], -1))
    for i in range(mats.shape[0]):
        mats[i] = orthonormalize(mats[i], torch_qr)
    mats *= p["gain"]
    full = np.moveaxis(np.moveaxis(mats.reshape(moved.shape), nb, out_pos), tuple(range(nb)), batch)
    _store(view, full[tuple(slice(o, o + n) for o, n in zip(offsets, view.shape))], bf16)


def orthonormalize(m, torch_qr=False):
    """Q of the QR of ``m`` (or of m.T when it is wide) with columns signed by diag(R), as torch does.

    torch tensors use torch's LAPACK (3x faster than NumPy's on float32, which computes in float64);
    numpy arrays use NumPy's: the QR follows the array's library, so results never depend on what
    else a process has imported."""
    wide = m.shape[0] < m.shape[1]
    a = m.T if wide else m
    if torch_qr:
        import torch

        q, r = (t.numpy() for t in torch.linalg.qr(torch.from_numpy(np.ascontiguousarray(a))))
    else:
        q, r = np.linalg.qr(a)
    q *= np.where(np.diagonal(r) < 0, -1, 1).astype(q.dtype)
    return q.T if wide else q


def _sparse(view, bf16, p, full_shape, offsets, seed, stream):
    """N(0, std) values; in each column the ceil(sparsity * rows) rows with the smallest keys are zero.

    The keys of column j are the words of elements rows * cols + i * cols + j (the stream past the
    tensor), ties broken by row: a pure function of the column, whatever the shard.
    """
    rows, cols = full_shape
    (r0, c0), (r, c) = offsets, view.shape
    values = _normal_block(view.shape, full_shape, offsets, seed, stream, std=p["std"])
    zeros = math.ceil(p["sparsity"] * rows)
    if zeros:
        starts = np.uint64(rows * cols) + np.arange(rows, dtype=np.uint64) * np.uint64(cols) + np.uint64(c0)
        keys = ks.element_words(starts, c, seed, stream)  # [rows, c]
        order = np.argsort(keys, axis=0, kind="stable")[:zeros]  # zero rows of each local column
        mask = np.zeros((rows, c), bool)
        np.put_along_axis(mask, order, True, axis=0)
        values[mask[r0:r0 + r]] = 0.0
    _store(view, values, bf16)


_STRUCTURED = {"constant": _constant, "eye": _eye, "dirac": _dirac, "sparse": _sparse}
