"""gpuinit.nn.init against torch.nn.init on the same inputs: distributions, errors, warnings, returns."""
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats

import gpuinit
import gpuinit.nn.init as gi

tn = torch.nn.init
SHAPE = (400, 300)

DRAWING = [
    ("uniform_", {"a": -0.5, "b": 2.0}),
    ("normal_", {"mean": 0.3, "std": 0.7}),
    ("trunc_normal_", {"mean": 0.1, "std": 0.5, "a": -0.4, "b": 1.0}),
    ("xavier_uniform_", {"gain": 2.0}),
    ("xavier_normal_", {"gain": 0.5}),
    ("kaiming_uniform_", {"a": math.sqrt(5)}),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}),
    ("sparse_", {"sparsity": 0.25, "std": 0.3}),
]


@pytest.fixture(autouse=True)
def torch_seeding():
    """These tests rely on torch.manual_seed reaching gpuinit: no gpuinit.manual_seed left by another test."""
    gpuinit.manual_seed(None)
    yield
    gpuinit.manual_seed(None)


@pytest.mark.parametrize("name,kw", DRAWING, ids=[d[0] for d in DRAWING])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_same_distribution_as_torch(name, kw, dtype):
    ours = getattr(gi, name)(torch.empty(SHAPE, dtype=dtype), **kw)
    theirs = getattr(tn, name)(torch.empty(SHAPE, dtype=torch.float32), **kw).to(dtype)
    a, b = ours.double().numpy().ravel(), theirs.double().numpy().ravel()
    if name == "sparse_":
        assert np.array_equal((a == 0).reshape(SHAPE).sum(0), (b == 0).reshape(SHAPE).sum(0))
        a, b = a[a != 0], b[b != 0]
    assert stats.ks_2samp(a, b).statistic < 3.0 * math.sqrt(2 / a.size)
    if "uniform" in name or "trunc" in name:  # bounded: both samples reach the same ends
        span = b.max() - b.min()
        assert abs(a.min() - b.min()) < 0.01 * span and abs(a.max() - b.max()) < 0.01 * span


@pytest.mark.parametrize("name,args", [("constant_", (0.3,)), ("ones_", ()), ("zeros_", ()), ("eye_", ())])
def test_deterministic_fills_match_exactly(name, args):
    for shape in [(5, 7), (7, 5)]:
        for dtype in [torch.float32, torch.bfloat16, torch.float16, torch.float64]:
            a = getattr(gi, name)(torch.empty(shape, dtype=dtype), *args)
            b = getattr(tn, name)(torch.empty(shape, dtype=dtype), *args)
            assert torch.equal(a, b)


@pytest.mark.parametrize("shape,groups", [((6, 4, 5), 1), ((8, 3, 3, 3), 2), ((4, 4, 3, 3, 3), 4), ((3, 16, 5, 5), 1)])
def test_dirac_matches(shape, groups):
    assert torch.equal(gi.dirac_(torch.empty(shape), groups), tn.dirac_(torch.empty(shape), groups))


def test_orthogonal_like_torch():
    for shape in [(30, 50), (50, 30), (8, 4, 3, 3)]:
        w = gi.orthogonal_(torch.empty(shape), gain=2.0).reshape(shape[0], -1).double()
        gram = w @ w.T if w.shape[0] < w.shape[1] else w.T @ w
        assert torch.allclose(gram, 4 * torch.eye(min(w.shape), dtype=torch.float64), atol=1e-4)


def test_returns_argument_and_keeps_identity():
    for name, kw in DRAWING:
        t = torch.empty(SHAPE)
        assert getattr(gi, name)(t, **kw) is t


def _raises_like_torch(fn_name, *args, **kw):
    with pytest.raises(Exception) as ours:
        getattr(gi, fn_name)(*args, **kw)
    with pytest.raises(Exception) as theirs:
        getattr(tn, fn_name)(*args, **kw)
    assert isinstance(ours.value, type(theirs.value)), f"{type(ours.value)} vs {type(theirs.value)}"
    return ours.value, theirs.value


@pytest.mark.parametrize("fn,args,kw", [
    ("eye_", ((3, 4, 5),), {}),
    ("dirac_", ((3, 4),), {}),
    ("dirac_", ((5, 4, 3),), {"groups": 2}),
    ("xavier_uniform_", ((5,),), {}),
    ("xavier_normal_", ((0, 0),), {}),
    ("kaiming_uniform_", ((5,),), {}),
    ("kaiming_normal_", ((4, 5),), {"mode": "fan_sideways"}),
    ("kaiming_uniform_", ((4, 5),), {"nonlinearity": "swish"}),
    ("kaiming_uniform_", ((4, 5),), {"a": "x"}),
    ("orthogonal_", ((5,),), {}),
    ("sparse_", ((3, 4, 5),), {"sparsity": 0.1}),
    ("normal_", ((4, 5),), {"std": -1.0}),
    ("uniform_", ((4, 5),), {"a": 2.0, "b": 1.0}),
])
def test_errors_like_torch(fn, args, kw):
    ours, theirs = _raises_like_torch(fn, torch.zeros(*args), **kw)
    if isinstance(theirs, ValueError) and not isinstance(theirs, ZeroDivisionError):
        assert str(theirs) in str(ours)


def test_zero_element_warning_like_torch():
    for fn in ("kaiming_uniform_", "kaiming_normal_"):
        with pytest.warns(UserWarning, match="zero-element tensors is a no-op"):
            getattr(gi, fn)(torch.empty(0, 3))


def test_trunc_normal_warning_like_torch():
    with pytest.warns(UserWarning, match="more than 2 std"):
        gi.trunc_normal_(torch.empty(10, 10), mean=5.0, std=1.0, a=-1.0, b=2.0)


def test_deprecated_aliases_warn():
    with pytest.warns(FutureWarning, match="nn.init.uniform"):
        gi.uniform(torch.empty(3, 3))


def test_global_seed_and_generator_reproduce():
    torch.manual_seed(123)
    a = gi.kaiming_uniform_(torch.empty(64, 32)).clone()
    b = gi.normal_(torch.empty(64, 32)).clone()
    torch.manual_seed(123)
    assert torch.equal(a, gi.kaiming_uniform_(torch.empty(64, 32)))
    assert torch.equal(b, gi.normal_(torch.empty(64, 32)))
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(gi.xavier_normal_(torch.empty(9, 9), generator=g1),
                       gi.xavier_normal_(torch.empty(9, 9), generator=g2))
    assert not torch.equal(gi.normal_(torch.empty(9, 9)), gi.normal_(torch.empty(9, 9)))


def test_explicit_seed_matches_init_():
    a = gi.kaiming_normal_(torch.empty(40, 30), seed=5)
    b = gpuinit.init_(np.empty((40, 30), np.float32), "kaiming_normal", seed=5)
    assert np.array_equal(a.numpy(), b)


def test_leaf_requiring_grad_and_views():
    w = torch.empty(20, 30, requires_grad=True)
    version = w._version
    assert gi.normal_(w, seed=1) is w and w.requires_grad and w.grad_fn is None
    assert w._version > version
    base = torch.zeros(20, 30)
    gi.uniform_(base.T[::2], seed=1)  # a non-contiguous view, written where it lives
    assert (base[:, ::2] != 0).all() and (base[:, 1::2] == 0).all()
    alone = gi.uniform_(torch.empty(15, 20), seed=1)
    assert torch.equal(base.T[::2], alone)  # a view gets the values of its own logical shape


def test_meta_tensors_are_noops():
    for name, kw in DRAWING + [("eye_", {}), ("constant_", {"val": 1.0})]:
        t = torch.empty(SHAPE, device="meta")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert getattr(gi, name)(t, **kw) is t
    with pytest.raises(ValueError):
        gi.eye_(torch.empty(2, 2, 2, device="meta"))


def test_calculate_gain_matches():
    for nl, p in [("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
                  ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 1), ("selu", None)]:
        assert gi.calculate_gain(nl, p) == tn.calculate_gain(nl, p)
    for nl, p in [("leaky_relu", True), ("leaky_relu", "x"), ("gelu", None)]:
        with pytest.raises(ValueError):
            gi.calculate_gain(nl, p)
        with pytest.raises(ValueError):
            tn.calculate_gain(nl, p)
