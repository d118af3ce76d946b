"""init_module: recipes against torch's own layer defaults, buffers, rules, errors, reproducibility."""
import math

import pytest
import torch
from model_init_models import meta
from scipy import stats
from torch import nn

import gpuinit
from gpuinit.models import Llama, LlamaConfig

TINY = LlamaConfig(dim=64, n_layers=2, n_heads=4, vocab_size=97, max_seq_len=32)


class Zoo(nn.Module):
    """One of each layer type the torch recipe knows."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(300, 200)
        self.conv1 = nn.Conv1d(16, 32, 5)
        self.conv2 = nn.Conv2d(8, 24, 3, groups=2)
        self.conv3 = nn.Conv3d(4, 6, 2)
        self.deconv = nn.ConvTranspose2d(12, 20, 3)
        self.emb = nn.Embedding(500, 64, padding_idx=3)
        self.ln = nn.LayerNorm(64)
        self.rms = nn.RMSNorm(64)
        self.gn = nn.GroupNorm(4, 24)
        self.bn = nn.BatchNorm2d(24)
        self.mha = nn.MultiheadAttention(64, 4, add_bias_kv=True)


def test_torch_recipe_matches_layer_defaults():
    ours = gpuinit.init_module(meta(Zoo), seed=0, device="cpu")
    torch.manual_seed(0)
    ref = Zoo()
    for (name, a), (_, b) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        a, b = a.detach().flatten().double(), b.detach().flatten().double()
        if name == "emb.weight":
            assert ours.emb.weight[3].eq(0).all()
        if b.unique().numel() <= 2:  # constants (norm weights and biases, zeroed biases)
            assert torch.equal(a, b), name
            continue
        assert stats.ks_2samp(a.numpy(), b.numpy()).pvalue > 1e-4, name
        if name.endswith("bias") or "conv" in name or "linear" in name:  # uniform: the same bound
            assert a.abs().max() <= b.abs().max() * 1.05 + 1e-6 and a.abs().max() >= b.abs().max() * 0.9, name
    assert torch.equal(ours.bn.running_mean, torch.zeros(24)) and torch.equal(ours.bn.running_var, torch.ones(24))
    assert ours.bn.num_batches_tracked.item() == 0


def test_no_garbage_survives():
    """NaN planted in every parameter and buffer of a materialized model: none is left."""
    m = Llama(TINY)
    bn = nn.BatchNorm1d(8)
    m.add_module("extra_bn", bn)
    with torch.no_grad():
        for t in list(m.parameters()) + [b for b in m.buffers() if b.is_floating_point()]:
            t.fill_(float("nan"))
    gpuinit.init_module(m, seed=1)
    for name, t in list(m.named_parameters()) + list(m.named_buffers()):
        assert torch.isfinite(t.float()).all(), name
    fresh = Llama(TINY)
    assert torch.allclose(m.rotary.cos, fresh.rotary.cos) and torch.allclose(m.rotary.sin, fresh.rotary.sin)


def test_meta_model_is_materialized_and_filled():
    m = gpuinit.init_module(meta(Llama, TINY), seed=2, device="cpu")
    assert all(not t.is_meta for t in list(m.parameters()) + list(m.buffers()))
    assert torch.isfinite(m.rotary.cos).all()
    assert m(torch.randint(0, 97, (2, 8))).shape == (2, 8, 97)


def test_values_follow_names_not_construction():
    a = gpuinit.init_module(meta(Llama, TINY), seed=5, device="cpu")
    bigger = LlamaConfig(**{**TINY.__dict__, "n_layers": 3})
    b = gpuinit.init_module(meta(Llama, bigger), seed=5, device="cpu")
    pb = dict(b.named_parameters())
    for name, p in a.named_parameters():
        assert torch.equal(p, pb[name]), name
    c = gpuinit.init_module(meta(Llama, TINY), seed=6, device="cpu")
    assert not torch.equal(a.output.weight, c.output.weight)


def test_gpt2_recipe():
    m = gpuinit.init_module(meta(Llama, LlamaConfig(dim=256, n_layers=4, n_heads=4, vocab_size=97)), "gpt2",
                            seed=0, device="cpu")
    assert abs(m.layers[0].attention.wq.weight.std().item() - 0.02) < 0.001
    for w in (m.layers[1].attention.wo.weight, m.layers[2].feed_forward.w2.weight):  # residual projections
        assert abs(w.std().item() - 0.02 / math.sqrt(2 * 4)) < 0.0005
    assert abs(m.tok_embeddings.weight.std().item() - 0.02) < 0.001


@pytest.mark.parametrize("recipe,check", [
    ("xavier", lambda w: w.abs().max() <= math.sqrt(6 / sum(w.shape))),
    ("he", lambda w: abs(w.std().item() - math.sqrt(2 / w.shape[1])) < 0.1 * math.sqrt(2 / w.shape[1])),
    ("lecun", lambda w: w.abs().max() <= 2 * math.sqrt(1 / w.shape[1]) / 0.8796 + 1e-6),
])
def test_scheme_recipes_zero_biases(recipe, check):
    m = gpuinit.init_module(meta(Zoo), recipe, seed=0, device="cpu")
    assert check(m.linear.weight.detach())
    for name, p in m.named_parameters():
        if name.endswith("bias") and not name.startswith(("ln", "gn", "bn")):
            assert p.eq(0).all(), name
    assert m.ln.weight.eq(1).all() and m.emb.weight[3].eq(0).all()


def test_rules_override_and_unknown_layers():
    class Custom(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = nn.Parameter(torch.empty(10))
            self.proj = nn.Linear(10, 10)

    with pytest.raises(gpuinit.InitError, match=r"scale \(Custom\)"):
        gpuinit.init_module(meta(Custom), seed=0, device="cpu")
    m = gpuinit.init_module(meta(Custom), seed=0, device="cpu",
                            rules=[("scale", "constant", {"value": 0.5}), ("proj.*", "zeros")])
    assert m.scale.eq(0.5).all() and m.proj.weight.eq(0).all() and m.proj.bias.eq(0).all()
    with pytest.raises(gpuinit.InitError, match="unknown scheme"):
        gpuinit.init_module(meta(Custom), seed=0, rules=[("scale", "nosuch")])
    with pytest.raises(gpuinit.InitError, match="unknown recipe"):
        gpuinit.init_module(meta(Custom), "nosuch", seed=0)


def test_unrestorable_buffer_is_an_error_before_any_write():
    class Cache(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.register_buffer("table", torch.zeros(4))

    with pytest.raises(gpuinit.InitError, match="table"):
        gpuinit.init_module(meta(Cache), seed=0, device="cpu")
    m = gpuinit.init_module(meta(Cache), seed=0, device="cpu", rules=[("table", "ones")])
    assert m.table.eq(1).all()


def test_bad_rule_leaves_module_untouched():
    m = Llama(TINY)
    before = [p.clone() for p in m.parameters()]
    with pytest.raises(gpuinit.InitError):
        gpuinit.init_module(m, seed=0, rules=[("output.weight", "uniform", {"a": 1.0, "b": 0.0})])
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters(), strict=True))


def test_triton_grouped_launches_give_the_same_model(monkeypatch):
    pytest.importorskip("triton")
    from gpuinit.backends import triton_backend

    launches = []
    real = triton_backend.fill_group
    monkeypatch.setattr(triton_backend, "fill_group", lambda items: launches.append(real(items)) or launches[-1])
    monkeypatch.setenv("GPUINIT_BACKEND", "triton")
    a = gpuinit.init_module(meta(Llama, TINY), seed=3, device="cpu")
    monkeypatch.delenv("GPUINIT_BACKEND")
    b = gpuinit.init_module(meta(Llama, TINY), seed=3, device="cpu")
    assert any("norm" in n for n, _ in a.named_parameters())
    assert launches == [2]  # linear weights' uniform with the norms' ones (a constant joins it), embedding's normal
    for (name, p), q in zip(a.named_parameters(), b.parameters(), strict=True):
        assert torch.equal(p, q), name


def test_progress(capsys):
    gpuinit.init_module(meta(Llama, TINY), seed=0, device="cpu", progress=False)
    assert capsys.readouterr().err == ""
    gpuinit.init_module(meta(Llama, TINY), seed=0, device="cpu", progress=True)
    assert "gpuinit" in capsys.readouterr().err


def test_fingerprint():
    a = gpuinit.init_module(meta(Llama, TINY), seed=9, device="cpu")
    b = gpuinit.init_module(meta(Llama, TINY), seed=9, device="cpu")
    fa, fb = gpuinit.fingerprint(a), gpuinit.fingerprint(b)
    assert fa == fb and len(fa) == len(list(a.parameters()))
    with torch.no_grad():
        b.output.weight[3, 5] += 1e-3
    fb = gpuinit.fingerprint(b)
    assert fb["output.weight"] != fa["output.weight"]
    assert {k for k in fa if fa[k] != fb[k]} == {"output.weight"}


def test_bad_rule_on_a_meta_model_fails_before_materializing():
    m = meta(Llama, TINY)
    with pytest.raises(gpuinit.InitError, match="fewer than 2 dimensions"):
        gpuinit.init_module(m, seed=0, device="cpu", rules=[("norm.weight", "xavier_uniform")])
    assert all(p.is_meta for p in m.parameters())
