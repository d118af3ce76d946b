"""Every scheme x dtype against its analytic distribution, with the fans and gains written again here."""
import doctest
import math

import numpy as np
import pytest
from conftest import fresh_seed
from helpers import DTYPES, filled, ks_rounded, rounded
from scipy import stats

import gpuinit
from gpuinit import schemes

SHAPE = (300, 200, 4)  # torch layout (out, in, k): fan_in = 800, fan_out = 1200
FI, FO = 200 * 4, 300 * 4
T = 0.87962566103423978  # std of N(0, 1) truncated to (-2, 2)


def U(r, lo=None):
    return ("uniform", -r if lo is None else lo, r)


def N(s, m=0.0):
    return ("normal", m, s)


def TN(s, m=0.0, a=None, b=None):
    return ("trunc", m, s, m - 2 * s if a is None else a, m + 2 * s if b is None else b)


CASES = {
    ("glorot_uniform", ()): U(math.sqrt(6 / (FI + FO))),
    ("glorot_normal", ()): TN(math.sqrt(2 / (FI + FO)) / T),
    ("lecun_uniform", ()): U(math.sqrt(3 / FI)),
    ("lecun_normal", ()): TN(math.sqrt(1 / FI) / T),
    ("he_uniform", ()): U(math.sqrt(6 / FI)),
    ("he_normal", ()): TN(math.sqrt(2 / FI) / T),
    ("xavier_logistic_uniform", ()): U(4 * math.sqrt(6 / (FI + FO))),
    ("xavier_logistic_normal", ()): N(4 * math.sqrt(2 / (FI + FO))),
    ("he_fan_avg_uniform", ()): U(math.sqrt(12 / (FI + FO))),
    ("he_fan_avg_normal", ()): N(math.sqrt(4 / (FI + FO))),
    ("he_leaky_uniform", (("negative_slope", 0.2),)): U(math.sqrt(6 / (1.04 * FI))),
    ("he_leaky_normal", (("negative_slope", 0.2),)): N(math.sqrt(2 / (1.04 * FI))),
    ("xavier_uniform", (("gain", 5 / 3),)): U(5 / 3 * math.sqrt(6 / (FI + FO))),
    ("xavier_normal", (("gain", 1.5),)): N(1.5 * math.sqrt(2 / (FI + FO))),
    ("kaiming_uniform", (("a", math.sqrt(5)),)): U(1 / math.sqrt(FI)),
    ("kaiming_normal", (("mode", "fan_out"), ("nonlinearity", "relu"))): N(math.sqrt(2) / math.sqrt(FO)),
    ("variance_scaling", (("scale", 3.0), ("mode", "fan_geo_avg"), ("distribution", "uniform"))):
        U(math.sqrt(9 / math.sqrt(FI * FO))),
    ("variance_scaling", (("scale", 0.5), ("mode", "fan_out"), ("distribution", "untruncated_normal"))):
        N(math.sqrt(0.5 / FO)),
    ("variance_scaling", (("scale", 2.0), ("mode", "fan_avg"))): TN(math.sqrt(2 / ((FI + FO) / 2)) / T),
    ("random_normal", (("mean", 0.1), ("stddev", 0.2))): N(0.2, 0.1),
    ("random_uniform", (("minval", -0.3), ("maxval", 0.5))): U(0.5, -0.3),
    ("truncated_normal", (("mean", 0.1), ("stddev", 0.2))): TN(0.2, 0.1),
    ("uniform", (("a", -1.0), ("b", 3.0))): U(3.0, -1.0),
    ("normal", (("mean", 2.0), ("std", 0.5))): N(0.5, 2.0),
    ("trunc_normal", (("mean", 0.5), ("std", 2.0), ("a", -1.0), ("b", 4.0))): TN(2.0, 0.5, -1.0, 4.0),
    ("trunc_normal", (("mean", 0.0), ("std", 1.0), ("a", -0.3), ("b", 0.1))): TN(1.0, 0.0, -0.3, 0.1),
    ("trunc_normal", (("mean", 0.0), ("std", 1.0), ("a", 4.5), ("b", 7.0))): TN(1.0, 0.0, 4.5, 7.0),
    ("trunc_normal", (("mean", 1.0), ("std", 0.5), ("a", -3.5), ("b", -2.5))): TN(0.5, 1.0, -3.5, -2.5),
}


def reference(spec):
    if spec[0] == "uniform":
        _, lo, hi = spec
        return stats.uniform(lo, hi - lo), lo, hi
    if spec[0] == "normal":
        _, m, s = spec
        return stats.norm(m, s), -np.inf, np.inf
    _, m, s, a, b = spec
    return stats.truncnorm((a - m) / s, (b - m) / s, loc=m, scale=s), a, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", list(CASES), ids=lambda c: c[0] + "".join(f"-{k}={v:.3g}" if isinstance(v, float)
                                                                          else f"-{k}={v}" for k, v in c[1]))
def test_distribution(case, dtype, rng):
    name, params = case
    dist, lo, hi = reference(CASES[case])
    x = filled(SHAPE, dtype, name, seed=fresh_seed(rng), **dict(params)).ravel()
    d = ks_rounded(x, dist.cdf, dtype)
    assert d < 2.5 / math.sqrt(x.size), f"KS distance {d:.5f}"
    assert x.min() >= rounded(lo, dtype) if np.isfinite(lo) else True
    assert x.max() <= rounded(hi, dtype) if np.isfinite(hi) else True
    if dtype in ("float32", "float64") and np.isfinite(lo):
        assert x.min() >= lo and x.max() <= hi  # float32 values respect the exact bounds


def test_fans_follow_axes():
    """JAX's explicit axes: batch axes are copies, the rest multiplies both fans."""
    x = gpuinit.init_(np.empty((16, 64, 3, 32), np.float32), "variance_scaling", seed=0, scale=1.0,
                      mode="fan_in", distribution="uniform", batch_axis=0, in_axis=3, out_axis=1)
    bound = math.sqrt(3 / (32 * 3))
    assert x.max() <= bound and x.max() > 0.99 * bound
    y = gpuinit.init_(np.empty((5, 7), np.float32), "he_uniform", seed=0, in_axis=0, out_axis=1)
    assert y.max() <= math.sqrt(6 / 5) and y.max() > 0.5 * math.sqrt(6 / 5)


def test_batch_copies_differ():
    x = gpuinit.init_(np.empty((4, 50, 50), np.float32), "glorot_normal", seed=3, batch_axis=0, in_axis=2, out_axis=1)
    for i in range(1, 4):
        assert abs(np.corrcoef(x[0].ravel(), x[i].ravel())[0, 1]) < 0.1


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape,gain", [((64, 64), 1.0), ((37, 101), 2.0), ((101, 37), 0.5), ((12, 5, 3, 3), 1.3)])
def test_orthogonal(shape, gain, dtype, rng):
    x = filled(shape, dtype, "orthogonal", seed=fresh_seed(rng), gain=gain).reshape(shape[0], -1)
    rows, cols = x.shape
    gram = x @ x.T if rows < cols else x.T @ x
    tol = {"float16": 3e-2, "bfloat16": 6e-2, "float32": 1e-5, "float64": 1e-12}[dtype]
    assert np.abs(gram - gain**2 * np.eye(min(rows, cols))).max() < tol * gain**2 * 10


def test_orthogonal_keras_layout_and_batch():
    """Out axis last (Keras): columns are orthonormal; each batch copy on its own."""
    x = gpuinit.init_(np.empty((3, 40, 8), np.float64), "orthogonal", seed=1, batch_axis=0, in_axis=1, out_axis=2)
    for b in range(3):
        assert np.allclose(x[b].T @ x[b], np.eye(8), atol=1e-12)
    assert not np.allclose(x[0], x[1])


@pytest.mark.parametrize("dtype", DTYPES)
def test_identity_eye_dirac(dtype):
    assert np.array_equal(filled((3, 5), dtype, "eye"), np.eye(3, 5))
    assert np.array_equal(filled((4, 2), dtype, "identity", gain=2.0), 2 * np.eye(4, 2))
    w = filled((6, 4, 3, 3), dtype, "dirac", groups=2)
    ref = np.zeros((6, 4, 3, 3))
    for g in range(2):
        for d in range(3):
            ref[g * 3 + d, d, 1, 1] = 1
    assert np.array_equal(w, ref)


@pytest.mark.parametrize("shape,in_axis,out_axis", [((5, 3, 3), 1, 0), ((8, 4, 3, 2), 1, 0), ((3, 3, 4, 6), -2, -1),
                                                     ((3, 2, 3, 5, 5), -2, -1), ((4, 4, 1, 1), 0, 1),
                                                     ((2, 3, 5), 0, 2)])
def test_delta_orthogonal(shape, in_axis, out_axis, rng):
    """Xiao et al. (2018), JAX's delta_orthogonal: zeros but at the centre tap ((k - 1) // 2 of each spatial axis),
    which is gpuinit's orthogonal of the (in, out) matrix from the same seed and stream, in either layout; a
    block of it holds the whole tensor's values."""
    seed, stream = fresh_seed(rng), fresh_seed(rng)
    w = gpuinit.init_(np.empty(shape), "delta_orthogonal", seed=seed, stream=stream, gain=1.5, in_axis=in_axis,
                      out_axis=out_axis)
    fan_axes = sorted(a % len(shape) for a in (in_axis, out_axis))
    centre = tuple(slice(None) if a in fan_axes else (n - 1) // 2 for a, n in enumerate(shape))
    m = w[centre]
    out_pos = fan_axes.index(out_axis % len(shape))
    expected = gpuinit.init_(np.empty(m.shape), "orthogonal", seed=seed, stream=stream, gain=1.5,
                             in_axis=1 - out_pos, out_axis=out_pos)
    assert np.array_equal(m, expected)
    rows = m if out_axis % len(shape) == fan_axes[1] else m.T  # (in, out): orthonormal rows times the gain
    assert np.allclose(rows @ rows.T, 1.5**2 * np.eye(rows.shape[0]), atol=1e-12)
    rest = w.copy()
    rest[centre] = 0
    assert not rest.any()
    block = tuple(slice(n // 3, n - n // 3) for n in shape)
    part = gpuinit.init_(np.empty(w[block].shape), "delta_orthogonal", seed=seed, stream=stream, gain=1.5,
                         in_axis=in_axis, out_axis=out_axis, full_shape=shape, offsets=[b.start for b in block])
    assert np.array_equal(part, w[block])


def test_delta_orthogonal_refuses():
    for shape, kw, message in [((6, 4), {}, "Only tensors with 3, 4, or 5 dimensions"),
                               ((2,) * 6, {}, "Only tensors with 3, 4, or 5 dimensions"),
                               ((4, 6, 3), {}, "fan_in must be less or equal than fan_out, got in 6 > out 4"),
                               ((3, 6, 4), {"in_axis": -2, "out_axis": -1}, "fan_in must be less or equal"),
                               ((4, 2, 6, 3), {"batch_axis": 3, "in_axis": 1, "out_axis": 0}, "no batch_axis"),
                               ((4, 4, 3), {"gain": np.nan}, "gain must be finite")]:
        w = np.zeros(shape)
        with pytest.raises(gpuinit.InitError, match=message):
            gpuinit.init_(w, "delta_orthogonal", seed=0, **kw)
        assert not w.any()


@pytest.mark.parametrize("dtype", DTYPES)
def test_constants(dtype):
    assert np.all(filled((7, 3), dtype, "zeros") == 0)
    assert np.all(filled((7, 3), dtype, "ones") == 1)
    assert np.all(filled((7, 3), dtype, "constant", value=0.25) == 0.25)


@pytest.mark.parametrize("sparsity", [0.0, 0.1, 0.5, 1.0])
def test_sparse(sparsity, rng):
    x = filled((97, 40), "float32", "sparse", seed=fresh_seed(rng), sparsity=sparsity, std=0.1)
    assert np.all((x == 0).sum(axis=0) == math.ceil(sparsity * 97))
    nz = x[x != 0]
    if nz.size > 1000:
        assert stats.kstest(nz, stats.norm(0, 0.1).cdf).statistic < 2.5 / math.sqrt(nz.size)


@pytest.mark.parametrize("name", list(gpuinit.SCHEMES))
def test_docstring_example_numbers_are_the_codes(name):
    """Every scheme's docstring states its formula and works it out on an example (doctest lines): each number
    the example shows is what the code computes."""
    tests = [t for t in doctest.DocTestFinder().find(gpuinit.SCHEMES[name], name, globs=vars(schemes)) if t.examples]
    assert tests, f"{name}: no worked example in its docstring"
    runner, report = doctest.DocTestRunner(), []
    for t in tests:
        runner.run(t, out=report.append)
    assert runner.failures == 0, "".join(report)
