"""The correctness case of bench/gpu.py: the bits the device wrote against the reference stream."""
import numpy as np
import torch
from gpuinit.kernels import numpy_stream as ks

from gpuinit import jobs

from .bench import INT_VIEWS, KINDS, empty, error_note, init, u64

# ---- bits: what the device wrote against the reference stream --------------------------------------------

def device_bits(t):
    as_int, _ = INT_VIEWS[t.dtype]
    return t.detach().contiguous().view(as_int).cpu().numpy().reshape(-1)


def reference_bits(draw, starts, length, seed, stream, dtype):
    """The NumPy reference stream's bits of runs ``starts[r] + (0 .. length)`` of ``draw``, in ``dtype``."""
    values = ks.draw_values(draw, starts, length, seed, stream).reshape(-1)
    if dtype == torch.bfloat16:
        return ks.bfloat16_bits(values)
    as_float = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64}[dtype]
    return values.astype(as_float).view(INT_VIEWS[dtype][1])


def mismatches(t, draw, starts, length, seed, stream):
    """(number of elements of ``t`` whose bits differ from the reference, index of the first), t's elements
    being the runs in row-major order."""
    bad = np.flatnonzero(device_bits(t) != reference_bits(draw, starts, length, seed, stream, t.dtype))
    return int(bad.size), (int(bad[0]) if bad.size else None)


def draw_of(t, kind, seed, stream=0, **region):
    scheme, params, _ = KINDS[kind]
    return jobs.prepare(t, scheme, params, seed=seed, stream=stream, backend="triton", **region).draw


def spot_check(view, kind, seed, rng):
    """Compare a random row and the last row of a ``(rows, cols)`` gpuinit-filled ``view`` with the reference:
    (mismatches, elements compared)."""
    rows, cols = view.shape
    picks = sorted({int(rng.integers(rows)), rows - 1})
    sample = torch.cat([view[r] for r in picks])
    bad, _ = mismatches(sample, draw_of(view, kind, seed), [r * cols for r in picks], cols, seed, 0)
    return bad, sample.numel()


# ---- correctness on the device ------------------------------------------------------------------------

def correctness(b):
    """Bits written on the device against the NumPy reference stream, for every kind and dtype: a block at a
    random row of a 2**40-element tensor, a transposed view, a column block, and a grouped launch."""
    rows = []
    for dtype in b.dtypes:
        for kind in KINDS:
            for layout, check in (("block at a random offset", check_sample), ("t.T view", check_view),
                                  ("column block", check_block), ("grouped launch", check_grouped)):
                seed, stream = u64(b.rng), u64(b.rng)
                try:
                    bad, first, size, detail = check(b, kind, dtype, seed, stream)
                except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                    rows.append(b.row("correctness", layout, kind=kind, dtype=dtype, ok=False, note=error_note(e)))
                    continue
                note = f"{detail}; seed {seed:#x}, stream {stream:#x}"
                if bad:
                    note += f"; first mismatch at element {first}"
                rows.append(b.row("correctness", layout, kind=kind, dtype=dtype, size=size, value=bad, ok=bad == 0,
                                  note=note))
            b.free()
    return rows


def check_sample(b, kind, dtype, seed, stream):
    rows, cols = b.scale.sample
    full = (2**40 // cols, cols)
    r0 = int(b.rng.integers(0, full[0] - rows))
    t = empty((rows, cols), dtype, b)
    region = {"full_shape": full, "offsets": (r0, 0)}
    init(t, kind, seed, stream=stream, **region)
    bad, first = mismatches(t, draw_of(t, kind, seed, stream, **region), [r0 * cols], rows * cols, seed, stream)
    return bad, first, t.numel(), f"rows {r0}.. of {full}"


def check_view(b, kind, dtype, seed, stream):
    r, c = b.scale.check_view
    view = empty((r, c), dtype, b).T
    init(view, kind, seed, stream=stream)
    bad, first = mismatches(view, draw_of(view, kind, seed, stream), [0], view.numel(), seed, stream)
    return bad, first, view.numel(), f"({r}, {c}).T"


def check_block(b, kind, dtype, seed, stream):
    r, full_cols, w = b.scale.check_block
    c0 = w * int(b.rng.integers(0, full_cols // w))
    t = empty((r, w), dtype, b)
    region = {"full_shape": (r, full_cols), "offsets": (0, c0)}
    init(t, kind, seed, stream=stream, **region)
    bad, first = mismatches(t, draw_of(t, kind, seed, stream, **region), [i * full_cols + c0 for i in range(r)], w,
                            seed, stream)
    return bad, first, t.numel(), f"({r}, {w}) at (0, {c0}) of ({r}, {full_cols})"


def check_grouped(b, kind, dtype, seed, stream):
    scheme, params, _ = KINDS[kind]
    shapes = [s for s in b.scale.group if len(s) > 1 or kind != "kaiming_uniform"]  # kaiming needs fans
    tensors = [empty(shape, dtype, b) for shape in shapes]
    streams = [(stream + i) % 2**64 for i in range(len(tensors))]
    todo = [jobs.prepare(t, scheme, params, seed=seed, stream=s, backend="triton")
            for t, s in zip(tensors, streams, strict=True)]
    jobs.run(todo)
    bad, first, offset = 0, None, 0
    for t, job, s in zip(tensors, todo, streams, strict=True):
        n, f = mismatches(t, job.draw, [0], t.numel(), seed, s)
        if n and first is None:
            first = offset + f
        bad, offset = bad + n, offset + t.numel()
    return bad, first, offset, f"{len(tensors)} tensors in one jobs.run"
