"""Own-init on a zoo of models (tests/zoo_worker.py: Hugging Face GPT-2, BERT, T5, Llama tied and untied, Mixtral and
Qwen2-MoE with 3-D expert weights, ViT, ResNet, Wav2Vec2; torch's TransformerEncoder, LSTM, GRU, a weight-normed
conv; a torchtitan-style model), each built on the meta device and initialized by its own code with gpuinit serving
the fills, against the same model as its library initializes it: every parameter's law (mean, std, constants,
zero rows, the bounds its init code asked for), ties, buffers exactly, the loss at init; fingerprints the same on
every build and on 1 and 2 FSDP2 ranks (gloo)."""
import math
import os
import socket
import time

import pytest
import torch
import torch.multiprocessing as mp
import zoo_worker
from torch.nn import functional as F
from zoo_reference import ours, reference
from zoo_worker import SEED, VOCAB, ZOO

import gpuinit

Z = 6.0  # every statistical comparison allows Z standard errors of the difference it compares
REF_SEEDS = range(6)  # torch seeds of the references whose losses give the loss's spread


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: one intra-op thread per test process (xdist runs one per core) is the fastest."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def needs(name):
    if ZOO[name][1] == "hf":
        pytest.importorskip("transformers")



# ---- parameters ---------------------------------------------------------------------------------------------

def tolerances(ref):
    """Allowed |difference| of the mean and of the std of two samples of ref's size drawn from ref's law:
    Z standard errors of a difference of two independent estimates, se(mean) = sigma / sqrt(n) and
    se(std) = sigma * sqrt((kurtosis - 1) / (4 n)) (delta method; kurtosis from ref, at least a uniform's 1.8)."""
    n, sigma = ref.numel(), ref.std().item()
    kurtosis = (((ref - ref.mean()) / sigma) ** 4).mean().item()
    se_mean, se_std = sigma / math.sqrt(n), sigma * math.sqrt(max(kurtosis - 1, 0.8) / (4 * n))
    return Z * math.sqrt(2) * se_mean, Z * math.sqrt(2) * se_std


def zero_rows(t):
    return t.reshape(t.shape[0], -1).eq(0).all(1) if t.dim() > 1 and t[0].numel() > 1 else None


def parameter_problems(name, model=None):
    """What differs between own-init's parameters (``model``, by default the cached build) and the reference's."""
    ref, bounds = reference(name)
    model = model if model is not None else ours(name)[0]
    got, problems = dict(model.named_parameters()), []
    assert got.keys() == dict(ref.named_parameters()).keys()
    for pname, r in ref.named_parameters():
        a, r = got[pname].detach().double(), r.detach().double()
        if a.shape != r.shape or a.is_meta or not torch.isfinite(a).all():
            problems.append(f"{pname}: shape {tuple(a.shape)} (reference {tuple(r.shape)}), meta or not finite")
            continue
        if r.min() == r.max():  # a constant (zeros, ones, a fill value): the same, exactly
            if not torch.equal(a, r):
                problems.append(f"{pname}: reference all {r.flatten()[0].item()}, ours {a.unique()[:5].tolist()}")
            continue
        if a.min() == a.max():
            problems.append(f"{pname}: constant {a.flatten()[0].item()}, the reference is not")
            continue
        rows = zero_rows(r)
        if rows is not None and not torch.equal(zero_rows(a), rows):  # padding rows zero, no others
            problems.append(f"{pname}: zero rows {zero_rows(a).nonzero().flatten().tolist()}, reference "
                            f"{rows.nonzero().flatten().tolist()}")
        tol_mean, tol_std = tolerances(r)
        if abs(a.mean() - r.mean()) > tol_mean:
            problems.append(f"{pname}: mean {a.mean():.5g}, reference {r.mean():.5g} (tolerance {tol_mean:.3g})")
        if abs(a.std() - r.std()) > tol_std:
            problems.append(f"{pname}: std {a.std():.5g}, reference {r.std():.5g} (tolerance {tol_std:.3g})")
        if bounds[pname] is not None:
            kind, lo, hi = bounds[pname]
            eps = 4 * torch.finfo(got[pname].dtype).eps * max(abs(lo) if lo > -math.inf else 0,
                                                               abs(hi) if hi < math.inf else 0)
            if a.min() < lo - eps or a.max() > hi + eps:
                problems.append(f"{pname}: range [{a.min():.5g}, {a.max():.5g}] outside the reference's {kind} "
                                f"bounds [{lo:.5g}, {hi:.5g}]")
            # n uniform draws come within 20 (hi - lo) / n of each bound but with probability ~exp(-20)
            slack = 20 * (hi - lo) / a.numel()
            if kind == "uniform" and (a.min() > lo + slack or a.max() < hi - slack):
                problems.append(f"{pname}: range [{a.min():.5g}, {a.max():.5g}] narrower than the reference's "
                                f"uniform [{lo:.5g}, {hi:.5g}]")
    return problems


@pytest.mark.parametrize("name", ZOO)
def test_parameters_follow_the_reference_law(name):
    needs(name)
    problems = parameter_problems(name)
    assert not problems, f"{name}:\n" + "\n".join(problems)


def test_checks_can_fail():
    """The comparison finds a wrong std, a shifted mean, a lost padding row, a changed constant, a wrong bound."""
    model, bert, lstm = (zoo_worker.own_initialized(n) for n in ("llama_untied", "bert", "lstm"))
    with torch.no_grad():
        model.model.layers[0].self_attn.q_proj.weight.mul_(1.2)
        model.model.layers[1].mlp.up_proj.weight.add_(0.003)
        model.model.embed_tokens.weight[5].fill_(0.01)
        model.model.norm.weight[3] = 1.5
        bert.bert.encoder.layer[0].attention.self.query.weight.mul_(0.8)
        lstm.weight_hh_l0.mul_(1.01)  # 1% past uniform(-1/8, 1/8): out of bounds, its std still matching
    problems = "\n".join(parameter_problems("llama_untied", model))
    for expected in ("layers.0.self_attn.q_proj.weight: std", "layers.1.mlp.up_proj.weight: mean",
                     "embed_tokens.weight: zero rows", "model.norm.weight: reference all 1.0"):
        assert expected in problems, problems
    assert "attention.self.query.weight: std" in "\n".join(parameter_problems("bert", bert))
    assert parameter_problems("lstm", lstm) == [p for p in parameter_problems("lstm", lstm)
                                                if p.startswith("weight_hh_l0: range")] != []


# ---- ties, buffers, the report, reproducibility ------------------------------------------------------------

def tie_groups(model):
    groups = {}
    for n, p in model.named_parameters(remove_duplicate=False):
        groups.setdefault(id(p), []).append(n)
    return sorted(sorted(g) for g in groups.values() if len(g) > 1)


@pytest.mark.parametrize("name", ZOO)
def test_ties_buffers_and_report(name):
    needs(name)
    ref, _ = reference(name)
    model, _ = ours(name)
    again, report = ours(name, 1)
    groups = tie_groups(ref)
    assert tie_groups(model) == groups and tie_groups(again) == groups
    params = dict(model.named_parameters(remove_duplicate=False))
    for group in groups:  # one storage under every name
        assert len({params[n].data_ptr() for n in group}) == 1, group
    ref_buffers = dict(ref.named_buffers())
    assert dict(model.named_buffers()).keys() == ref_buffers.keys()
    for bname, b in model.named_buffers():  # rotary tables, position ids, batch-norm statistics: exactly
        assert b.dtype == ref_buffers[bname].dtype and torch.equal(b, ref_buffers[bname]), bname
    assert report.untouched == [] and sum(report.served.values()) >= len(dict(model.named_parameters())) // 2
    assert gpuinit.fingerprint(model) == gpuinit.fingerprint(again)  # two meta builds, init_module and own_init


def test_ties_are_what_the_config_says():
    assert tie_groups(ours("llama_tied")[0]) == [["lm_head.weight", "model.embed_tokens.weight"]]
    assert tie_groups(ours("llama_untied")[0]) == []
    t5 = ours("t5")[0]
    assert t5.encoder.embed_tokens.weight is t5.shared.weight is t5.decoder.embed_tokens.weight


def test_moe_experts_are_3d_parameters():
    """transformers 5 stores a mixture of experts' weights as one (experts, out, in) parameter per projection."""
    for name in ("mixtral", "qwen2_moe"):
        needs(name)
        experts = ours(name)[0].model.layers[0].mlp.experts
        assert {n: p.dim() for n, p in experts.named_parameters()} == {"gate_up_proj": 3, "down_proj": 3}
        assert experts.gate_up_proj.shape[0] == 4 and not torch.equal(experts.gate_up_proj[0], experts.gate_up_proj[1])


def test_encoder_layers_are_drawn_independently():
    """torch's TransformerEncoder deep-copies one layer (its layers start identical); own-init runs each layer's
    init code, each on its own stream."""
    ref, _ = reference("transformer_encoder")
    model, _ = ours("transformer_encoder")
    assert torch.equal(ref.layers[0].linear1.weight, ref.layers[1].linear1.weight)
    assert not torch.equal(model.layers[0].linear1.weight, model.layers[1].linear1.weight)


def test_other_seed_other_values():
    a = gpuinit.fingerprint(ours("gpt2")[0])
    b = gpuinit.fingerprint(zoo_worker.own_initialized("gpt2", seed=SEED + 1))
    assert all(a[k] != b[k] for k in a if "ln_" not in k and not k.endswith("bias"))


# ---- the loss at init -----------------------------------------------------------------------------------------

def loss(name, model):
    kind = ZOO[name][2]
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        if kind in ("lm", "seq2seq", "titan"):
            ids, other = torch.randint(0, VOCAB, (4, 16), generator=g), torch.randint(0, VOCAB, (4, 16), generator=g)
            if kind == "titan":
                return F.cross_entropy(model(ids).flatten(0, 1), ids.flatten()).item()
            return model(input_ids=ids, labels=ids if kind == "lm" else other).loss.item()
        if kind == "image":
            x, y = torch.randn(4, 3, 32, 32, generator=g), torch.randint(0, 10, (4,), generator=g)
            return model(pixel_values=x, labels=y).loss.item()
        if kind == "speech":  # CTC
            x, y = torch.randn(2, 1600, generator=g), torch.randint(1, 32, (2, 5), generator=g)
            return model(input_values=x, labels=y).loss.item()
        x = torch.randn(4, *{"seq": (16, 64), "rnn": (16, 32), "conv": (16, 40)}[kind], generator=g)
        if kind == "seq":  # pre-norm blocks: what they add to the residual stream
            return (model(x) - x).pow(2).mean().item()
        return (model(x)[0] if kind == "rnn" else model(x)).pow(2).mean().item()


@pytest.mark.parametrize("name", ZOO)
def test_loss_at_init(name):
    """Ours is within Z spreads of the references' losses (torch seeds REF_SEEDS); a language model's is near
    log(vocab)."""
    needs(name)
    if name == "transformer_encoder":  # see test_encoder_layers_are_drawn_independently
        refs = []
        for s in REF_SEEDS:
            torch.manual_seed(s)
            refs.append(loss(name, zoo_worker.encoder_with_independent_layers().eval()))
    else:
        refs = [loss(name, reference(name, s)[0]) for s in REF_SEEDS]
    refs = torch.tensor(refs, dtype=torch.float64)
    got, mean, spread = loss(name, ours(name)[0]), refs.mean().item(), refs.std().item()
    assert math.isfinite(got) and abs(got - mean) <= Z * spread * math.sqrt(1 + 1 / len(refs)), (got, refs.tolist())
    if ZOO[name][2] == "lm":
        assert abs(got / math.log(VOCAB) - 1) < 0.03, got


# ---- FSDP2 on 1 and 2 ranks -------------------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WORLD_TIMEOUT = 400  # seconds


def world_dir(tmp_path_factory):
    """A folder of this session, shared by its xdist workers."""
    base = tmp_path_factory.getbasetemp()
    out = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "zoo_world"
    out.mkdir(exist_ok=True)
    return out


@pytest.fixture(autouse=True, scope="module")
def world_started(request, tmp_path_factory):
    """One gloo world of 2 processes for the whole zoo, started with the first test of this module that any xdist
    worker runs (when sharded tests are selected), running beside the other tests; joined at the end."""
    out = world_dir(tmp_path_factory)
    if not any("sharded" in item.name for item in request.session.items):
        yield None
        return
    try:
        os.close(os.open(out / "started", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:  # another worker started it
        yield None
        return
    # spawned, not forked: a fork of a process whose torch already runs threads can deadlock in the child
    ctx = mp.start_processes(zoo_worker.run, args=(2, free_port(), str(out)), nprocs=2, join=False,
                             start_method="spawn")
    try:
        yield ctx
    finally:
        deadline = time.monotonic() + WORLD_TIMEOUT
        try:
            while not ctx.join(timeout=1) and time.monotonic() < deadline:
                pass
        finally:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()


@pytest.fixture(scope="module")
def world(world_started, tmp_path_factory):
    """Both ranks' {(model, mesh size): fingerprint or error}."""
    out, deadline = world_dir(tmp_path_factory), time.monotonic() + WORLD_TIMEOUT
    paths = [out / f"rank{r}.pt" for r in range(2)]
    while not all(p.exists() for p in paths):
        if world_started is not None:
            world_started.join(timeout=0)  # raises when a rank failed
        assert time.monotonic() < deadline, "the gloo world did not finish in time"
        time.sleep(0.2)
    return [torch.load(p) for p in paths]


@pytest.mark.parametrize("name", ZOO)
def test_sharded_fingerprint_equals_single_process(world, name):
    needs(name)
    expected = gpuinit.fingerprint(ours(name)[0])
    runs = [(rank, size, results[(name, size)]) for rank, results in enumerate(world) for size in (2, 1)
            if (name, size) in results]
    assert sorted(size for _, size, _ in runs) == [1, 2, 2]  # both ranks of the world, one rank alone
    for rank, size, got in runs:
        assert not isinstance(got, str), f"rank {rank} of a mesh of {size}: {got}"
        assert got.keys() == expected.keys()
        assert [k for k in got if got[k] != expected[k]] == [], f"rank {rank} of a mesh of {size}"
