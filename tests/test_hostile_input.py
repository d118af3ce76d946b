"""Inputs a user meets without warning: tied weights, foreign byte orders, rules that cannot apply, values that
do not fit the array's dtype. Each call either writes correct values or raises before anything is written."""
import math

import numpy as np
import pytest
import torch
from conftest import fresh_seed
from torch import nn

import gpuinit
from gpuinit import InitError
from gpuinit.backends import cpu_kernel, numpy_backend
from gpuinit.distributed import stream_of

# ---- tied parameters ------------------------------------------------------------------------------

class TiedLM(nn.Module):
    def __init__(self, vocab=97, dim=24):
        super().__init__()
        self.emb = nn.Embedding(vocab, dim)
        self.body = nn.Linear(dim, dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.emb.weight  # tied: one Parameter under two names


def test_tied_parameter_filled_once_from_its_first_name():
    m = TiedLM()
    prints = {tuple(gpuinit.fingerprint(gpuinit.init_module(m, "torch", seed=3)).items()) for _ in range(20)}
    assert len(prints) == 1
    assert m.head.weight is m.emb.weight
    expected = gpuinit.init_(torch.empty(97, 24), "normal", seed=3, stream=stream_of("emb.weight"))
    assert torch.equal(m.emb.weight.detach(), expected)  # the owner's recipe (Embedding: N(0, 1)) and stream
    assert list(gpuinit.fingerprint(m)) == ["emb.weight", "body.weight", "body.bias"]


def test_ties_survive_materialization():
    with torch.device("meta"):
        m = TiedLM()
    gpuinit.init_module(m, "torch", seed=3, device="cpu")
    assert m.head.weight is m.emb.weight
    assert m.head.weight.untyped_storage().data_ptr() == m.emb.weight.untyped_storage().data_ptr()
    assert gpuinit.fingerprint(m) == gpuinit.fingerprint(gpuinit.init_module(TiedLM(), "torch", seed=3))


def test_rule_on_a_tied_alias_fills_the_shared_tensor():
    m = gpuinit.init_module(TiedLM(), "torch", seed=0, rules=[("head.weight", "zeros")])
    assert not m.emb.weight.any()


def test_hf_tied_embeddings_stay_tied():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(cfg)
    gpuinit.init_module(model, "hf", seed=0, device="cpu")
    assert model.lm_head.weight is model.model.embed_tokens.weight
    assert len(gpuinit.fingerprint(model)) == len(list(model.parameters()))


def test_fingerprint_lists_each_storage_once():
    m = nn.Module()
    m.a = nn.Linear(4, 4)
    m.b = nn.Linear(4, 4)
    m.b.weight = nn.Parameter(m.a.weight.data)  # another Parameter object over the same memory
    assert "b.weight" not in gpuinit.fingerprint(m)


# ---- byte order -----------------------------------------------------------------------------------

SCHEMES = [("normal", {}), ("uniform", {"a": -0.3, "b": 0.7}), ("trunc_normal", {"std": 0.5}),
           ("constant", {"value": -1.5}), ("eye", {}), ("orthogonal", {}), ("sparse", {"sparsity": 0.25})]


@pytest.fixture(params=["kernel", "numpy"])
def host_path(request, monkeypatch):
    """Run with the compiled host kernel, then with NumPy alone."""
    if request.param == "numpy":
        monkeypatch.setenv("GPUINIT_CPU_KERNEL", "0")
    cpu_kernel.reset()
    yield request.param
    monkeypatch.delenv("GPUINIT_CPU_KERNEL", raising=False)
    cpu_kernel.reset()


@pytest.mark.parametrize("scheme,kw", SCHEMES, ids=[s for s, _ in SCHEMES])
@pytest.mark.parametrize("code", ["f2", "f4", "f8", "u2"])
def test_foreign_byte_order_gets_the_native_values(code, scheme, kw, host_path, rng):
    seed = fresh_seed(rng)
    bits = "bfloat16" if code == "u2" else None
    swapped = "<" if np.dtype(code).byteorder == ">" or np.little_endian is False else ">"
    native = gpuinit.init_(np.empty((67, 33), code), scheme, seed=seed, bits=bits, **kw)
    foreign = gpuinit.init_(np.empty((67, 33), swapped + code), scheme, seed=seed, bits=bits, **kw)
    assert not foreign.dtype.isnative
    assert np.array_equal(foreign.astype(native.dtype), native)
    view = gpuinit.init_(np.empty((33, 67), swapped + code).T, scheme, seed=seed, bits=bits, **kw)  # strided
    assert np.array_equal(view.astype(native.dtype), native)


# ---- init_module: every check before any write -----------------------------------------------------

def _net():
    return nn.Sequential(nn.Linear(6, 5), nn.BatchNorm1d(5), nn.Linear(5, 3))


def _snapshot(m):
    return {k: v.clone() for k, v in m.state_dict().items()}


@pytest.mark.parametrize("rules,match", [
    ([("*.num_batches_tracked", "normal", {"std": 0.02})], "1.num_batches_tracked: .*got int64"),
    ([("1.running_var", "normal", {"std": -1.0})], "1.running_var: std must be >= 0"),
    ([("2.weight", "orthogonal"), ("1.running_mean", "uniform", {"a": 1.0, "b": 0.0})], "1.running_mean: .*low < high"),
    ([("0.wieght", "zeros")], "'0.wieght' matches no parameter or buffer.*did you mean '0.weight'"),
    ([("0.weight", "normal", 0.02)], r"params are a dict.*got 0.02"),
    ([("0.weight",)], r"a rule is \(name pattern, scheme\)"),
    ([("0.weight", "nosuch")], "unknown scheme"),
    ("0.weight", "rules must be a list"),
    ([("*.running_me*", "zeros")], "matches no parameter or buffer"),
])
def test_init_module_refuses_before_writing(rules, match):
    m = _net()
    m[1].running_mean.add_(3.0)
    before = _snapshot(m)
    with pytest.raises(InitError, match=match):
        gpuinit.init_module(m, seed=0, rules=rules)
    after = _snapshot(m)
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_wildcards_fill_parameters_and_leave_buffers_to_their_module():
    m = _net()
    m[1].running_mean.fill_(3.0)
    gpuinit.init_module(m, seed=0, rules=[("*", "normal", {"std": 0.02})])
    assert (m[1].running_mean == 0).all() and (m[1].running_var == 1).all()  # reset_running_stats, not the rule
    assert abs(m[0].weight.std().item() - 0.02) < 0.015 and m[1].weight.std() > 0
    gpuinit.init_module(m, seed=0, rules=[("*.running_mean", "constant", {"value": 0.5})])
    assert (m[1].running_mean == 0.5).all()


def test_hf_rotary_tables_survive_a_wildcard_rule():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=4, num_key_value_heads=2)
    reference = transformers.LlamaForCausalLM(cfg).model.rotary_emb.inv_freq
    with torch.device("meta"):
        model = transformers.LlamaForCausalLM(cfg)
    gpuinit.init_module(model, "torch", seed=0, device="cpu", rules=[("*", "normal", {"std": 0.02})])
    assert torch.equal(model.model.rotary_emb.inv_freq, reference)


def test_rules_are_asked_before_the_recipe():
    transformers = pytest.importorskip("transformers")
    cfg = transformers.T5Config(vocab_size=64, d_model=16, d_kv=4, d_ff=32, num_layers=1, num_heads=2)
    with torch.device("meta"):
        model = transformers.T5ForConditionalGeneration(cfg)
    gpuinit.init_module(model, "hf", seed=0, device="cpu", rules=[("*", "normal", {"std": 0.02})])  # no hf spec asked
    assert model.lm_head.weight.std() > 0


def test_a_device_torch_cannot_use_is_refused_before_materializing():
    if torch.cuda.is_available():
        pytest.skip("needs a machine without CUDA")
    with torch.device("meta"):
        m = _net()
    with pytest.raises(gpuinit.BackendUnavailableError, match="cannot materialize on cuda"):
        gpuinit.init_module(m, seed=0, device="cuda")
    assert all(t.is_meta for t in m.parameters())


def test_backend_names_ignore_case_and_spaces():
    assert gpuinit.init_(np.empty(8, np.float32), "normal", seed=0, backend=" NumPy ").std() > 0


def test_meta_module_stays_meta_when_a_check_fails():
    with torch.device("meta"):
        m = _net()
    with pytest.raises(InitError, match="num_batches_tracked"):
        gpuinit.init_module(m, seed=0, device="cpu", rules=[("1.*", "zeros"), ("1.num_batches_tracked", "zeros")])
    assert all(t.is_meta for t in m.parameters())


def test_init_module_refuses_a_device_without_backend_before_materializing(monkeypatch):
    with torch.device("meta"):
        m = _net()
    monkeypatch.setattr(numpy_backend, "accepts", lambda array: array.is_meta)
    gpuinit.jobs.forget()  # calls checked before the patch chose another backend
    with pytest.raises(gpuinit.BackendUnavailableError, match="cannot fill torch.float32 tensors on cpu"):
        gpuinit.init_module(m, seed=0, device="cpu")
    assert all(t.is_meta for t in m.parameters())


def test_fill_group_skips_meta_and_empty_tensors():
    from gpuinit import draws
    from gpuinit.jobs import Job

    jobs = [Job(t, draws.normal(0.0, 1.0), tuple(t.shape), (0,) * t.dim(), 0, 0, numpy_backend)
            for t in (torch.empty(4, 4, device="meta"), torch.empty(0, 3))]
    assert numpy_backend.fill_group(jobs) == 0


# ---- values that do not fit -----------------------------------------------------------------------

NOT_FITTING = [
    ("float32", "normal", {"std": 1e39}, "does not fit float32"),
    ("float32", "normal", {"mean": 3e38, "std": 1e38}, "does not fit float32"),
    ("float64", "normal", {"std": 1e300}, "does not fit float32"),
    ("float64", "uniform", {"a": -1e300, "b": 1e300}, "does not fit float32"),
    ("float16", "uniform", {"a": 0.0, "b": 7e4}, "beyond the largest finite value of float16"),
    ("float16", "normal", {"std": 2e4}, "does not fit float16"),
    ("float16", "constant", {"value": 1e5}, "does not fit float16"),
    ("float32", "constant", {"value": 1e39}, "does not fit float32"),
    ("float16", "identity", {"gain": -7e4}, "does not fit float16"),
    ("float16", "trunc_normal", {"std": 1e5, "a": -math.inf, "b": 0.0}, "beyond the largest finite value of float16"),
    ("float32", "uniform", {"a": 1e-50, "b": 2e-50}, "no float32 value lies in"),
    ("float16", "uniform", {"a": 1e-9, "b": 2e-9}, "no float16 value lies in"),
    ("float32", "trunc_normal", {"std": 1.0, "a": -1e-7, "b": 1e-7}, "too narrow"),
    ("float64", "trunc_normal", {"mean": 5.0, "std": 2.0, "a": 5.0, "b": 5.001}, "too narrow"),
]


@pytest.mark.parametrize("dtype,scheme,kw,match", NOT_FITTING, ids=[f"{c[0]}-{c[1]}-{c[3][:12]}" for c in NOT_FITTING])
def test_values_that_do_not_fit_are_refused(dtype, scheme, kw, match):
    x = np.full((8, 8), 7.0, dtype)
    with pytest.raises(InitError, match=match):
        gpuinit.init_(x, scheme, seed=0, **kw)
    assert (x == 7.0).all()


def test_float64_constant_keeps_float64_range():
    assert gpuinit.init_(np.empty(3), "constant", seed=0, value=1e300)[0] == 1e300


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("scheme,kw", [("uniform", {"a": -0.0997, "b": 0.0997}),
                                       ("uniform", {"a": 0.3001, "b": 0.3113}),
                                       ("trunc_normal", {"std": 0.02, "a": -0.0397, "b": 0.0397}),
                                       ("trunc_normal", {"mean": 1.0, "std": 3.0, "a": 0.9, "b": 1.00013})])
def test_values_lie_in_the_interval_in_every_dtype(dtype, scheme, kw):
    t = gpuinit.init_(torch.empty(512, 1024, dtype=dtype), scheme, seed=1, **kw).double()
    assert kw["a"] <= t.min().item() and t.max().item() <= kw["b"]
    assert len(torch.unique(t)) > 1


def test_narrow_but_admitted_trunc_normal_spreads_over_its_interval():
    x = gpuinit.init_(np.empty(10**6, np.float32), "trunc_normal", seed=0, std=1.0, a=-1e-3, b=1e-3)
    assert -1e-3 <= x.min() and x.max() <= 1e-3
    assert len(np.unique(x)) > 5000  # far more than the handful an exhausted float32 u gives
    assert abs(x.mean()) < 1e-5 and abs(x.std() - 2e-3 / math.sqrt(12)) < 2e-5  # nearly uniform there


def test_shared_storage_does_not_shift_buffer_rules_before_their_module():
    m = nn.Module()
    m.a = nn.Linear(4, 4)
    m.b = nn.Linear(4, 4)
    m.b.weight = nn.Parameter(m.a.weight.data)  # filled once, under its first name
    m.bn = nn.BatchNorm1d(4)
    gpuinit.init_module(m, seed=0, rules=[("bn.running_mean", "constant", {"value": 0.5})])
    assert (m.bn.running_mean == 0.5).all()  # after reset_running_stats, not before it
