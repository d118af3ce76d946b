"""Own-init mode (gpuinit.own_init, init_module recipes "own" and "hf"): a model's own init code runs, its
whole-tensor fills come from gpuinit's stream, everything else runs as written and is counted."""
import math

import pytest
import torch
from model_init_models import Bare, meta
from torch import nn

import gpuinit
from gpuinit.distributed import stream_of


class Custom(nn.Module):
    """A module no recipe knows: its own reset_parameters, a 3-D parameter, a twice-filled tensor."""

    def __init__(self):
        super().__init__()
        self.experts = nn.Parameter(torch.empty(4, 8, 16))
        self.scale = nn.Parameter(torch.empty(16))
        self.reset_parameters()

    def reset_parameters(self):
        nn.init.trunc_normal_(self.experts, std=0.5, a=-1.0, b=1.0)
        self.scale.data.normal_(0.0, 3.0)
        self.scale.data.fill_(2.0)  # the second fill of the same tensor wins


def test_fills_come_from_the_stream_of_each_name():
    m = Custom()
    report = gpuinit.own_init(m, seed=7)
    expected = gpuinit.init_(torch.empty(4, 8, 16), "trunc_normal", std=0.5, a=-1.0, b=1.0, seed=7,
                             stream=stream_of("experts"))
    assert torch.equal(m.experts.detach(), expected)
    assert torch.equal(m.scale.detach(), torch.full((16,), 2.0))
    assert report.served == {"trunc_normal": 1, "normal": 1, "constant": 1}
    assert not report.as_written and report.untouched == []


def test_refill_uses_the_next_stream_position():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.empty(32, 32))

        def reset_parameters(self):
            nn.init.uniform_(self.w, -5.0, 5.0)
            nn.init.normal_(self.w, std=0.1)

    m = Twice()
    gpuinit.own_init(m, seed=1)
    assert torch.equal(m.w.detach(), gpuinit.init_(torch.empty(32, 32), "normal", std=0.1, seed=1,
                                                    stream=stream_of("w#1")))


def test_meta_model_equals_built_model_and_partial_writes_run_as_written():
    def build():
        return nn.Sequential(nn.Linear(16, 32), nn.Embedding(50, 16, padding_idx=2), nn.BatchNorm1d(8), Custom())

    built = build()
    gpuinit.own_init(built, seed=3)
    with torch.device("meta"):
        meta = build()
    report = gpuinit.own_init(meta, seed=3, device="cpu")
    assert not any(t.is_meta for t in meta.state_dict().values())
    for (name, a), (_, b) in zip(built.state_dict().items(), meta.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
    assert meta[1].weight[2].eq(0).all()  # the padding row, zeroed after the fill it follows
    assert report.as_written["fill_"] == 1 and report.as_written["zero_"] == 1  # padding row, num_batches
    assert gpuinit.fingerprint(meta) == gpuinit.fingerprint(built)


def test_linear_matches_torch_reset_parameters_statistics():
    m = nn.Linear(400, 300)
    gpuinit.own_init(m, seed=0)
    bound = 1 / math.sqrt(400)
    assert m.weight.abs().max() <= bound and m.weight.abs().max() > 0.99 * bound
    assert abs(m.weight.std().item() - bound / math.sqrt(3)) < 0.01 * bound
    assert m.bias.abs().max() <= bound


def test_untouched_tensor_of_a_meta_model_is_refused_before_materializing():
    m = meta(Bare)  # free: set by the constructor only
    with pytest.raises(gpuinit.InitError, match="free"):
        gpuinit.own_init(m, seed=0, device="cpu")
    assert m.lin.weight.is_meta
    gpuinit.own_init(m, seed=0, device="cpu", rules=[("free", "ones")])
    assert torch.equal(m.free.detach(), torch.ones(3))


def test_rules_override_the_code():
    m = nn.Linear(8, 8)
    gpuinit.own_init(m, seed=0, rules=[("bias", "constant", {"value": 0.5})])
    assert torch.equal(m.bias.detach(), torch.full((8,), 0.5))


def test_weight_norm_originals_come_from_the_reset_weight():
    from torch.nn.utils.parametrizations import weight_norm

    with torch.device("meta"):
        m = weight_norm(nn.Conv1d(4, 6, 3))
    gpuinit.own_init(m, seed=2, device="cpu")
    w = gpuinit.init_(torch.empty(6, 4, 3), "kaiming_uniform", a=math.sqrt(5), seed=2, stream=stream_of("weight"))
    assert torch.allclose(m.weight, w, atol=1e-6)
    assert torch.allclose(m.parametrizations.weight.original0.flatten(), w.flatten(1).norm(dim=1), atol=1e-6)


def test_hf_recipe_needs_a_hugging_face_model():
    with torch.device("meta"):
        m = nn.Linear(4, 4)
    with pytest.raises(gpuinit.InitError, match="_init_weights"):
        gpuinit.init_module(m, "hf", seed=0, device="cpu")
    gpuinit.init_module(m, "own", seed=0, device="cpu")
    assert not m.weight.is_meta


def test_gpt2_recipe_scales_both_residual_projections_by_the_layer_count():
    layer = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True)
    with torch.device("meta"):
        m = nn.TransformerEncoder(layer, num_layers=4, enable_nested_tensor=False)
    gpuinit.init_module(m, "gpt2", seed=0, device="cpu")
    residual = 0.02 / math.sqrt(2 * 4)
    for i in range(4):
        for name in ("self_attn.out_proj.weight", "linear2.weight"):
            std = m.get_parameter(f"layers.{i}.{name}").std().item()
            assert abs(std - residual) < 0.1 * residual, (i, name, std)
        assert abs(m.layers[i].linear1.weight.std().item() - 0.02) < 0.002


def test_recipes_fall_back_to_a_module_s_own_reset_code():
    def build():
        return nn.Sequential(nn.Linear(8, 8), nn.LSTM(8, 16), Custom())

    with torch.device("meta"):
        m = build()
    gpuinit.init_module(m, "torch", seed=4, device="cpu")
    alone = Custom()
    gpuinit.own_init(alone, seed=4)
    for name, p in alone.named_parameters():  # Custom's own code, the streams of the names in the model
        assert p.shape == m[2].get_parameter(name).shape
    expected = gpuinit.init_(torch.empty(4, 8, 16), "trunc_normal", std=0.5, a=-1.0, b=1.0, seed=4,
                             stream=stream_of("2.experts"))
    assert torch.equal(m[2].experts.detach(), expected)
    bound = 1 / math.sqrt(16)  # LSTM: U(-1/sqrt(hidden), 1/sqrt(hidden))
    assert m[1].weight_hh_l0.abs().max() <= bound and m[1].weight_hh_l0.abs().max() > 0.95 * bound


def test_a_module_without_reset_code_is_still_an_error():
    class Bare(nn.Module):
        def __init__(self):
            super().__init__()
            self.free = nn.Parameter(torch.zeros(3))

    with torch.device("meta"):
        m = nn.Sequential(nn.Linear(4, 4), Bare())
    with pytest.raises(gpuinit.InitError, match="1.free"):
        gpuinit.init_module(m, "torch", seed=0, device="cpu")
    assert m[0].weight.is_meta
