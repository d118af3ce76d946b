"""Recipes: what each layer type draws when ``init_module`` fills a model by layer type (``recipe="torch"``,
``"gpt2"``, ``"xavier"``, ``"he"``, ``"lecun"``); ``"own"`` and ``"hf"`` run the model's own code instead
(gpuinit/model_init/by_own_code.py)."""
import functools
import math

from .. import distributed
from ..schemes import Layout
from .names import modules

SQRT5 = math.sqrt(5.0)  # nn.Linear / nn.Conv*: kaiming_uniform_(a=sqrt(5)), i.e. U(-1/sqrt(fan_in), 1/sqrt(fan_in))
GPT2_STD = 0.02
RESIDUAL_NAMES = ("c_proj", "o_proj", "out_proj", "down_proj", "wo", "w2", "fc2", "dense_4h_to_h")
ONES: tuple[str, dict] = ("ones", {})
ZEROS: tuple[str, dict] = ("zeros", {})
TORCH_WEIGHT: tuple[str, dict] = ("kaiming_uniform", {"a": SQRT5})  # specs are read, never changed: shared


# ---- what each layer draws ------------------------------------------------------------------------

def layer_kind(m):
    kind = _KINDS.get(type(m), _UNSEEN)
    if kind is _UNSEEN:
        kind = _KINDS[type(m)] = _type_kind(type(m))
    if kind is _BY_PARAMS:  # a norm of another library: told by its parameters
        return "norm" if _vector_params(m) else None
    return kind


_KINDS: dict = {}  # module class: its kind (classes are few, modules many)
_UNSEEN, _BY_PARAMS = object(), object()


def _type_kind(cls):
    from torch import nn

    if issubclass(cls, nn.MultiheadAttention):
        return "mha"
    if issubclass(cls, nn.Linear):
        return "linear"
    if issubclass(cls, nn.modules.conv._ConvNd):
        return "conv"
    if issubclass(cls, (nn.Embedding, nn.EmbeddingBag)):
        return "embedding"
    if issubclass(cls, (nn.LayerNorm, nn.RMSNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)):
        return "norm"
    return _BY_PARAMS if cls.__name__.endswith("Norm") else None


def _vector_params(m):
    params = dict(m.named_parameters(recurse=False))
    return bool(params) and set(params) <= {"weight", "bias"} and all(p.dim() == 1 for p in params.values())


def _torch_bias(weight):
    """nn.Linear / nn.Conv*'s bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) with the weight's fan_in (the fans of
    gpuinit.schemes, torch's for a weight of 2 or more dimensions), zeros when fan_in is 0."""
    return _bias_of_fan_in(_fan_in(tuple(weight.shape)))


@functools.lru_cache(maxsize=4096)
def _bias_of_fan_in(fan_in):  # one spec per fan_in: specs are read, never changed
    return ("uniform", {"a": -1.0 / math.sqrt(fan_in), "b": 1.0 / math.sqrt(fan_in)}) if fan_in > 0 else ZEROS


@functools.lru_cache(maxsize=4096)
def _fan_in(shape):  # a model's layers repeat a few weight shapes
    return Layout.of(shape).fans[0]


def recipe_torch(kind, m, name, ctx):
    """Each layer's own ``reset_parameters`` distribution (torch.nn defaults)."""
    if kind in ("linear", "conv"):
        if name == "weight":
            return TORCH_WEIGHT
        return _torch_bias(m.weight) if name == "bias" else None
    if kind == "embedding":
        return ("normal", {}) if name == "weight" else None
    if kind == "mha":
        xavier = ("xavier_uniform", {})
        return {"in_proj_weight": xavier, "q_proj_weight": xavier, "k_proj_weight": xavier, "v_proj_weight": xavier,
                "in_proj_bias": ZEROS, "out_proj.bias": ZEROS, "bias_k": ("xavier_normal", {}),
                "bias_v": ("xavier_normal", {})}.get(name)
    return None


def _weights(weight_spec):
    """A recipe with ``weight_spec`` for weights (linear, conv, embedding, attention) and zero biases."""

    def recipe(kind, m, name, ctx):
        if kind in ("linear", "conv", "embedding", "mha"):
            if name.endswith("bias") or name in ("bias_k", "bias_v"):
                return ZEROS
            return weight_spec(ctx, name)
        return None

    return recipe


def _gpt2_weight(ctx, name):
    residual = name == "weight" and ctx["module_name"] in ctx["residual"]
    return _normal(GPT2_STD / math.sqrt(2 * ctx["n_layers"]) if residual else GPT2_STD)


@functools.lru_cache(maxsize=256)
def _normal(std):  # one spec per std: specs are read, never changed
    return "normal", {"std": std}


RECIPES = {
    "torch": recipe_torch,
    "gpt2": _weights(_gpt2_weight),
    "xavier": _weights(lambda ctx, name: ("xavier_uniform", {})),
    "he": _weights(lambda ctx, name: ("kaiming_normal", {"nonlinearity": "relu"})),
    "lecun": _weights(lambda ctx, name: ("lecun_normal", {})),
}


OWN_RECIPES = ("own", "hf")  # the model's own init code, its fills served by gpuinit (by_own_code.py)


def layer_spec(recipe, kind, m, name, ctx):
    """What ``recipe`` draws for parameter ``name`` of layer ``m`` of ``kind``: (scheme, params), or None."""
    if kind == "norm":
        return {"weight": ONES, "bias": ZEROS}.get(name)
    return None if kind is None else recipe(kind, m, name, ctx)


def n_layers(module, tree=None):
    """The number of residual blocks: the config's layer count (``n_layer``, ``num_hidden_layers``, ...), the
    layers of ``nn.TransformerEncoder`` / ``Decoder`` stacks, an ``n_layers`` attribute, or the longest
    ``ModuleList``. ``tree``: names.modules(module), when the caller has it."""
    from torch import nn

    for owner in (getattr(module, "config", None), module):
        for key in ("n_layer", "num_hidden_layers", "num_layers", "n_layers"):
            value = getattr(owner, key, None)
            if isinstance(value, int) and not isinstance(value, bool) and value > 0:
                return value
    tree = modules(module) if tree is None else tree
    stacks = [m.num_layers for _, m in tree if isinstance(m, (nn.TransformerEncoder, nn.TransformerDecoder))]
    if stacks:
        return sum(stacks)
    return max([len(m) for _, m in tree if isinstance(m, nn.ModuleList)] or [1])


def residual_outputs(module, tree=None):
    """Names of the modules whose output joins a residual stream: attention output and MLP output projections
    (``RESIDUAL_NAMES``, and ``linear2`` of torch's Transformer layers). ``tree``: names.modules(module)."""
    from torch import nn

    tree = modules(module) if tree is None else tree
    names = {n for n, _ in tree if n.rsplit(".", 1)[-1] in RESIDUAL_NAMES}
    layers = (nn.TransformerEncoderLayer, nn.TransformerDecoderLayer)
    return names | {f"{n}.linear2" if n else "linear2" for n, m in tree if isinstance(m, layers)}


def zero_padding_row(m, fqn, t):
    """Embeddings keep their padding row at zero (the same on every recipe, as torch and HF do)."""
    pad = getattr(m, "padding_idx", None)
    if pad is None or not fqn.endswith("weight") or layer_kind(m) != "embedding":
        return
    local, _, offsets = distributed.local_block(t) if distributed.is_dtensor(t) else (t, None, (0, 0))
    row = pad - offsets[0]
    if 0 <= row < local.shape[0]:
        local[row].zero_()
