"""Where a (possibly sharded) array sits in its logical tensor, and its pieces as runs of consecutive logical
indices (gpuinit/launch_layout.py: how a kernel walks one).

Element (i0, ..., ik) of an array at ``offsets`` inside ``full_shape`` has the logical index
sum((offsets[d] + i_d) * stride[d]) with row-major ``stride`` of ``full_shape``.
"""
import math

import numpy as np

from .errors import InitError


def check_region(shape, full_shape, offsets):
    """Normalised (full_shape, offsets) for an array of ``shape``; raises when the block does not fit."""
    shape = tuple(shape)
    if full_shape is None and offsets is None:
        return shape, (0,) * len(shape)
    full_shape = tuple(shape if full_shape is None else full_shape)
    offsets = tuple((0,) * len(shape) if offsets is None else offsets)
    if len(full_shape) != len(shape) or len(offsets) != len(shape):
        raise InitError(f"full_shape {full_shape} and offsets {offsets} must have one entry per "
                        f"dimension of the array's shape {shape}")
    for name, vals in (("full_shape", full_shape), ("offsets", offsets)):
        for v in vals:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise InitError(f"{name} must hold non-negative integers, got {vals}")
    for d, (n, full, off) in enumerate(zip(shape, full_shape, offsets, strict=True)):
        if off + n > full:
            raise InitError(f"the array (shape {shape}) at offsets {offsets} does not fit in full_shape "
                            f"{full_shape}: dimension {d} ends at {off + n} > {full}")
    if math.prod(full_shape) > 2**62:
        raise InitError(f"full_shape {full_shape} has more than 2**62 elements")
    return tuple(int(v) for v in full_shape), tuple(int(v) for v in offsets)


def row_major_strides(shape):
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


def pieces(shape, full_shape, offsets, chunk):
    """Split an array into pieces of about ``chunk`` elements, each a set of equal-length runs.

    Yields ``(index, piece_shape, starts, length)``: ``array[index]`` has ``piece_shape`` and,
    read in row-major order, holds the logical elements ``starts[r] + t`` for ``t < length``.
    """
    nd = len(shape)
    if nd == 0:
        yield ..., (), np.array([0], np.uint64), 1  # view[...] of a 0-d array stays an array
        return
    gstride = row_major_strides(full_shape)
    base = sum(o * s for o, s in zip(offsets, gstride, strict=True))
    # Runs: axes after k all span their full extent, so a run covers axes k.. contiguously.
    k = nd - 1
    while k > 0 and shape[k] == full_shape[k]:
        k -= 1
    suffix = [math.prod(shape[d:]) for d in range(nd + 1)]
    run = suffix[k]
    # Split axis m: the first whose trailing block fits in a chunk.
    m = next(d for d in range(nd) if suffix[d + 1] <= chunk)
    step = max(1, chunk // max(1, suffix[m + 1]))
    inner = None
    if m < k:  # a piece holds several runs: their starts relative to the piece's first element
        grids = np.ix_(*[np.arange(shape[d], dtype=np.uint64) * np.uint64(gstride[d]) for d in range(m + 1, k)])
        inner = sum(grids, np.zeros((), np.uint64)).reshape(-1) if grids else np.zeros(1, np.uint64)
    for outer in np.ndindex(*shape[:m]):
        outer_base = base + sum(i * s for i, s in zip(outer, gstride[:m], strict=True))
        for a in range(0, shape[m], step):
            b = min(a + step, shape[m])
            index = outer + (slice(a, b),)
            piece_shape = (b - a,) + tuple(shape[m + 1:])
            first = outer_base + a * gstride[m]
            if m >= k:
                yield index, piece_shape, np.array([first], np.uint64), (b - a) * suffix[m + 1]
            else:
                rows = np.arange(b - a, dtype=np.uint64) * np.uint64(gstride[m]) + np.uint64(first)
                yield index, piece_shape, (rows[:, None] + inner[None, :]).reshape(-1), run
