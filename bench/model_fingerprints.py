"""Fingerprints of small models (built-in Llama, a torch encoder, odd layers, HF GPT-2, Llama, BERT) initialized by
every recipe, built and from meta, and by own_init, with gpuinit imported from the checkout at ROOT: two trees
that give the same JSON give the same values.

    python bench/model_fingerprints.py ROOT > fingerprints.json
"""
import json
import sys

sys.path.insert(0, sys.argv[1])
import torch  # noqa: E402
from torch import nn  # noqa: E402

import gpuinit  # noqa: E402
from gpuinit.models import Llama, LlamaConfig  # noqa: E402

assert gpuinit.__file__.startswith(sys.argv[1]), gpuinit.__file__


class Odd(nn.Module):
    """A parameter no recipe covers (filled by its reset code), batch norm buffers, a weight-normed conv."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16, padding_idx=3)
        self.bn = nn.BatchNorm1d(16)
        self.conv = nn.utils.parametrizations.weight_norm(nn.Conv1d(16, 16, 3))
        self.gru = nn.GRU(16, 8)
        self.head = nn.Linear(16, 50)
        self.head.weight = self.emb.weight


class Scaled(nn.Linear):
    """A Linear with an extra parameter no recipe covers; its reset code also rescales the weight in place."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.scale = nn.Parameter(torch.empty(self.out_features))
        self.reset_parameters()

    def reset_parameters(self):
        super().reset_parameters()
        if hasattr(self, "scale"):
            self.weight.data.mul_(0.5)
            nn.init.normal_(self.scale, 1.0, 0.1)


class Odd2(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 16, padding_idx=3)
        self.bn = nn.BatchNorm1d(16)
        self.gru = nn.GRU(16, 8)
        self.scaled = Scaled(16, 16)
        self.head = nn.Linear(16, 50)
        self.head.weight = self.emb.weight


def models():
    yield "odd2", Odd2
    yield "llama", lambda: Llama(LlamaConfig(dim=64, n_layers=2, n_heads=4, vocab_size=128))
    yield "encoder", lambda: nn.Sequential(nn.Embedding(100, 32), nn.TransformerEncoder(
        nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2, enable_nested_tensor=False), nn.LayerNorm(32))
    yield "odd", Odd
    import transformers as tf

    yield "gpt2", lambda: tf.GPT2LMHeadModel(tf.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100,
                                                           n_positions=64))
    yield "hf-llama", lambda: tf.LlamaForCausalLM(tf.LlamaConfig(num_hidden_layers=2, hidden_size=32,
                                                                  intermediate_size=64, num_attention_heads=2,
                                                                  num_key_value_heads=1, vocab_size=100))
    yield "bert", lambda: tf.BertForMaskedLM(tf.BertConfig(num_hidden_layers=2, hidden_size=32, intermediate_size=64,
                                                           num_attention_heads=2, vocab_size=100))


out = {}
for name, build in models():
    for recipe in ("torch", "gpt2", "xavier", "he", "lecun", "own", "hf"):
        for meta in (True, False):
            try:
                if meta:
                    with torch.device("meta"):
                        m = build()
                else:
                    torch.manual_seed(0)
                    m = build()
                gpuinit.init_module(m, recipe, seed=11, device="cpu",
                                    rules=[("*.bias", "constant", {"value": 0.25})] if recipe == "xavier" else None)
                out[f"{name}/{recipe}/{'meta' if meta else 'built'}"] = gpuinit.fingerprint(m)
            except Exception as e:  # noqa: BLE001
                out[f"{name}/{recipe}/{'meta' if meta else 'built'}"] = f"{type(e).__name__}: {str(e)[:300]}"
    if name in ("encoder", "odd", "odd2", "gpt2"):
        with torch.device("meta"):
            m = build()
        r = gpuinit.own_init(m, seed=5, device="cpu")
        out[f"{name}/own_init"] = [gpuinit.fingerprint(m), dict(r.served), dict(r.as_written), r.untouched]
print(json.dumps(out, indent=1, sort_keys=True, default=str))
