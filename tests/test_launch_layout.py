"""The launch layout: every vector's slots are distinct and cover it, the Triton kernel's constexprs and the CUDA
source's #defines are the table's offsets, and the builders fill each slot as the kernels read it (the Triton
kernel's index walk in the interpreter, the CUDA kernel's gi_geo built for the host)."""
import ctypes
import re
import shutil
import subprocess

import numpy as np
import pytest

from gpuinit import launch_layout as ll
from gpuinit import regions
from gpuinit.backends import cupy_backend as cb
from gpuinit.errors import InitError

try:
    import triton
    import triton.language as tl
    from gpuinit.kernels import triton_fill as kt
except ImportError:
    triton = kt = None

LAYOUTS = {"FILL_META": ll.FILL_META, "GROUP_ROW": ll.GROUP_ROW, "GI_FILL_META": ll.GI_FILL_META,
           "GI_GROUP_ROW": ll.GI_GROUP_ROW, "GI_GROUP_PARAMS": ll.GI_GROUP_PARAMS}
PER_DIM = {"FILL_META": {"N": 5, "S": 6, "G": 6, "MAGIC": 5, "SHIFT": 5},
           "GI_FILL_META": {"N": 6, "MAGIC": 6, "SHIFT": 6, "S": 6, "G": 6}}
DEFINE = re.compile(r"^#define (GI_(?:META|ROW|PRM)_[A-Z_]+) (\d+)$", re.M)


def _views():
    """(array, full_shape, offsets) of numpy views (of int64 element numbers) that a kernel walks differently:
    contiguous, a row shard, a column shard, transposed, sliced with steps, six merged-apart dims."""
    def buf(*shape):
        return np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)

    return [(buf(7, 9), None, None), (buf(4, 13), (9, 13), (3, 0)), (buf(16, 8), (16, 12), (0, 4)),
            (buf(5, 6), (9, 13), (2, 3)), (buf(2, 3, 4), (3, 5, 7), (1, 1, 2)), (buf(53, 80).T, None, None),
            (buf(53, 80).T[3:70:2], None, None), (buf(20, 30)[::-1, ::2], None, None),
            (buf(3, 4, 5, 6).transpose(2, 0, 3, 1), None, None), (buf(6, 10)[:, ::2], (6, 17), (0, 4)),
            (buf(2, 3, 2, 3, 2, 3).transpose(5, 4, 3, 2, 1, 0), None, None)]


def _walk(a, full_shape, offsets):
    """(geometry, memory offsets, logical indices) of the elements of ``a`` in row-major order, for logical index 0
    at 11."""
    full_shape, offsets = regions.check_region(a.shape, full_shape, offsets)
    geo = ll.launch_geometry(a.shape, tuple(st // a.itemsize for st in a.strides), full_shape, offsets, 11)
    flat = a.reshape(-1)  # a's elements are their index in the buffer
    idx = np.indices(a.shape).reshape(a.ndim, -1)
    gstride = regions.row_major_strides(full_shape)
    logical = 11 + sum((o + idx[d]) * st for d, (o, st) in enumerate(zip(offsets, gstride, strict=True)))
    return geo, flat - flat[0], logical


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_slots_are_distinct_and_cover_the_vector(name):
    layout = LAYOUTS[name]
    names = [n for n, _ in layout.slots]
    assert len(set(names)) == len(names) and "LEN" not in names
    owner = [None] * layout.LEN
    for slot, width in layout.slots:
        for i in range(layout.offsets[slot], layout.offsets[slot] + width):
            assert owner[i] is None, f"{name}: {slot} overlaps {owner[i]} at {i}"
            owner[i] = slot
        assert getattr(layout, slot) == layout.offsets[slot]
    assert None not in owner  # every word belongs to a slot
    for slot, width in PER_DIM.get(name, {}).items():
        assert dict(layout.slots)[slot] == width
    values = {slot: [100 * k + i for i in range(width)] for k, (slot, width) in enumerate(layout.slots)}
    vector = layout.vector(**{slot: v if len(v) > 1 else v[0] for slot, v in values.items()})
    assert len(vector) == layout.LEN
    for slot, v in values.items():  # each slot's values at its offset
        assert vector[layout.offsets[slot]:layout.offsets[slot] + len(v)] == v


def test_vector_takes_every_slot_once_at_its_width():
    full = {"BASE": 1, "RUN_LEN": 2, "PER_RUN": 3, "THREADS": 4, "N": [1] * 6, "MAGIC": [0] * 6, "SHIFT": [0] * 6,
            "S": [0] * 6, "G": [0] * 6}
    assert len(ll.GI_FILL_META.vector(**full)) == ll.GI_FILL_META.LEN
    with pytest.raises(ValueError, match="slots"):
        ll.GI_FILL_META.vector(**{k: v for k, v in full.items() if k != "THREADS"})
    with pytest.raises(ValueError, match="slots"):
        ll.GI_FILL_META.vector(**full, RUNS=1)
    with pytest.raises(ValueError, match="holds 6 values"):
        ll.GI_FILL_META.vector(**{**full, "N": [1] * 5})
    with pytest.raises(AttributeError):
        ll.GI_FILL_META.RUNS  # noqa: B018 - a slot of the Triton layout only
    with pytest.raises(ValueError, match="repeated"):
        ll.Layout("X", ("A", 1), ("A", 2))


def test_geometry():
    g = ll.launch_geometry((64, 32), (32, 1), (64, 32), (0, 0))
    assert (g.single_run, g.contiguous, g.run_len, g.numel, g.ndim, g.n) == (True, True, 2048, 2048, 1,
                                                                               (1, 1, 1, 1, 1, 2048))
    g = ll.launch_geometry((16, 8), (8, 1), (16, 12), (0, 4))  # a column shard: a run per row
    assert (g.single_run, g.contiguous, g.run_len, g.base, g.n[-2:], g.g[-2:]) == (False, True, 8, 4, (16, 8),
                                                                                    (12, 1))
    g = ll.launch_geometry((53, 80), (1, 53), (53, 80), (0, 0))  # transposed: one run, not contiguous
    assert (g.single_run, g.contiguous, g.ndim, g.s[-2:]) == (True, False, 2, (1, 53))
    with pytest.raises(InitError, match="up to 6"):
        ll.launch_geometry((2,) * 7, tuple(2**k for k in range(7)), (2,) * 7, (0,) * 7)


@pytest.mark.skipif(triton is None, reason="triton is not installed")
def test_triton_constants_are_the_table():
    for prefix, layout in (("META", ll.FILL_META), ("ROW", ll.GROUP_ROW)):
        for slot, offset in layout.offsets.items():
            assert getattr(kt, f"{prefix}_{slot}") == offset, (prefix, slot)
    assert kt.ROW_LEN == ll.GROUP_ROW.LEN


def test_cuda_defines_are_the_table(tmp_path):
    defines = dict((k, int(v)) for k, v in DEFINE.findall(cb.source()))
    want = {f"{layout.prefix}_{slot}": offset for layout in ll.CUDA_LAYOUTS
            for slot, offset in (*layout.offsets.items(), ("LEN", layout.LEN))}
    assert defines == want
    assert len(DEFINE.findall(cb.source())) == len(want)  # each defined once, by the launcher's prelude
    used = set(re.findall(r"\bGI_(?:META|ROW|PRM)_[A-Z_]+\b", cb.SOURCE.read_text()))
    assert used <= set(want) and {"GI_META_BASE", "GI_META_G", "GI_ROW_LEN", "GI_PRM_LEN"} <= used
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    names = sorted(want)
    (tmp_path / "defines.cpp").write_text(ll.cuda_defines() + "#include <stdio.h>\nint main() {\n" + "".join(
        f'  printf("%d\\n", (int)({n}));\n' for n in names) + "  return 0;\n}\n")
    r = subprocess.run([cxx, "-Wall", "-Werror", str(tmp_path / "defines.cpp"), "-o", str(tmp_path / "defines")],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(tmp_path / "defines")], capture_output=True, text=True, check=True).stdout.split()
    assert dict(zip(names, map(int, out), strict=True)) == want


def test_cuda_source_alone_names_what_it_misses(tmp_path):
    """Compiled without the launcher's prelude, the kernel source stops at its first line of code."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    r = subprocess.run([cxx, "-E", "-x", "c++", f"-I{cb.SOURCE.parent}", str(cb.SOURCE)], capture_output=True,
                       text=True, check=False)
    assert r.returncode != 0 and "cupy_backend.source()" in r.stderr


GEO_HOST = r"""
%s
template <int W> void gi_read(const long long* meta, long long* out) {
  const gi_geo<W> g(meta);
  out[0] = g.base; out[1] = (long long)g.run_len; out[2] = (long long)g.per_run; out[3] = (long long)g.threads;
  for (int d = 0; d < 6; ++d) {
    out[4 + d] = (long long)g.n[d]; out[10 + d] = g.magic[d]; out[16 + d] = g.shift[d];
    out[22 + d] = (long long)g.s[d]; out[28 + d] = g.g[d];
  }
}
extern "C" void gi_read_geo(const long long* meta, int wide, long long* out) {
  if (wide) gi_read<1>(meta, out); else gi_read<0>(meta, out);
}
template <int W> long long gi_walk_as(const long long* meta, int logical, long long j) {
  const gi_geo<W> g(meta);
  typedef typename gi_index<W>::type I;
  return logical ? g.template walk<6, 5, 1, long long>((I)j) : g.template walk<6, 5, 0, long long>((I)j);
}
extern "C" long long gi_walk(const long long* meta, int wide, int logical, long long j) {
  return wide ? gi_walk_as<1>(meta, logical, j) : gi_walk_as<0>(meta, logical, j);
}
"""


@pytest.fixture(scope="module")
def geo_host(tmp_path_factory):
    """gi_geo, the CUDA kernel's reading of meta, compiled for the host (nvcc) from the launcher's source."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    d = tmp_path_factory.mktemp("geo")
    (d / "geo.cu").write_text(GEO_HOST % cb.source())
    r = subprocess.run([nvcc, "-std=c++17", "-O1", "-shared", "-Xcompiler", "-fPIC", str(d / "geo.cu"), "-o",
                        str(d / "geo.so")], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    lib = ctypes.CDLL(str(d / "geo.so"))
    lib.gi_walk.restype = ctypes.c_longlong
    lib.gi_walk.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_int, ctypes.c_longlong]
    return lib


@pytest.mark.parametrize("wide", [False, True])
@pytest.mark.parametrize("view", range(len(_views())))
def test_cuda_kernel_reads_what_the_builder_wrote(geo_host, view, wide):
    a, full_shape, offsets = _views()[view]
    geo, memory, logical = _walk(a, full_shape, offsets)
    per_run, threads = 3, 1000
    meta = np.array(ll.gi_fill_meta(geo, per_run, threads, wide), np.int64)
    assert meta.shape == (ll.GI_FILL_META.LEN,)
    out = np.zeros(34, np.int64)
    geo_host.gi_read_geo(ctypes.c_void_p(meta.ctypes.data), int(wide), ctypes.c_void_p(out.ctypes.data))
    zeros = (0,) * 6
    dividers = [ll.divider(v) for v in (per_run, *geo.n[1:])]
    want = [geo.base, geo.run_len, per_run, threads, *geo.n, *(zeros if wide else (m for m, _ in dividers)),
            *(zeros if wide else (s for _, s in dividers)), *geo.s, *geo.g]
    assert out.tolist() == want  # gi_geo's fields, in its own order
    ptr = ctypes.c_void_p(meta.ctypes.data)
    for j in range(a.size):
        assert geo_host.gi_walk(ptr, int(wide), 0, j) == memory[j]
        assert geo.base + geo_host.gi_walk(ptr, int(wide), 1, j) == logical[j]


if triton is not None:
    @triton.jit
    def _read(meta_ptr, out_ptr, numel, NDIM: tl.constexpr, BLOCK: tl.constexpr):
        """Per element j < numel: the memory and logical offsets of the fill kernel's two walks (64-bit, and 32-bit
        with dividers), BLOCK each; then the base, run length and runs the kernel loads."""
        j = tl.arange(0, BLOCK).to(tl.int64)
        mask = j < numel
        tl.store(out_ptr + j, kt._unravel(j, meta_ptr + kt.META_N, meta_ptr + kt.META_S), mask=mask)
        tl.store(out_ptr + BLOCK + j, kt._unravel(j, meta_ptr + kt.META_N, meta_ptr + kt.META_G), mask=mask)
        tl.store(out_ptr + 2 * BLOCK + j, kt._unravel32(j.to(tl.int32), meta_ptr, kt.META_S, NDIM), mask=mask)
        tl.store(out_ptr + 3 * BLOCK + j, kt._unravel32(j.to(tl.int32), meta_ptr, kt.META_G, NDIM), mask=mask)
        tl.store(out_ptr + 4 * BLOCK, tl.load(meta_ptr + kt.META_BASE))
        tl.store(out_ptr + 4 * BLOCK + 1, tl.load(meta_ptr + kt.META_RUN_LEN))
        tl.store(out_ptr + 4 * BLOCK + 2, tl.load(meta_ptr + kt.META_RUNS))


@pytest.mark.skipif(triton is None, reason="triton is not installed")
@pytest.mark.parametrize("view", range(len(_views())))
def test_triton_kernel_reads_what_the_builder_wrote(view):
    """The fill kernel's index walks over meta as the launcher builds it (in the interpreter without a GPU)."""
    import torch

    a, full_shape, offsets = _views()[view]
    geo, memory, logical = _walk(a, full_shape, offsets)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    meta = torch.tensor(ll.fill_meta(geo, 5), dtype=torch.int64, device=device)
    block = 1 << (a.size - 1).bit_length()
    out = torch.zeros(4 * block + 3, dtype=torch.int64, device=device)
    _read[(1,)](meta, out, a.size, NDIM=geo.ndim, BLOCK=block)
    out, n = out.cpu().numpy(), a.size
    for k, want in enumerate((memory, logical - geo.base, memory, logical - geo.base)):
        assert out[k * block:k * block + n].tolist() == want.tolist(), k
    assert out[4 * block:].tolist() == [geo.base, geo.run_len, 5]
