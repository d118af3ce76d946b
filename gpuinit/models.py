"""A small Llama-style model built into the package (no downloads): for the demo, tests and benchmarks.

Token embedding, pre-norm blocks (RMSNorm, causal self-attention with rotary position embeddings,
SwiGLU MLP), a final RMSNorm and an output projection. The rotary cos/sin tables are non-persistent
buffers that ``reset_buffers()`` recomputes, as ``gpuinit.init_module`` expects of a module's buffers.
``Llama(config, device=..., dtype=...)`` builds every parameter and buffer there and in that dtype, as torch's
own layers take ``device=`` and ``dtype=`` (no need to change torch's default dtype).
"""
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass
class LlamaConfig:
    dim: int = 512
    n_layers: int = 8
    n_heads: int = 8
    vocab_size: int = 32000
    ffn_dim: int = 0  # 0: 8/3 of dim, rounded down to a multiple of 64
    max_seq_len: int = 1024
    rope_theta: float = 10000.0
    norm_eps: float = 1e-5

    def __post_init__(self):
        if not self.ffn_dim:
            self.ffn_dim = max(64, int(8 * self.dim / 3) // 64 * 64)

    @property
    def n_params(self):
        d, f = self.dim, self.ffn_dim
        return 2 * self.vocab_size * d + self.n_layers * (4 * d * d + 3 * d * f + 2 * d) + d

    @classmethod
    def with_params(cls, n, **kw):
        """The config of about ``n`` parameters: width d in steps of 64, d / 64 layers (GPT-2 small:
        12 layers of 768), heads of 64."""
        best = min((cls(dim=64 * k, n_layers=k, n_heads=max(1, k), **kw) for k in range(1, 257)),
                   key=lambda c: abs(c.n_params - n))
        return best


class Rotary(nn.Module):
    def __init__(self, head_dim, max_seq_len, theta, device=None, dtype=None):
        super().__init__()
        self.head_dim, self.max_seq_len, self.theta = head_dim, max_seq_len, theta
        for name in ("cos", "sin"):
            self.register_buffer(name, torch.empty(max_seq_len, head_dim // 2, device=device, dtype=dtype),
                                 persistent=False)
        self.reset_buffers()

    @torch.no_grad()
    def reset_buffers(self):
        if self.cos.is_meta:
            return
        device = self.cos.device
        inv_freq = 1.0 / self.theta ** (torch.arange(0, self.head_dim, 2, device=device).float() / self.head_dim)
        freqs = torch.outer(torch.arange(self.max_seq_len, device=device).float(), inv_freq)
        self.cos.copy_(freqs.cos())
        self.sin.copy_(freqs.sin())

    def forward(self, x):  # x: (batch, heads, seq, head_dim)
        cos, sin = self.cos[: x.shape[-2]].to(x.dtype), self.sin[: x.shape[-2]].to(x.dtype)
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)


class Attention(nn.Module):
    def __init__(self, c, **factory):
        super().__init__()
        self.n_heads, self.head_dim = c.n_heads, c.dim // c.n_heads
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(c.dim, c.dim, bias=False, **factory) for _ in range(4))

    def forward(self, x, rotary):
        b, s, _ = x.shape
        q, k, v = (w(x).view(b, s, self.n_heads, self.head_dim).transpose(1, 2) for w in (self.wq, self.wk, self.wv))
        y = F.scaled_dot_product_attention(rotary(q), rotary(k), v, is_causal=True)
        return self.wo(y.transpose(1, 2).reshape(b, s, -1))


class FeedForward(nn.Module):
    def __init__(self, c, **factory):
        super().__init__()
        self.w1 = nn.Linear(c.dim, c.ffn_dim, bias=False, **factory)
        self.w3 = nn.Linear(c.dim, c.ffn_dim, bias=False, **factory)
        self.w2 = nn.Linear(c.ffn_dim, c.dim, bias=False, **factory)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class Block(nn.Module):
    def __init__(self, c, **factory):
        super().__init__()
        self.attention_norm = nn.RMSNorm(c.dim, eps=c.norm_eps, **factory)
        self.attention = Attention(c, **factory)
        self.ffn_norm = nn.RMSNorm(c.dim, eps=c.norm_eps, **factory)
        self.feed_forward = FeedForward(c, **factory)

    def forward(self, x, rotary):
        x = x + self.attention(self.attention_norm(x), rotary)
        return x + self.feed_forward(self.ffn_norm(x))


class Llama(nn.Module):
    def __init__(self, config=None, *, device=None, dtype=None):
        super().__init__()
        self.config = c = config or LlamaConfig()
        factory = {"device": device, "dtype": dtype}
        self.tok_embeddings = nn.Embedding(c.vocab_size, c.dim, **factory)
        self.rotary = Rotary(c.dim // c.n_heads, c.max_seq_len, c.rope_theta, **factory)
        self.layers = nn.ModuleList(Block(c, **factory) for _ in range(c.n_layers))
        self.norm = nn.RMSNorm(c.dim, eps=c.norm_eps, **factory)
        self.output = nn.Linear(c.dim, c.vocab_size, bias=False, **factory)

    def forward(self, tokens):
        x = self.tok_embeddings(tokens)
        for layer in self.layers:
            x = layer(x, self.rotary)
        return self.output(self.norm(x))
