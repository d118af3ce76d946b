"""gpuinit/model_init/names.py: tied names, their owners and aliases, tensors looked up by name, the meta check."""
import pytest
import torch
from model_init_models import Tied, meta
from torch import nn

import gpuinit
from gpuinit.model_init.names import Walk, aliases, on_meta, owners, tensor_at, tied


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


def small():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 5), nn.LayerNorm(5), nn.Sequential(nn.Linear(5, 4), nn.Linear(4, 3)))


@pytest.fixture
def process_group(tmp_path):
    """A gloo process group of one rank (DDP and FSDP need one)."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path}/store", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def wrap_compile(m):
    return torch.compile(m)


def wrap_ddp(m):
    return nn.parallel.DistributedDataParallel(m)


def wrap_data_parallel(m):
    return nn.DataParallel(m)


def wrap_checkpoint(m):
    from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import checkpoint_wrapper

    m[2] = checkpoint_wrapper(m[2])  # inside the model, and around it
    return checkpoint_wrapper(m)


def wrap_fsdp1(m):
    from torch.distributed.fsdp import FullyShardedDataParallel

    return FullyShardedDataParallel(m, device_id=torch.device("cpu"), use_orig_params=True)


def wrap_nested(m):
    return torch.compile(nn.parallel.DistributedDataParallel(m))


@pytest.mark.parametrize("wrap", [wrap_compile, wrap_ddp, wrap_data_parallel, wrap_checkpoint, wrap_fsdp1,
                                  wrap_nested])
def test_a_wrapped_model_has_its_unwrapped_names_streams_and_fingerprint(wrap, process_group):
    plain, wrapped = small(), wrap(small())
    raw = [n for n, _ in wrapped.named_modules()]
    assert raw != [n for n, _ in plain.named_modules()]  # the wrapper adds a part to torch's names
    names = [n for n, _ in Walk(wrapped).members()]
    assert names == [n for n, _ in plain.named_parameters()]
    rules = [("2.1.weight", "normal", {"std": 0.5})]  # a rule by the model's own name
    for init in (lambda m: gpuinit.init_module(m, "gpt2", seed=9, rules=rules), lambda m: gpuinit.own_init(m, seed=9)):
        init(plain)
        init(wrapped)
        values = dict(Walk(wrapped).members())
        for name, t in plain.named_parameters():
            assert torch.equal(values[name], t), name
        assert gpuinit.fingerprint(wrapped) == gpuinit.fingerprint(plain)
    with torch.device("meta"):
        meta_plain = small()
    with torch.device("meta"):
        meta_wrapped = small()
    if wrap in (wrap_compile, wrap_data_parallel, wrap_checkpoint):  # DDP and FSDP read values when they wrap
        meta_wrapped = wrap(meta_wrapped)
        gpuinit.init_module(meta_plain, seed=3, device="cpu")
        gpuinit.init_module(meta_wrapped, seed=3, device="cpu")
        assert gpuinit.fingerprint(meta_wrapped) == gpuinit.fingerprint(meta_plain)


def test_a_wrapper_holding_tensors_of_its_own_keeps_torch_s_names():
    wrapped = nn.DataParallel(nn.Linear(3, 2))
    wrapped.register_buffer("weight", torch.zeros(1))  # would meet the wrapped module's own name
    assert [n for n, _ in Walk(wrapped).members()] == ["module.weight", "module.bias"]
    assert [n for n, _ in Walk(wrapped).members("buffers")] == ["weight"]
