"""The structured draws (gpuinit/structured.py), written once: the sparse rule against a direct reading of
docs/stream.md, the CuPy backend's glue run on the host, and NumPy arrays filled without torch."""
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import fresh_seed
from gpuinit.kernels import numpy_stream as ks

import gpuinit
from gpuinit import draws, regions, structured
from gpuinit.backends import cupy_backend, numpy_backend
from gpuinit.jobs import Job

DRAWS = [draws.constant(0.37), draws.eye(1.7), draws.dirac(2), draws.sparse(0.3, 0.7), draws.sparse(1.0, 1.0),
         draws.orthogonal(2.0, 0, ()), draws.orthogonal(1.5, 1, (0,)), draws.delta_orthogonal(1.5, 1, 0),
         draws.delta_orthogonal(1.0, 2, 3)]
# (shape, full_shape, offsets) per draw kind: whole tensors and blocks
BLOCKS = {"constant": [((3, 4, 5), None, None), ((2, 2), (3, 8), (1, 5))],
          "eye": [((7, 5), None, None), ((3, 4), (7, 5), (2, 1)), ((2, 2), (3, 8), (1, 5))],
          "dirac": [((6, 4, 3, 3), None, None), ((3, 2, 3, 1), (6, 4, 3, 3), (3, 1, 0, 1))],
          "sparse": [((40, 24), None, None), ((13, 5), (40, 24), (11, 9)), ((40, 7), (40, 24), (0, 5))],
          "orthogonal": [((6, 4, 5), None, None), ((3, 2, 5), (6, 4, 5), (2, 1, 0))],
          "delta_orthogonal": [((6, 4, 3, 6), None, None), ((3, 2, 2, 3), (6, 4, 3, 6), (2, 1, 1, 2)),
                               ((3, 2, 1, 3), (6, 4, 3, 6), (2, 1, 0, 2))]}


def _cases():
    for draw in DRAWS:
        for shape, full, off in BLOCKS[draw.kind]:
            yield draw, shape, *regions.check_region(shape, full, off)


def sparse_reference(full_shape, offsets, shape, sparsity, seed, stream):
    """docs/stream.md's sparse zeros, read literally: in column j the ceil(sparsity * rows) rows with the smallest
    (word at N + r * cols + j, r) are zero."""
    rows, cols = full_shape
    zeros = np.zeros(full_shape, bool)
    for j in range(cols):
        counters = np.uint64(rows * cols) + np.arange(rows, dtype=np.uint64) * np.uint64(cols) + np.uint64(j)
        words = ks.element_words(counters, 1, seed, stream)[:, 0]
        zeros[sorted(range(rows), key=lambda r: (int(words[r]), r))[:math.ceil(sparsity * rows)], j] = True
    return zeros[tuple(slice(o, o + n) for o, n in zip(offsets, shape, strict=True))]


@pytest.mark.parametrize("make", [np.zeros, lambda s: torch.zeros(s, dtype=torch.bfloat16)], ids=["numpy", "torch"])
def test_sparse_zeros_follow_the_spec(make, rng):
    seed, stream = fresh_seed(rng), fresh_seed(rng)
    for shape, full, off in BLOCKS["sparse"] + [((2, 1), (2, 1), (0, 0)), ((5, 3), (9, 3), (4, 0))]:
        full, off = regions.check_region(shape, full, off)
        for sparsity in (0.0, 0.3, 0.5, 1.0):
            x = gpuinit.init_(make(shape), "sparse", seed=seed, stream=stream, sparsity=sparsity, full_shape=full,
                              offsets=off)
            x = x.float().numpy() if isinstance(x, torch.Tensor) else x
            assert np.array_equal(x == 0, sparse_reference(full, off, shape, sparsity, seed, stream)), (shape, off)


class _Tied:
    """A Target of numpy or torch whose words are all equal: every key ties, so the row decides."""

    def __init__(self, xp, shape, full_shape, offsets):
        ns = structured.Namespace(xp)
        self.out = ns.asarray(np.full(shape, 5.0, np.float32))

        def put(index, values):
            self.out[index] = values

        def draw(elementwise, shape, *_):
            return ns.asarray(np.full(shape, 7, np.int64))

        self.target = structured.Target(ns, shape, full_shape, offsets, False, put, lambda *a: None, draw)


@pytest.mark.parametrize("xp", [np, torch], ids=["numpy", "torch"])
def test_sparse_ties_break_by_row(xp):
    t = _Tied(xp, (6, 3), (10, 5), (3, 2))
    structured.fill(t.target, draws.sparse(0.45, 1.0))  # 5 zeros per column: rows 0..4 of the full tensor
    assert np.array_equal(np.asarray(t.out) == 0, np.repeat((np.arange(3, 9) < 5)[:, None], 3, axis=1))


def test_orthogonal_bits_without_torch():
    """bits="bfloat16" into a numpy uint16 array: NumPy's QR, with torch unimportable (it once went to torch)."""
    code = """if True:
        import sys
        sys.modules["torch"] = None
        import numpy as np
        import gpuinit
        for shape, kw in [((6, 4), {}), ((3, 8, 5), {"batch_axis": 0, "in_axis": 2, "out_axis": 1, "gain": 2.0})]:
            got = gpuinit.init_(np.zeros(shape, np.uint16), "orthogonal", seed=3, bits="bfloat16", **kw)
            want = gpuinit.init_(np.zeros(shape, np.float32), "orthogonal", seed=3, **kw)
            got = (got.astype(np.uint32) << 16).view(np.float32)
            assert np.allclose(got, want, rtol=2**-8, atol=1e-6), (got, want)
        for scheme, kw in [("sparse", {"sparsity": 0.5}), ("eye", {}), ("dirac", {}), ("constant", {"value": 0.5})]:
            shape = (4, 2, 3) if scheme == "dirac" else (6, 4)
            got = gpuinit.init_(np.zeros(shape, np.uint16), scheme, seed=3, bits="bfloat16", **kw)
            want = gpuinit.init_(np.zeros(shape, np.float32), scheme, seed=3, **kw)
            assert np.array_equal(got, gpuinit.kernels.numpy_stream.bfloat16_bits(want).view(np.uint16)), scheme
        print("ok", sys.modules["torch"])
    """
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert r.returncode == 0 and r.stdout.split() == ["ok", "None"], r.stderr[-3000:]


@pytest.fixture
def host_cupy(monkeypatch):
    """cupy_backend with NumPy standing in for CuPy and the NumPy backend for its kernels: its structured glue runs
    on the host (tests/test_cupy_backend.py runs the real thing on a device)."""
    def launch(out, draw, full_shape, offsets, seed, stream, base_index=0, storage=None):
        if draw == draws.WORDS:
            words = numpy_backend._block(draw, out.shape, full_shape, offsets, seed, stream, base_index)
            out.view(np.uint32)[...] = words
        else:
            assert base_index == 0
            numpy_backend.fill(Job(out, draw, full_shape, offsets, seed, stream, numpy_backend,
                                   "bfloat16" if storage == "gi_bf16" else None))

    monkeypatch.setitem(sys.modules, "cupy", np)
    monkeypatch.setattr(cupy_backend, "launch", launch)


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_cupy_glue_on_the_host(host_cupy, dtype, rng):
    bits, store = ("bfloat16", "uint16") if dtype == "bfloat16" else (None, dtype)
    for draw, shape, full, off in _cases():
        seed = fresh_seed(rng)
        got = cupy_backend.fill(Job(np.full(shape, 3, store), draw, full, off, seed, 5, cupy_backend, bits))
        want = numpy_backend.fill(Job(np.full(shape, 4, store), draw, full, off, seed, 5, numpy_backend, bits))
        if draw.kind in ("orthogonal", "delta_orthogonal"):
            f32 = (lambda a: (a.astype(np.uint32) << 16).view(np.float32)) if bits else (lambda a: a)
            assert np.allclose(f32(got), f32(want), rtol=1e-2 if dtype in ("float16", "bfloat16") else 1e-5, atol=1e-6)
        else:
            assert np.array_equal(got, want), (draw, shape, off)


@pytest.mark.parametrize("shape", [(64, 64), (256, 192), (3, 96, 80)])
def test_orthogonal_bits_do_not_depend_on_torch_s_thread_count(shape):
    """torchrun sets OMP_NUM_THREADS=1: the same seed gives the same orthogonal weights there as with all cores,
    and the caller's thread count is kept."""
    before = torch.get_num_threads()
    got = {}
    try:
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            got[n] = gpuinit.init_(torch.empty(shape), "orthogonal", seed=11, gain=1.5)
            assert torch.get_num_threads() == n
    finally:
        torch.set_num_threads(before)
    assert torch.equal(got[1], got[2]) and torch.equal(got[1], got[3])
    q = got[1].reshape(shape[0], -1) / 1.5
    small = min(q.shape)
    gram = q @ q.T if q.shape[0] == small else q.T @ q
    assert torch.allclose(gram, torch.eye(small), atol=1e-5)
