"""The Triton backend: torch CUDA tensors filled in place by kernels/triton_fill.py.

With TRITON_INTERPRET=1 it also takes torch CPU tensors and runs the same kernels on the CPU
(slowly): that is how tests without a GPU prove the kernels compute the reference stream.
"""
import functools
import math
import os
import sys

import numpy as np

from .. import extras, launch_layout, structured
from ..draws import ELEMENTWISE, WORDS, Uniform, erfinv_branches, folded_params
from ..seeding import as_int64
from .checks import check, holds_values  # noqa: F401 - check: the backend interface

NAME = "triton"
INSTALL = (f"torch's CUDA build, which brings its Triton ({extras.pip('torch')}), on a machine with a CUDA GPU, "
           "or set TRITON_INTERPRET=1 (and pip install triton) to run the kernels on the CPU")
BLOCK = 256  # Philox blocks per program: 1024 elements


def interpreting():
    return os.environ.get("TRITON_INTERPRET") == "1"


def available():
    try:
        import torch
        import triton  # noqa: F401
    except ImportError as e:
        return f"{e.name} is not installed"
    if torch.cuda.is_available() or interpreting():
        return None
    return "no CUDA device"


def accepts(array):
    torch = sys.modules.get("torch")
    if torch is None or not isinstance(array, torch.Tensor):
        return False
    return array.is_cuda or (interpreting() and array.device.type in ("cpu", "meta"))


def fill(job):
    """Fill ``job.array`` (the block at ``job.offsets`` of a ``job.full_shape`` tensor); returns it."""
    import torch

    with torch.no_grad():
        if job.draw.kind in ELEMENTWISE:
            launch(job.array, job.draw, job.full_shape, job.offsets, job.seed, job.stream)
        else:
            structured.fill(_target(job), job.draw)
    return job.array


def launch(out, draw, full_shape, offsets, seed, stream, base_index=0):
    """Fill tensor ``out`` (the block at ``offsets`` of a ``full_shape`` tensor) with an elementwise draw."""

    from ..kernels import triton_fill as kt

    geo = launch_layout.launch_geometry(out.shape, out.stride(), full_shape, offsets, base_index)
    options = fill_options(draw, geo, out.data_ptr())
    n_runs = geo.numel // geo.run_len
    if options["RUNS"] > 1:  # several short runs per program
        runs = n_runs
        grid = (-(-n_runs // options["RUNS"]),)
    else:
        runs = tiles = -(-((geo.run_len + 3) // 4 + 1) // BLOCK)
        grid = (n_runs * tiles,)
    meta = _on_device(launch_layout.fill_meta(geo, runs), out.device)
    kt.fill_kernel[grid](out, meta, seed & 0xFFFFFFFF, seed >> 32, stream & 0xFFFFFFFF, stream >> 32,
                         *folded_params(draw), **options)


def fill_options(draw, geo, address):
    """The compile-time choices of fill_kernel for a launch: its constexprs and code-generation options."""
    from ..kernels import triton_fill as kt

    runs = 1 if geo.single_run else short_runs(geo)
    if runs > 1:  # every run starts on a Philox block at a 16-byte address
        aligned = geo.contiguous and address % 16 == 0 and all(v % 4 == 0 for v in runs_starts(geo))
    else:
        aligned = geo.single_run and geo.contiguous and geo.base % 4 == 0 and address % 16 == 0
    narrow = (runs > 1 or not geo.contiguous) and geo.numel + 4 * BLOCK < 2**31
    return {"KIND": kt.KINDS[draw.kind], "SINGLE_RUN": geo.single_run, "CONTIGUOUS": geo.contiguous,
            "BLOCK": BLOCK, "BRANCHES": erfinv_branches(draw), "ALIGNED": aligned,
            "HW_ROUND": not interpreting(), "NDIM": geo.ndim if narrow else 0, "RUNS": runs,
            "enable_fp_fusion": False}


def runs_starts(geo):
    """What every run's start and local offset are sums of: the base, the run length and the logical strides
    of the dims outside the run."""
    n, g, inner, d = geo.n, geo.g, 1, len(geo.n) - 1
    while d >= 0 and inner < geo.run_len:  # the trailing dims the run covers
        inner *= n[d]
        d -= 1
    return [geo.base, geo.run_len, *(g[k] for k in range(d + 1) if n[k] > 1)]


def short_runs(geo):
    """Runs per program for runs that fit a fraction of a tile: a power of two (1: a tile or more per run)."""
    aligned = all(v % 4 == 0 for v in runs_starts(geo))
    blocks = -(-geo.run_len // 4) if aligned else (geo.run_len + 3) // 4 + 1
    sub = 1 << (blocks - 1).bit_length()
    return BLOCK // sub if sub <= BLOCK // 2 else 1


def fill_group(jobs):
    """Fill the tensors of many jobs, each with its own elementwise draw, seed and stream: one kernel launch per
    (device, dtype, kind, erfinv branches, alignment) for the contiguous ones that hold a single run of logical
    indices (whole tensors, row shards), one launch each for the others. Returns the number of kernel launches.
    What is the same for many jobs (a draw's parameters and branches) is worked out once per call, and a whole
    contiguous tensor (a model's usual one) needs no geometry."""
    import torch

    from ..kernels import triton_fill as kt

    groups, launches, per_draw = {}, 0, {}
    for job in jobs:
        t, draw = job.array, job.draw
        if not holds_values(t):
            continue
        if draw.kind == "constant" and _groupable(draw.value):
            draw = _as_uniform(draw.value)
        elif draw.kind not in ELEMENTWISE:
            fill(job)
            launches += 1
            continue
        if t.is_contiguous() and not any(job.offsets) and job.full_shape == t.shape:
            start = 0  # a whole contiguous tensor: one run from logical index 0
        else:
            geo = launch_layout.launch_geometry(t.shape, t.stride(), job.full_shape, job.offsets)
            if not (geo.contiguous and geo.single_run):
                fill(job)
                launches += 1
                continue
            start = geo.base
        known = per_draw.get(id(draw))  # the jobs hold their draws for the call: an id stays theirs
        if known is None:
            params = np.array(folded_params(draw), dtype=np.float32).view(np.int64).tolist()
            known = per_draw[id(draw)] = (erfinv_branches(draw), params)
        address = t.data_ptr()
        aligned = start % 4 == 0 and address % (4 * t.element_size()) == 0
        groups.setdefault((t.device, t.dtype, draw.kind, known[0], aligned), []).append(
            (job, address, t.numel(), start, known[1]))
    row = _row_maker()
    for (device, dtype, kind, branches, aligned), members in groups.items():
        table = [row(address, numel, as_int64(job.seed), as_int64(job.stream), start, params)
                 for job, address, numel, start, params in members]
        owner = _owners([-(-((start % 4 + numel + 3) // 4) // BLOCK) for _, _, numel, start, _ in members], device)
        table = _on_device(table, device)
        with torch.no_grad():
            kt.group_kernel[(len(owner),)](table, owner, OUT_DTYPE=kt.DTYPES[str(dtype)], KIND=kt.KINDS[kind],
                                           BLOCK=BLOCK, BRANCHES=branches, HW_ROUND=not interpreting(),
                                           ALIGNED=aligned, enable_fp_fusion=False)
        torch.autograd.graph.increment_version([job.array for job, *_ in members])
        launches += 1
    return launches


def _groupable(value):
    """Whether a constant is written exactly by the uniform kernel with a zero half width (``_as_uniform``): a
    float32 value (one rounding to the store, as torch's assignment of it gives) other than -0.0 (0 * u + -0.0
    is +0.0 where u > 0)."""
    return float(np.float32(value)) == value and not (value == 0 and math.copysign(1.0, value) < 0)


@functools.lru_cache(maxsize=1024)
def _as_uniform(value):
    """The constant ``value`` as a uniform draw: center ``value``, half width 0, clamped to [value, value], so every
    element is 0 * u + value = value; it joins the group launch of its dtype's uniform fills."""
    return Uniform(center=value, half_width=0.0, lo=value, hi=value)


def _owners(tiles, device):
    """The group kernel's programs, on ``device``: for row i, with ``tiles[i]`` tiles of BLOCK Philox blocks, its
    tiles in order, each as (i << 32) | tile. Computed there from the rows' counts (a program per tile: a 1B model
    has a million), so nothing of the launch's size is built on the host or copied to the device."""
    import torch

    first, bases = 0, []
    for i, n in enumerate(tiles):
        bases.append((i << 32) - first)  # + the program's index: (i << 32) + its tile in the row
        first += n
    rows = _on_device([bases, tiles], device)
    return torch.arange(first, dtype=torch.int64, device=device) + \
        torch.repeat_interleave(rows[0], rows[1], output_size=first)


def _on_device(values, device):
    """int64 ``values`` (nested lists) as a tensor on ``device``. To a GPU from pinned memory, without waiting: a copy
    from pageable memory may wait for the work queued on the stream (the launches before it), so a call's launches
    would wait for each other's kernels; torch keeps a pinned block until the copy from it has run."""
    import torch

    if device.type == "cuda":
        return torch.tensor(values, dtype=torch.int64, pin_memory=True).to(device, non_blocking=True)
    return torch.tensor(values, dtype=torch.int64, device=device)


def _row_maker():
    """A function of a row's values that builds the group kernel's table row (launch_layout.GROUP_ROW), without
    looking the slots up by name per row."""
    layout = launch_layout.GROUP_ROW
    o, n = layout.offsets, layout.LEN
    address, numel, seed, stream, start, params = (o[k] for k in ("ADDRESS", "NUMEL", "SEED", "STREAM", "START",
                                                                  "PARAMS"))

    def row(a, b, c, d, e, f):
        out = [0] * n
        out[address], out[numel], out[seed], out[stream], out[start] = a, b, c, d, e
        out[params:params + 4] = f
        return out

    return row


def words(device, shape, full_shape, offsets, seed, stream, base_index=0):
    """uint32 words (as int64) of a block of logical indices, computed by the kernel."""
    import torch

    buf = torch.empty(shape, dtype=torch.float32, device=device)
    launch(buf, WORDS, full_shape, offsets, seed, stream, base_index)
    return buf.view(torch.int32).to(torch.int64) & 0xFFFFFFFF


def _target(job):
    """The structured draws' Target for tensor ``t``: computed on its device (QR in float32, float64 for float64
    tensors: bfloat16 and float16 weights too)."""
    import torch

    t, full_shape, offsets, seed, stream = job.array, job.full_shape, job.offsets, job.seed, job.stream

    def put(index, values):
        t[index] = values

    def draw(elementwise, shape, block_full_shape, block_offsets, base_index):
        if elementwise == WORDS:
            return words(t.device, shape, block_full_shape, block_offsets, seed, stream, base_index)
        out = torch.empty(shape, dtype=torch.float32, device=t.device)
        launch(out, elementwise, block_full_shape, block_offsets, seed, stream, base_index)
        return out

    def draw_into(elementwise):
        launch(t, elementwise, full_shape, offsets, seed, stream)

    return structured.Target(structured.Namespace(torch, t.device), tuple(t.shape), full_shape, offsets,
                             t.dtype == torch.float64, put, draw_into, draw)
