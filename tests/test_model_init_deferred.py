"""gpuinit/model_init/deferred.py: a model built within gpuinit.deferred() gets its constructor's init from
own_init, every draw from gpuinit's stream (nanoGPT's apply(_init_weights) and c_proj scaling, CLIP's
logit_scale, ConvNeXt's layer-scale gamma, a mask buffer, a rotary table)."""
import math
import threading

import numpy as np
import pytest
import torch
from nanogpt import GPT, GPTConfig
from torch import nn

import gpuinit
from gpuinit.distributed import stream_of

CONFIG = GPTConfig(block_size=32, vocab_size=97, n_layer=3, n_head=2, n_embd=16)


def deferred_gpt(seed=0, config=CONFIG):
    with gpuinit.deferred():
        m = GPT(config)
    assert all(p.is_meta for p in m.parameters())
    report = gpuinit.own_init(m, seed=seed, device="cpu")
    return m, report


def normal(name, std, shape, seed=0):
    return gpuinit.init_(torch.empty(shape), "normal", std=std, seed=seed, stream=stream_of(name))


def test_nanogpt_gets_its_constructor_s_init_from_gpuinit_s_stream():
    m, report = deferred_gpt()
    assert report.untouched == []
    assert m.transformer.wte.weight is m.lm_head.weight
    p = dict(m.named_parameters())
    # each value written again: the k-th fill of a tensor draws from "name#k" (k=0: nn.Linear's or nn.Embedding's
    # own reset in its constructor; then nanoGPT's _init_weights; then its c_proj scaling)
    for i in range(CONFIG.n_layer):
        h = f"transformer.h.{i}."
        assert torch.equal(p[h + "attn.c_attn.weight"], normal(h + "attn.c_attn.weight#1", 0.02, (48, 16)))
        assert torch.equal(p[h + "mlp.c_fc.weight"], normal(h + "mlp.c_fc.weight#1", 0.02, (64, 16)))
        for proj, shape in (("attn.c_proj.weight", (16, 16)), ("mlp.c_proj.weight", (16, 64))):
            want = normal(f"{h}{proj}#2", 0.02 / math.sqrt(2 * CONFIG.n_layer), shape)
            assert torch.equal(p[h + proj], want)
        for name in ("attn.c_attn.bias", "attn.c_proj.bias", "mlp.c_fc.bias", "mlp.c_proj.bias", "ln_1.bias"):
            assert p[h + name].eq(0).all()
        assert p[h + "ln_1.weight"].eq(1).all() and p[h + "ln_2.weight"].eq(1).all()
        assert torch.equal(m.transformer.h[i].attn.bias, torch.tril(torch.ones(32, 32)).view(1, 1, 32, 32))
    assert torch.equal(p["transformer.wpe.weight"], normal("transformer.wpe.weight#1", 0.02, (32, 16)))
    # the tied weight: lm_head's kaiming (#0), wte's normal (#1), lm_head's normal (#2)
    assert torch.equal(p["transformer.wte.weight"], normal("transformer.wte.weight#2", 0.02, (97, 16)))
    assert report.served == {"normal": 22, "kaiming_uniform": 13, "uniform": 12, "zeros": 12}


def test_nanogpt_s_distributions_as_its_own_construction_gives():
    config = GPTConfig(block_size=64, vocab_size=512, n_layer=4, n_head=4, n_embd=128)
    m, _ = deferred_gpt(config=config)
    torch.manual_seed(0)
    ref = GPT(config)
    for (name, got), want in zip(m.named_parameters(), ref.parameters(), strict=True):
        assert got.shape == want.shape, name
        assert got.mean().item() == pytest.approx(want.mean().item(), abs=3e-3), name
        assert got.std().item() == pytest.approx(want.std().item(), rel=0.1, abs=1e-6), name
    idx = torch.randint(0, 512, (4, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert m(idx, idx).item() == pytest.approx(ref(idx, idx).item(), abs=0.05)


def test_the_seed_alone_decides_the_values():
    torch.manual_seed(1)
    a, _ = deferred_gpt(seed=3)
    torch.manual_seed(2)
    b, _ = deferred_gpt(seed=3)
    c, _ = deferred_gpt(seed=4)
    assert gpuinit.fingerprint(a) == gpuinit.fingerprint(b) != gpuinit.fingerprint(c)


def test_without_deferred_the_constructor_s_tensors_are_an_error_that_names_deferred():
    with torch.device("meta"):
        m = GPT(CONFIG)
    with pytest.raises(gpuinit.InitError, match=r"transformer\.h\.0\.ln_1\.weight.*gpuinit\.deferred\(\)"):
        gpuinit.own_init(m, seed=0, device="cpu")
    assert all(p.is_meta for p in m.parameters())


class Scaled(nn.Module):
    """CLIP's logit_scale, ConvNeXt's layer-scale gamma, a rotary table and a draw into a temporary, all made in the
    constructor, and a parameter that a Linear's own reset fills."""

    def __init__(self, dim=8):
        super().__init__()
        self.logit_scale = nn.Parameter(torch.ones([]) * np.log(1 / 0.07))
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))
        inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.proj = nn.Linear(dim, dim)
        self.noise = nn.Parameter(torch.empty(dim))
        with torch.no_grad():
            self.noise.copy_(torch.rand(dim) * 2 - 1)


def test_values_made_in_the_constructor_are_made_again():
    torch.manual_seed(0)
    ref = Scaled()
    with gpuinit.deferred():
        m = Scaled()
    report = gpuinit.own_init(m, seed=0, device="cpu")
    for name in ("logit_scale", "gamma", "inv_freq"):
        assert torch.allclose(getattr(m, name), getattr(ref, name)), name
    assert m.logit_scale.requires_grad and not m.inv_freq.requires_grad
    u = gpuinit.init_(torch.empty(8), "uniform", a=0.0, b=1.0, seed=0, stream=stream_of("<temporary>#0"))
    assert torch.equal(m.noise.detach(), u * 2 - 1)
    w = gpuinit.init_(torch.empty(8, 8), "kaiming_uniform", a=math.sqrt(5), seed=0, stream=stream_of("proj.weight"))
    assert torch.equal(m.proj.weight.detach(), w)
    assert report.served["temporary uniform"] == 1 and report.untouched == []


def test_in_place_after_to_empty_and_from_meta_give_the_same_model():
    with gpuinit.deferred():
        a, b = GPT(CONFIG), GPT(CONFIG)
    gpuinit.own_init(a, seed=5, device="cpu")
    b.to_empty(device="cpu")  # which unties lm_head.weight from wte.weight: both get the tied tensor's values
    gpuinit.own_init(b, seed=5)
    fa, fb = gpuinit.fingerprint(a), gpuinit.fingerprint(b)
    assert fb.pop("lm_head.weight") == fb["transformer.wte.weight"]
    assert fa == fb
    assert all(torch.equal(x, y) for x, y in zip(a.buffers(), b.buffers(), strict=True))


def test_a_module_added_after_construction_runs_its_own_reset():
    with gpuinit.deferred():
        m = Scaled()
    with torch.device("meta"):
        m.head = nn.Linear(8, 3)
    report = gpuinit.own_init(m, seed=0, device="cpu")
    w = gpuinit.init_(torch.empty(3, 8), "kaiming_uniform", a=math.sqrt(5), seed=0, stream=stream_of("head.weight"))
    assert torch.equal(m.head.weight.detach(), w) and report.untouched == []


def test_a_submodule_alone_gets_what_the_model_s_constructor_did_to_it():
    with gpuinit.deferred():
        m = GPT(CONFIG)
    block = m.transformer.h[1]
    gpuinit.own_init(block, seed=0, device="cpu")
    want = normal("attn.c_proj.weight#2", 0.02 / math.sqrt(2 * CONFIG.n_layer), (16, 16))
    assert torch.equal(block.attn.c_proj.weight.detach(), want)
    assert block.ln_1.weight.eq(1).all() and m.transformer.h[0].attn.c_attn.weight.is_meta


def test_another_thread_builds_as_usual_while_one_records():
    inside, done, built = threading.Event(), threading.Event(), {}

    def other():
        inside.wait()
        built["m"] = nn.Linear(4, 4)
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with gpuinit.deferred():
        inside.set()
        done.wait()
        m = nn.Linear(4, 4)
    t.join()
    assert not built["m"].weight.is_meta and m.weight.is_meta
    gpuinit.own_init(built["m"], seed=0)  # not recorded: its own reset_parameters
    assert torch.nn.init.normal_ is torch.nn.init.__dict__["normal_"] and torch.nn.init.normal_.__module__ == (
        "torch.nn.init")


def test_a_hugging_face_model_built_within_gets_its_own_init_code_as_built_on_meta():
    """Hugging Face skips its init on meta, in the constructor too: own_init runs its _init_weights either way."""
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=4, vocab_size=100, n_positions=16,
                                     bos_token_id=0, eos_token_id=0)
    with gpuinit.deferred():
        a = transformers.GPT2LMHeadModel(config)
    with torch.device("meta"):
        b = transformers.GPT2LMHeadModel(config)
    gpuinit.own_init(a, seed=0, device="cpu")
    gpuinit.own_init(b, seed=0, device="cpu")
    assert gpuinit.fingerprint(a) == gpuinit.fingerprint(b)
    assert a.transformer.wte.weight.std().item() == pytest.approx(0.02, rel=0.2)


def test_contexts_do_not_nest():
    with gpuinit.deferred(), pytest.raises(gpuinit.InitError, match="do not nest"), gpuinit.deferred():
        pass
    with gpuinit.deferred():  # usable again
        m = nn.Linear(2, 2)
    assert m.weight.is_meta


def test_fsdp2_shards_get_the_unsharded_model_s_values(tmp_path):
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    whole, _ = deferred_gpt(seed=2)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rdzv'}", rank=0, world_size=1)
    try:
        with gpuinit.deferred():
            m = GPT(CONFIG)
        for block in m.transformer.h:
            fully_shard(block, mesh=init_device_mesh("cpu", (1,)))
        fully_shard(m, mesh=init_device_mesh("cpu", (1,)))
        gpuinit.own_init(m, seed=2, device="cpu")
        assert gpuinit.fingerprint(m) == gpuinit.fingerprint(whole)
    finally:
        dist.destroy_process_group()
