"""gpuinit.nn.init against torch.nn.init itself where torch code depends on it: the private helpers, 0-d tensor
parameters, degenerate ranges, special constants, integer and bool tensors, exception types, and torch's own
layers' reset_parameters running on gpuinit's functions. Every expectation is torch's behaviour, computed in
the test, so the tests follow torch."""
import inspect
import math
import warnings

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn

import gpuinit
import gpuinit.nn.init as gi

tn = torch.nn.init
FLOATS = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
INTS = [torch.int8, torch.uint8, torch.int16, torch.int32, torch.int64, torch.bool]
PRIVATE = ["_calculate_fan_in_and_fan_out", "_calculate_correct_fan", "_no_grad_uniform_", "_no_grad_normal_",
           "_no_grad_trunc_normal_", "_no_grad_fill_", "_no_grad_zero_"]
T = torch.tensor  # 0-d tensors


@pytest.fixture(autouse=True)
def torch_seeding():
    gpuinit.manual_seed(None)  # torch.manual_seed reaches gpuinit (another test may have seeded gpuinit)
    yield
    gpuinit.manual_seed(None)


def same_law(a, b):
    a, b = a.detach().double().flatten().numpy(), b.detach().double().flatten().numpy()
    assert stats.ks_2samp(a, b).statistic < 3.0 * math.sqrt(2 / min(a.size, b.size))


def outcome(fn, tensor, *args, **kw):
    """The filled tensor (checked to be the argument), or the exception raised."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fn(tensor, *args, **kw)
    except Exception as e:  # noqa: BLE001 - compared with torch's below
        return e
    assert out is tensor
    return out


def assert_same_outcome(name, make, *args, **kw):
    """gpuinit and torch fill the same values (bits, nan included) or raise: ours an instance of torch's type."""
    theirs, ours = outcome(getattr(tn, name), make(), *args, **kw), outcome(getattr(gi, name), make(), *args, **kw)
    if isinstance(theirs, Exception):
        assert isinstance(ours, type(theirs)), f"{name}{args}{kw}: torch raised {theirs!r}, gpuinit {ours!r}"
        return
    assert not isinstance(ours, Exception), f"{name}{args}{kw}: torch filled, gpuinit raised {ours!r}"
    assert ours.dtype == theirs.dtype and ours.shape == theirs.shape
    if ours.is_floating_point():
        bits = {2: torch.int16, 4: torch.int32, 8: torch.int64}[ours.element_size()]
        assert torch.equal(ours.view(bits), theirs.view(bits)), (name, args, ours, theirs)
    else:
        assert torch.equal(ours, theirs), (name, args, ours, theirs)


# ---- names and signatures ---------------------------------------------------------------------------------

def test_every_torch_name_with_torch_signature():
    assert set(tn.__all__) <= set(gi.__all__)
    for name in [*tn.__all__, *PRIVATE]:
        theirs = inspect.signature(getattr(tn, name)).parameters.values()
        ours = inspect.signature(getattr(gi, name)).parameters
        assert [(p.name, p.kind, p.default) for p in theirs] == [
            (p.name, p.kind, p.default) for p in ours.values() if p.name != "seed"], name
        if "generator" in ours:  # every function that draws takes seed= too, keyword-only
            assert ours["seed"].kind is inspect.Parameter.KEYWORD_ONLY and ours["seed"].default is None


@pytest.mark.parametrize("shape", [(3, 5), (5, 3), (4, 3, 2), (8, 4, 3, 3), (2, 3, 1, 2, 5), (0, 4), (4, 0), (0, 0, 3)])
def test_fans_match(shape):
    for device in ("cpu", "meta"):
        t = torch.empty(shape, device=device)
        assert gi._calculate_fan_in_and_fan_out(t) == tn._calculate_fan_in_and_fan_out(t)
        for mode in ("fan_in", "fan_out", "FAN_IN", "Fan_Out"):
            assert gi._calculate_correct_fan(t, mode) == tn._calculate_correct_fan(t, mode)


@pytest.mark.parametrize("name,args", [("_no_grad_uniform_", (-0.5, 2.0)), ("_no_grad_normal_", (0.25, 0.75)),
                                       ("_no_grad_trunc_normal_", (0.125, 0.5, -0.375, 1.0))])
def test_no_grad_helpers_like_torch(name, args):
    w = torch.empty(300, 200, requires_grad=True)  # a leaf that requires grad, as a Parameter
    assert getattr(gi, name)(w, *args) is w and w.requires_grad and w.grad_fn is None
    same_law(w, getattr(tn, name)(torch.empty(300, 200), *args))
    a, b = (getattr(gi, name)(torch.empty(30, 20), *args, torch.Generator().manual_seed(3)) for _ in range(2))
    assert torch.equal(a, b)  # generator= as torch's fourth / sixth positional argument


def test_no_grad_fill_and_zero_like_torch():
    for val in (0.3, -2, float("-inf"), T(1.5)):
        ours, theirs = torch.empty(4, 5, requires_grad=True), torch.empty(4, 5, requires_grad=True)
        assert gi._no_grad_fill_(ours, val) is ours
        assert torch.equal(ours, tn._no_grad_fill_(theirs, val)) and ours.grad_fn is None
    w = torch.ones(4, 5, requires_grad=True)
    assert gi._no_grad_zero_(w) is w and torch.equal(w, torch.zeros(4, 5))


# ---- parameters as 0-d tensors ------------------------------------------------------------------------------

ZERO_D = [
    ("uniform_", {"a": T(-0.5), "b": T(2.0)}),
    ("normal_", {"mean": T(0.25), "std": T(0.75)}),
    ("trunc_normal_", {"mean": T(0.125), "std": T(0.5), "a": T(-0.375), "b": T(1.0)}),
    ("xavier_uniform_", {"gain": T(2.0)}),
    ("xavier_normal_", {"gain": T(0.5, dtype=torch.float64)}),
    ("sparse_", {"sparsity": T(0.25), "std": T(0.375)}),
]


@pytest.mark.filterwarnings("ignore:To copy construct from a tensor")  # torch's trunc_normal_ on 0-d bounds
@pytest.mark.parametrize("name,kw", ZERO_D, ids=[c[0] for c in ZERO_D])
def test_zero_d_tensor_parameters(name, kw):
    ours = getattr(gi, name)(torch.empty(400, 300), **kw, seed=11)
    theirs = getattr(tn, name)(torch.empty(400, 300), **kw)
    as_floats = {k: v.item() for k, v in kw.items()}  # dyadic values: the same numbers exactly
    assert torch.equal(ours, getattr(gi, name)(torch.empty(400, 300), **as_floats, seed=11))
    if name == "sparse_":  # the same zeros per column; the rest N(0, std)
        assert torch.equal((ours == 0).sum(0), (theirs == 0).sum(0))
        ours, theirs = ours[ours != 0], theirs[theirs != 0]
    same_law(ours, theirs)


@pytest.mark.parametrize("name,kw", ZERO_D, ids=[c[0] for c in ZERO_D])
def test_zero_d_numpy_parameters(name, kw):
    """0-d NumPy arrays (and NumPy scalars) of a real dtype are the numbers they hold; bool and complex ones are
    refused before anything is written."""
    as_floats = {k: v.item() for k, v in kw.items()}
    expected = getattr(gi, name)(torch.empty(40, 30), **as_floats, seed=11)
    for convert in (np.asarray, lambda v: np.asarray(v, np.float32), np.float32):
        filled = getattr(gi, name)(torch.empty(40, 30), **{k: convert(v) for k, v in as_floats.items()}, seed=11)
        assert torch.equal(filled, expected)
    key = next(iter(kw))
    for bad in (np.asarray(True), np.asarray(0.5 + 0j)):
        w = torch.zeros(40, 30)
        with pytest.raises(gi.InitTypeError, match=f"{key} must be a real number or a 0-d tensor, got array"):
            getattr(gi, name)(w, **{**as_floats, key: bad}, seed=11)
        assert not w.any()


def test_zero_d_gain_and_val():
    w = gi.orthogonal_(torch.empty(30, 50), gain=T(2.0))
    assert torch.allclose(w.double() @ w.double().T, 4 * torch.eye(30, dtype=torch.float64), atol=1e-4)
    for dtype in (torch.float32, torch.int64, torch.bool):
        for val in (T(2.5), T(-3), T(0.0, dtype=torch.float64)):
            assert_same_outcome("constant_", lambda dtype=dtype: torch.empty(3, 4, dtype=dtype), val)


# ---- degenerate ranges and special values -------------------------------------------------------------------

@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("name,args", [
    ("uniform_", (0.0, 0.0)), ("uniform_", (0, 0)), ("uniform_", (-0.0, 0.0)), ("uniform_", (1.5, 1.5)),
    ("trunc_normal_", (0.0, 1.0, 0.5, 0.5)), ("trunc_normal_", (3.0, 0.25, -1.25, -1.25)),
    ("normal_", (2.0, 0.0)), ("normal_", (-1.5, 0)), ("xavier_uniform_", (0.0,)), ("xavier_normal_", (0,)),
])
def test_degenerate_ranges_fill_like_torch(name, args, dtype):
    assert_same_outcome(name, lambda: torch.full((6, 7), 9.0, dtype=dtype), *args)


def test_degenerate_range_draws_no_seed():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    gi.uniform_(torch.empty(5), 0.0, 0.0)
    gi.trunc_normal_(torch.empty(5), 0.0, 1.0, 0.5, 0.5)
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("dtype", FLOATS)
@pytest.mark.parametrize("val", [float("-inf"), float("inf"), float("nan"), 0.1, -2.5, 1e-45, 1e6, -0.0])
def test_constant_special_values(val, dtype):  # -inf: attention masks; 1e6 overflows float16
    assert_same_outcome("constant_", lambda: torch.empty(5, 3, dtype=dtype), val)


@pytest.mark.parametrize("dtype", INTS)
def test_integer_and_bool_tensors_like_torch(dtype):
    make2, make4 = (lambda: torch.full((4, 6), 7).to(dtype)), (lambda: torch.full((4, 4, 3, 3), 7).to(dtype))
    for name, args in [("zeros_", ()), ("ones_", ()), ("constant_", (2.5,)), ("constant_", (-2.5,)),
                       ("constant_", (0,)), ("constant_", (True,)), ("constant_", (255.5,)), ("constant_", (-1,)),
                       ("eye_", ()), ("uniform_", ()), ("normal_", ())]:
        assert_same_outcome(name, make2, *args)  # random fills: torch raises NotImplementedError, a RuntimeError
    assert_same_outcome("dirac_", make4)
    assert_same_outcome("dirac_", make4, 2)


# ---- inference tensors --------------------------------------------------------------------------------------

INFERENCE = [("uniform_", ()), ("normal_", ()), ("trunc_normal_", ()), ("xavier_uniform_", ()), ("xavier_normal_", ()),
             ("kaiming_uniform_", ()), ("kaiming_normal_", ()), ("orthogonal_", ()), ("sparse_", (0.5,)),
             ("constant_", (0.25,)), ("ones_", ()), ("zeros_", ()), ("eye_", ()), ("dirac_", ())]


@pytest.mark.parametrize("name,args", INFERENCE, ids=[c[0] for c in INFERENCE])
def test_inference_tensors_like_torch(name, args):
    """An inference tensor (made under torch.inference_mode()) is filled inside the mode, as torch fills it, and
    refused outside with torch's exception type, nothing written."""
    shape = (4, 4, 3) if name == "dirac_" else (6, 4)

    def make():
        with torch.inference_mode():
            return torch.full(shape, 0.5)

    drawn = "generator" in inspect.signature(getattr(gi, name)).parameters
    with torch.inference_mode():
        if drawn:  # the values of a normal tensor
            t = make()
            assert getattr(gi, name)(t, *args, seed=5) is t
            assert torch.equal(t, getattr(gi, name)(torch.empty(shape), *args, seed=5))
        else:
            assert_same_outcome(name, make, *args)
    assert_same_outcome(name, make, *args)
    t = make()
    assert isinstance(outcome(getattr(gi, name), t, *args), RuntimeError)
    assert torch.equal(t, torch.full(shape, 0.5))


@pytest.mark.parametrize("name,args", INFERENCE, ids=[c[0] for c in INFERENCE])
def test_negative_views_like_torch(name, args):
    """z.conj().imag has torch's negative bit set: torch fills it through the negation (trunc_normal_ excepted: torch
    2.13 raises), and so does gpuinit: it reads the values of a plain tensor (torch's, for the fills that draw
    nothing), and the real parts are untouched."""
    shape = (4, 4, 3) if name == "dirac_" else (6, 4)

    def make():
        return torch.full(shape, complex(2, 0.5), dtype=torch.complex64).conj().imag

    view = make()
    drawn = "generator" in inspect.signature(getattr(gi, name)).parameters
    assert getattr(gi, name)(view, *args, **({"seed": 5} if drawn else {})) is view
    assert view.is_neg() and torch.equal(view._base.real, torch.full(shape, 2.0))
    if drawn:
        assert torch.equal(view, getattr(gi, name)(torch.empty(shape), *args, seed=5))
        if name != "trunc_normal_":
            assert not isinstance(outcome(getattr(tn, name), make(), *args), Exception)
    else:  # the same bits, signed zeros included
        theirs = getattr(tn, name)(make(), *args)
        assert torch.equal(view.resolve_neg().view(torch.int32), theirs.resolve_neg().view(torch.int32))


# ---- exception types ----------------------------------------------------------------------------------------

ERRORS = [  # (function, shape, args, kwargs): each raises in torch, and gpuinit must raise the same type
    ("uniform_", (4, 5), (1.0, 0.0), {}), ("uniform_", (4, 5), (0.0, math.inf), {}),
    ("uniform_", (4, 5), (math.nan, 1.0), {}), ("uniform_", (4, 5), ("x", 1.0), {}),
    ("uniform_", (0,), (1.0, 0.0), {}), ("normal_", (4, 5), (), {"std": -1.0}),
    ("normal_", (4, 5), (), {"std": math.nan}), ("normal_", (4, 5), (T([1.0]), 1.0), {}),
    ("trunc_normal_", (4, 5), (), {"a": 1.0, "b": 0.5}), ("trunc_normal_", (4, 5), (), {"std": 0.0}),
    ("trunc_normal_", (4, 5), (), {"a": math.nan}), ("trunc_normal_", (4, 5), ("x",), {}),
    ("xavier_uniform_", (4, 5), (-1.0,), {}), ("xavier_normal_", (4, 5), (-1.0,), {}),
    ("xavier_uniform_", (4, 5), (math.nan,), {}), ("xavier_uniform_", (0, 0), (), {}),
    ("xavier_uniform_", (5,), (), {}), ("xavier_normal_", (), (), {}), ("kaiming_normal_", (5,), (), {}),
    ("kaiming_uniform_", (4, 5), (), {"mode": "fan_avg"}), ("kaiming_uniform_", (4, 5), (), {"nonlinearity": "swish"}),
    ("kaiming_uniform_", (4, 5), (), {"a": T(0.2)}), ("kaiming_uniform_", (4, 5), (), {"a": "x"}),
    ("eye_", (3, 4, 5), (), {}), ("eye_", (5,), (), {}), ("dirac_", (3, 4), (), {}),
    ("dirac_", (5, 4, 3), (2,), {}), ("dirac_", (4, 4, 3), (0,), {}), ("sparse_", (3, 4, 5), (0.1,), {}),
    ("sparse_", (4, 5), (0.1, -1.0), {}), ("orthogonal_", (5,), (), {}), ("orthogonal_", (4, 5), ("x",), {}),
    ("constant_", (4, 5), ("x",), {}), ("constant_", (4, 5), (T([1.0]),), {}),
    ("constant_", (4, 5), (1e300,), {}),
]


@pytest.mark.parametrize("name,shape,args,kw", ERRORS, ids=[f"{e[0]}{e[2]}{e[3]}"[:60] for e in ERRORS])
def test_errors_have_torch_types(name, shape, args, kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(Exception) as theirs:
            getattr(tn, name)(torch.zeros(shape), *args, **kw)
        x = torch.full(shape, 0.5)
        with pytest.raises(type(theirs.value)) as ours:
            getattr(gi, name)(x, *args, **kw)
    assert torch.equal(x, torch.full(shape, 0.5))  # nothing written
    if type(theirs.value) is ValueError:  # torch's own message, where torch raises ValueError
        assert str(theirs.value) in str(ours.value)
    if isinstance(ours.value, gpuinit.InitError) and isinstance(theirs.value, RuntimeError):
        assert isinstance(ours.value, gi.InitRuntimeError)


def test_runtime_errors_are_init_errors_too():
    with pytest.raises(gpuinit.InitError, match=r"from=1.0 > to=0.0"):
        gi.uniform_(torch.empty(3), 1, 0)
    with pytest.raises(RuntimeError, match="std >= 0.0"):
        gi.normal_(torch.empty(3), std=-1)
    with pytest.raises(ZeroDivisionError):
        gi.trunc_normal_(torch.empty(3), std=0.0)


# ---- torch's layers on gpuinit's functions ------------------------------------------------------------------

@pytest.fixture
def patched(monkeypatch):
    """torch.nn.init's functions replaced by gpuinit's: torch's layers call them through ``init.<name>``."""
    for name in [*tn.__all__, *PRIVATE]:
        monkeypatch.setattr(tn, name, getattr(gi, name))


def reference(cls, *args, **kw):
    """The layer built with torch's own init (the fixture is not active in this call's lookups)."""
    torch.manual_seed(1)
    return cls(*args, **kw)


def test_linear_on_gpuinit(patched):
    torch.manual_seed(0)
    lin = nn.Linear(200, 300)
    torch.manual_seed(0)  # the same draws, made directly: the layer went through gpuinit
    w = gi.kaiming_uniform_(torch.empty(300, 200), a=math.sqrt(5))
    assert torch.equal(lin.weight, w)
    assert torch.equal(lin.bias, gi.uniform_(torch.empty(300), -1 / math.sqrt(200), 1 / math.sqrt(200)))
    bound = 1 / math.sqrt(200)
    assert lin.weight.abs().max() <= bound and lin.weight.abs().max() > 0.99 * bound


def test_linear_like_torch_and_fan_in_zero(patched, monkeypatch):
    with pytest.warns(UserWarning, match="zero-element tensors is a no-op"):  # as torch warns
        ours = [nn.Linear(200, 300), nn.Linear(0, 4), nn.Linear(4, 0)]
    monkeypatch.undo()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = [reference(nn.Linear, 200, 300), reference(nn.Linear, 0, 4), reference(nn.Linear, 4, 0)]
    same_law(ours[0].weight, theirs[0].weight)
    same_law(ours[0].bias, theirs[0].bias)
    for a, b in zip(ours[1:], theirs[1:], strict=True):
        assert a.weight.shape == b.weight.shape and torch.equal(a.bias, b.bias)
    assert torch.equal(ours[1].bias, torch.zeros(4))  # fan_in == 0: uniform_(bias, 0, 0)
    assert ours[0].weight.grad_fn is None and ours[0].weight.requires_grad


def test_conv_embedding_norm_attention(patched, monkeypatch):
    conv, emb = nn.Conv2d(16, 32, 3), nn.Embedding(500, 64, padding_idx=3)
    cl = nn.Conv2d(16, 32, 3).to(memory_format=torch.channels_last)
    cl.reset_parameters()  # not contiguous: torch fills a temporary and copies
    norm, mha = nn.LayerNorm(64), nn.MultiheadAttention(64, 4)
    monkeypatch.undo()
    same_law(conv.weight, reference(nn.Conv2d, 16, 32, 3).weight)
    same_law(cl.weight, conv.weight)
    same_law(conv.bias, reference(nn.Conv2d, 16, 32, 3).bias)
    ref_emb = reference(nn.Embedding, 500, 64, padding_idx=3)
    assert torch.equal(emb.weight[3], torch.zeros(64))
    same_law(emb.weight, ref_emb.weight)
    ref_norm = reference(nn.LayerNorm, 64)
    assert torch.equal(norm.weight, ref_norm.weight) and torch.equal(norm.bias, ref_norm.bias)
    ref_mha = reference(nn.MultiheadAttention, 64, 4)
    same_law(mha.in_proj_weight, ref_mha.in_proj_weight)
    assert torch.equal(mha.in_proj_bias, ref_mha.in_proj_bias) and torch.equal(mha.out_proj.bias, ref_mha.out_proj.bias)


def test_meta_layers_draw_nothing(patched):
    torch.manual_seed(0)
    state = torch.get_rng_state()
    with torch.device("meta"):
        layers = [nn.Linear(64, 32), nn.Conv2d(3, 8, 3), nn.Embedding(10, 4), nn.LayerNorm(8)]
    assert all(p.is_meta for m in layers for p in m.parameters())
    assert torch.equal(state, torch.get_rng_state())


@pytest.mark.parametrize("name,kw", [("uniform_", {}), ("normal_", {}), ("trunc_normal_", {}), ("xavier_uniform_", {}),
                                     ("xavier_normal_", {}), ("kaiming_uniform_", {}), ("kaiming_normal_", {}),
                                     ("orthogonal_", {}), ("sparse_", {"sparsity": 0.3})])
def test_generator_everywhere(name, kw):
    g, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    a = getattr(gi, name)(torch.empty(20, 30), generator=g, **kw)
    assert torch.equal(a, getattr(gi, name)(torch.empty(20, 30), generator=g2, **kw))
    assert not torch.equal(g.get_state(), torch.Generator().manual_seed(5).get_state())  # advanced
    assert not torch.equal(a, getattr(gi, name)(torch.empty(20, 30), generator=g, **kw))
