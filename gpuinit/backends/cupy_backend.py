"""The CuPy backend: CuPy arrays (and CUDA arrays of other libraries, through DLPack) filled in place
by kernels/cuda/gpuinit_fill.cu, compiled at run time by NVRTC and cached by CuPy."""
import sys
from pathlib import Path

import numpy as np

from .. import kernels, regions
from ..draws import ELEMENTWISE, kernel_params
from ..kernels import numpy_stream
from ..structured import dirac_points, orthogonalize, sparse_keys
from . import checks

NAME = "cupy"
INSTALL = "cupy-cuda12x (pip install 'gpuinit[cupy]') on a machine with a CUDA GPU"
SOURCE = Path(kernels.__file__).resolve().parent / "cuda" / "gpuinit_fill.cu"
OPTIONS = ("--fmad=false", "--std=c++17")  # no fused multiply-add (docs/stream.md); C++17: hex float literals
STORAGE = {"float32": "float", "float64": "double", "float16": "gi_f16"}
THREADS = 256
_module = None


def available():
    try:
        import cupy
    except ImportError as e:
        return f"{e.name} is not installed"
    try:
        if cupy.cuda.runtime.getDeviceCount() > 0:
            return None
    except Exception as e:  # noqa: BLE001 - any CUDA runtime failure means no device here
        return f"no CUDA device ({type(e).__name__}: {e})"
    return "no CUDA device"


def as_cupy(array):
    """The cupy view of ``array``: itself, or a zero-copy DLPack import of another library's CUDA array."""
    import cupy

    return array if isinstance(array, cupy.ndarray) else cupy.from_dlpack(array)


def accepts(array):
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(array, cupy.ndarray):
        return True
    return hasattr(array, "__dlpack_device__") and array.__dlpack_device__()[0] == 2  # kDLCUDA


def check(array, bits=None):
    checks.check(as_cupy(array), bits)


def module():
    """The compiled kernels (one NVRTC compilation per process; CuPy also caches them on disk)."""
    global _module
    if _module is None:
        import cupy

        names = [f"gi_fill<{t}>" for t in STORAGE.values()]
        _module = cupy.RawModule(code=SOURCE.read_text(), options=(*OPTIONS, f"-I{SOURCE.parent}"),
                                 name_expressions=names)
    return _module


def fill(array, draw, full_shape, offsets, seed, stream, bits=None):
    """Fill ``array`` in place; ``bits="bfloat16"``: a 16-bit integer array receives bfloat16 bit patterns."""
    a = as_cupy(array)
    if draw.kind in ELEMENTWISE:
        launch(a, draw.kind, draw.params, full_shape, offsets, seed, stream, storage="gi_bf16" if bits else None)
    elif bits:  # structured draws are built in float32, then rounded to bfloat16 bits
        import cupy

        tmp = cupy.empty(a.shape, cupy.float32)
        _STRUCTURED[draw.kind](tmp, draw.params, full_shape, offsets, seed, stream)
        a[...] = numpy_stream.bfloat16_bits(tmp, cupy).view(a.dtype)
    else:
        _STRUCTURED[draw.kind](a, draw.params, full_shape, offsets, seed, stream)
    return array


def launch(out, kind, params, full_shape, offsets, seed, stream, base_index=0, storage=None):
    """Fill cupy array ``out`` (the block at ``offsets`` of a ``full_shape`` tensor) with an elementwise draw,
    on the current CuPy stream."""
    import cupy

    storage = storage or STORAGE[out.dtype.name]
    strides = tuple(s // out.itemsize for s in out.strides)
    geo = regions.launch_geometry(out.shape, strides, full_shape, offsets, base_index)
    blocks_per_run = (geo["run_len"] + 3) // 4 + 1
    geo["meta"][2] = blocks_per_run
    meta = cupy.asarray(np.array(geo["meta"], np.int64))
    threads = (geo["numel"] // geo["run_len"]) * blocks_per_run
    grid = min(-(-threads // THREADS), 65535 * 32)
    f32 = np.float32
    p = kernel_params(kind, params)
    module().get_function(f"gi_fill<{storage}>")(
        (grid,), (THREADS,),
        (out, meta, np.int32(geo["single_run"]), np.int32(geo["contiguous"]), np.int32(numpy_stream.KINDS[kind]), np.int32(p[-1]),
         *(f32(v) for v in p[:-1]), np.uint64(seed), np.uint64(stream), np.int64(threads)))


def _constant(a, p, full_shape, offsets, seed, stream):
    a.fill(p["value"])


def _eye(a, p, full_shape, offsets, seed, stream):
    import cupy

    a.fill(0)
    d = np.arange(max(offsets[0], offsets[1]), min(offsets[0] + a.shape[0], offsets[1] + a.shape[1]))
    a[cupy.asarray(d - offsets[0]), cupy.asarray(d - offsets[1])] = p["gain"]


def _dirac(a, p, full_shape, offsets, seed, stream):
    import cupy

    a.fill(0)
    a[tuple(cupy.asarray(i) for i in dirac_points(full_shape, offsets, a.shape, p["groups"]))] = 1.0


def _orthogonal(a, p, full_shape, offsets, seed, stream):
    """QR on the device (cupy.linalg.qr) in float32, float64 for float64 arrays."""
    import cupy

    g = cupy.empty(full_shape, dtype=cupy.float32)
    launch(g, "normal", {"mean": 0.0, "std": 1.0}, full_shape, (0,) * len(full_shape), seed, stream)
    if a.dtype == cupy.float64:
        g = g.astype(cupy.float64)
    full = orthogonalize(g, p, cupy)
    a[...] = full[tuple(slice(o, o + n) for o, n in zip(offsets, a.shape))]


def _sparse(a, p, full_shape, offsets, seed, stream):
    import cupy

    launch(a, "normal", {"mean": 0.0, "std": p["std"]}, full_shape, offsets, seed, stream)
    zeros, key_shape, key_offsets, base = sparse_keys(full_shape, offsets, a.shape[1], p["sparsity"])
    if zeros:
        rows = key_shape[0]
        keys = cupy.empty(key_shape, dtype=cupy.float32)
        launch(keys, "words", {}, full_shape, key_offsets, seed, stream, base_index=base)
        keys = keys.view(cupy.uint32).astype(cupy.int64) * rows + cupy.arange(rows)[:, None]  # ties by row
        mask = cupy.zeros(keys.shape, dtype=bool)
        mask[cupy.argsort(keys, axis=0)[:zeros], cupy.arange(keys.shape[1])[None, :]] = True
        a[mask[offsets[0]:offsets[0] + a.shape[0]]] = 0


_STRUCTURED = {"constant": _constant, "eye": _eye, "dirac": _dirac, "orthogonal": _orthogonal, "sparse": _sparse}


def fill_group(items):
    """Fill many arrays: (array, Draw, seed, stream[, full_shape, offsets]), one launch each."""
    items = [item for item in items if checks.holds_values(item[0])]
    for array, draw, seed, stream, *region in items:
        full_shape, offsets = regions.item_region(array.shape, region)
        fill(array, draw, full_shape, offsets, seed, stream)
    return len(items)
