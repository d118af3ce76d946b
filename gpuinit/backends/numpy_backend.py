"""The NumPy backend: numpy arrays and torch CPU tensors, in place, chunk by chunk, on all cores.

Memory stays bounded: each worker holds one chunk of ``CHUNK`` elements (a few MiB of words and
floats), never a full-size temporary, except orthogonal (QR needs the whole matrix) and sparse
(a column's rank needs its keys).
"""
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from .. import regions
from ..draws import ELEMENTWISE
from ..kernels import numpy_stream as ks
from ..structured import dirac_points, orthogonalize, sparse_keys
from . import cpu_kernel
from .checks import check, holds_values  # noqa: F401 - check: the backend interface

NAME = "numpy"
INSTALL = "numpy"
CHUNK = 1 << 18  # elements per piece: fastest of 2**15..2**20 on 2 cores (bench/cpu.py)
_pool, _pool_size = None, 0
_pool_lock = threading.Lock()


def available():
    return None


def accepts(array):
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        return array.device.type in ("cpu", "meta")
    return isinstance(array, np.ndarray)


def num_threads():
    from ..config import num_threads

    return num_threads()


def _executor():
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != num_threads():
            _pool_size = num_threads()
            _pool = ThreadPoolExecutor(_pool_size, thread_name_prefix="gpuinit")
        return _pool


# ---- writing ----------------------------------------------------------------------------------------

def _numpy_view(array, bits=None):
    """(writable numpy view sharing the memory, True when it holds bfloat16 bits as int16)."""
    if bits == "bfloat16":  # the array's own byte order: assignments swap bytes where it is not native
        return array.view(np.dtype(np.int16).newbyteorder(array.dtype.byteorder)), True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        t = array.detach()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy(), True
        return t.numpy(), False
    return array, False


def _store(dst, values, bf16):
    values = values.reshape(dst.shape)
    dst[...] = ks.bfloat16_bits(values) if bf16 else values


def fill(array, draw, full_shape, offsets, seed, stream, bits=None):
    """Fill ``array`` (the block at ``offsets`` of a ``full_shape`` tensor) with ``draw``; ``bits="bfloat16"``:
    a 16-bit integer array receives bfloat16 bit patterns."""
    view, bf16 = _numpy_view(array, bits)
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


def _piece_work(view, bf16, draw, full_shape, offsets, seed, stream):
    """One callable per piece of an elementwise fill; pieces are independent (any thread, any order)."""
    lib = cpu_kernel.load()
    store = "bfloat16" if bf16 else view.dtype.name

    def work(piece):
        index, _, starts, length = piece
        dst = view[index]
        if lib is not None and dst.flags.c_contiguous and dst.dtype.isnative and store != "float64":  # in place
            out = dst.reshape(len(starts), length)
            cpu_kernel.draw_values(lib, draw.kind, draw.params, starts, length, seed, stream, out=out, store=store)
        else:
            _store(dst, draw_values(draw.kind, draw.params, starts, length, seed, stream), bf16)

    return [lambda piece=piece: work(piece) for piece in regions.pieces(view.shape, full_shape, offsets, CHUNK)]


def _run_all(tasks):
    if len(tasks) <= 1 or num_threads() == 1:
        for task in tasks:
            task()
    else:
        for _ in _executor().map(lambda task: task(), tasks):
            pass


def _fill_elementwise(view, bf16, draw, full_shape, offsets, seed, stream):
    _run_all(_piece_work(view, bf16, draw, full_shape, offsets, seed, stream))


def fill_group(items):
    """Fill many arrays: (array, Draw, seed, stream[, full_shape, offsets]). The pieces of all elementwise
    fills share the thread pool at once (no barrier between arrays); returns the number of arrays."""
    tasks = []
    items = [item for item in items if holds_values(item[0])]
    for array, draw, seed, stream, *region in items:
        full_shape, offsets = regions.item_region(array.shape, region)
        if draw.kind in ELEMENTWISE:
            view, bf16 = _numpy_view(array)
            tasks += _piece_work(view, bf16, draw, full_shape, offsets, seed, stream)
        else:
            fill(array, draw, full_shape, offsets, seed, stream)
    _run_all(tasks)
    for array, *_ in items:
        _bump_version(array)
    return len(items)


def _scalar(value, bf16):
    return ks.bfloat16_bits(np.float32(value)) if bf16 else value


def _constant(view, bf16, p, full_shape, offsets, seed, stream):
    view[...] = _scalar(p["value"], bf16)


def _eye(view, bf16, p, full_shape, offsets, seed, stream):
    view[...] = 0
    (r0, c0), (r, c) = offsets, view.shape
    d = np.arange(max(r0, c0), min(r0 + r, c0 + c))
    view[d - r0, d - c0] = _scalar(p["gain"], bf16)


def _dirac(view, bf16, p, full_shape, offsets, seed, stream):
    view[...] = 0
    view[dirac_points(full_shape, offsets, view.shape, p["groups"])] = _scalar(1.0, bf16)


def _normal_block(shape, full_shape, offsets, seed, stream, mean=0.0, std=1.0):
    """float32 normal values of a block, gathered piece by piece (used by the host-side schemes)."""
    out = np.empty(shape, np.float32)
    params = {"mean": mean, "std": std}
    for index, _, starts, length in regions.pieces(shape, full_shape, offsets, CHUNK):
        out[index] = draw_values("normal", params, starts, length, seed, stream).reshape(out[index].shape)
    return out


def _orthogonal(view, bf16, p, full_shape, offsets, seed, stream, torch_qr=False):
    """The normal draw of the full tensor, orthogonalized per batch copy, then this block.

    torch tensors use torch's LAPACK (3x faster than NumPy's on float32, which computes in float64);
    numpy arrays use NumPy's: the QR follows the array's library, so results never depend on what
    else a process has imported."""
    g = _normal_block(full_shape, full_shape, (0,) * len(full_shape), seed, stream)
    if view.dtype.kind == "f" and view.dtype.itemsize == 8:
        g = g.astype(np.float64)
    if torch_qr:
        import torch

        full = orthogonalize(torch.from_numpy(g), p, torch).numpy()
    else:
        full = orthogonalize(g, p, np)
    _store(view, full[tuple(slice(o, o + n) for o, n in zip(offsets, view.shape))], bf16)


def _sparse(view, bf16, p, full_shape, offsets, seed, stream):
    """N(0, std) values; in each column the ceil(sparsity * rows) rows with the smallest keys are zero
    (structured.sparse_keys)."""
    cols, r0, r = full_shape[1], offsets[0], view.shape[0]
    values = _normal_block(view.shape, full_shape, offsets, seed, stream, std=p["std"])
    zeros, key_shape, key_offsets, base = sparse_keys(full_shape, offsets, view.shape[1], p["sparsity"])
    if zeros:
        starts = np.uint64(base) + np.arange(key_shape[0], dtype=np.uint64) * np.uint64(cols) + np.uint64(key_offsets[1])
        keys = ks.element_words(starts, key_shape[1], seed, stream)  # [rows, local cols]
        order = np.argsort(keys, axis=0, kind="stable")[:zeros]  # zero rows of each local column (ties by row)
        mask = np.zeros(key_shape, bool)
        np.put_along_axis(mask, order, True, axis=0)
        values[mask[r0:r0 + r]] = 0.0
    _store(view, values, bf16)


_STRUCTURED = {"constant": _constant, "eye": _eye, "dirac": _dirac, "sparse": _sparse}
