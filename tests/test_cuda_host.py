"""The CUDA C kernels' thread code on the host: nvcc builds it for the host, and the CuPy backend's launch plans
fill numpy buffers with the reference bits (tests/test_cuda_source.py: the device builds)."""
import contextlib
import ctypes
import shutil
import subprocess
import sys
import types

import numpy as np
import pytest
from gpuinit.kernels import numpy_stream as ks

from gpuinit import draws, launch_layout, regions
from gpuinit.backends import cupy_backend as cb
from gpuinit.jobs import Job

# ---- the kernels' thread code on the host --------------------------------------------------------------------

DRAWS = [draws.uniform(-0.3, 0.9), draws.normal(0.5, 2.0), draws.trunc_normal(0.0, 1.0, -2.0, 2.0),
         draws.trunc_normal(0.0, 1.0, -3, 3), draws.trunc_normal(0.0, 1.0, -6.0, 6.0),
         draws.trunc_normal(1, 2, 5.5, 9.0)]
DTYPES = {"float32": (np.float32, "float"), "float64": (np.float64, "double"), "float16": (np.float16, "gi_f16"),
          "bfloat16": (np.uint16, "gi_bf16")}


def T(a):
    return a.T


# (buffer shape, a view of the buffer or None, full_shape, offsets, misalignment in elements, 64-bit indices)
GEOMETRIES = [
    ((1027,), None, None, None, 0, None), ((1024,), None, None, None, 0, None), ((3,), None, None, None, 0, None),
    ((1029,), None, None, None, 1, None), ((4, 13), None, (9, 13), (3, 0), 0, None),
    ((3, 12), None, (8, 12), (2, 0), 0, None), ((16, 8), None, (16, 12), (0, 4), 0, None),
    ((5, 6), None, (9, 13), (2, 3), 0, None), ((2, 3, 4), None, (3, 6, 8), (1, 2, 4), 0, None),
    ((2, 3, 4), None, (3, 5, 7), (1, 1, 2), 0, None), ((16, 8), None, (16, 12), (0, 4), 2, None),
    ((53, 80), T, None, None, 0, None), ((53, 80), lambda a: a.T[3:70:2], None, None, 0, None),
    ((20, 30), lambda a: a[::-1, ::2], None, None, 0, None),
    ((3, 4, 5, 6), lambda a: a.transpose(2, 0, 3, 1), None, None, 0, None),
    ((6, 10), lambda a: a[:, ::2], (6, 17), (0, 4), 0, None),
    ((2, 3, 2, 3, 2, 3), lambda a: a.transpose(5, 4, 3, 2, 1, 0), None, None, 0, None),
    ((12, 9), T, (9, 20), (0, 5), 0, None), ((4, 101), None, (2**21 + 5, 2**12 + 1), (2**20 + 17, 3), 0, None),
    ((1, 4097), None, (2**21 + 5, 2**12 + 1), (2**20 + 17, 0), 0, None), ((1027,), None, None, None, 0, True),
    ((5, 6), None, (9, 13), (2, 3), 0, True), ((16, 8), None, (16, 12), (0, 4), 0, True),
    ((53, 80), lambda a: a.T[3:70:2], None, None, 0, True), ((6, 10), lambda a: a[:, ::2], (6, 17), (0, 4), 0, True),
]
CASES = [(g, list(DTYPES)[i % 4], i % len(DRAWS)) for i, g in enumerate(GEOMETRIES)]
CASES += [(GEOMETRIES[i], dtype, d) for i in (0, 7, 12) for dtype in DTYPES for d in range(len(DRAWS))]
CASES += [(GEOMETRIES[3], "float32", "words"), (GEOMETRIES[15], "float32", "words")]
SEED, STREAM = 0xDEADBEEF12345678, 0x0123456789ABCDEF
GROUPED = ((1, 0), (2, 1))  # (kind, branches) of the grouped launches the host library holds


def _buffer(nelem, dtype, shift):
    """``nelem`` elements ``shift`` elements past a 64-byte boundary, inside a buffer of bytes 0xA5 that has 64
    bytes more on either side."""
    item = np.dtype(dtype).itemsize
    raw = np.full(nelem * item + 256, 0xA5, np.uint8)
    off = (-raw.ctypes.data) % 64 + 64 + shift * item
    return raw[off:off + nelem * item].view(dtype)


def _untouched(buf, held):
    """Whether the bytes around ``buf`` and those of its elements outside ``held`` still hold 0xA5."""
    raw = buf
    while raw.base is not None:
        raw = raw.base
    mask = np.ones(raw.size, bool)
    begin = buf.ctypes.data - raw.ctypes.data
    mask[begin:begin + buf.nbytes] = ~np.repeat(held.reshape(-1), buf.itemsize)
    return bool((raw[mask] == 0xA5).all())


def _reference(shape, dtype, draw, full_shape, offsets, seed=SEED):
    """The values ``dtype`` stores at an array of ``shape`` at ``offsets`` in ``full_shape``, from the reference."""
    idx = np.zeros(shape, np.uint64)
    for d, (o, st) in enumerate(zip(offsets, regions.row_major_strides(full_shape), strict=True)):
        axis = np.arange(shape[d], dtype=np.uint64) + np.uint64(o)
        idx = idx + (axis * np.uint64(st)).reshape([-1 if k == d else 1 for k in range(len(shape))])
    if draw == draws.WORDS:
        values = ks.element_words(idx.reshape(-1), 1, seed, STREAM).view(np.float32)
    else:
        values = ks.draw_values(draw, idx.reshape(-1), 1, seed, STREAM)
    values = values.reshape(shape)
    return ks.bfloat16_bits(values).view(np.uint16) if dtype == "bfloat16" else values.astype(DTYPES[dtype][0])


class _Array(np.ndarray):
    """numpy memory that answers where cupy_backend asks a cupy array: data.ptr, device.id."""
    device = types.SimpleNamespace(id=0)

    @property
    def data(self):
        return types.SimpleNamespace(ptr=self.ctypes.data)


def _setup(case):
    """(buffer, the array in it, the buffer's elements the array holds, draw, full_shape, offsets, wide)."""
    (base_shape, how, full_shape, offsets, shift, wide), dtype, d = case
    draw = draws.WORDS if d == "words" else DRAWS[d]
    buf = _buffer(int(np.prod(base_shape)), DTYPES[dtype][0], shift)
    def make(a):
        return (how or (lambda x: x))(a.reshape(base_shape))
    out = make(buf.view(_Array))
    held = np.zeros(buf.shape, bool)
    make(held)[...] = True
    return (buf, out, held, draw, *regions.check_region(out.shape, full_shape, offsets), wide)


HOST = r"""
#include <string.h>
%s
typedef void (*gi_fn)(void*, const long long*, const float*, int, unsigned long long, unsigned long long,
                      unsigned long long);
typedef void (*gi_group_fn)(const long long*, const float*, const int*, unsigned);
template <typename T, int K, int B, int P, int D, int W>
void gi_run(void* out, const long long* meta, const float* prm, int flip, unsigned long long seed,
            unsigned long long stream, unsigned long long step) {
  typedef typename gi_index<W>::type I;
  gi_params p;
  p.kind = K; p.flip = flip; p.scale = prm[0]; p.shift = prm[1]; p.lo = prm[2]; p.hi = prm[3];
  p.p_lo = prm[4]; p.p_span = prm[5]; p.z_lo = prm[6]; p.z_hi = prm[7];
  for (I first = 0; first < (I)step; ++first)
    gi_fill_threads<T, K, B, P, D, W>((T*)out, meta, p, seed, stream, first, (I)step);
}
template <typename T, int K, int B>
void gi_run_group(const long long* table, const float* params, const int* owner, unsigned grid) {
  for (unsigned b = 0; b < grid; ++b)
    for (unsigned t = 0; t < GI_THREADS; ++t)
      gi_fill_member<T, K, B>(table + GI_ROW_LEN * owner[b], params + GI_PRM_LEN * owner[b], b, t);
}
struct { const char* name; gi_fn fn; } gi_table[] = { %s };
struct { const char* name; gi_group_fn fn; } gi_group_table[] = { %s };
extern "C" int gi_host_fill(const char* name, void* out, const long long* meta, const float* prm, int flip,
                            unsigned long long seed, unsigned long long stream, unsigned long long step) {
  for (unsigned i = 0; i < sizeof(gi_table) / sizeof(gi_table[0]); ++i)
    if (!strcmp(gi_table[i].name, name)) { gi_table[i].fn(out, meta, prm, flip, seed, stream, step); return 0; }
  return 1;
}
extern "C" int gi_host_group(const char* name, const long long* table, const float* params, const int* owner,
                             unsigned grid) {
  for (unsigned i = 0; i < sizeof(gi_group_table) / sizeof(gi_group_table[0]); ++i)
    if (!strcmp(gi_group_table[i].name, name)) { gi_group_table[i].fn(table, params, owner, grid); return 0; }
  return 1;
}
"""


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """The kernels' thread code compiled for the host (nvcc), with the instantiations the cases launch."""
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    names = set()
    for c in CASES:
        _, out, _, draw, full_shape, offsets, wide = _setup(c)
        names.add(cb.plan(out.shape, tuple(s // out.itemsize for s in out.strides), out.itemsize, out.ctypes.data,
                          draw, full_shape, offsets, storage=DTYPES[c[1]][1], wide=wide)["name"])
    fills = ", ".join(f'{{"{n}", &gi_run<{n[8:-1]}>}}' for n in sorted(names))
    groups = ", ".join(f'{{"gi_fill_group<{t}, {k}, {b}>", &gi_run_group<{t}, {k}, {b}>}}'
                       for t in ("float", "double", "gi_f16") for k, b in GROUPED)
    d = tmp_path_factory.mktemp("host")
    (d / "host.cu").write_text(HOST % (cb.source(), fills, groups))
    r = subprocess.run([nvcc, "-std=c++17", "-O1", "-shared", "-Xcompiler", "-fPIC,-ffp-contract=off",
                        f"-I{cb.SOURCE.parent}", str(d / "host.cu"), "-o", str(d / "host.so")],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return ctypes.CDLL(str(d / "host.so"))


def _ptr(a):
    return ctypes.c_void_p(a.ctypes.data)


def _run(host, name, out, meta, scalars, step):
    assert host.gi_host_fill(name.encode(), ctypes.c_void_p(out.ctypes.data), _ptr(meta),
                             _ptr(np.array(scalars[:8], np.float32)), int(scalars[8]), ctypes.c_uint64(int(scalars[9])),
                             ctypes.c_uint64(int(scalars[10])), ctypes.c_uint64(step)) == 0


@pytest.fixture
def fake_cupy(host, monkeypatch):
    """cupy as cupy_backend's launch code uses it, with kernels run by the `host` library; returns the launches."""
    launches = []

    def kernel(name):
        def launch(grid, block, args):
            assert block == (cb.THREADS,) and len(grid) == 1 and grid[0] >= 1
            launches.append((name, grid[0], args))
            if name.startswith("gi_fill_group"):
                table, params, owner = args
                assert (table.dtype, params.dtype, owner.dtype) == (np.int64, np.float32, np.int32)
                assert host.gi_host_group(name.encode(), _ptr(table), _ptr(params), _ptr(owner), grid[0]) == 0
            else:  # gi_fill's arguments, typed as its parameters
                assert [type(a) for a in args[2:]] == [np.float32] * 8 + [np.int32, np.uint64, np.uint64]
                assert args[1].dtype == np.int64 and args[1].shape == (launch_layout.GI_FILL_META.LEN,)
                _run(host, name, args[0], args[1], args[2:], grid[0] * block[0])
        return launch

    cupy = types.ModuleType("cupy")
    cupy.ndarray, cupy.asarray = _Array, np.ascontiguousarray
    cupy.cuda = types.SimpleNamespace(Device=lambda i: contextlib.nullcontext())
    monkeypatch.setitem(sys.modules, "cupy", cupy)
    monkeypatch.setattr(cb, "kernel", kernel)
    return launches


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c[1]}-{c[2]}" for i, c in enumerate(CASES)])
def test_launches_on_the_host(host, fake_cupy, case, monkeypatch):
    buf, out, held, draw, full_shape, offsets, wide = _setup(case)
    plan = cb.plan
    monkeypatch.setattr(cb, "plan", lambda *a, **k: plan(*a, **k, wide=wide))
    want = _reference(out.shape, case[1], draw, full_shape, offsets)
    bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[out.itemsize]
    cb.launch(out, draw, full_shape, offsets, SEED, STREAM,
              storage="gi_bf16" if case[1] == "bfloat16" else None)
    (name, _, args), = fake_cupy
    assert np.array_equal(out.view(bits), want.view(bits)), name
    assert _untouched(buf, held)  # nothing else written
    out[...] = 0
    _run(host, name, out, args[1], args[2:], 7)  # a small grid that loops
    assert np.array_equal(out.view(bits), want.view(bits)), name


def test_launch_plans_pick_the_fast_paths():
    def path(shape, strides, full=None, off=None, address=1 << 20, item=4):
        full, off = regions.check_region(shape, full, off)
        name = cb.plan(shape, strides, item, address, draws.Normal(mean=0.0, std=1.0), full, off)["name"]
        return tuple(int(v) for v in name[:-1].split(", ")[3:])

    assert path((64, 64), (64, 1)) == (cb.ALIGNED, 0, 0)
    assert path((64, 64), (64, 1), address=(1 << 20) + 4) == (cb.RUN, 0, 0)
    assert path((64, 64), (64, 1), address=(1 << 20) + 8, item=2) == (cb.ALIGNED, 0, 0)
    assert path((3, 64), (64, 1), (8, 64), (5, 0)) == (cb.ALIGNED, 0, 0)  # a row shard
    assert path((64, 32), (32, 1), (64, 128), (0, 32)) == (cb.RUNS_ALIGNED, 1, 0)  # a column shard
    assert path((64, 30), (30, 1), (64, 128), (0, 32)) == (cb.RUNS, 1, 0)
    assert path((64, 64), (1, 64)) == (cb.STRIDED, 2, 0)  # a transposed view
    assert path((2**16, 2**15), (2**15, 1)) == (cb.ALIGNED, 0, 1)  # 2**31 elements: 64-bit indices
    assert path((2**16, 2**14), (1, 2**18)) == (cb.STRIDED, 2, 1)  # memory offsets past 2**31


def test_grouped_launch_on_the_host(fake_cupy):
    members = [((1027,), None, None, 0), ((3,), None, None, 0), ((1029,), None, None, 1), ((4, 13), (9, 13), (3, 0), 0),
               ((3, 12), (8, 12), (2, 0), 0), ((300, 7), None, None, 0), ((1,), None, None, 2),
               ((1, 1024), (3, 1025), (1, 0), 0)]
    items, want = [], []
    for dtype, draw in (("float32", DRAWS[1]), ("float64", DRAWS[2]), ("float16", DRAWS[2])):
        for i, (shape, full, off, shift) in enumerate(members):
            a = _buffer(int(np.prod(shape)), DTYPES[dtype][0], shift).reshape(shape).view(_Array)
            items.append(Job(a, draw, *regions.check_region(shape, full, off), SEED + i, STREAM, cb))
            want.append(_reference(shape, dtype, draw, *regions.check_region(shape, full, off), SEED + i))
    items.append(Job(np.zeros((0, 3), np.float32).view(_Array), DRAWS[0], (0, 3), (0, 0), 1, 2, cb))  # nothing
    assert cb.fill_group(items) == 3 == len(fake_cupy)
    for job, w in zip(items[:-1], want, strict=True):  # the empty job, last, has no reference
        a = job.array
        assert np.array_equal(a, w) and _untouched(a, np.ones(a.shape, bool)), a.shape
