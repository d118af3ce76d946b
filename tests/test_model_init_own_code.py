"""gpuinit/model_init/own_code.py: which of the model's own init code runs, in which order, and how (parametrized
modules, Hugging Face's flags and ties), its fills served on gpuinit's stream."""
import math

import pytest
import torch
from torch import nn
from torch.nn.utils.parametrizations import weight_norm

import gpuinit
from gpuinit.distributed import stream_of
from gpuinit.model_init import own_code
from gpuinit.model_init.names import owners, tied
from gpuinit.model_init.plan import OwnCode, Plan


def plan_of(module, modules=None, skip=()):
    """A Plan that runs ``module``'s own code over every parameter and buffer (``modules``: only theirs)."""
    params, buffers = tied(module), tied(module, "buffers")
    code = OwnCode(True, (*owners(params), *owners(buffers)), frozenset(skip), modules, lambda names, dry: None)
    return Plan(params, buffers, [], code=code)


def run(module, seed=0, **kw):
    with torch.no_grad():
        return own_code.run(module, plan_of(module, **kw), seed, dry=False)


class Logged(nn.Module):
    """Appends its name to ``log`` when its reset code runs; its children are ``kids``."""

    def __init__(self, name, log, *kids, method="reset_parameters"):
        super().__init__()
        self.name, self.log = name, log
        self.kids = nn.ModuleList(kids)
        setattr(self, method, lambda: log.append(name))


class Root(Logged):
    def init_weights(self):
        self.log.append("init_weights")


def tree(log):
    shared = Logged("shared", log)
    return Root("root", log, Logged("a", log, Logged("a1", log), Logged("a2", log, method="_reset_parameters"),
                                    shared), Logged("b", log, shared))


def test_children_reset_before_their_parent_then_the_model_s_init_weights():
    log = []
    run(tree(log))
    assert log == ["a1", "a2", "shared", "a", "b", "root", "init_weights"]  # a module shared by two parents: once


def test_only_the_named_modules_reset_and_no_init_weights():
    log = []
    run(tree(log), modules=frozenset({"kids.0.kids.1", "kids.1", ""}))
    assert log == ["a2", "b", "root"]


def test_reset_code_that_needs_arguments_is_not_run():
    log = []

    class Needs(nn.Module):
        def reset_parameters(self, scale):
            log.append(scale)

        def init_weights(self, std):
            log.append(std)

    run(Needs())
    assert log == []


def test_the_code_s_fills_are_served_and_the_report_says_what_ran():
    m = nn.Sequential(nn.Linear(5, 3), nn.LayerNorm(3))
    m.register_buffer("never", torch.full((2,), 7.0))  # no code writes it
    report = run(m, seed=4)
    w = gpuinit.init_(torch.empty(3, 5), "kaiming_uniform", a=math.sqrt(5), seed=4, stream=stream_of("0.weight"))
    assert torch.equal(m[0].weight.detach(), w)
    assert m[1].weight.eq(1).all() and m[1].bias.eq(0).all()
    assert report.served == {"kaiming_uniform": 1, "uniform": 1, "ones": 1, "zeros": 1}
    assert report.untouched == ["never"] and m.never.eq(7).all()


def test_a_dry_run_writes_nothing_and_finds_the_untouched():
    m = nn.Linear(4, 4)
    m.register_buffer("never", torch.zeros(2))
    before = m.weight.detach().clone()
    with torch.no_grad():
        report = own_code.run(m, plan_of(m), 0, dry=True)
    assert torch.equal(m.weight.detach(), before)
    assert report.untouched == ["never"] and report.served == {"kaiming_uniform": 1, "uniform": 1}


def test_a_replaced_tensor_counts_as_written():
    class Cache(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("freqs", torch.zeros(4))

        def reset_parameters(self):
            self.freqs = torch.arange(4.0)  # torchtitan-style: a new tensor, not a fill

    m = Cache()
    report = run(m)
    assert torch.equal(m.freqs, torch.arange(4.0))
    assert report.untouched == [] and report.as_written == {"replaced": 1}


def test_weight_norm_originals_set_from_the_reset_weight():
    m = weight_norm(nn.Linear(6, 5))
    report = run(m, seed=2)
    w = gpuinit.init_(torch.empty(5, 6), "kaiming_uniform", a=math.sqrt(5), seed=2, stream=stream_of("weight"))
    originals = m.parametrizations.weight
    assert torch.allclose(originals.original0, w.norm(dim=1, keepdim=True), atol=1e-6)  # g
    assert torch.equal(originals.original1, w)  # v
    assert torch.allclose(m.weight, w, atol=1e-6)
    assert report.as_written["right_inverse"] == 2 and report.untouched == []


def test_hugging_face_flags_cleared_before_the_code_runs():
    m = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 3))
    for t in [m, m[0], m[1], m[0].weight, m[1].bias]:
        t._is_hf_initialized = True
    run(m)
    assert not any("_is_hf_initialized" in t.__dict__ for t in [m, m[0], m[1], m[0].weight, m[1].bias])


def test_hugging_face_flags_kept_when_only_some_modules_reset():
    m = nn.Sequential(nn.Linear(3, 3))
    m[0]._is_hf_initialized = True
    run(m, modules=frozenset({"0"}))
    assert m[0]._is_hf_initialized


class TiedHF(nn.Module):
    """A Hugging Face-style tie: the model initializes lm_head as its own tensor (zeros), then ties it to the
    embedding, which keeps the embedding's values."""

    all_tied_weights_keys = {"lm_head.weight": "embed.weight"}

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(7, 3)
        self.lm_head = nn.Linear(3, 7, bias=False)
        self.lm_head.weight = self.embed.weight

    def init_weights(self):
        nn.init.normal_(self.embed.weight, std=0.5)
        nn.init.zeros_(self.lm_head.weight)


def test_the_target_of_a_hugging_face_tie_does_not_overwrite_its_source():
    m = TiedHF()
    run(m, seed=6)
    assert m.lm_head.weight is m.embed.weight  # tied again after the code
    emb = gpuinit.init_(torch.empty(7, 3), "normal", std=0.5, seed=6, stream=stream_of("embed.weight#1"))
    assert torch.equal(m.embed.weight.detach(), emb)  # the second fill (after reset_parameters' normal_)


def test_has_reset():
    class Private(nn.Module):
        def _reset_parameters(self):
            pass

    class NotCallable(nn.Module):
        reset_parameters = None

    assert own_code.has_reset(nn.Linear(2, 2)) and own_code.has_reset(Private())
    assert own_code.has_reset(nn.MultiheadAttention(4, 2))
    assert not own_code.has_reset(nn.Sequential()) and not own_code.has_reset(NotCallable())
    assert not own_code.has_reset(nn.ReLU())


def test_a_class_s_reset_method_hidden_by_the_instance_or_reached_through_a_property():
    log = []

    class Counted(nn.Module):
        def reset_parameters(self):
            log.append(("class", self.tag))

    class ByProperty(nn.Module):  # the method is the instance's choice, read through a property
        @property
        def reset_parameters(self):
            return lambda: log.append(("property", self.tag))

    plain, hidden, chosen = Counted(), Counted(), ByProperty()
    plain.tag, hidden.tag, chosen.tag = "plain", "hidden", "chosen"
    hidden.reset_parameters = lambda: log.append(("instance", "hidden"))
    run(nn.ModuleList([plain, hidden, chosen]))
    assert log == [("class", "plain"), ("instance", "hidden"), ("property", "chosen")]


def test_the_post_order_of_the_walk_equals_the_walk_by_named_children():
    from gpuinit.model_init.names import Walk

    log = []
    model = nn.Sequential(tree(log), nn.Linear(2, 2), nn.Sequential(nn.ReLU(), tree(log)))
    model.append(model[0].kids[0])  # a module met again under another parent: once, where first met
    walk = Walk(model)
    assert walk.post is not None
    by_children = Walk(model)
    by_children.post = None  # as a tree whose named_modules is overridden is walked
    assert own_code._post_order(model, walk) == own_code._post_order(model, by_children)
    assert [name for name, _ in own_code._post_order(model, walk)][:3] == [  # a Logged's kids list is a child
        "0.kids.0.kids.0.kids.", "0.kids.0.kids.0.", "0.kids.0.kids.1.kids."]
    assert own_code._post_order(model, walk)[-1] == ("", model)


def test_torch_s_fan_helpers_skip_the_interception_on_plain_tensors_and_are_restored():
    from torch.nn import init

    original = init._calculate_fan_in_and_fan_out
    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.empty(6, 4, 3))

        def reset_parameters(self):
            seen.append(init._calculate_fan_in_and_fan_out is not original)
            seen.append(init._calculate_fan_in_and_fan_out(self.w))
            seen.append(init._calculate_correct_fan(self.w, "fan_out"))
            init.normal_(self.w)

    run(Probe())
    assert seen == [True, (12, 18), 18]
    assert init._calculate_fan_in_and_fan_out is original
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):  # torch's own error, through the helper
        run(type("Bad", (nn.Module,), {"reset_parameters": lambda self: init._calculate_fan_in_and_fan_out(
            torch.empty(3))})())


def test_the_built_in_llama_by_its_own_code_from_meta_and_in_place():
    from gpuinit.models import Llama, LlamaConfig

    config = LlamaConfig(dim=64, n_layers=2, n_heads=4, vocab_size=97, max_seq_len=32)
    fresh = Llama(config)
    with torch.device("meta"):
        m = Llama(config)
    report = gpuinit.own_init(m, seed=3, device="cpu")
    assert report.untouched == [] and report.as_written["reset_buffers"] == 2
    assert torch.equal(m.rotary.cos, fresh.rotary.cos) and torch.equal(m.rotary.sin, fresh.rotary.sin)
    again = Llama(config)
    with torch.no_grad():
        again.rotary.cos.fill_(float("nan"))
    gpuinit.own_init(again, seed=3)
    for (name, a), b in zip(m.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    for recipe in ("own", "torch", "gpt2"):
        with torch.device("meta"):
            other = Llama(config)
        gpuinit.init_module(other, recipe, seed=3, device="cpu")
        assert torch.equal(other.rotary.cos, fresh.rotary.cos), recipe


def test_spectral_norm_state_computed_again_from_the_new_weight_built_or_from_meta():
    from torch.nn.utils.parametrizations import spectral_norm

    def sigma(m):  # the normalized weight's largest singular value, as eval mode computes it (no iteration)
        m.eval()
        return torch.linalg.matrix_norm(m.weight.detach(), ord=2).item()

    torch.manual_seed(0)
    built = spectral_norm(nn.Linear(20, 30))
    report = gpuinit.own_init(built, seed=4)
    with torch.device("meta"):
        planned = spectral_norm(nn.Linear(20, 30))
    assert gpuinit.own_init(planned, seed=4, device="cpu").untouched == []
    for (name, a), b in zip(built.state_dict().items(), planned.state_dict().values(), strict=True):
        assert torch.isfinite(a).all() and torch.equal(a, b), name
    u = built.parametrizations.weight[0]._u
    assert abs(torch.linalg.vector_norm(u).item() - 1) < 1e-5
    assert report.served["normal"] == 2  # the power iteration's start: gpuinit's stream of the buffers' names
    assert abs(sigma(built) - 1) < 0.05 and abs(sigma(planned) - 1) < 0.05
    reference = spectral_norm(nn.Linear(20, 30))  # torch's construction: the same 15 iterations
    assert abs(sigma(reference) - 1) < 0.05


def test_a_parametrization_s_constructor_state_is_an_error_naming_it_unless_a_rule_fills_it():
    from torch.nn.utils import parametrize

    class Scaled(nn.Module):  # keeps a buffer its constructor computed from the tensor
        def __init__(self, w):
            super().__init__()
            self.register_buffer("scale", w.detach().abs().amax().reshape(1))

        def forward(self, x):
            return x / self.scale

        def right_inverse(self, x):
            return x * self.scale

    class Plain(nn.Module):
        def forward(self, x):
            return x * 2

    def model(parametrization=Scaled):
        m = nn.Linear(6, 4)
        parametrize.register_parametrization(m, "weight", parametrization(m.weight) if parametrization is Scaled
                                             else parametrization())
        return m

    with pytest.raises(gpuinit.InitError, match=r"parametrizations\.weight\.0\.scale .*Scaled.*rule"):
        gpuinit.own_init(model(), seed=0)
    with torch.device("meta"):
        meta = model()
    with pytest.raises(gpuinit.InitError, match=r"parametrizations\.weight\.0\.scale"):
        gpuinit.own_init(meta, seed=0, device="cpu")
    assert all(t.is_meta for t in meta.parameters())  # refused before anything was materialized
    m = model()
    ruled = gpuinit.own_init(m, seed=0, rules=[("*.scale", "ones")])
    assert ruled.untouched == ["parametrizations.weight.0.scale"]  # no code wrote it: the rule did
    assert m.parametrizations.weight[0].scale.item() == 1
    with pytest.raises(gpuinit.InitError, match=r"weight is parametrized by Plain, which has no right_inverse.*"
                                                r"parametrizations\.weight\.original"):
        gpuinit.own_init(model(Plain), seed=0)
    m = model(Plain)
    gpuinit.own_init(m, seed=0, rules=[("*.original", "normal", {"std": 0.5})])
    assert torch.equal(m.parametrizations.weight.original, gpuinit.init_(
        torch.empty(4, 6), "normal", seed=0, stream=stream_of("parametrizations.weight.original"), std=0.5))


def test_an_orthogonal_parametrization_keeps_what_its_right_inverse_wrote():
    from torch.nn.utils.parametrizations import orthogonal

    a, b = orthogonal(nn.Linear(16, 16)), orthogonal(nn.Linear(16, 16))
    for m in (a, b):
        assert gpuinit.own_init(m, seed=2).untouched == []
    w = a.weight.detach()
    assert torch.allclose(w @ w.T, torch.eye(16), atol=1e-5)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_a_read_of_values_in_the_dry_run_on_meta_says_what_to_do():
    class Reads(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.empty(4, 4))

        def reset_parameters(self):
            nn.init.normal_(self.w)
            assert self.w.std() > 0

    with torch.device("meta"):
        m = Reads()
    with pytest.raises(gpuinit.InitError, match=r"read a tensor's values during the dry run on the meta device.*"
                                                r"to_empty"):
        gpuinit.own_init(m, seed=0, device="cpu")
    assert m.w.is_meta
    built = Reads().to_empty(device="cpu")
    assert gpuinit.own_init(built, seed=0).served == {"normal": 1}
