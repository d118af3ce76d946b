"""Complex arrays (gpuinit/complex_parts.py): each part's distribution against the formulas written again here and
against torch.nn.init on the same complex tensors, the parts' stream indices (2 j and 2 j + 1 of the real view),
blocks equal to the whole fill's, NumPy arrays and torch tensors, complex64 and complex128, and the refusals."""
import math
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from conftest import fresh_seed
from scipy import stats

import gpuinit
import gpuinit.nn.init as gi
from gpuinit.errors import UnsupportedDrawError

SHAPE = (300, 200)  # torch layout: fan_in 200, fan_out 300
FI, FO = 200, 300
H = math.sqrt(0.5)
T = 0.87962566103423978  # std of N(0, 1) truncated to (-2, 2)
COMPLEX = [np.complex64, np.complex128]


def U(lo, hi):
    return stats.uniform(lo, hi - lo)


def TN(m, s):  # normal truncated at two s around m
    return stats.truncnorm(-2, 2, loc=m, scale=s)


# scheme, params, (real part's law, imaginary part's law): torch's names as torch draws them, Keras / JAX names with
# each part carrying half of the rule's variance, the mean on the real part
LAWS = [
    ("uniform", {"a": -1.0, "b": 3.0}, (U(-1, 3), U(-1, 3))),
    ("normal", {"mean": 1.0, "std": 2.0}, (stats.norm(1, 2 * H), stats.norm(1, 2 * H))),
    ("kaiming_uniform", {"a": math.sqrt(5)}, (U(-1 / math.sqrt(FI), 1 / math.sqrt(FI)),) * 2),
    ("kaiming_normal", {"nonlinearity": "relu"}, (stats.norm(0, math.sqrt(2 / FI) * H),) * 2),
    ("xavier_uniform", {"gain": 2.0}, (U(-2 * math.sqrt(6 / (FI + FO)), 2 * math.sqrt(6 / (FI + FO))),) * 2),
    ("xavier_normal", {}, (stats.norm(0, math.sqrt(2 / (FI + FO)) * H),) * 2),
    ("glorot_uniform", {}, (U(-math.sqrt(3 / (FI + FO)), math.sqrt(3 / (FI + FO))),) * 2),
    ("he_normal", {}, (TN(0, math.sqrt(1 / FI) / T),) * 2),
    ("lecun_uniform", {}, (U(-math.sqrt(1.5 / FI), math.sqrt(1.5 / FI)),) * 2),
    ("variance_scaling", {"scale": 3.0, "mode": "fan_out", "distribution": "untruncated_normal"},
     (stats.norm(0, math.sqrt(1.5 / FO)),) * 2),
    ("random_normal", {"mean": 0.5, "stddev": 0.2}, (stats.norm(0.5, 0.2 * H), stats.norm(0, 0.2 * H))),
    ("random_uniform", {"minval": 0.0, "maxval": 1.0}, (U(0.5 - 0.5 * H, 0.5 + 0.5 * H), U(-0.5 * H, 0.5 * H))),
    ("truncated_normal", {"mean": 0.1, "stddev": 0.4}, (TN(0.1, 0.4 * H), TN(0, 0.4 * H))),
]


def parts(z):
    z = z.numpy() if isinstance(z, torch.Tensor) else z
    return z.real.astype(np.float64).ravel(), z.imag.astype(np.float64).ravel()


def close_to(x, law):
    assert stats.kstest(x, law.cdf).statistic < 2.5 / math.sqrt(x.size)
    lo, hi = law.support()
    assert lo <= x.min() and x.max() <= hi
    assert abs(x.mean() - law.mean()) < 5 * law.std() / math.sqrt(x.size)
    assert abs(x.var() / law.var() - 1) < 0.03


@pytest.mark.parametrize("dtype", COMPLEX, ids=lambda d: d.__name__)
@pytest.mark.parametrize("scheme,params,laws", LAWS, ids=[c[0] for c in LAWS])
def test_each_part_follows_its_law(scheme, params, laws, dtype, rng):
    for make in (lambda: np.empty(SHAPE, dtype), lambda: torch.empty(SHAPE, dtype=getattr(torch, dtype.__name__))):
        z = gpuinit.init_(make(), scheme, seed=fresh_seed(rng), **params)
        for x, law in zip(parts(z), laws, strict=True):
            close_to(x, law)
        assert abs(np.corrcoef(*parts(z))[0, 1]) < 0.02  # independent parts


TORCH = [("uniform_", (-1.0, 3.0)), ("normal_", (1.0, 2.0)), ("kaiming_uniform_", ()), ("kaiming_normal_", ()),
         ("xavier_uniform_", (1.5,)), ("xavier_normal_", ()), ("sparse_", (0.3,))]


@pytest.mark.parametrize("dtype", [torch.complex64, torch.complex128], ids=str)
@pytest.mark.parametrize("name,args", TORCH, ids=[c[0] for c in TORCH])
def test_nn_init_draws_as_torch(name, args, dtype):
    ours = getattr(gi, name)(torch.empty(SHAPE, dtype=dtype), *args, seed=5)
    theirs = getattr(torch.nn.init, name)(torch.empty(SHAPE, dtype=dtype), *args)
    assert ours.dtype == dtype
    if name == "sparse_":  # the same number of whole zeros per column
        assert torch.equal((ours == 0).sum(0), (theirs == 0).sum(0))
        assert torch.equal(ours.real == 0, ours.imag == 0)
        ours, theirs = ours[ours != 0], theirs[theirs != 0]
    for a, b in zip(parts(ours), parts(theirs), strict=True):
        assert stats.ks_2samp(a, b).statistic < 3.0 * math.sqrt(2 / min(a.size, b.size))


@pytest.mark.parametrize("name,args", [("eye_", ()), ("dirac_", (2,)), ("ones_", ()), ("zeros_", ()),
                                       ("constant_", (0.25,))])
def test_nn_init_structured_as_torch(name, args):
    shape = (4, 2, 3, 3) if name == "dirac_" else (3, 5)
    for dtype in (torch.complex64, torch.complex128):
        ours = getattr(gi, name)(torch.full(shape, 7 + 7j, dtype=dtype), *args)
        assert torch.equal(ours, getattr(torch.nn.init, name)(torch.full(shape, 7 + 7j, dtype=dtype), *args))


@pytest.mark.parametrize("dtype", COMPLEX, ids=lambda d: d.__name__)
def test_parts_are_the_real_view_s_stream(dtype, rng):
    """A complex fill is the real fill of its real view: element j's real part is index 2 j, its imaginary part
    2 j + 1 (the same draw where both parts share it; the real rule's numbers scaled as the laws above say)."""
    seed, stream, real = fresh_seed(rng), fresh_seed(rng), np.dtype(dtype(0).real.dtype)
    z = gpuinit.init_(np.empty((7, 5, 3), dtype), "uniform", seed=seed, stream=stream, a=-2.0, b=1.0)
    x = gpuinit.init_(np.empty((7, 5, 3, 2), real), "uniform", seed=seed, stream=stream, a=-2.0, b=1.0)
    assert np.array_equal(z.view(real).reshape(7, 5, 3, 2), x)
    flat = gpuinit.init_(np.empty(2 * 105, real), "normal", seed=seed, stream=stream, std=2 * H)
    z = gpuinit.init_(np.empty((7, 5, 3), dtype), "normal", seed=seed, stream=stream, std=2.0)
    assert np.array_equal(z.real.ravel(), flat[0::2]) and np.array_equal(z.imag.ravel(), flat[1::2])
    z = gpuinit.init_(np.empty((7, 15), dtype), "random_normal", seed=seed, stream=stream, mean=3.0, stddev=2.0)
    re = gpuinit.init_(np.empty(2 * 105, real), "normal", seed=seed, stream=stream, mean=3.0, std=2 * H)
    im = gpuinit.init_(np.empty(2 * 105, real), "normal", seed=seed, stream=stream, mean=0.0, std=2 * H)
    assert np.array_equal(z.real.ravel(), re[0::2]) and np.array_equal(z.imag.ravel(), im[1::2])


BLOCKS = [("normal", {"std": 0.5}), ("glorot_normal", {}), ("random_uniform", {"minval": 1.0, "maxval": 2.0}),
          ("eye", {}), ("identity", {"gain": 2.0}), ("constant", {"value": 0.5}), ("sparse", {"sparsity": 0.4}),
          ("dirac", {}), ("truncated_normal", {"mean": 1.0})]


@pytest.mark.parametrize("scheme,params", BLOCKS, ids=[c[0] for c in BLOCKS])
def test_blocks_hold_the_whole_fill_s_values(scheme, params, rng):
    shape = (6, 4, 3) if scheme == "dirac" else (13, 7)
    seed = fresh_seed(rng)
    for dtype in COMPLEX:
        whole = gpuinit.init_(np.empty(shape, dtype), scheme, seed=seed, **params)
        for block in [(slice(2, 9), slice(3, 7)), (slice(0, 13), slice(5, 6)), (slice(4, 5), slice(0, 7))]:
            block = block + (slice(None),) * (len(shape) - 2)
            starts = [b.indices(n)[0] for b, n in zip(block, shape, strict=True)]
            part = whole[block]
            for empty in (np.empty(part.shape, dtype), torch.empty(part.shape, dtype=getattr(torch, dtype.__name__))):
                got = gpuinit.init_(empty, scheme, seed=seed, full_shape=shape, offsets=starts, **params)
                assert np.array_equal(np.asarray(got), part), (scheme, block)
        strided = np.zeros((shape[0] * 2, *shape[1:]), dtype)[::2]  # another layout, the same values
        assert np.array_equal(gpuinit.init_(strided, scheme, seed=seed, **params), whole)
        swapped = np.empty(shape, np.dtype(dtype).newbyteorder())
        assert np.array_equal(gpuinit.init_(swapped, scheme, seed=seed, **params), whole)


@pytest.mark.parametrize("shape", [(1, 1), (3,), (), (1, 1029), (5, 3, 7)])
def test_odd_shapes(shape, rng):
    seed = fresh_seed(rng)
    z = gpuinit.init_(np.empty(shape, np.complex64), "uniform", seed=seed)
    x = gpuinit.init_(np.empty((*shape, 2), np.float32), "uniform", seed=seed)
    assert np.array_equal(np.stack((z.real, z.imag), -1), x)
    t = gpuinit.init_(torch.empty(shape, dtype=torch.complex64), "uniform", seed=seed)
    assert np.array_equal(t.numpy(), z)


def test_refused_before_any_write():
    for scheme, params, error, message in [
            ("orthogonal", {}, UnsupportedDrawError, "orthogonal of a complex array"),
            ("delta_orthogonal", {}, UnsupportedDrawError, "delta_orthogonal of a complex array"),
            ("trunc_normal", {}, UnsupportedDrawError, "trunc_normal of a complex array"),
            ("normal", {"std": 1e39}, gpuinit.InitError, "does not fit")]:
        z = np.full((4, 4, 3), 2 + 3j, np.complex64)
        with pytest.raises(error, match=message):
            gpuinit.init_(z, scheme, seed=0, **params)
        assert np.all(z == 2 + 3j)
    with pytest.raises(gpuinit.InitError, match="read-only"):
        z = np.zeros((3, 3), np.complex128)
        z.flags.writeable = False
        gpuinit.init_(z, "normal", seed=0)
    t = torch.zeros(3, 3, dtype=torch.complex64)
    with pytest.raises(gpuinit.InitError, match="conjugate bit"):
        gpuinit.init_(t.conj(), "normal", seed=0)
    for name in ("trunc_normal_", "orthogonal_"):  # torch raises NotImplementedError
        with pytest.raises(NotImplementedError):
            getattr(torch.nn.init, name)(torch.zeros(3, 3, dtype=torch.complex64))
        with pytest.raises(NotImplementedError):
            getattr(gi, name)(t)
    assert not t.any()


def test_grad_and_meta_tensors():
    w = torch.zeros(4, 5, dtype=torch.complex64, requires_grad=True)
    version = w._version
    assert gi.normal_(w, seed=0) is w and w.grad_fn is None and w._version > version and w.abs().min() > 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gi.normal_(torch.empty(4, 5, dtype=torch.complex64, device="meta"))


@pytest.mark.skipif(sys.platform != "linux", reason="the Triton interpreter runs here on Linux")
def test_triton_interpreter_writes_the_same_values():
    """The Triton kernels under TRITON_INTERPRET=1 on a small complex CPU tensor, in a fresh process."""
    pytest.importorskip("triton")
    code = """if True:
        import torch, gpuinit
        cases = [("normal", {"mean": 0.5}), ("random_uniform", {}), ("eye", {}), ("sparse", {"sparsity": 0.3})]
        for scheme, kw in cases:
            for dtype in (torch.complex64, torch.complex128):
                a = gpuinit.init_(torch.empty(7, 5, dtype=dtype), scheme, seed=3, backend="triton", **kw)
                b = gpuinit.init_(torch.empty(7, 5, dtype=dtype), scheme, seed=3, backend="numpy", **kw)
                assert torch.equal(a, b), scheme
        print("ok")
    """
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False, env=env)
    assert r.returncode == 0 and r.stdout.split() == ["ok"], r.stderr[-3000:]
