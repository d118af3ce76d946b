"""The CuPy backend: CuPy arrays (and CUDA arrays of other libraries, through DLPack) filled in place
by kernels/cuda/gpuinit_fill.cu, compiled at run time by NVRTC and cached by CuPy."""
import sys
from pathlib import Path

import numpy as np

from .. import extras, launch_layout, structured
from ..draws import ELEMENTWISE, WORDS, TruncNormal, erfinv_branches, kernel_params
from ..kernels import numpy_stream
from . import checks

NAME = "cupy"
INSTALL = (f"CuPy for your CUDA major on a machine with a CUDA GPU: {extras.pip('cuda13')} (CUDA 13, as torch "
           f"2.13's wheels) or {extras.pip('cuda12')}")
SOURCE = Path(numpy_stream.__file__).resolve().parent / "cuda" / "gpuinit_fill.cu"
HEADER = SOURCE.parent / "gpuinit_stream.cuh"
OPTIONS = ("--fmad=false", "--std=c++17")  # no fused multiply-add (docs/stream.md); C++17: hex float literals
STORAGE = {"float32": "float", "float64": "double", "float16": "gi_f16"}
THREADS = 256
MAX_GRID = 65535 * 32  # blocks of a grid-stride launch
# gi_fill's PATH (kernels/cuda/gpuinit_fill.cu); its meta and gi_fill_group's rows: gpuinit/launch_layout.py
ALIGNED, RUN, RUNS_ALIGNED, RUNS, STRIDED, STRIDED_RUNS = range(6)
_modules: dict = {}


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


def source():
    """The CUDA C to compile: the offsets of the launch layout (launch_layout.cuda_defines), then gpuinit_fill.cu
    with its header inlined, so that CuPy's kernel cache (keyed by the source text) never serves kernels built
    from another version of the header or of the layout."""
    include = '#include "gpuinit_stream.cuh"'
    text = SOURCE.read_text()
    if include not in text:
        raise RuntimeError(f"{SOURCE} no longer includes gpuinit_stream.cuh")
    return launch_layout.cuda_defines() + text.replace(include, HEADER.read_text())


def kernel(name):
    """The compiled kernel of name expression ``name`` (one NVRTC compilation per kernel and process, on first
    use; CuPy also caches them on disk)."""
    if name not in _modules:
        import cupy

        _modules[name] = cupy.RawModule(code=source(), options=OPTIONS, name_expressions=[name])
    return _modules[name].get_function(name)


def fill(job):
    """Fill ``job.array`` (the block at ``job.offsets`` of a ``job.full_shape`` tensor) in place;
    ``job.bits="bfloat16"``: a 16-bit integer array receives bfloat16 bit patterns. Returns the array."""
    a, draw = as_cupy(job.array), job.draw
    if draw.kind in ELEMENTWISE:
        launch(a, draw, job.full_shape, job.offsets, job.seed, job.stream,
               storage="gi_bf16" if job.bits else None)
    else:
        structured.fill(_target(a, job), draw)
    return job.array


def launch(out, draw, full_shape, offsets, seed, stream, base_index=0, storage=None):
    """Fill cupy array ``out`` (the block at ``offsets`` of a ``full_shape`` tensor) with an elementwise draw,
    on the current CuPy stream."""
    import cupy

    strides = tuple(st // out.itemsize for st in out.strides)
    k = plan(out.shape, strides, out.itemsize, out.data.ptr, draw, full_shape, offsets, base_index,
             storage or STORAGE[out.dtype.name])
    meta = cupy.asarray(np.array(k["meta"], np.int64))
    kernel(k["name"])((k["grid"],), (THREADS,), (out, meta, *k["args"], np.uint64(seed), np.uint64(stream)))


def plan(shape, strides, itemsize, address, draw, full_shape, offsets, base_index=0, storage="float",
         wide=None):
    """How gi_fill fills an array of ``shape``, ``strides`` (in elements) and data ``address``: a dict of the
    kernel's ``name`` expression, its ``meta`` vector, ``grid`` (blocks of THREADS), the draw's scalar ``args``
    (after ``out`` and ``meta``; seed and stream follow them) and ``threads`` (Philox blocks, a thread each).
    ``wide``: 64-bit local indices (True), 32-bit ones (False; the array must allow them), or as needed (None)."""
    geo = launch_layout.launch_geometry(shape, strides, full_shape, offsets, base_index)
    numel, run_len, ndim, n, s, g = geo.numel, geo.run_len, geo.ndim, geo.n, geo.s, geo.g
    base, dims = geo.base, ndim
    aligned = address % (8 if itemsize == 2 else 16) == 0
    if geo.single_run:
        path = (ALIGNED if aligned and base % 4 == 0 else RUN) if geo.contiguous else STRIDED
        per_run = 1
        threads = numel // 4 if path == ALIGNED else (base % 4 + numel + 3) // 4
        dims = 0 if geo.contiguous else ndim
    else:
        outer = [d for d in range(6 - ndim, 5) if n[d] > 1]  # dims outside a run that is the last dim
        if geo.contiguous and run_len == n[5]:
            whole = aligned and all(v % 4 == 0 for v in (base, run_len, *(g[d] for d in outer)))
            path, dims = (RUNS_ALIGNED if whole else RUNS), ndim - 1
        else:
            path, whole = STRIDED_RUNS, False
        per_run = run_len // 4 if whole else (run_len + 3) // 4 + 1
        threads = numel // run_len * per_run
    span = sum((size - 1) * abs(v) for size, v in zip(n, s, strict=True))  # the largest memory offset
    if wide is None:
        wide = max(numel, threads, span) + 16 >= 2**31
    meta = launch_layout.gi_fill_meta(geo, per_run, threads, wide)
    branches = draw.branches if isinstance(draw, TruncNormal) else 0
    *p, flip = kernel_params(draw)
    return {"name": f"gi_fill<{storage}, {numpy_stream.KINDS[draw.kind]}, {branches}, {path}, {dims}, {int(wide)}>",
            "meta": meta, "grid": max(1, min(-(-threads // THREADS), MAX_GRID)), "threads": threads,
            "args": (*(np.float32(v) for v in p), np.int32(flip))}


def _target(a, job):
    """The structured draws' Target for cupy array ``a``, computed on its device (QR by cupy.linalg.qr, in float32,
    float64 for float64 arrays); ``bits="bfloat16"``: values are rounded to bfloat16 bits as they are written."""
    import cupy

    full_shape, offsets, seed, stream, bits = job.full_shape, job.offsets, job.seed, job.stream, job.bits

    def put(index, values):
        if bits:
            values = numpy_stream.bfloat16_bits(cupy.asarray(values, cupy.float32), cupy).view(a.dtype)
        a[index] = values

    def draw(elementwise, shape, block_full_shape, block_offsets, base_index):
        out = cupy.empty(shape, dtype=cupy.float32)
        launch(out, elementwise, block_full_shape, block_offsets, seed, stream, base_index=base_index)
        return out.view(cupy.uint32).astype(cupy.int64) if elementwise == WORDS else out

    def draw_into(elementwise):
        launch(a, elementwise, full_shape, offsets, seed, stream, storage="gi_bf16" if bits else None)

    return structured.Target(structured.Namespace(cupy), a.shape, full_shape, offsets, a.dtype == cupy.float64, put,
                             draw_into, draw)


def fill_group(jobs):
    """Fill the arrays of many jobs. Contiguous arrays that hold one run of logical indices (whole tensors, row
    shards) with an elementwise draw go in one launch per (device, dtype, kind, erfinv branches), the others (and
    bits="bfloat16" ones) one launch each. Returns the number of kernel launches."""
    import cupy

    groups, launches = {}, 0
    for job in jobs:
        if not checks.holds_values(job.array):
            continue
        a, draw = as_cupy(job.array), job.draw
        if draw.kind in ELEMENTWISE and a.dtype.name in STORAGE and not job.bits:
            geo = launch_layout.launch_geometry(a.shape, tuple(st // a.itemsize for st in a.strides),
                                                job.full_shape, job.offsets)
            if geo.single_run and geo.contiguous:
                key = (a.device.id, a.dtype.name, draw.kind, erfinv_branches(draw))
                groups.setdefault(key, []).append((a.data.ptr, a.size, geo.base, draw, job.seed, job.stream))
                continue
        fill(job)
        launches += 1
    for (device, dtype, kind, _), members in groups.items():
        k = group_plan(STORAGE[dtype], kind, members)
        with cupy.cuda.Device(device):
            args = (cupy.asarray(k["table"]), cupy.asarray(k["params"]), cupy.asarray(k["owner"]))
            kernel(k["name"])((k["grid"],), (THREADS,), args)
        launches += 1
    return launches


def group_plan(storage, kind, members):
    """gi_fill_group's launch for ``members``, (address, numel, start, draw, seed, stream) of contiguous
    arrays of one storage type holding one run of logical indices from ``start`` each: a dict of the kernel's
    ``name`` expression, ``grid``, and its arguments ``table`` (int64), ``params`` (float32), ``owner`` (int32,
    the table row of each grid block)."""
    table, params, blocks, first = [], [], [], 0
    for address, numel, start, draw, seed, stream in members:
        *p, flip = kernel_params(draw)
        table.append(launch_layout.GI_GROUP_ROW.vector(ADDRESS=address, NUMEL=numel, FIRST_BLOCK=first, SEED=seed,
                                                       STREAM=stream, FLIP=flip, START=start))
        params.append(launch_layout.GI_GROUP_PARAMS.vector(PARAMS=p))
        blocks.append(-(-((start % 4 + numel + 3) // 4) // THREADS))
        first += blocks[-1]
    branches = members[0][3].branches if kind == "trunc_normal" else 0
    return {"name": f"gi_fill_group<{storage}, {numpy_stream.KINDS[kind]}, {branches}>", "grid": first,
            "table": np.array(table, np.uint64).view(np.int64), "params": np.array(params, np.float32),
            "owner": np.repeat(np.arange(len(members), dtype=np.int32), blocks)}
