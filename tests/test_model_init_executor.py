"""gpuinit/model_init/executor.py: fill_model runs a Plan (built by hand here) in one sequence: the dry run on meta,
every check, materialization, gpuinit's fills with the model's own code before or after them, the fixes after the
fills, the buffers' restores and then the buffers' fills."""
import pytest
import torch
from model_init_models import Bare, meta
from torch import nn

import gpuinit
from gpuinit import BackendUnavailableError, InitError
from gpuinit.distributed import stream_of
from gpuinit.model_init.executor import fill_model
from gpuinit.model_init.names import owners, tied
from gpuinit.model_init.plan import OwnCode, Plan

NORMAL = ("normal", {"std": 1.0})


class Halves(nn.Module):
    """Reset code that rescales its weight in place (it reads what is there) and logs when it runs."""

    def __init__(self, log=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(6, 5))
        self.register_buffer("stat", torch.zeros(5))
        self.log = [] if log is None else log

    def reset_parameters(self):
        self.log.append(("code", self.weight.detach().clone()))
        self.weight.data.mul_(0.5)


def plan_of(module, fills=(), *, first=None, skip=None, unwritten=None, **kw):
    """A Plan of ``fills``, with the module's own code (before the fills if ``first``, after them if not) over
    every parameter, the filled ones skipped unless ``skip`` says."""
    params, buffers = tied(module), tied(module, "buffers")
    code = None
    if first is not None:
        skip = frozenset(fqn for fqn, _ in fills) if skip is None else frozenset(skip)
        code = OwnCode(first, tuple(owners(params)), skip, None, unwritten or (lambda names, dry: None))
    return Plan(params, buffers, list(fills), code=code, **kw)


def stream_fill(shape, name, seed, scheme=NORMAL):
    """What gpuinit draws for the tensor named ``name``: its own stream, filled independently."""
    return gpuinit.init_(torch.empty(shape), scheme[0], seed=seed, stream=stream_of(name), **scheme[1])


def test_dry_run_refuses_an_unwritten_tensor_before_anything_is_materialized():
    m = meta(Bare)
    calls = []

    def unwritten(names, dry):
        calls.append((names, dry))
        return f"nobody writes {', '.join(names)}"

    with pytest.raises(InitError, match="^nobody writes free$"):
        fill_model(m, plan_of(m, first=True, unwritten=unwritten), seed=0, device="cpu")
    assert calls == [(["free"], True)]  # from the dry run
    assert all(t.is_meta for t in m.parameters())


def test_an_unwritten_tensor_a_plan_fills_is_no_error():
    m = meta(Bare)
    fill_model(m, plan_of(m, [("free", ("ones", {}))], first=True, unwritten=lambda names, dry: "unwritten"),
               seed=0, device="cpu")
    assert m.free.eq(1).all() and not m.lin.weight.is_meta


def test_a_bad_fill_is_refused_before_anything_is_materialized():
    m = meta(nn.Linear, 3, 4)
    with pytest.raises(InitError, match="bias"):
        fill_model(m, plan_of(m, [("weight", NORMAL), ("bias", ("xavier_uniform", {}))]), seed=0, device="cpu")
    assert m.weight.is_meta and m.bias.is_meta


def test_an_unusable_device_is_refused_before_anything_is_materialized():
    m = meta(Halves)
    with pytest.raises(BackendUnavailableError):
        fill_model(m, plan_of(m, [("weight", NORMAL)]), seed=0, device=f"cuda:{torch.cuda.device_count()}")
    assert m.weight.is_meta and m.stat.is_meta


def test_code_after_the_fills_reads_the_recipe_s_values():
    m = meta(Halves)
    report = fill_model(m, plan_of(m, [("weight", NORMAL)], first=False), seed=5, device="cpu")
    expected = stream_fill((6, 5), "weight", 5)
    assert torch.equal(m.log[-1][1], expected)  # what the code saw
    assert torch.equal(m.weight.detach(), expected * 0.5)
    assert report.as_written == {"mul_": 1}


def test_code_before_the_fills_is_replaced_by_them():
    m = Halves()
    with torch.no_grad():
        m.weight.fill_(4.0)
    report = fill_model(m, plan_of(m, [("weight", NORMAL)], first=True), seed=5)
    assert m.log[-1][1].eq(4).all()  # the code ran, on what was there
    assert torch.equal(m.weight.detach(), stream_fill((6, 5), "weight", 5))
    assert report.as_written == {"mul_": 1}


@pytest.mark.parametrize("first,order", [(True, ["code", "after", "restore"]), (False, ["after", "code", "restore"])])
def test_the_sequence(first, order):
    """Code first: code, fills, after_fills, restores, buffer fills; code after: fills, after_fills, code, ..."""
    log = []
    m = Halves(log)
    fixes = dict(after_fills=[lambda root: log.append(("after", root.weight.detach().clone()))],
                 restores=[lambda root: (log.append(("restore", root.stat.clone())), root.stat.fill_(7.0))],
                 buffer_fills=[("stat", ("ones", {}))])
    fill_model(m, plan_of(m, [("weight", NORMAL)], first=first, **fixes), seed=1)
    assert [what for what, _ in log] == order
    w = stream_fill((6, 5), "weight", 1)
    seen = dict(log)
    assert torch.equal(seen["after"], w)  # after the fills
    assert torch.equal(seen["restore"], torch.zeros(5))  # before the buffers' fills
    assert m.stat.eq(1).all()  # the buffers' fills last
    assert torch.equal(m.weight.detach(), w if first else w * 0.5)


def test_no_code_returns_no_report():
    m = nn.Linear(3, 2)
    assert fill_model(m, plan_of(m, [("weight", NORMAL), ("bias", ("zeros", {}))]), seed=0) is None
    assert torch.equal(m.weight.detach(), stream_fill((2, 3), "weight", 0)) and m.bias.eq(0).all()


class Twice(nn.Module):
    """One tensor registered twice as two Parameter objects over the same memory."""

    def __init__(self):
        super().__init__()
        t = torch.zeros(4, 3)
        self.a, self.b = nn.Parameter(t), nn.Parameter(t)


def test_a_tensor_registered_twice_is_filled_once_for_its_first_name(monkeypatch):
    from gpuinit import jobs

    m = Twice()
    assert tied(m) == {"a": "a", "b": "b"}  # distinct objects: not tied by identity
    written = []
    real = jobs.run
    monkeypatch.setattr(jobs, "run", lambda work, *args: (written.extend(j.name for j in work), real(work, *args)))
    fill_model(m, plan_of(m, [("a", NORMAL), ("b", NORMAL)]), seed=2)
    assert written == ["a"]
    assert torch.equal(m.b.detach(), stream_fill((4, 3), "a", 2)) and m.a.data_ptr() == m.b.data_ptr()


def test_a_built_module_moved_to_a_device_is_filled_there():
    m = Halves()
    fill_model(m, plan_of(m, [("weight", NORMAL)]), seed=3, device="cpu")
    assert torch.equal(m.weight.detach(), stream_fill((6, 5), "weight", 3))


def test_code_that_fails_after_the_dry_run_leaves_the_model_on_meta_as_it_came():
    class LateFailure(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.empty(4, 4))
            self.lin, self.head = nn.Linear(3, 3), nn.Linear(3, 3)
            self.head.weight = self.lin.weight
            self.register_buffer("steps", torch.zeros(2))

        def reset_parameters(self):
            nn.init.normal_(self.w)
            nn.init.zeros_(self.steps)
            if not self.w.is_meta:  # passes the dry run
                raise ValueError("late")

    with torch.device("meta"):
        m = LateFailure()
    with pytest.raises(ValueError, match="late"):
        gpuinit.own_init(m, seed=0, device="cpu")
    assert all(t.is_meta for t in [*m.parameters(), *m.buffers()])
    assert m.head.weight is m.lin.weight
    with pytest.raises(ValueError, match="late"):  # and again: the same call fails the same way
        gpuinit.init_module(m, "own", seed=0, device="cpu")
    assert all(t.is_meta for t in [*m.parameters(), *m.buffers()])
