"""The structured draws (constant, eye, dirac, orthogonal, delta orthogonal, sparse, and the parts of a complex
array), written once for every backend.

A backend hands ``fill`` a ``Target``: the block to write, the namespace of the library that holds it (numpy,
cupy or torch) and the backend's own launches of elementwise draws; everything else is here, so every backend
writes the same values (docs/stream.md, section 5). Each backend rounds what ``put`` receives to its array's
dtype as it rounds any draw.
"""
import contextlib
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .draws import ELEMENTWISE, WORDS, Constant, DeltaOrthogonal, Dirac, Draw, Eye, Normal, Orthogonal, Parts, Sparse


class Namespace:
    """The few operations the structured draws need that numpy, cupy and torch spell differently; the others
    (``argsort``, ``moveaxis``, ``where``, ``diagonal``, ``linalg.qr``, indexing) are called on ``xp`` itself."""

    def __init__(self, xp, device=None):
        self.xp, self.device = xp, device
        self.torch = xp.__name__ == "torch"

    def asarray(self, a):
        """``xp``'s copy (or view) of numpy array ``a``, on the target's device."""
        return self.xp.as_tensor(a, device=self.device) if self.torch else self.xp.asarray(a)

    def float64(self, x):
        return x.double() if self.torch else x.astype(self.xp.float64)


@dataclass(frozen=True)
class Target:
    """A block of ``shape`` at ``offsets`` of a ``full_shape`` tensor, as a backend hands it over.

    ``put(index, values)``: write ``values`` (a float, or a float32 or float64 array of ``ns``) at ``index`` (``...``,
    a tuple of integer arrays or a boolean mask of ``ns``), rounded to the block's dtype. ``draw_into(draw)``: an
    elementwise draw into the whole block. ``draw(draw, shape, full_shape, offsets, base_index)``: a new array of
    ``ns`` of an elementwise draw (float32), or of the raw words for ``draws.WORDS`` (int64).
    ``wide``: the block holds float64 (orthogonal's QR is then computed in float64)."""
    ns: Namespace
    shape: tuple
    full_shape: tuple
    offsets: tuple
    wide: bool
    put: Callable
    draw_into: Callable
    draw: Callable


def fill(target: Target, draw: Draw) -> None:
    """Write structured ``draw`` (a ``draws.Draw`` of a kind other than ELEMENTWISE) into ``target``."""
    _KINDS[draw.kind](target, draw)


def _constant(t: Target, p: Constant) -> None:
    t.put(..., p.value)


def _eye(t: Target, p: Eye) -> None:
    t.put(..., 0.0)
    (r0, c0), (r, c) = t.offsets, t.shape
    d = np.arange(max(r0, c0), min(r0 + r, c0 + c))
    t.put((t.ns.asarray(d - r0), t.ns.asarray(d - c0)), p.gain)


def _dirac(t: Target, p: Dirac) -> None:
    t.put(..., 0.0)
    t.put(tuple(t.ns.asarray(i) for i in dirac_points(t.full_shape, t.offsets, t.shape, p.groups)), 1.0)


def _orthogonal(t: Target, p: Orthogonal) -> None:
    """The normal draw of the full tensor, orthogonalized per batch copy (in float32, float64 for float64
    blocks), then this block."""
    full = t.full_shape
    g = t.draw(Normal(mean=0.0, std=1.0), full, full, (0,) * len(full), 0)
    q = orthogonalize(t.ns.float64(g) if t.wide else g, p, t.ns.xp)
    t.put(..., q[tuple(slice(o, o + n) for o, n in zip(t.offsets, t.shape, strict=True))])


def _delta_orthogonal(t: Target, p: DeltaOrthogonal) -> None:
    """Zeros, and at the centre tap ((k - 1) // 2 of every other axis) the orthogonal matrix that ``orthogonal``
    gives a 2-D array of the in and out axes (in the tensor's order of the two), from the same stream."""
    t.put(..., 0.0)
    first, second = sorted((p.in_axis, p.out_axis))
    shape = (t.full_shape[first], t.full_shape[second])
    index = []
    for axis, (n, o, k) in enumerate(zip(t.full_shape, t.offsets, t.shape, strict=True)):
        if axis in (first, second):
            index.append(slice(None))
        elif not o <= (n - 1) // 2 < o + k:
            return  # the block holds no centre tap
        else:
            index.append((n - 1) // 2 - o)
    g = t.draw(Normal(mean=0.0, std=1.0), shape, shape, (0, 0), 0)
    q = orthogonalize(t.ns.float64(g) if t.wide else g, Orthogonal(p.gain, int(p.out_axis == second), ()), t.ns.xp)
    t.put(tuple(index), q[t.offsets[first]:t.offsets[first] + t.shape[first],
                          t.offsets[second]:t.offsets[second] + t.shape[second]])


def _sparse(t: Target, p: Sparse) -> None:
    """N(0, std) values; in each column j of the (rows, cols) tensor the ceil(sparsity * rows) rows with the
    smallest keys are zero. The key of (i, j) is (word(N + i * cols + j), i), N the tensor's size: the words of
    the stream past the tensor, ties broken by the row. The keys of every row of the block's columns are drawn,
    so any shard ranks its columns as the whole tensor does. A complex array's real view (rows, cols, 2): both
    parts of an element are zero."""
    t.draw_into(Normal(mean=0.0, std=p.std))
    (rows, cols), cols_here = t.full_shape[:2], t.shape[1]
    zeros = math.ceil(p.sparsity * rows)
    if not zeros:
        return
    xp, asarray = t.ns.xp, t.ns.asarray
    words = t.draw(WORDS, (rows, cols_here), (rows, cols), (0, t.offsets[1]), math.prod(t.full_shape))
    keys = words * rows + asarray(np.arange(rows))[:, None]  # distinct within a column
    last = keys[xp.argsort(keys, axis=0)[zeros - 1], asarray(np.arange(cols_here))]  # each column's zeros-th key
    zero = keys[t.offsets[0]:t.offsets[0] + t.shape[0]] <= last
    t.put(zero if len(t.shape) == 2 else xp.stack((zero, zero), -1), 0.0)


def _parts(t: Target, p: Parts) -> None:
    """A complex array's real view: its real and imaginary parts (index 0 and 1 of the last axis), each its own
    draw on the complex shape; an elementwise part draws the stream indices of its own elements."""
    shape, full_shape, offsets = t.shape[:-1], t.full_shape[:-1], t.offsets[:-1]
    for k, draw in enumerate((p.real, p.imag)):
        def put(index, values, k=k):
            t.put((..., k) if index is ... else (*index, k) if isinstance(index, tuple) else (index, k), values)

        def draw_into(elementwise, k=k, put=put):
            put(..., t.draw(elementwise, (*shape, 1), t.full_shape, (*offsets, k), 0)[..., 0])

        part = Target(t.ns, shape, full_shape, offsets, t.wide, put, draw_into, t.draw)
        if draw.kind in ELEMENTWISE:
            part.draw_into(draw)
        else:
            fill(part, draw)


_KINDS: dict[str, Callable] = {"constant": _constant, "eye": _eye, "dirac": _dirac, "orthogonal": _orthogonal,
                               "delta_orthogonal": _delta_orthogonal, "sparse": _sparse, "parts": _parts}


def orthogonalize(g, p: Orthogonal, xp):
    """The orthogonal tensor built from ``g``, a normal draw of the full logical tensor.

    Each batch copy is seen as a matrix (out, rest): the out axis against all other non-batch axes
    flattened, orthonormalized and multiplied by the gain.
    """
    batch = tuple(p.batch_axis)
    nb = len(batch)
    out_pos = nb + sum(1 for a in range(g.ndim) if a not in batch and a < p.out_axis)
    moved = xp.moveaxis(xp.moveaxis(g, batch, tuple(range(nb))), out_pos, nb)
    shape = tuple(moved.shape)
    mats = moved.reshape((math.prod(shape[:nb]), shape[nb], -1))
    with _one_thread(xp, mats):
        for i in range(mats.shape[0]):
            mats[i] = orthonormalize(mats[i], xp)
    mats *= p.gain
    return xp.moveaxis(xp.moveaxis(mats.reshape(shape), nb, out_pos), tuple(range(nb)), batch)


_THREADS_LOCK = threading.Lock()


@contextlib.contextmanager
def _one_thread(xp, m):
    """torch's QR on the CPU (MKL's LAPACK) on one thread: its blocked Householder steps split the work by thread
    count, and the bits of Q change with it (hundreds of ulps at 256 x 256), so the same seed would give other
    weights under torchrun (OMP_NUM_THREADS=1) than in a notebook. NumPy's QR (OpenBLAS) and the GPU's give the
    same bits for any thread count. Threads are torch's for the process: set back when done."""
    if getattr(xp, "__name__", None) != "torch" or m.device.type != "cpu":
        yield
        return
    with _THREADS_LOCK:
        n = xp.get_num_threads()
        if n != 1:
            xp.set_num_threads(1)
        try:
            yield
        finally:
            if n != 1:
                xp.set_num_threads(n)


def orthonormalize(m, xp):
    """Q of the QR of ``m`` (of m.T when it is wide), columns signed by diag(R), as torch does."""
    wide = m.shape[0] < m.shape[1]
    q, r = xp.linalg.qr(m.T if wide else m)
    q = xp.where(xp.diagonal(r)[None, :] < 0, -q, q)
    return q.T if wide else q


def dirac_points(full_shape, offsets, shape, groups):
    """Local indices (one int array per dim) of the ones of dirac_(groups) that fall in this block."""
    per_group = full_shape[0] // groups
    d = np.arange(min(per_group, full_shape[1]))
    rows = (np.arange(groups)[:, None] * per_group + d).reshape(-1)
    idx = [rows, np.tile(d, groups)] + [np.full(rows.size, n // 2) for n in full_shape[2:]]
    local = [i - o for i, o in zip(idx, offsets, strict=True)]
    inside = np.all([(li >= 0) & (li < n) for li, n in zip(local, shape, strict=True)], axis=0)
    return tuple(li[inside] for li in local)
