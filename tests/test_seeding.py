"""The seeding rule (gpuinit.seeding): seed= > generator= > gpuinit.manual_seed > torch's global generator (torch
tensors and modules) > fresh entropy, for every entry point; seed objects; what draws nothing; bad seeds."""
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import gpuinit
import gpuinit.nn.init as gi
from gpuinit import seeding

NN = ["uniform_", "normal_", "trunc_normal_", "xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
      "kaiming_normal_", "orthogonal_", "sparse_"]
TORCH_ENTRIES = ["init_/torch", *NN]
ENTRIES = ["init_/numpy", *TORCH_ENTRIES, "init_module"]


@pytest.fixture(autouse=True)
def unseeded():
    gpuinit.manual_seed(None)
    yield
    gpuinit.manual_seed(None)


def fill(entry, **kw):
    """The values one entry point writes into a fresh (40, 30) float32 target."""
    if entry == "init_/numpy":
        return torch.from_numpy(gpuinit.init_(np.empty((40, 30), np.float32), "normal", **kw))
    if entry == "init_/torch":
        return gpuinit.init_(torch.empty(40, 30), "kaiming_uniform", **kw)
    if entry == "init_module":
        with torch.device("meta"):  # built without drawing from torch's generator
            module = nn.Linear(30, 40)
        return gpuinit.init_module(module, device="cpu", **kw).weight.detach().clone()
    return getattr(gi, entry)(torch.empty(40, 30), **({"sparsity": 0.2} if entry == "sparse_" else {}), **kw)


def entry_param(entries, pending=()):
    return list(entries)


# ---- explicit seeds ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", ENTRIES)
def test_int_seed(entry):
    a = fill(entry, seed=5)
    assert torch.equal(a, fill(entry, seed=5)) and not torch.equal(a, fill(entry, seed=6))
    assert torch.equal(a, fill(entry, seed=np.uint64(5)))


SOURCES = {  # a seed object, and the 64-bit seed it stands for, derived independently
    "torch.Generator": (lambda s: torch.Generator().manual_seed(s),
                        lambda s: int(torch.empty((), dtype=torch.int64).random_(
                            -2**63, None, generator=torch.Generator().manual_seed(s))) % 2**64),
    "np.Generator": (lambda s: np.random.default_rng(s),
                     lambda s: int(np.random.default_rng(s).integers(0, 2**64, dtype=np.uint64))),
    "SeedSequence": (lambda s: np.random.SeedSequence(s),
                     lambda s: int(np.random.SeedSequence(s).generate_state(1, np.uint64)[0])),
}


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("entry", entry_param(ENTRIES, pending=["init_module"]))
def test_seed_objects(entry, source):
    make, derived = SOURCES[source]
    a = fill(entry, seed=make(7))
    assert torch.equal(a, fill(entry, seed=make(7)))
    assert torch.equal(a, fill(entry, seed=derived(7)))
    assert not torch.equal(a, fill(entry, seed=make(8)))
    obj = make(7)
    fill(entry, seed=obj)
    again = fill(entry, seed=obj)  # generators advance by one draw; a SeedSequence gives the same seed
    assert torch.equal(again, a) == (source == "SeedSequence")


@pytest.mark.parametrize("entry", ["init_/torch", *NN])
def test_generator_argument(entry):
    a = fill(entry, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, fill(entry, generator=torch.Generator().manual_seed(3)))
    assert not torch.equal(a, fill(entry, generator=torch.Generator().manual_seed(4)))
    g = torch.Generator().manual_seed(3)
    fill(entry, seed=9, generator=g)  # seed= wins: the generator is not touched
    assert torch.equal(g.get_state(), torch.Generator().manual_seed(3).get_state())
    gpuinit.manual_seed(1)  # generator= wins over gpuinit's stream
    assert torch.equal(a, fill(entry, generator=torch.Generator().manual_seed(3)))


# ---- the global sources ------------------------------------------------------------------------------------

@pytest.mark.parametrize("entry", entry_param([*TORCH_ENTRIES, "init_module"], pending=["init_module"]))
def test_torch_manual_seed_reaches_torch_targets(entry):
    torch.manual_seed(3)
    a, b = fill(entry), fill(entry)
    torch.manual_seed(3)
    assert torch.equal(a, fill(entry)) and torch.equal(b, fill(entry))
    assert not torch.equal(a, b)
    torch.manual_seed(4)
    assert not torch.equal(a, fill(entry))


@pytest.mark.parametrize("entry", entry_param(ENTRIES, pending=["init_module"]))
def test_gpuinit_manual_seed_reaches_every_entry(entry):
    gpuinit.manual_seed(3)
    torch.manual_seed(0)
    a, b = fill(entry), fill(entry)
    gpuinit.manual_seed(3)
    torch.manual_seed(99)  # gpuinit's stream wins over torch's generator, which it leaves alone
    state = torch.get_rng_state()
    assert torch.equal(a, fill(entry)) and torch.equal(b, fill(entry))
    assert torch.equal(state, torch.get_rng_state()) and not torch.equal(a, b)
    gpuinit.manual_seed(4)
    assert not torch.equal(a, fill(entry))


@pytest.mark.parametrize("entry", TORCH_ENTRIES)
def test_manual_seed_none_hands_back_to_torch(entry):
    torch.manual_seed(3)
    a = fill(entry)
    gpuinit.manual_seed(1)
    gpuinit.manual_seed(None)
    torch.manual_seed(3)
    assert torch.equal(a, fill(entry))


def test_numpy_without_seed_takes_fresh_entropy():
    torch.manual_seed(0)
    state = torch.get_rng_state()
    a = fill("init_/numpy")
    torch.manual_seed(0)  # torch's generator is not numpy's source
    assert not torch.equal(a, fill("init_/numpy"))
    assert torch.equal(state, torch.get_rng_state())
    assert 0 <= seeding.resolve_seed(None, np.empty(3)) < 2**64 and 0 <= seeding.next_seed() < 2**64


def test_importing_gpuinit_imports_no_torch():
    code = ("import sys, numpy as np, gpuinit\n"
            "gpuinit.init_(np.empty(8, np.float32), 'normal')\n"
            "gpuinit.manual_seed(1); gpuinit.init_(np.empty(8, np.float32), 'normal')\n"
            "gpuinit.init_(np.empty(8, np.float32), 'normal', seed=np.random.SeedSequence(1))\n"
            "assert 'torch' not in sys.modules, 'torch was imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True)


# ---- what draws nothing ---------------------------------------------------------------------------------------

def test_nothing_to_draw_takes_no_seed():
    targets = [lambda: gi.normal_(torch.empty(40, 30, device="meta")),
               lambda: gi.orthogonal_(torch.empty(40, 30, device="meta")),
               lambda: gpuinit.init_(torch.empty(40, 30, device="meta"), "normal"),
               lambda: gpuinit.init_(torch.empty(0, 30), "normal"),
               lambda: gpuinit.init_(np.empty((0, 3), np.float32), "normal"),
               lambda: gi.eye_(torch.empty(4, 4)), lambda: gi.dirac_(torch.empty(4, 4, 3)),
               lambda: gpuinit.init_(torch.empty(4, 4), "eye"), lambda: gpuinit.init_(np.empty(4), "constant", value=2),
               lambda: gi.uniform_(torch.empty(4), 0.5, 0.5), lambda: gi.xavier_uniform_(torch.empty(4, 4), gain=0)]
    for seeded in (False, True):
        torch.manual_seed(0)
        gpuinit.manual_seed(5 if seeded else None)
        state = torch.get_rng_state()
        for t in targets:
            t()
        assert torch.equal(state, torch.get_rng_state())
        after = fill("init_/numpy")
        gpuinit.manual_seed(5)
        assert torch.equal(after, fill("init_/numpy")) == seeded  # gpuinit's stream did not advance either
    g = np.random.default_rng(1)
    gpuinit.init_(torch.empty(3, device="meta"), "normal", seed=g)
    assert g.bit_generator.state == np.random.default_rng(1).bit_generator.state


@pytest.mark.parametrize("entry", ["init_/torch", "normal_", "uniform_"])
def test_failed_call_draws_nothing(entry):
    bad = {"init_/torch": {"nonlinearity": "swish"}, "normal_": {"std": -1.0}, "uniform_": {"a": 2.0, "b": 1.0}}
    torch.manual_seed(0)
    with pytest.raises(ValueError):
        fill(entry, **bad[entry])
    a = fill(entry)
    torch.manual_seed(0)
    assert torch.equal(a, fill(entry))


# ---- bad seeds ----------------------------------------------------------------------------------------------

BAD = [-1, 2**64, 1.5, "1", True, np.float64(3.0), [1]]


@pytest.mark.parametrize("bad", BAD, ids=repr)
@pytest.mark.parametrize("entry", ENTRIES + ["uniform_(a == b)", "kaiming_uniform_(empty)", "eye via init_"])
def test_bad_seed_is_a_clear_error_before_any_write(entry, bad):
    x = torch.full((40, 30), 0.5)
    holder = _Holder(x)  # built (torch's own init draws) before the state is recorded
    call = {"init_/numpy": lambda: gpuinit.init_(x.numpy(), "normal", seed=bad),
            "init_/torch": lambda: gpuinit.init_(x, "normal", seed=bad),
            "init_module": lambda: gpuinit.init_module(holder, "xavier", seed=bad),
            "uniform_(a == b)": lambda: gi.uniform_(x, 0.0, 0.0, seed=bad),
            "kaiming_uniform_(empty)": lambda: gi.kaiming_uniform_(torch.empty(0, 3), seed=bad),
            "eye via init_": lambda: gpuinit.init_(x, "eye", seed=bad)}.get(entry)
    call = call or (lambda: getattr(gi, entry)(x, **({"sparsity": 0.2} if entry == "sparse_" else {}), seed=bad))
    torch.manual_seed(0)
    state = torch.get_rng_state()
    with pytest.raises(gpuinit.InitError, match=r"seed must be an integer in \[0, 2\*\*64\)") as e:
        call()
    assert not isinstance(e.value, RuntimeError)  # a bad argument, not a refused fill
    assert torch.equal(x, torch.full((40, 30), 0.5)) and torch.equal(state, torch.get_rng_state())


class _Holder(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.lin = nn.Linear(30, 40, bias=False)
        self.lin.weight = nn.Parameter(w, requires_grad=False)


@pytest.mark.parametrize("bad", ["cpu", np.random.default_rng(0), 3])
def test_bad_generator(bad):
    x = torch.full((4, 3), 0.5)
    for call in (lambda: gi.normal_(x, generator=bad), lambda: gpuinit.init_(x, "normal", generator=bad),
                 lambda: gi.uniform_(x, 1.0, 1.0, generator=bad)):
        with pytest.raises(gpuinit.InitError, match="generator must be a torch.Generator"):
            call()
    assert torch.equal(x, torch.full((4, 3), 0.5))
