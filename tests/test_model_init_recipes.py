"""gpuinit/model_init/recipes.py: the layer type of each module, the layer count and the residual projections a
recipe reads, what each recipe draws per layer type (torch's own defaults written again here), padding rows."""
import math

import pytest
import torch
from torch import nn

import gpuinit
from gpuinit.model_init.recipes import RECIPES, layer_kind, layer_spec, n_layers, residual_outputs, zero_padding_row


class MyNorm(nn.Module):
    """A norm no torch class knows: a norm by its name and its vector parameters."""

    def __init__(self, *shape, extra=False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(*shape))
        if extra:
            self.scale = nn.Parameter(torch.ones(*shape))


class Config:
    def __init__(self, **kw):
        self.__dict__.update(kw)


@pytest.mark.parametrize("module,kind", [
    (nn.Linear(2, 3), "linear"),
    (nn.MultiheadAttention(4, 2).out_proj, "linear"),  # NonDynamicallyQuantizableLinear
    (nn.Conv1d(2, 3, 3), "conv"),
    (nn.Conv2d(2, 4, 3, groups=2), "conv"),
    (nn.Conv3d(2, 3, 1), "conv"),
    (nn.ConvTranspose2d(2, 3, 3), "conv"),
    (nn.Embedding(5, 2), "embedding"),
    (nn.EmbeddingBag(5, 2), "embedding"),
    (nn.LayerNorm(4), "norm"),
    (nn.RMSNorm(4), "norm"),
    (nn.GroupNorm(2, 4), "norm"),
    (nn.BatchNorm1d(4), "norm"),
    (nn.InstanceNorm1d(4, affine=True), "norm"),
    (MyNorm(4), "norm"),
    (nn.MultiheadAttention(4, 2), "mha"),
    (MyNorm(4, 4), None),  # a matrix: not a norm's vector
    (MyNorm(4, extra=True), None),  # a parameter other than weight and bias
    (nn.Bilinear(2, 2, 3), None),
    (nn.LSTM(2, 3), None),
    (nn.Sequential(nn.Linear(2, 2)), None),
    (nn.ReLU(), None),
])
def test_layer_kind(module, kind):
    assert layer_kind(module) == kind


def test_a_parameter_free_norm_is_no_norm_unless_torch_s():
    class EmptyNorm(nn.Module):
        pass

    assert layer_kind(EmptyNorm()) is None
    assert layer_kind(nn.LayerNorm(4, elementwise_affine=False)) == "norm"


def stack(n, cls=nn.Linear):
    return nn.ModuleList([cls(2, 2) for _ in range(n)])


def test_n_layers():
    m = nn.Module()
    m.a, m.b = stack(3), stack(5)
    assert n_layers(m) == 5  # the longest ModuleList
    assert n_layers(nn.Linear(2, 2)) == 1
    m.n_layers = 7
    assert n_layers(m) == 7  # an attribute before the lists
    for key in ("n_layer", "num_hidden_layers", "num_layers", "n_layers"):
        m.config = Config(**{key: 4})
        assert n_layers(m) == 4, key  # the config first
    m.config = Config(n_layer=2, num_hidden_layers=9)
    assert n_layers(m) == 2  # the first key found
    m.config = Config(n_layer=True, num_hidden_layers=0, num_layers="12", n_layers=None)
    assert n_layers(m) == 7  # no positive int in the config: the attribute


def test_n_layers_of_torch_transformer_stacks():
    enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), num_layers=3, enable_nested_tensor=False)
    assert n_layers(enc) == 3
    both = nn.Transformer(8, 2, num_encoder_layers=2, num_decoder_layers=3, dim_feedforward=16, batch_first=True)
    assert n_layers(both) == 5
    m = nn.Module()
    m.enc, m.other = enc, stack(9)
    assert n_layers(m) == 3  # a stack before the longest list


def test_residual_outputs():
    m = nn.Module()
    m.attn = nn.Module()
    m.attn.wo, m.attn.wq = nn.Linear(2, 2), nn.Linear(2, 2)
    m.mlp = nn.ModuleDict({name: nn.Linear(2, 2) for name in ("c_proj", "down_proj", "fc1", "fc2", "w2", "w3")})
    m.o_proj, m.dense_4h_to_h, m.c_projection = nn.Linear(2, 2), nn.Linear(2, 2), nn.Linear(2, 2)
    m.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(8, 2, 16), num_layers=2, enable_nested_tensor=False)
    layers = {f"enc.layers.{i}.{name}" for i in range(2) for name in ("self_attn.out_proj", "linear2")}
    assert residual_outputs(m) == {"attn.wo", "mlp.c_proj", "mlp.down_proj", "mlp.fc2", "mlp.w2", "o_proj",
                                   "dense_4h_to_h", *layers}
    layer = nn.TransformerDecoderLayer(8, 2, 16)
    assert residual_outputs(layer) == {"self_attn.out_proj", "multihead_attn.out_proj", "linear2"}
    assert residual_outputs(nn.Linear(2, 2)) == set()


# ---- what each recipe draws --------------------------------------------------------------------------

def spec(recipe, m, name, module_name="x", n=1, residual=()):
    return layer_spec(RECIPES[recipe], layer_kind(m), m, name, {"module_name": module_name, "n_layers": n,
                                                                "residual": set(residual)})


def torch_bias(fan_in):
    """torch.nn.Linear / Conv*'s reset_parameters: bound = 1 / sqrt(fan_in) if fan_in > 0 else 0."""
    bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    return ("uniform", {"a": -bound, "b": bound}) if bound else ("zeros", {})


@pytest.mark.parametrize("cls,args,fan_in", [
    (nn.Linear, (30, 20), 30),
    (nn.Conv1d, (16, 32, 5), 16 * 5),
    (nn.Conv2d, (8, 24, 3, 1, 0, 1, 2), 4 * 9),  # groups=2
    (nn.Conv3d, (4, 6, 2), 4 * 8),
    (nn.ConvTranspose2d, (12, 20, 3), 20 * 9),  # weight (in, out / groups, k, k): torch's fan_in is dim 1
    (nn.Linear, (0, 4), 0),
])
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors is a no-op")
def test_torch_recipe_linear_and_conv(cls, args, fan_in):
    m = cls(*args)
    # reset_parameters: kaiming_uniform_(weight, a=math.sqrt(5)); uniform_(bias, -bound, bound)
    assert spec("torch", m, "weight") == ("kaiming_uniform", {"a": math.sqrt(5)})
    assert spec("torch", m, "bias") == torch_bias(fan_in)
    if fan_in:  # the drawn weight has torch's bound: gain sqrt(2 / (1 + a^2)) * sqrt(3 / fan_in) = 1 / sqrt(fan_in)
        scheme, params = spec("torch", m, "weight")
        w = gpuinit.init_(torch.empty_like(m.weight), scheme, seed=1, **params)
        bound = 1 / math.sqrt(fan_in)
        assert 0.95 * bound < w.abs().max() <= bound


def test_torch_recipe_embedding_attention_norms():
    assert spec("torch", nn.Embedding(5, 2), "weight") == ("normal", {})  # normal_(weight): mean 0, std 1
    mha = nn.MultiheadAttention(8, 2, add_bias_kv=True)
    # _reset_parameters: xavier_uniform_ on the projections, constant_ 0 on their biases, xavier_normal_ on bias_k/v
    expected = {"in_proj_weight": ("xavier_uniform", {}), "in_proj_bias": ("zeros", {}),
                "out_proj.bias": ("zeros", {}), "bias_k": ("xavier_normal", {}), "bias_v": ("xavier_normal", {})}
    for name, want in expected.items():
        assert spec("torch", mha, name) == want, name
    split = nn.MultiheadAttention(8, 2, kdim=4, vdim=6)
    for name in ("q_proj_weight", "k_proj_weight", "v_proj_weight"):
        assert spec("torch", split, name) == ("xavier_uniform", {}), name
    for norm in (nn.LayerNorm(4), nn.RMSNorm(4), nn.GroupNorm(2, 4), nn.BatchNorm1d(4), MyNorm(4)):
        assert spec("torch", norm, "weight") == ("ones", {}) and spec("torch", norm, "bias") == ("zeros", {})
    assert spec("torch", nn.Linear(2, 2), "other") is None
    assert spec("torch", nn.LSTM(2, 2), "weight_ih_l0") is None  # no layer kind: no recipe covers it


@pytest.mark.parametrize("recipe,weight", [
    ("xavier", ("xavier_uniform", {})),
    ("he", ("kaiming_normal", {"nonlinearity": "relu"})),
    ("lecun", ("lecun_normal", {})),
    ("gpt2", ("normal", {"std": 0.02})),
])
def test_scheme_recipes(recipe, weight):
    mha = nn.MultiheadAttention(8, 2, add_bias_kv=True)
    for m, name in [(nn.Linear(3, 2), "weight"), (nn.Conv2d(2, 2, 3), "weight"), (nn.Embedding(5, 2), "weight"),
                    (mha, "in_proj_weight")]:
        assert spec(recipe, m, name) == weight, (m, name)
    for m, name in [(nn.Linear(3, 2), "bias"), (nn.Conv2d(2, 2, 3), "bias"), (mha, "in_proj_bias"),
                    (mha, "out_proj.bias"), (mha, "bias_k"), (mha, "bias_v")]:
        assert spec(recipe, m, name) == ("zeros", {}), (m, name)
    assert spec(recipe, nn.LayerNorm(3), "weight") == ("ones", {})
    assert spec(recipe, nn.LayerNorm(3), "bias") == ("zeros", {})
    assert spec(recipe, nn.LSTM(2, 2), "weight_ih_l0") is None


def test_gpt2_scales_residual_output_weights_by_the_layer_count():
    lin = nn.Linear(4, 4)
    assert spec("gpt2", lin, "weight", "h.0.attn.c_proj", n=6, residual={"h.0.attn.c_proj"}) == (
        "normal", {"std": 0.02 / math.sqrt(12)})
    assert spec("gpt2", lin, "bias", "h.0.attn.c_proj", n=6, residual={"h.0.attn.c_proj"}) == ("zeros", {})
    assert spec("gpt2", lin, "weight", "h.0.attn.c_attn", n=6, residual={"h.0.attn.c_proj"}) == (
        "normal", {"std": 0.02})


def test_zero_padding_row():
    emb = nn.Embedding(6, 3, padding_idx=-2)  # torch keeps it as 4
    with torch.no_grad():
        emb.weight.fill_(1.0)
        zero_padding_row(emb, "tok.weight", emb.weight)
    expected = torch.ones(6, 3)
    expected[4] = 0
    assert torch.equal(emb.weight.detach(), expected)
    bag = nn.EmbeddingBag(6, 3, padding_idx=0)
    with torch.no_grad():
        bag.weight.fill_(1.0)
        zero_padding_row(bag, "weight", bag.weight)
    assert bag.weight[0].eq(0).all() and bag.weight[1:].eq(1).all()


def test_zero_padding_row_leaves_others_alone():
    plain = nn.Embedding(6, 3)
    lin = nn.Linear(3, 6)
    lin.padding_idx = 1  # not an embedding
    for m, fqn in [(plain, "weight"), (lin, "weight"), (nn.Embedding(6, 3, padding_idx=1), "other")]:
        t = torch.ones(6, 3)
        zero_padding_row(m, fqn, t)
        assert t.eq(1).all(), (m, fqn)
