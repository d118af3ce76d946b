"""gpuinit/model_init/intercept.py: each torch.nn.init function's call as a gpuinit (scheme, params), and the Router
that turns a model's fills into gpuinit jobs while serving() intercepts them."""
import inspect

import pytest
import torch
from scipy import stats
from torch import nn

import gpuinit
from gpuinit import jobs
from gpuinit.distributed import stream_of
from gpuinit.model_init.intercept import INIT_NAMES, OwnInitReport, Router, init_spec, serving

# torch.nn.init's defaults, written again (the arguments without one are given in REQUIRED)
REQUIRED = {"constant_": {"val": 0.5}, "sparse_": {"sparsity": 0.25}}
DEFAULTS = {
    "uniform_": ("uniform", {"a": 0.0, "b": 1.0}),
    "normal_": ("normal", {"mean": 0.0, "std": 1.0}),
    "trunc_normal_": ("trunc_normal", {"mean": 0.0, "std": 1.0, "a": -2.0, "b": 2.0}),
    "constant_": ("constant", {"value": 0.5}),
    "ones_": ("ones", {}),
    "zeros_": ("zeros", {}),
    "eye_": ("eye", {}),
    "dirac_": ("dirac", {"groups": 1}),
    "xavier_uniform_": ("xavier_uniform", {"gain": 1.0}),
    "xavier_normal_": ("xavier_normal", {"gain": 1.0}),
    "kaiming_uniform_": ("kaiming_uniform", {"a": 0.0, "mode": "fan_in", "nonlinearity": "leaky_relu"}),
    "kaiming_normal_": ("kaiming_normal", {"a": 0.0, "mode": "fan_in", "nonlinearity": "leaky_relu"}),
    "orthogonal_": ("orthogonal", {"gain": 1.0}),
    "sparse_": ("sparse", {"sparsity": 0.25, "std": 0.01}),
}


def torch_defaults(name):
    bound = inspect.signature(getattr(torch.nn.init, name)).bind(torch.empty(4, 4), **REQUIRED.get(name, {}))
    bound.apply_defaults()
    return bound.arguments


def test_every_torch_init_function_is_intercepted():
    public = {n for n in dir(torch.nn.init) if n.endswith("_") and not n.startswith("_")
              and inspect.isfunction(getattr(torch.nn.init, n))}
    assert set(INIT_NAMES) == public == set(DEFAULTS)


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_init_spec_of_each_function_s_own_defaults(name):
    spec = init_spec(name, torch_defaults(name))
    assert spec == DEFAULTS[name]
    assert all(type(v) is not torch.Tensor for v in spec[1].values())


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_the_spec_draws_what_the_function_draws(name):
    """gpuinit's fill of the spec and torch's own call: the same values where nothing is random, the same law
    (two-sample Kolmogorov-Smirnov) where it is."""
    shape = (6, 4, 3) if name == "dirac_" else (48, 64)
    ours = gpuinit.init_(torch.empty(shape), init_spec(name, torch_defaults(name))[0], seed=11,
                         **init_spec(name, torch_defaults(name))[1])
    torch.manual_seed(11)
    theirs = getattr(torch.nn.init, name)(torch.empty(shape), **REQUIRED.get(name, {}))
    if theirs.unique().numel() <= 2:
        assert torch.equal(ours, theirs)
        return
    assert stats.ks_2samp(ours.flatten().numpy(), theirs.flatten().numpy()).pvalue > 1e-4
    if name == "sparse_":  # ceil(sparsity * rows) zeros in every column
        assert torch.equal(ours.eq(0).sum(0), theirs.eq(0).sum(0))
    if name == "orthogonal_":
        assert torch.allclose(ours @ ours.T, torch.eye(48), atol=1e-5)


def test_init_spec_of_degenerate_and_tensor_arguments():
    assert init_spec("uniform_", {"a": 0.5, "b": 0.5}) == ("constant", {"value": 0.5})
    assert init_spec("normal_", {"mean": 0.25, "std": 0}) == ("constant", {"value": 0.25})
    trunc = {"mean": 3.0, "std": 1.0, "a": -1.0, "b": -1.0}
    assert init_spec("trunc_normal_", trunc) == ("constant", {"value": -1.0})
    assert init_spec("trunc_normal_", {**trunc, "std": 0.0, "b": 2.0}) == ("constant", {"value": 2.0})  # clamped
    spec = init_spec("normal_", {"mean": torch.tensor(1.5), "std": torch.tensor(0.5)})
    assert spec == ("normal", {"mean": 1.5, "std": 0.5}) and type(spec[1]["std"]) is float
    assert init_spec("kaiming_uniform_", {"a": 5 ** 0.5, "mode": "fan_out", "nonlinearity": "relu"}) == (
        "kaiming_uniform", {"a": 5 ** 0.5, "mode": "fan_out", "nonlinearity": "relu"})
    with pytest.raises(KeyError):
        init_spec("uniform", {"a": 0.0, "b": 1.0})


# ---- the Router ---------------------------------------------------------------------------------------

@pytest.fixture
def runs(monkeypatch):
    """The names of the jobs written, one list per jobs.run call."""
    out, real = [], jobs.run

    def spy(work, *args):
        out.append([job.name for job in work])
        return real(work, *args)

    monkeypatch.setattr(jobs, "run", spy)
    return out


def fill(shape, scheme, name, seed, **params):
    return gpuinit.init_(torch.empty(shape), scheme, seed=seed, stream=stream_of(name), **params)


def test_a_fill_replaced_before_it_ran_is_never_written(runs):
    w = nn.Parameter(torch.zeros(8, 8))
    router = Router([("w", w)], seed=3)
    with serving(router):
        w.data.uniform_(-5.0, 5.0)
        w.normal_(0.0, 0.1)
    assert w.eq(0).all() and runs == []  # waiting: nothing written yet
    router.flush()
    assert runs == [["w"]]  # one job: the uniform fill was dropped
    assert torch.equal(w.detach(), fill((8, 8), "normal", "w#1", 3, std=0.1))  # the second fill's stream
    assert router.report.served == {"uniform": 1, "normal": 1} and router.touched == {"w"}


def test_a_fill_through_torch_nn_init_replaced_before_it_ran_is_never_written(runs):
    """torch.nn.init's functions too: looking the tensor up runs nothing that waits (a fill replaced by the next
    fill of the same tensor is dropped, not written first)."""
    w = nn.Parameter(torch.zeros(8, 8))
    router = Router([("w", w)], seed=3)
    with serving(router):
        nn.init.uniform_(w, -5.0, 5.0)
        nn.init.normal_(w, 0.0, 0.1)
        nn.init.zeros_(w)
    assert runs == []
    router.flush()
    assert runs == [["w"]] and w.eq(0).all()
    assert router.report.served == {"uniform": 1, "normal": 1, "zeros": 1}


def test_fills_of_each_target_on_the_stream_of_its_name(runs):
    a, b = torch.empty(4, 5), torch.empty(6)
    router = Router([("x.a", a), ("y.b", b)], seed=9)
    with serving(router):
        nn.init.kaiming_uniform_(a, a=5 ** 0.5)
        nn.init.constant_(b, 0.5)
    router.flush()
    assert runs == [["x.a", "y.b"]]  # waiting jobs run together
    assert torch.equal(a, fill((4, 5), "kaiming_uniform", "x.a", 9, a=5 ** 0.5)) and b.eq(0.5).all()
    assert router.report == OwnInitReport(served={"kaiming_uniform": 1, "constant": 1})


def test_a_partial_write_flushes_waiting_fills_first(runs):
    w = nn.Parameter(torch.zeros(6, 4))
    router = Router([("emb.weight", w)], seed=1)
    with serving(router):
        nn.init.normal_(w)
        w.data[0].mul_(2.0)  # reads the fill: it must be written first
        w.data[1].zero_()  # a row: not a whole tensor, runs as written
    assert runs == [["emb.weight"]]
    expected = fill((6, 4), "normal", "emb.weight", 1)
    expected[0] *= 2
    expected[1] = 0
    assert torch.equal(w.detach(), expected)
    assert router.report.served == {"normal": 1} and router.report.as_written == {"mul_": 1, "zero_": 1}


def test_a_look_at_shapes_waits_a_read_of_values_does_not(runs):
    """Reading a waiting tensor's shape, dtype, strides or ``.data`` (what torch's reset code does between its fills:
    ``_calculate_fan_in_and_fan_out``) runs nothing, so a model's fills wait and run together; a read of its values
    (``sum``) runs them first and sees them."""
    w, b = nn.Parameter(torch.zeros(6, 4)), nn.Parameter(torch.zeros(6))
    router = Router([("l.weight", w), ("l.bias", b)], seed=2)
    with serving(router):
        nn.init.kaiming_uniform_(w, a=5 ** 0.5)
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(w)
        looks = (w.dim(), w.size(1), w.shape, w.dtype, w.stride(), w.numel(), w.data.shape, w.is_contiguous())
        nn.init.uniform_(b, -1 / fan_in ** 0.5, 1 / fan_in ** 0.5)
        assert runs == [] and w.eq(0).all().item() is False  # eq reads the values: both waiting fills ran
    assert runs == [["l.weight", "l.bias"]] and fan_in == 4 and looks[:3] == (2, 4, (6, 4))
    assert torch.equal(w.detach(), fill((6, 4), "kaiming_uniform", "l.weight", 2, a=5 ** 0.5))
    assert torch.equal(b.detach(), fill((6,), "uniform", "l.bias", 2, a=-0.5, b=0.5))


@pytest.mark.parametrize("name", INIT_NAMES)
def test_arguments_are_bound_as_python_binds_them(name):
    """The patched functions read their arguments by a binder made once per function: for every call form (by
    position, by keyword, defaults, mixed) it gives inspect's bind + apply_defaults, and for a call Python would
    refuse it raises the same TypeError."""
    from gpuinit.model_init.intercept import _binder

    f = getattr(torch.nn.init, name)
    signature = inspect.signature(f)
    params = list(signature.parameters)
    t = torch.empty(4, 4)
    values = {"tensor": t, **REQUIRED.get(name, {})}
    extra = {p: signature.parameters[p].default for p in params if p not in values}
    calls = [((t,), dict(REQUIRED.get(name, {}))), ((t,), {**REQUIRED.get(name, {}), **extra})]
    positional = [values.get(p, extra.get(p)) for p in params if signature.parameters[p].kind
                  == inspect.Parameter.POSITIONAL_OR_KEYWORD]
    calls += [(tuple(positional[:k]), {p: values.get(p, extra.get(p)) for p in params[k:]
                                         if signature.parameters[p].kind != inspect.Parameter.VAR_KEYWORD})
              for k in range(1, len(positional) + 1)]
    for args, kwargs in calls:
        want = signature.bind(*args, **kwargs)
        want.apply_defaults()
        assert _binder(f)(*args, **kwargs) == dict(want.arguments), (args, kwargs)
    bad = [((), {}), ((t, *positional[1:], 1.0, 2.0, 3.0), {}), ((t,), {"tensor": t}), ((t,), {"no_such": 1})]
    for args, kwargs in bad:
        with pytest.raises(TypeError) as want:
            signature.bind(*args, **kwargs)
        with pytest.raises(TypeError) as got:
            _binder(f)(*args, **kwargs)
        assert str(got.value) == str(want.value)


def test_repeated_calls_keep_each_argument_s_own_value(runs):
    """A call's arguments are read once per distinct call: a zero keeps its sign, an int and a float of one value
    draw the same, a tensor argument is read each time, and every tensor gets its own stream."""
    ws = [nn.Parameter(torch.full((3, 4), float("nan"))) for _ in range(7)]
    router = Router([(f"w{i}", w) for i, w in enumerate(ws)], seed=4)
    with serving(router):
        nn.init.constant_(ws[0], 0.0)
        nn.init.constant_(ws[1], -0.0)
        nn.init.constant_(ws[2], 0.0)
        nn.init.uniform_(ws[3], -1, 1)
        nn.init.uniform_(ws[4], -1.0, 1.0)
        nn.init.normal_(ws[5], torch.tensor(0.5), 2.0)
        nn.init.normal_(ws[6], torch.tensor(-0.5), 2.0)
    router.flush()
    signs = [bool(torch.signbit(w).all()) for w in ws[:3]]
    assert signs == [False, True, False] and all(w.eq(0).all() for w in ws[:3])
    assert torch.equal(ws[3].detach(), fill((3, 4), "uniform", "w3", 4, a=-1.0, b=1.0))
    assert torch.equal(ws[4].detach(), fill((3, 4), "uniform", "w4", 4, a=-1.0, b=1.0))
    assert torch.equal(ws[5].detach(), fill((3, 4), "normal", "w5", 4, mean=0.5, std=2.0))
    assert torch.equal(ws[6].detach(), fill((3, 4), "normal", "w6", 4, mean=-0.5, std=2.0))


def test_dry_router_checks_and_writes_nothing(runs):
    w = torch.zeros(3, 3)
    router = Router([("w", w)], seed=0, dry=True)
    with serving(router):
        nn.init.xavier_normal_(w)
    router.flush()
    assert w.eq(0).all() and runs == [] and router.touched == {"w"}
    assert router.report.served == {"xavier_normal": 1}


def test_skipped_targets_are_touched_not_filled(runs):
    w, v = torch.zeros(3, 3), torch.zeros(3)
    router = Router([("w", w), ("v", v)], seed=0, skip={"w"})
    with serving(router):
        nn.init.normal_(w)
        nn.init.ones_(v)
    router.flush()
    assert w.eq(0).all() and v.eq(1).all() and runs == [["v"]]
    assert router.touched == {"w", "v"} and router.report.served == {"ones": 1}


def test_what_is_no_whole_floating_target_runs_as_written():
    """A part of a model tensor and an integer fill run as written; a random fill of a tensor that is no model
    tensor (a temporary) is drawn at once from gpuinit's stream of its place, whatever torch's generator says."""
    w, steps, other = torch.zeros(4, 4), torch.zeros((), dtype=torch.int64), torch.empty(4, 4)
    router = Router([("w", w), ("steps", steps)], seed=0)
    torch.manual_seed(5)
    with serving(router):
        nn.init.normal_(other)  # not a model tensor: gpuinit's draw, counted as a temporary
        nn.init.uniform_(w[:2])  # a part of a model tensor: as written, counted
        steps.fill_(3)  # an integer tensor: as written
    router.flush()
    expected = gpuinit.init_(torch.empty(4, 4), "normal", seed=0, stream=stream_of("<temporary>#0"))
    assert torch.equal(other, expected)
    assert w[:2].gt(0).all() and w[2:].eq(0).all()
    assert steps.item() == 3
    assert router.touched == {"w", "steps"} and router.report.served == {"temporary normal": 1}
    assert router.report.as_written == {"uniform_": 1, "fill_": 1}


def test_serving_patches_torch_nn_init_only_within():
    original = torch.nn.init.normal_
    router = Router([], seed=0)
    with serving(router):
        assert torch.nn.init.normal_ is not original
        assert not torch.is_grad_enabled()
    assert torch.nn.init.normal_ is original and torch.is_grad_enabled()
    with pytest.raises(RuntimeError, match="inside"), serving(router):
        raise RuntimeError("inside")
    assert torch.nn.init.normal_ is original
    assert all(getattr(torch.nn.init, n).__module__ == "torch.nn.init" for n in INIT_NAMES)


def test_calls_in_two_threads_at_once_patch_once_and_leave_torch_as_it_was():
    """Thread a enters own-init, then b; a leaves while b is inside, then b: torch.nn.init is torch's own again,
    another thread's torch.nn.init calls were never served, and each model got what it gets alone."""
    import threading

    originals = {n: getattr(torch.nn.init, n) for n in INIT_NAMES}
    inside, release, seen, errors = threading.Barrier(3), {k: threading.Event() for k in "ab"}, {}, []

    class Waits(nn.Module):
        def __init__(self, key):
            super().__init__()
            self.key, self.w = key, nn.Parameter(torch.empty(64, 32))

        def reset_parameters(self):
            nn.init.normal_(self.w, mean=3.0)
            inside.wait(timeout=30)  # both threads inside own-init, and the main thread here
            seen[self.key] = nn.init.normal_ is not originals["normal_"]
            release[self.key].wait(timeout=30)

    models = {k: Waits(k) for k in "ab"}

    def run(key):
        try:
            gpuinit.own_init(models[key], seed=7)
        except BaseException as e:  # noqa: BLE001 - reported by the main thread
            errors.append(e)

    threads = {k: threading.Thread(target=run, args=(k,)) for k in "ab"}
    for t in threads.values():
        t.start()
    outside = torch.empty(1000)
    try:
        inside.wait(timeout=30)
        torch.nn.init.normal_(outside, mean=50.0)  # this thread is in no call: torch's own fill
    finally:
        for k in "ab":  # a leaves first, while b is inside
            release[k].set()
            threads[k].join(timeout=60)
    assert not errors and seen == {"a": True, "b": True}
    assert 49 < outside.mean().item() < 51
    assert all(getattr(torch.nn.init, n) is f for n, f in originals.items())
    alone = Waits("c")
    release["c"] = threading.Event()
    release["c"].set()
    inside = threading.Barrier(1)
    gpuinit.own_init(alone, seed=7)
    assert torch.equal(models["a"].w, alone.w) and torch.equal(models["b"].w, alone.w)
    after = torch.empty(1000)
    torch.nn.init.normal_(after, mean=50.0)
    assert 49 < after.mean().item() < 51


def test_fills_of_views_of_one_buffer_all_run_and_overlapping_ones_in_order():
    """Parameters that are views of one flat buffer (as FSDP's are) each get their fill; where two views overlap,
    the later fill is written last."""

    class Flat(nn.Module):
        def __init__(self, overlap):
            super().__init__()
            flat = torch.zeros(30)
            self.a = nn.Parameter(flat[:12].view(3, 4))
            self.b = nn.Parameter(flat[12 - overlap:24 - overlap].view(3, 4))

        def reset_parameters(self):
            nn.init.normal_(self.a)
            nn.init.uniform_(self.b, 2.0, 3.0)

    alone = {"a": gpuinit.init_(torch.empty(3, 4), "normal", seed=5, stream=stream_of("a")),
             "b": gpuinit.init_(torch.empty(3, 4), "uniform", seed=5, stream=stream_of("b"), a=2.0, b=3.0)}
    disjoint = Flat(0)
    assert disjoint.a.untyped_storage().data_ptr() == disjoint.b.untyped_storage().data_ptr()
    report = gpuinit.own_init(disjoint, seed=5)
    assert report.served == {"normal": 1, "uniform": 1}
    assert torch.equal(disjoint.a, alone["a"]) and torch.equal(disjoint.b, alone["b"])
    overlapping = Flat(4)
    gpuinit.own_init(overlapping, seed=5)
    assert torch.equal(overlapping.b, alone["b"])  # written after a, over a's last row
    assert torch.equal(overlapping.a[:2], alone["a"][:2])


def test_memory_replaced_after_a_fill_keeps_what_replaced_it():
    """``set_`` (which no torch function mode sees) and ``t.data = ...`` after a waiting fill: the fill runs first,
    the replacement stays, and torch's set_ is torch's own again afterwards."""
    original_set = torch.Tensor.set_

    class Replaces(nn.Module):
        def __init__(self):
            super().__init__()
            self.w, self.v = nn.Parameter(torch.empty(4, 4)), nn.Parameter(torch.empty(5))

        def reset_parameters(self):
            nn.init.normal_(self.w)
            with torch.no_grad():
                self.w.set_(torch.zeros(4, 4))
            nn.init.normal_(self.v)
            self.v.data = torch.ones(5)

    m = Replaces()
    report = gpuinit.own_init(m, seed=0)
    assert m.w.eq(0).all() and m.v.eq(1).all()
    assert report.as_written == {"set_": 1, "data =": 1} and report.untouched == []
    assert torch.Tensor.set_ is original_set


def test_the_code_s_own_generator_decides_the_values_as_in_torch():
    """A fill given a torch.Generator draws its seed from it (advancing it, as torch's fill does), so equally seeded
    generators give equal tensors whatever the tensor, the model's seed or the dry run on meta."""

    class Seeded(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c, self.d = (nn.Parameter(torch.empty(4, 4)) for _ in range(4))

        def reset_parameters(self):
            nn.init.normal_(self.a, generator=torch.Generator().manual_seed(3))
            nn.init.normal_(self.b, 0.0, 1.0, torch.Generator().manual_seed(3))
            self.c.normal_(generator=torch.Generator().manual_seed(3))
            g = torch.Generator().manual_seed(3)
            nn.init.normal_(self.d, generator=g)
            self.drawn_after = torch.randint(0, 1 << 30, (1,), generator=g).item()

    m = Seeded()
    assert gpuinit.own_init(m, seed=0).served == {"normal": 4}
    assert torch.equal(m.a, m.b) and torch.equal(m.a, m.c) and torch.equal(m.a, m.d)
    fresh = torch.randint(0, 1 << 30, (1,), generator=torch.Generator().manual_seed(3)).item()
    assert m.drawn_after != fresh  # the fill advanced it, as torch's does (by a draw of its own)
    other = Seeded()
    gpuinit.own_init(other, seed=1)
    assert torch.equal(other.a, m.a)
    with torch.device("meta"):
        planned = Seeded()
    gpuinit.own_init(planned, seed=2, device="cpu")
    assert torch.equal(planned.a, m.a) and planned.drawn_after == m.drawn_after
    assert not torch.equal(m.a, gpuinit.init_(torch.empty(4, 4), "normal", seed=0, stream=stream_of("a")))


def test_a_replaced_fill_of_a_hugging_face_model_is_never_written(monkeypatch):
    """GPT-2's own init fills every Linear and Embedding twice (torch's reset, then _init_weights): each tensor is
    written once, with its last fill's values."""
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(n_layer=4, n_embd=64, n_head=4, vocab_size=100, n_positions=32,
                                     bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config)
    written = []
    run = jobs.run
    monkeypatch.setattr(jobs, "run", lambda work, *a: (written.extend(j.name for j in work), run(work, *a))[1])
    report = gpuinit.own_init(model, seed=0)
    distinct = len({id(t) for t in [*model.parameters(), *model.buffers()] if t.is_floating_point()})
    assert sum(report.served.values()) > len(written) == len(set(written)) == distinct
    ref = transformers.GPT2LMHeadModel(config)
    gpuinit.own_init(ref, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), ref.state_dict().values(), strict=True))
    wte = model.transformer.wte.weight
    assert abs(wte.std().item() - config.initializer_range) < 0.003  # the last fill's (0.02), not the first's (1)
