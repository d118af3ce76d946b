"""gpuinit/model_init/names.py: tied names, their owners and aliases, tensors looked up by name, the meta check."""
import torch
from model_init_models import Tied, meta
from torch import nn

from gpuinit.model_init.names import aliases, on_meta, owners, tensor_at, tied


def test_tied_maps_every_name_to_the_first_name_of_its_tensor():
    m = Tied()
    assert tied(m) == {"emb.weight": "emb.weight", "mid.weight": "mid.weight", "mid.bias": "mid.bias",
                       "head.weight": "emb.weight"}
    assert tied(m, "buffers") == {"emb.table": "emb.table", "head.table": "emb.table"}


def test_tied_follows_registration_order():
    m = nn.Module()
    m.head = nn.Linear(3, 5, bias=False)
    m.emb = nn.Embedding(5, 3)
    m.emb.weight = m.head.weight  # head registered first: it owns the tensor
    assert tied(m) == {"head.weight": "head.weight", "emb.weight": "head.weight"}


def test_distinct_tensors_of_equal_values_are_not_tied():
    m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    with torch.no_grad():
        m[1].weight.copy_(m[0].weight)
    assert all(name == owner for name, owner in tied(m).items()) and len(tied(m)) == 4


def test_aliases_and_owners():
    names = tied(Tied())
    assert aliases(names) == {"emb.weight": ["emb.weight", "head.weight"], "mid.weight": ["mid.weight"],
                              "mid.bias": ["mid.bias"]}
    assert owners(names) == ["emb.weight", "mid.weight", "mid.bias"]
    assert aliases({}) == {} and owners({}) == []


def test_tensor_at():
    m = Tied()
    assert tensor_at(m, "head.weight") is m.emb.weight
    assert tensor_at(m, "mid.bias") is m.mid.bias
    assert tensor_at(m, "head.table") is m.emb.table
    seq = nn.Sequential(nn.Sequential(nn.Linear(2, 3)))
    assert tensor_at(seq, "0.0.weight") is seq[0][0].weight
    lin = nn.Linear(2, 3)
    assert tensor_at(lin, "weight") is lin.weight  # a name at the root
    m.mid.register_parameter("gone", None)
    assert tensor_at(m, "mid.gone") is None


def test_on_meta():
    assert not on_meta(Tied())
    assert on_meta(meta(Tied))
    assert not on_meta(nn.ReLU())  # no tensors at all
    only_buffer = nn.Module()
    only_buffer.register_buffer("b", torch.empty(2, device="meta"))
    assert on_meta(only_buffer)
    mixed = nn.Sequential(nn.Linear(2, 2), meta(nn.Linear, 2, 2))  # any meta tensor counts
    assert on_meta(mixed)
