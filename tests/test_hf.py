"""recipe="hf" reproduces a Hugging Face model's own _init_weights distributions (tiny config, no hub)."""
import pytest
import torch
from scipy import stats

import gpuinit

transformers = pytest.importorskip("transformers")


def tiny():
    cfg = transformers.LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                                   pad_token_id=5, initializer_range=0.05)
    with torch.device("meta"):
        return transformers.LlamaForCausalLM(cfg)


def test_hf_recipe_matches_init_weights():
    ours = gpuinit.init_module(tiny(), "hf", seed=0, device="cpu")
    torch.manual_seed(0)
    ref = transformers.LlamaForCausalLM(ours.config)  # constructed on the CPU: HF's own init
    for (name, a), (_, b) in zip(ours.named_parameters(), ref.named_parameters(), strict=True):
        if "norm" in name:
            assert a.eq(1).all(), name
            continue
        a, b = a.detach().flatten().numpy(), b.detach().flatten().numpy()
        assert abs(a.std() - 0.05) < 0.003, name
        assert stats.ks_2samp(a, b).pvalue > 1e-4, name
    assert ours.model.embed_tokens.weight[5].eq(0).all()
    for name, buf in ours.named_buffers():
        assert torch.allclose(buf, dict(ref.named_buffers())[name]), name
    ids = torch.randint(0, 300, (1, 12))
    assert torch.isfinite(ours(ids).logits).all()


def test_hf_recipe_needs_a_config():
    with torch.device("meta"):
        m = torch.nn.Linear(4, 4)
    with pytest.raises(gpuinit.InitError, match="_init_weights"):
        gpuinit.init_module(m, "hf", seed=0, device="cpu")
    assert m.weight.is_meta  # refused before materializing
