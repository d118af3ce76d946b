"""On a CUDA device: the CuPy backend equals the NumPy backend (and the Triton one) bit for bit.
(Without a device, tests/test_cuda_source.py compiles the same kernels with NVRTC and nvcc.)"""
import numpy as np
import pytest
from conftest import fresh_seed

import gpuinit
from gpuinit.backends import cupy_backend

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
