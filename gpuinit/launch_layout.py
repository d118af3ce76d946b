"""How a GPU kernel walks an array, and where each number of a launch sits in the vectors the kernels read.

A kernel walks an array as runs of consecutive logical indices over at most MAX_DIMS dims (``launch_geometry``).
The launchers hand that walk to the kernels as one int64 vector per launch, and grouped launches as one table row
per tensor. Each ``Layout`` below names the slots of one such vector, in order; it is the only place their offsets
are written:

- FILL_META, GROUP_ROW: kernels/triton_fill.py's ``fill_kernel`` meta and ``group_kernel`` table rows; the
  kernel module takes their offsets as ``tl.constexpr`` globals (META_*, ROW_*).
- GI_FILL_META, GI_GROUP_ROW, GI_GROUP_PARAMS: kernels/cuda/gpuinit_fill.cu's ``gi_fill`` meta, ``gi_fill_group``
  table rows and parameter rows; the CUDA source gets their offsets as the #defines of ``cuda_defines``
  (GI_META_*, GI_ROW_*, GI_PRM_*), which gpuinit/backends/cupy_backend.py puts in front of it.

The builders (``fill_meta``, ``gi_fill_meta``, ``Layout.vector``) fill every slot by name.
"""
import math
from collections.abc import Iterable
from typing import Any, NamedTuple

from .errors import InitError
from .regions import row_major_strides

MAX_DIMS = 6  # dims a kernel walks after merging (the dims of every per-dim slot below)


class Layout:
    """The slots of a launch vector, in order: a name and a width each (a per-dim slot holds one value per dim).
    ``layout.NAME`` is the offset of slot NAME, ``layout.LEN`` the vector's length; the kernels name them
    PREFIX_NAME (the Triton constexprs, the C #defines of ``cuda_defines``)."""

    def __init__(self, prefix: str, *slots: tuple[str, int]):
        self.prefix, self.slots = prefix, slots
        self.offsets: dict[str, int] = {}
        offset = 0
        for name, width in slots:
            if name in self.offsets or name == "LEN" or width < 1:
                raise ValueError(f"{prefix}: slot {name!r} (width {width}) is repeated, reserved or empty")
            self.offsets[name] = offset
            offset += width
        self.LEN = offset

    def __getattr__(self, name: str) -> int:
        try:
            return self.__dict__["offsets"][name]
        except KeyError:
            raise AttributeError(f"{self.prefix} has no slot {name!r}") from None

    def vector(self, **values: Any) -> list:
        """The vector holding ``values``, every slot by name: a number for a slot of width 1, as many numbers as its
        width otherwise."""
        if set(values) != set(self.offsets):
            raise ValueError(f"{self.prefix}: slots {sorted(self.offsets)} to fill, got {sorted(values)}")
        out: list = []
        for name, width in self.slots:
            v = values[name]
            part = list(v) if isinstance(v, Iterable) else [v]
            if len(part) != width:
                raise ValueError(f"{self.prefix} slot {name} holds {width} values, got {len(part)}")
            out += part
        return out

    def defines(self) -> list[str]:
        """The C #defines of the slots' offsets (PREFIX_NAME) and of the length (PREFIX_LEN)."""
        return [f"#define {self.prefix}_{name} {offset}" for name, offset in (*self.offsets.items(), ("LEN", self.LEN))]


# kernels/triton_fill.py fill_kernel's meta: base (the logical index of the local origin), run length, RUNS
# (tiles per run, or the number of runs when a program fills several), the local shape n1..n5 (n0 implied),
# memory strides s0..s5, logical strides g0..g5, then the dividers of n1..n5 (``divider``: magics, shifts).
FILL_META = Layout("META", ("BASE", 1), ("RUN_LEN", 1), ("RUNS", 1), ("N", MAX_DIMS - 1), ("S", MAX_DIMS),
                   ("G", MAX_DIMS), ("MAGIC", MAX_DIMS - 1), ("SHIFT", MAX_DIMS - 1))
# group_kernel's table, a row per tensor: address, numel, seed, stream, start (the logical index of its first
# element), then fill_kernel's eight float32 parameters scale .. z_hi, two to a word (the first in the low half).
GROUP_ROW = Layout("ROW", ("ADDRESS", 1), ("NUMEL", 1), ("SEED", 1), ("STREAM", 1), ("START", 1), ("PARAMS", 4))
# kernels/cuda/gpuinit_fill.cu gi_fill's meta: base, run length, threads per run, threads (Philox blocks;
# GI_PATH_ALIGNED: the whole ones), then per dim d = 0..5: size, magic and shift (floor(j / size) by multiply-high;
# for d = 0: those of the threads per run; zeros for 64-bit indices), memory stride, logical stride.
GI_FILL_META = Layout("GI_META", ("BASE", 1), ("RUN_LEN", 1), ("PER_RUN", 1), ("THREADS", 1), ("N", MAX_DIMS),
                      ("MAGIC", MAX_DIMS), ("SHIFT", MAX_DIMS), ("S", MAX_DIMS), ("G", MAX_DIMS))
# gi_fill_group's table (int64), a row per tensor: address, numel, its first grid block, seed, stream, flip, start;
# and its parameter rows (float32): scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi (draws.kernel_params, flip aside).
GI_GROUP_ROW = Layout("GI_ROW", ("ADDRESS", 1), ("NUMEL", 1), ("FIRST_BLOCK", 1), ("SEED", 1), ("STREAM", 1),
                      ("FLIP", 1), ("START", 1))
GI_GROUP_PARAMS = Layout("GI_PRM", ("PARAMS", 8))
CUDA_LAYOUTS = (GI_FILL_META, GI_GROUP_ROW, GI_GROUP_PARAMS)


def cuda_defines() -> str:
    """The #defines of the CUDA layouts' offsets, which kernels/cuda/gpuinit_fill.cu reads."""
    return "\n".join(line for layout in CUDA_LAYOUTS for line in layout.defines()) + "\n"


class Geometry(NamedTuple):
    """How a kernel walks an array: runs of ``run_len`` consecutive logical indices from ``base`` (the logical
    index of the local origin); ``n``, ``s``, ``g``: the local shape, memory strides and logical strides of the
    merged dims, padded in front to MAX_DIMS (size 1, strides 0); ``ndim``: the dims before padding."""
    base: int
    run_len: int
    numel: int
    ndim: int
    n: tuple[int, ...]
    s: tuple[int, ...]
    g: tuple[int, ...]
    single_run: bool
    contiguous: bool


def launch_geometry(shape, strides, full_shape, offsets, base_index=0) -> Geometry:
    """The Geometry of an array of ``shape`` and ``strides`` (in elements), the block at ``offsets`` of a
    ``full_shape`` tensor whose logical index 0 is ``base_index``."""
    gstride = row_major_strides(full_shape)
    base = base_index + sum(o * g for o, g in zip(offsets, gstride, strict=True))
    dims = _collapse(tuple(shape), tuple(strides), gstride)
    if len(dims) > MAX_DIMS:
        raise InitError(f"kernels fill arrays of up to {MAX_DIMS} non-mergeable dims, got shape {tuple(shape)} "
                        f"with strides {tuple(strides)}")
    n, s, g = (list(x) for x in zip(*dims, strict=True))
    run_len = n[-1]
    for d in range(len(n) - 2, -1, -1):  # a run spans trailing dims that cover their full extent
        if g[d] != g[d + 1] * n[d + 1]:
            break
        run_len *= n[d]
    numel = math.prod(n)
    contiguous = all(s[d] == math.prod(n[d + 1:]) for d in range(len(n)))
    pad = MAX_DIMS - len(n)
    return Geometry(base, run_len, numel, len(n), (1,) * pad + tuple(n), (0,) * pad + tuple(s),
                    (0,) * pad + tuple(g), run_len == numel, contiguous)


def _collapse(shape, mem, glob):
    """Drop size-1 dims and merge neighbours that are contiguous both in memory and in the logical tensor.
    The last dim keeps logical stride 1 (a size-1 one is added if needed), so runs start from it."""
    dims = [(n, s, g) for n, s, g in zip(shape, mem, glob, strict=True) if n != 1]
    if not dims or dims[-1][2] != 1:
        dims.append((1, 1, 1))
    out = [dims[0]]
    for n, s, g in dims[1:]:
        pn, ps, pg = out[-1]
        if ps == s * n and pg == g * n:
            out[-1] = (pn * n, s, g)
        else:
            out.append((n, s, g))
    return out


def divider(n):
    """(magic, shift) with floor(j / n) == (umulhi(j, magic) + j) >> shift for 0 <= j < 2**31 and 1 <= n < 2**31
    (unsigned 32-bit arithmetic; Granlund and Montgomery 1994, as torch's IntDivider)."""
    shift = (n - 1).bit_length()
    return ((1 << 32) * ((1 << shift) - n)) // n + 1, shift


def _dividers(sizes):
    """(magics, shifts) of ``sizes``."""
    magic, shift = zip(*(divider(v) for v in sizes), strict=True)
    return magic, shift


def fill_meta(geo: Geometry, runs: int) -> list[int]:
    """fill_kernel's meta (FILL_META) for ``geo``; ``runs``: the tiles per run, or the number of runs where a
    program fills several."""
    magic, shift = _dividers(geo.n[1:])
    return FILL_META.vector(BASE=geo.base, RUN_LEN=geo.run_len, RUNS=runs, N=geo.n[1:], S=geo.s, G=geo.g, MAGIC=magic,
                            SHIFT=shift)


def gi_fill_meta(geo: Geometry, per_run: int, threads: int, wide: bool) -> list[int]:
    """gi_fill's meta (GI_FILL_META) for ``geo``, ``per_run`` threads per run and ``threads`` in all; ``wide``:
    64-bit indices (no dividers)."""
    magic, shift = ((0,) * MAX_DIMS, (0,) * MAX_DIMS) if wide else _dividers((per_run, *geo.n[1:]))
    return GI_FILL_META.vector(BASE=geo.base, RUN_LEN=geo.run_len, PER_RUN=per_run, THREADS=threads, N=geo.n,
                               MAGIC=magic, SHIFT=shift, S=geo.s, G=geo.g)
