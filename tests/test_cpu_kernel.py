"""The host build of kernels/cuda/gpuinit_stream.cuh returns the NumPy reference's bits."""
import numpy as np
import pytest
from conftest import fresh_seed
from gpuinit.kernels import numpy_stream as ks
from helpers import DTYPES, as_f64, empty

import gpuinit
from gpuinit import draws
from gpuinit.backends import cpu_kernel

lib = cpu_kernel.load()
pytestmark = pytest.mark.skipif(lib is None, reason=f"no host kernel: {cpu_kernel.why_not()}")

DRAWS = [draws.uniform(-0.3, 0.7), draws.uniform(0.0, 1.0), draws.normal(0.1, 2.0), draws.normal(0.0, 1.0),
         draws.trunc_normal(0.0, 1.0, -2.0, 2.0), draws.trunc_normal(0.5, 2.0, 6.0, 30.0),
         draws.trunc_normal(0.0, 1.0, -1e9, 0.0), draws.trunc_normal(1.0, 0.1, 0.0, 2.0),
         draws.trunc_normal(0.0, 1.0, -9.5, -5.0)]


@pytest.mark.parametrize("draw", DRAWS, ids=lambda d: f"{d.kind}")
def test_values_bit_for_bit(draw, rng):
    for _ in range(4):
        seed, stream = fresh_seed(rng), fresh_seed(rng)
        starts = np.concatenate([[0, 2**32 - 3, 2**62], rng.integers(0, 2**61, 5)]).astype(np.uint64)
        length = int(rng.integers(1, 3000))
        got = cpu_kernel.draw_values(lib, draw, starts, length, seed, stream)
        ref = ks.draw_values(draw, starts, length, seed, stream)
        assert np.array_equal(got.view(np.uint32), ref.view(np.uint32))


def half_bits(lib, values):
    """The host C library's float32 -> float16 bits (gi_cpu_half_bits)."""
    values = np.ascontiguousarray(values, dtype=np.float32)
    out = np.empty(values.shape, np.uint16)
    lib.gi_cpu_half_bits(values.ctypes.data, values.size, out.ctypes.data)
    return out


def element_words(lib, start, n, seed, stream):
    """The host C library's raw words of elements start .. start + n (gi_cpu_words)."""
    out = np.empty(n, np.uint32)
    lib.gi_cpu_words(start, n, seed, stream, out.ctypes.data)
    return out


def test_words_bit_for_bit(rng):
    for start in [0, 1, 2**32 + 2, int(rng.integers(0, 2**62))]:
        seed, stream = fresh_seed(rng), fresh_seed(rng)
        assert np.array_equal(element_words(lib, start, 777, seed, stream),
                              ks.element_words([start], 777, seed, stream)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme", ["uniform", "normal", "trunc_normal", "orthogonal", "sparse"])
def test_backend_same_with_and_without_kernel(scheme, dtype, monkeypatch, rng):
    seed, kw = fresh_seed(rng), ({"sparsity": 0.3} if scheme == "sparse" else {})
    fast = as_f64(gpuinit.init_(empty((129, 67), dtype), scheme, seed=seed, **kw))
    view = as_f64(gpuinit.init_(empty((67, 129), dtype).T, scheme, seed=seed, **kw))  # strided: through a buffer
    monkeypatch.setenv("GPUINIT_CPU_KERNEL", "0")
    cpu_kernel.reset()
    try:
        assert cpu_kernel.load() is None
        slow = as_f64(gpuinit.init_(empty((129, 67), dtype), scheme, seed=seed, **kw))
    finally:
        monkeypatch.delenv("GPUINIT_CPU_KERNEL")
        cpu_kernel.reset()
    assert np.array_equal(fast, slow) and np.array_equal(view, slow)


def test_half_conversion_matches_numpy(rng):
    """The kernels' float32 -> float16 rounding (normals, subnormals, overflow, ties) equals NumPy's."""
    special = np.array([0.0, -0.0, 65504.0, 65519.99, 65520.0, 1e9, -1e9, 2.0**-14, 2.0**-24, 2.0**-25,
                        2.0**-25 * 1.0000001, 3 * 2.0**-25, 6.1e-5, 1 + 2.0**-11, 1 + 3 * 2.0**-11], np.float32)
    bits = rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32)
    x = np.concatenate([special, -special, bits.view(np.float32)])
    x = x[np.isfinite(x)]
    with np.errstate(over="ignore"):  # values past 65520 become inf, in both
        ref = x.astype(np.float16).view(np.uint16)
    assert np.array_equal(half_bits(lib, x), ref)
