import numpy as np
import pytest
from conftest import fresh_seed
from helpers import DTYPES, as_f64, empty

import gpuinit


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme", ["uniform", "normal", "trunc_normal", "orthogonal", "sparse"])
def test_same_seed_same_bits(scheme, dtype, rng):
    seed, kw = fresh_seed(rng), ({"sparsity": 0.2} if scheme == "sparse" else {})
    a = as_f64(gpuinit.init_(empty((33, 65), dtype), scheme, seed=seed, stream=4, **kw))
    b = as_f64(gpuinit.init_(empty((33, 65), dtype), scheme, seed=seed, stream=4, **kw))
    assert np.array_equal(a, b)


def test_threads_do_not_change_values(monkeypatch, rng):
    from gpuinit.backends import numpy_backend

    seed = fresh_seed(rng)
    monkeypatch.setattr(numpy_backend, "CHUNK", 1000)
    monkeypatch.setenv("GPUINIT_NUM_THREADS", "1")
    one = gpuinit.init_(np.empty((301, 77), np.float32), "trunc_normal", seed=seed)
    monkeypatch.setenv("GPUINIT_NUM_THREADS", "3")
    many = gpuinit.init_(np.empty((301, 77), np.float32), "trunc_normal", seed=seed)
    monkeypatch.setattr(numpy_backend, "CHUNK", 1 << 18)
    big = gpuinit.init_(np.empty((301, 77), np.float32), "trunc_normal", seed=seed)
    assert np.array_equal(one, many) and np.array_equal(one, big)


def test_seeds_and_streams_uncorrelated(rng):
    seed = fresh_seed(rng)
    n = 200_000
    ref = gpuinit.init_(np.empty(n), "normal", seed=seed)
    others = [gpuinit.init_(np.empty(n), "normal", seed=seed ^ 1),
              gpuinit.init_(np.empty(n), "normal", seed=seed, stream=1),
              gpuinit.init_(np.empty(n), "normal", seed=(seed + 2**32) % 2**64)]
    for x in others:
        assert abs(np.corrcoef(ref, x)[0, 1]) < 5 / np.sqrt(n)
    # neighbouring elements and lanes are uncorrelated too
    assert abs(np.corrcoef(ref[:-1], ref[1:])[0, 1]) < 5 / np.sqrt(n)
    assert abs(np.corrcoef(ref[0::4], ref[1::4])[0, 1]) < 5 / np.sqrt(n / 4)


def test_manual_seed_makes_unseeded_calls_reproducible():
    gpuinit.manual_seed(42)
    a = gpuinit.init_(np.empty(100), "normal")
    b = gpuinit.init_(np.empty(100), "normal")
    gpuinit.manual_seed(42)
    assert np.array_equal(a, gpuinit.init_(np.empty(100), "normal"))
    assert np.array_equal(b, gpuinit.init_(np.empty(100), "normal"))
    assert not np.array_equal(a, b)


def test_dtype_values_are_one_float32_stream(rng):
    """Every dtype stores the same float32 values, rounded once."""
    seed = fresh_seed(rng)
    f32 = gpuinit.init_(np.empty(5000, np.float32), "normal", seed=seed)
    assert np.array_equal(gpuinit.init_(np.empty(5000, np.float64), "normal", seed=seed), f32.astype(np.float64))
    assert np.array_equal(gpuinit.init_(np.empty(5000, np.float16), "normal", seed=seed), f32.astype(np.float16))
    import torch

    bf = gpuinit.init_(torch.empty(5000, dtype=torch.bfloat16), "normal", seed=seed)
    assert torch.equal(bf, torch.from_numpy(f32).to(torch.bfloat16))


@pytest.mark.parametrize("scheme,kw", [("normal", {}), ("trunc_normal", {"a": -1.0, "b": 0.5}), ("eye", {}),
                                       ("orthogonal", {}), ("constant", {"value": 0.1})])
def test_bfloat16_bits_in_integer_arrays(scheme, kw, rng):
    """numpy has no bfloat16: a uint16 array receives the bit patterns a torch bfloat16 tensor gets."""
    import torch

    seed = fresh_seed(rng)
    bits = gpuinit.init_(np.zeros((33, 21), np.uint16), scheme, seed=seed, bits="bfloat16", **kw)
    ref = gpuinit.init_(torch.empty(33, 21, dtype=torch.bfloat16), scheme, seed=seed, **kw)
    if scheme == "orthogonal":  # QR by NumPy for NumPy arrays, by torch for torch tensors: equal up to rounding
        got = torch.from_numpy(bits.view(np.int16)).view(torch.bfloat16).float()
        assert torch.allclose(got, ref.float(), rtol=2**-7, atol=2**-14)  # one bfloat16 ulp, or float32 QR noise
        assert (got == ref.float()).float().mean() > 0.9
    else:
        assert np.array_equal(bits, ref.view(torch.int16).numpy().view(np.uint16))
    with pytest.raises(gpuinit.InitError, match="uint16 or int16"):
        gpuinit.init_(np.zeros(4, np.float32), "normal", seed=0, bits="bfloat16")
    with pytest.raises(gpuinit.InitError, match="torch tensors have a bfloat16 dtype"):
        gpuinit.init_(torch.zeros(4, dtype=torch.int16), "normal", seed=0, bits="bfloat16")
