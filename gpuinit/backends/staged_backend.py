"""The staged backend: torch tensors on devices gpuinit has no kernel for (mps, xpu, hpu, a PrivateUse1 backend,
...), filled on the CPU by the NumPy backend one bounded block at a time and copied into the device tensor.

Each block is a hyper-rectangle of the tensor of at most ``CHUNK_BYTES`` (64 MiB) of its dtype; the NumPy
backend fills a CPU tensor of the block's shape at the block's own offsets in ``full_shape``, so every value is
the one a whole-tensor fill writes (the stream is a function of the logical index alone), then
``block.copy_(buffer)`` sends it to the device. Blocks follow the tensor's memory order (largest stride first),
so a block of a dense tensor, transposed or not, is one contiguous range of device memory, and the CPU buffer is
laid out as the block is. The device tensor is never read and never seen as a NumPy array: only ``detach``,
``narrow`` and ``copy_`` reach it.

Chunked this way: uniform, normal, trunc_normal, constant, eye and dirac (a block needs only its offsets) and
sparse (blocks of whole local columns: a column's zeros are ranked over all its rows, so a block holds
``full_shape[0]`` keys per column and at least one column). Not chunked: orthogonal, whose QR needs the whole
matrix: the NumPy backend builds the full tensor on the CPU (as it does for CPU tensors) and the local block is
copied at once.

It is chosen for torch tensors on any device other than cpu, meta and cuda, with one ``StagedFillWarning`` per
device type per process; ``backend="staged"`` forces it for a torch tensor on any device (cpu included: how the
tests compare it with the NumPy backend bit for bit).
"""
import importlib.util
import itertools
import math
import os
import sys
import threading
import warnings

from .. import extras
from ..draws import ELEMENTWISE
from . import checks, numpy_backend
from .checks import holds_values

NAME = "staged"
INSTALL = f"torch ({extras.pip('torch')}; without a GPU, its CPU build: {extras.CPU_TORCH})"
CHUNK_BYTES = 64 << 20  # the most CPU buffer one block takes (orthogonal excepted)
_CHUNKED = ELEMENTWISE + ("constant", "eye", "dirac", "parts")  # a complex array's parts: elementwise or those
_warned: set = set()
_warn_lock = threading.Lock()


class StagedFillWarning(UserWarning):
    """A torch device without a gpuinit kernel: its tensors are filled on the CPU and copied over."""


def available():
    return None if importlib.util.find_spec("torch") is not None else "torch is not installed"


def accepts(array):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(array, torch.Tensor)


def check(array, bits=None):  # metadata only, no read
    checks.check(array, bits, negative=True)  # a torch view with the negative bit: copy_ writes through it


def warn_once(device_type):
    """Warn, once per process per device type, that tensors on ``device_type`` are staged through the CPU."""
    with _warn_lock:
        if device_type in _warned:
            return
        _warned.add(device_type)
    warnings.warn(f"gpuinit has no kernel for torch {device_type!r} tensors: it fills them on the CPU, in blocks of "
                  f"at most {CHUNK_BYTES >> 20} MiB copied to the device (slower than a kernel on the device; the "
                  "values are the same on every backend)", StagedFillWarning, stacklevel=_caller_level())


def _caller_level():
    """The stacklevel of the first frame outside gpuinit, so the warning names the user's call."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frame, level = sys._getframe(1), 1  # the frame that calls warnings.warn is stacklevel 1
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def chunk_elements(array):
    """Elements per block: ``CHUNK_BYTES`` of the array's dtype, at least one."""
    return max(1, CHUNK_BYTES // array.element_size())


def blocks(shape, strides, chunk):
    """(starts, lengths) of hyper-rectangular blocks of at most ``chunk`` elements (at least one element) that tile
    an array of ``shape``, cut along the dims in memory order (largest |stride| first, size-1 dims aside)."""
    nd = len(shape)
    if nd == 0:
        yield (), ()
        return
    order = sorted(range(nd), key=lambda d: (shape[d] > 1, -abs(strides[d])))
    inner = [math.prod(shape[d] for d in order[i + 1:]) for i in range(nd)]
    m = next(i for i in range(nd) if inner[i] <= chunk)
    axis, step = order[m], max(1, chunk // inner[m])
    for outer in itertools.product(*(range(shape[d]) for d in order[:m])):
        for a in range(0, shape[axis], step):
            starts, lengths = [0] * nd, list(shape)
            for d, i in zip(order[:m], outer, strict=True):
                starts[d], lengths[d] = i, 1
            starts[axis], lengths[axis] = a, min(step, shape[axis] - a)
            yield tuple(starts), tuple(lengths)


def _narrow(t, starts, lengths):
    for d, (a, n) in enumerate(zip(starts, lengths, strict=True)):
        if n != t.shape[d]:
            t = t.narrow(d, a, n)
    return t


def _buffer(like):
    """A CPU tensor of ``like``'s shape and dtype, its dims in ``like``'s memory order (so that copy_ into a
    dense block moves one contiguous range)."""
    import torch

    shape, strides = tuple(like.shape), like.stride()
    order = sorted(range(len(shape)), key=lambda d: (shape[d] > 1, -abs(strides[d])))
    dense, acc = [0] * len(shape), 1
    for d in reversed(order):
        dense[d], acc = acc, acc * shape[d]
    return torch.empty_strided(shape, dense, dtype=like.dtype, device="cpu")


def fill(job):
    """Fill torch tensor ``job.array`` (the block at ``job.offsets`` of a ``job.full_shape`` tensor) with
    ``job.draw``, block by block: the NumPy backend fills a CPU buffer for each block (a job of its own, at the
    block's offsets), copied into the block. ``bits`` is refused by ``check`` (torch tensors have a bfloat16
    dtype). Returns the array."""
    if not holds_values(job.array):
        return job.array
    dst = job.array.detach()
    shape, chunk = tuple(dst.shape), chunk_elements(dst)
    if job.draw.kind in _CHUNKED:
        parts = blocks(shape, dst.stride(), chunk)
    elif job.draw.kind == "sparse":  # whole local columns, keys of full_shape[0] rows each (a complex one's parts)
        step = max(1, chunk // max(1, math.prod(job.full_shape) // job.full_shape[1]))
        parts = (((0, c, *[0] * (len(shape) - 2)), (shape[0], min(step, shape[1] - c), *shape[2:]))
                 for c in range(0, shape[1], step))
    else:  # orthogonal: the whole block at once
        parts = [((0,) * len(shape), shape)]
    for starts, lengths in parts:
        block = _narrow(dst, starts, lengths)
        buf = _buffer(block)
        at = tuple(o + s for o, s in zip(job.offsets, starts, strict=True))
        numpy_backend.fill(job._replace(array=buf, offsets=at, backend=numpy_backend))
        block.copy_(buf)
    return job.array


def fill_group(jobs):
    """Fill the tensors of many jobs, one after another; returns the number of tensors written."""
    jobs = [job for job in jobs if holds_values(job.array)]
    for job in jobs:
        fill(job)
    return len(jobs)
