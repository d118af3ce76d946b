"""On a CUDA device: the CuPy backend equals the NumPy backend (and the Triton one) bit for bit.
(Without a device, tests/test_cuda_source.py compiles the same kernels with NVRTC and nvcc.)"""
import numpy as np
import pytest
from conftest import fresh_seed

import gpuinit
from gpuinit import draws, regions
from gpuinit.backends import cupy_backend, numpy_backend
from gpuinit.jobs import Job

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(cupy_backend.available() is not None,
                                                  reason=f"cupy backend: {cupy_backend.available()}")]
DTYPES = ["float32", "float64", "float16"]
ELEMENTWISE = [("uniform", {"a": -0.3, "b": 0.9}), ("normal", {"std": 2.0}), ("trunc_normal", {"a": -1.0, "b": 3.0}),
               ("trunc_normal", {"a": 5.5, "b": 9.0}), ("he_normal", {}), ("kaiming_uniform", {})]


@pytest.fixture(scope="module")
def cupy():
    return pytest.importorskip("cupy")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme,kw", ELEMENTWISE)
def test_elementwise_bits(cupy, scheme, kw, dtype, rng):
    seed = fresh_seed(rng)
    for shape in [(37, 53), (3, 5, 7), (1029,)] if scheme in ("uniform", "normal", "trunc_normal") else [(37, 53)]:
        ours = gpuinit.init_(cupy.empty(shape, dtype), scheme, seed=seed, **kw)
        ref = gpuinit.init_(np.empty(shape, dtype), scheme, seed=seed, **kw)
        assert np.array_equal(cupy.asnumpy(ours).view(np.uint8), ref.view(np.uint8))


def test_strided_views_and_shards(cupy, rng):
    seed = fresh_seed(rng)
    base = cupy.zeros((53, 80), cupy.float32)
    view = base.T[3:70:2]
    gpuinit.init_(view, "normal", seed=seed)
    assert np.array_equal(cupy.asnumpy(view), gpuinit.init_(np.empty(view.shape, np.float32), "normal", seed=seed))
    full = (2**21 + 5, 2**12 + 1)  # logical indices past 2**32
    for off in [(2**20 + 17, 3), (0, 0)]:
        a = gpuinit.init_(cupy.empty((4, 101), cupy.float32), "normal", seed=seed, full_shape=full, offsets=off)
        b = gpuinit.init_(np.empty((4, 101), np.float32), "normal", seed=seed, full_shape=full, offsets=off)
        assert np.array_equal(cupy.asnumpy(a), b)


@pytest.mark.parametrize("scheme,kw", [("eye", {}), ("dirac", {"groups": 2}), ("constant", {"value": 0.5}),
                                       ("sparse", {"sparsity": 0.3}), ("orthogonal", {"gain": 2.0})])
def test_structured(cupy, scheme, kw, rng):
    shape = (8, 6, 3, 3) if scheme == "dirac" else (40, 24)
    seed = fresh_seed(rng)
    ours = cupy.asnumpy(gpuinit.init_(cupy.empty(shape, cupy.float32), scheme, seed=seed, **kw))
    ref = gpuinit.init_(np.empty(shape, np.float32), scheme, seed=seed, **kw)
    if scheme == "orthogonal":
        assert np.allclose(ours, ref, atol=2e-5)
    else:
        assert np.array_equal(ours, ref)


def test_dlpack_arrays_and_triton(cupy, rng):
    torch = pytest.importorskip("torch")
    seed = fresh_seed(rng)
    t = torch.empty(300, 200, device="cuda")
    gpuinit.init_(t, "trunc_normal", seed=seed, backend="cupy")  # a torch CUDA tensor through DLPack
    u = gpuinit.init_(torch.empty(300, 200, device="cuda"), "trunc_normal", seed=seed, backend="triton")
    assert torch.equal(t, u)


def test_current_stream(cupy):
    s = cupy.cuda.Stream(non_blocking=True)
    with s:
        a = gpuinit.init_(cupy.empty(2**22, cupy.float32), "normal", seed=1)
        total = float(a.std())
    assert 0.99 < total < 1.01


def test_bfloat16_bits(cupy, rng):
    seed = fresh_seed(rng)
    for scheme in ("normal", "eye"):
        a = gpuinit.init_(cupy.zeros((40, 24), cupy.uint16), scheme, seed=seed, bits="bfloat16")
        b = gpuinit.init_(np.zeros((40, 24), np.uint16), scheme, seed=seed, bits="bfloat16")
        assert np.array_equal(cupy.asnumpy(a), b)


SHARDS = [  # (local shape, full_shape, offsets, the array or None): every gi_fill path; the first four hold one run
    ((1027,), None, None, None), ((1029,), None, None, lambda xp, dt: xp.zeros(1030, dt)[1:]),
    ((4, 13), (9, 13), (3, 0), None), ((3, 12), (8, 12), (2, 0), None), ((16, 8), (16, 12), (0, 4), None),
    ((5, 6), (9, 13), (2, 3), None), ((2, 3, 4), (3, 6, 8), (1, 2, 4), None), ((2, 3, 4), (3, 5, 7), (1, 1, 2), None),
    ((12, 9), (12, 20), (0, 5), lambda xp, dt: xp.zeros((9, 12), dt).T),
    ((6, 5), (6, 17), (0, 4), lambda xp, dt: xp.zeros((6, 10), dt)[:, ::2]),
    ((34, 53), None, None, lambda xp, dt: xp.zeros((53, 80), dt).T[3:70:2]),
]
DRAWS = [draws.uniform(-0.3, 0.9), draws.normal(0.5, 2.0), draws.trunc_normal(0.0, 1.0, -2.0, 2.0),
         draws.trunc_normal(0.0, 1.0, -3.0, 3.0), draws.trunc_normal(0.0, 1.0, -6.0, 6.0),
         draws.trunc_normal(1.0, 2.0, 5.5, 9.0)]


def _local(cupy, shape, make, dtype):
    a = cupy.zeros(shape, dtype) if make is None else make(cupy, dtype)
    assert a.shape == shape
    return a


def _job(backend, array, draw, full, off, seed, stream=0, bits=None):
    return Job(array, draw, *regions.check_region(array.shape, full, off), seed, stream, backend, bits)


def _numpy_fill(shape, dtype, draw, full, off, seed, stream=0, bits=None):
    return numpy_backend.fill(_job(numpy_backend, np.zeros(shape, dtype), draw, full, off, seed, stream, bits))


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
@pytest.mark.parametrize("shard", SHARDS, ids=range(len(SHARDS)))
def test_every_path_every_draw(cupy, shard, dtype, rng):
    shape, full, off, make = shard
    bits = "bfloat16" if dtype == "bfloat16" else None
    store = "uint16" if bits else dtype
    for draw in DRAWS:
        seed = fresh_seed(rng)
        a = _local(cupy, shape, make, store)
        cupy_backend.fill(_job(cupy_backend, a, draw, full, off, seed, 7, bits))
        want = _numpy_fill(shape, store, draw, full, off, seed, 7, bits)
        assert np.array_equal(cupy.asnumpy(a), want), draw


def test_64bit_indices(cupy, rng, monkeypatch):
    """The 64-bit kernels (arrays past 2**31 elements) on small arrays: the same bits as the 32-bit ones."""
    plan = cupy_backend.plan
    monkeypatch.setattr(cupy_backend, "plan", lambda *a, **k: plan(*a, **{**k, "wide": True}))
    for shape, full, off, make in SHARDS:
        seed = fresh_seed(rng)
        a = _local(cupy, shape, make, "float32")
        cupy_backend.fill(_job(cupy_backend, a, DRAWS[2], full, off, seed, 3))
        assert np.array_equal(cupy.asnumpy(a), _numpy_fill(shape, "float32", DRAWS[2], full, off, seed, 3))


def test_grouped_launch(cupy, rng):
    items, want = [], []
    for i, (shape, full, off, make) in enumerate(SHARDS):
        for dtype, draw in (("float32", DRAWS[1]), ("float16", DRAWS[2]), ("float64", DRAWS[2]), ("float32", DRAWS[4])):
            seed = fresh_seed(rng)
            items.append(_job(cupy_backend, _local(cupy, shape, make, dtype), draw, full, off, seed, i))
            want.append(_numpy_fill(shape, dtype, draw, full, off, seed, i))
    items.append(_job(cupy_backend, cupy.zeros((0, 3), cupy.float32), DRAWS[0], None, None, 1, 2))  # nothing
    want.append(np.zeros((0, 3), np.float32))
    assert cupy_backend.fill_group(items) == 4 + 4 * (len(SHARDS) - 4)  # a launch per group, one per other item
    for job, w in zip(items, want, strict=True):
        assert np.array_equal(cupy.asnumpy(job.array), w)
