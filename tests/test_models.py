"""gpuinit/models.py, the built-in Llama-style model: its config (ffn width, parameter count, the config nearest to a
size), the modules it builds (shapes, dtype and device from the factory arguments), forward shapes and causality,
and the rotary tables against their formula written again here."""
import numpy as np
import pytest
import torch

from gpuinit.models import Llama, LlamaConfig, Rotary

TINY = LlamaConfig(dim=64, n_layers=2, n_heads=4, vocab_size=97, max_seq_len=16)


def count(c):
    """Parameters, spelled out: embedding and output (vocab x dim each), per layer four dim x dim attention
    projections, three dim x ffn MLP matrices and two norms, and the final norm."""
    attention = 4 * c.dim * c.dim
    mlp = 3 * c.dim * c.ffn_dim
    norms = 2 * c.dim
    return c.vocab_size * c.dim * 2 + c.n_layers * (attention + mlp + norms) + c.dim


@pytest.mark.parametrize("dim,ffn", [(64, 128), (96, 256), (128, 320), (512, 1344), (768, 2048), (4096, 10880),
                                     (8, 64), (30, 64)])
def test_ffn_dim_default(dim, ffn):
    """8/3 of dim rounded down to a multiple of 64, at least 64."""
    assert LlamaConfig(dim=dim).ffn_dim == ffn
    assert LlamaConfig(dim=dim, ffn_dim=100).ffn_dim == 100


@pytest.mark.parametrize("c", [TINY, LlamaConfig(), LlamaConfig(dim=128, n_layers=3, n_heads=2, vocab_size=50,
                                                                   ffn_dim=200)])
def test_parameter_count(c):
    with torch.device("meta"):
        model = Llama(c)
    assert c.n_params == count(c) == sum(p.numel() for p in model.parameters())


def test_with_params_is_the_nearest_built_in_size():
    sizes = [count(LlamaConfig(dim=64 * k, n_layers=k, n_heads=k)) for k in range(1, 257)]
    for n in (0, 1e5, 2e6, 2e7, 1.23e8, 1e9, 7e9, 1e12, 1e18):
        c = LlamaConfig.with_params(n)
        k = min(range(256), key=lambda i: abs(sizes[i] - n)) + 1
        assert (c.dim, c.n_layers, c.n_heads) == (64 * k, k, k) and c.n_params == sizes[k - 1]
        assert c.dim // c.n_heads == 64
    assert LlamaConfig.with_params(0).n_layers == 1 and LlamaConfig.with_params(1e18).n_layers == 256
    assert LlamaConfig.with_params(1e6, vocab_size=10).vocab_size == 10


def test_modules_and_shapes():
    m = Llama(TINY)
    d, f, v = TINY.dim, TINY.ffn_dim, TINY.vocab_size
    shapes = {name: tuple(p.shape) for name, p in m.named_parameters()}
    assert shapes["tok_embeddings.weight"] == (v, d) and shapes["output.weight"] == (v, d)
    assert shapes["norm.weight"] == (d,)
    for i in range(TINY.n_layers):
        for w in ("wq", "wk", "wv", "wo"):
            assert shapes[f"layers.{i}.attention.{w}.weight"] == (d, d)
        assert shapes[f"layers.{i}.feed_forward.w1.weight"] == shapes[f"layers.{i}.feed_forward.w3.weight"] == (f, d)
        assert shapes[f"layers.{i}.feed_forward.w2.weight"] == (d, f)
        assert shapes[f"layers.{i}.attention_norm.weight"] == shapes[f"layers.{i}.ffn_norm.weight"] == (d,)
    assert len(shapes) == 3 + TINY.n_layers * 9
    assert m.output.weight is not m.tok_embeddings.weight  # untied
    assert m.layers[0].attention_norm.eps == TINY.norm_eps
    assert m.layers[0].attention.head_dim == d // TINY.n_heads


def test_default_config():
    c = LlamaConfig()
    assert (c.dim, c.n_layers, c.n_heads, c.vocab_size, c.max_seq_len, c.ffn_dim) == (512, 8, 8, 32000, 1024, 1344)
    assert (c.rope_theta, c.norm_eps) == (10000.0, 1e-5)
    with torch.device("meta"):
        assert Llama().config == LlamaConfig()


@pytest.mark.parametrize("dtype", [torch.float64, torch.bfloat16])
def test_factory_arguments(dtype):
    default = torch.get_default_dtype()
    m = Llama(TINY, dtype=dtype)
    assert {t.dtype for t in [*m.parameters(), *m.buffers()]} == {dtype}
    assert torch.get_default_dtype() == default
    meta = Llama(TINY, device="meta")
    assert all(t.is_meta for t in [*meta.parameters(), *meta.buffers()])


def test_forward_shapes():
    torch.manual_seed(0)
    m = Llama(TINY)
    for batch, seq in ((1, 1), (2, 7), (3, TINY.max_seq_len)):
        tokens = torch.randint(0, TINY.vocab_size, (batch, seq))
        out = m(tokens)
        assert out.shape == (batch, seq, TINY.vocab_size) and out.dtype == torch.float32
        assert torch.isfinite(out).all()


def test_forward_is_causal():
    torch.manual_seed(1)
    m = Llama(TINY, dtype=torch.float64)
    tokens = torch.randint(0, TINY.vocab_size, (2, 9))
    changed = tokens.clone()
    changed[:, 6] = (changed[:, 6] + 1) % TINY.vocab_size
    a, b = m(tokens), m(changed)
    assert torch.allclose(a[:, :6], b[:, :6], rtol=0, atol=1e-12)
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def rotary_tables(head_dim, max_seq_len, theta):
    """cos and sin of p * theta ** (-2i / head_dim), in float64."""
    p = np.arange(max_seq_len, dtype=np.float64)[:, None]
    i = np.arange(head_dim // 2, dtype=np.float64)[None, :]
    angle = p * theta ** (-2 * i / head_dim)
    return np.cos(angle), np.sin(angle)


@pytest.mark.parametrize("head_dim,max_seq_len,theta", [(16, 16, 10000.0), (8, 64, 500000.0), (64, 32, 10.0)])
def test_rotary_tables(head_dim, max_seq_len, theta):
    r = Rotary(head_dim, max_seq_len, theta)
    cos, sin = rotary_tables(head_dim, max_seq_len, theta)
    assert r.cos.shape == r.sin.shape == (max_seq_len, head_dim // 2)
    np.testing.assert_allclose(r.cos.numpy(), cos, rtol=0, atol=3e-5)
    np.testing.assert_allclose(r.sin.numpy(), sin, rtol=0, atol=3e-5)
    assert "cos" not in r.state_dict() and "sin" not in r.state_dict()  # non-persistent


def test_llama_rotary_uses_the_config():
    c = LlamaConfig(dim=48, n_layers=1, n_heads=3, vocab_size=11, max_seq_len=12, rope_theta=100.0)
    cos, sin = rotary_tables(16, 12, 100.0)
    m = Llama(c)
    np.testing.assert_allclose(m.rotary.cos.numpy(), cos, atol=3e-5)
    np.testing.assert_allclose(m.rotary.sin.numpy(), sin, atol=3e-5)


def test_reset_buffers_restores_the_tables():
    r = Rotary(16, 20, 10000.0, dtype=torch.float64)
    cos, sin = rotary_tables(16, 20, 10000.0)
    want = r.cos.clone(), r.sin.clone()
    r.cos.fill_(float("nan"))
    r.sin.zero_()
    r.reset_buffers()
    assert torch.equal(r.cos, want[0]) and torch.equal(r.sin, want[1])
    np.testing.assert_allclose(r.cos.numpy(), cos, atol=3e-5)  # float32 angles, stored in float64


def test_reset_buffers_on_meta_then_materialized():
    r = Rotary(8, 10, 10000.0, device="meta")
    r.reset_buffers()  # nothing to compute on meta
    assert r.cos.is_meta and r.sin.is_meta
    r.to_empty(device="cpu")
    r.reset_buffers()
    cos, sin = rotary_tables(8, 10, 10000.0)
    np.testing.assert_allclose(r.cos.numpy(), cos, atol=3e-5)
    np.testing.assert_allclose(r.sin.numpy(), sin, atol=3e-5)


def test_rotary_forward_rotates_each_pair():
    """Pair (x[2i], x[2i+1]) at position p is rotated by the angle of table entry (p, i)."""
    torch.manual_seed(2)
    r = Rotary(8, 10, 10000.0, dtype=torch.float64)
    x = torch.randn(2, 3, 7, 8, dtype=torch.float64)
    y = r(x).numpy()
    cos, sin = (t[:7] for t in rotary_tables(8, 10, 10000.0))
    x1, x2 = x.numpy()[..., 0::2], x.numpy()[..., 1::2]
    np.testing.assert_allclose(y[..., 0::2], x1 * cos - x2 * sin, atol=1e-4)
    np.testing.assert_allclose(y[..., 1::2], x1 * sin + x2 * cos, atol=1e-4)
    assert np.allclose(y[..., 0, :], x.numpy()[..., 0, :])  # position 0: no rotation
    np.testing.assert_allclose(np.hypot(y[..., 0::2], y[..., 1::2]), np.hypot(x1, x2), rtol=1e-6)
    assert r(x.float()).dtype == torch.float32
