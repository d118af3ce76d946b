"""bench/host.py's Triton case: the host side of the Triton backend's launches on the small-tensor model, up to
the kernel call, with no GPU needed.

Everything that runs is gpuinit's own code, as ``init_module(backend="triton")`` runs it on CUDA tensors:
``jobs.prepare`` (backend selection, checks, the draw fitted to each tensor), ``triton_backend.fill_group`` (each
tensor's launch geometry, the grouping by device, dtype, kind and alignment, each group's table rows and owner
vector and their copies to the tensors' device) and ``triton_backend.fill`` for one tensor (geometry, the
kernel's compile-time options, its meta vector). Only the launch itself is replaced, in this process alone:
kernels/triton_fill.py's ``fill_kernel`` and ``group_kernel`` become ``StubKernel``s, whose ``[grid](...)``
counts the launch and returns (Triton's own launcher, its argument binding and the driver call are what is
left out). Without CUDA the tensors are CPU tensors, and the backend's ``available`` and ``accepts`` are
patched here to take them (as they are on a GPU); the constant fills (LayerNorm weights and biases) are the
backend's real ``t[...] = value``, which on a GPU is torch's own fill launch.
"""
import contextlib
import importlib
import time

import torch

import gpuinit
from gpuinit.backends import triton_backend as tb
from gpuinit.draws import ELEMENTWISE
from gpuinit.models import Llama, LlamaConfig
from gpuinit_bench.small_tensors import small_model

RECIPE = "torch"  # the same distributions as reset_parameters, the reference of bench/host.py's ratios
CASES = {"group": "triton fill_group(jobs), launch stubbed",
         "each": "triton fill(job) per tensor, launch stubbed",
         "module": "init_module(backend='triton') in place, launch stubbed"}


class StubKernel:
    """Stands in for a @triton.jit kernel: ``kernel[grid](*args, **kwargs)`` counts the launch and its programs,
    then returns without launching anything."""

    def __init__(self):
        self.launches = self.programs = 0

    def __getitem__(self, grid):
        self.programs += grid[0]
        return self._launch

    def _launch(self, *args, **kwargs):
        self.launches += 1


@contextlib.contextmanager
def stubbed(device):
    """Within the block the Triton backend's kernels are StubKernels ({name: stub}) and, off CUDA, the backend
    takes torch tensors on ``device``; everything is put back on exit (gpuinit's memo of checked calls may still
    hold the backend it chose for ``backend="triton"`` calls on those tensors: no later case makes them)."""
    kt = importlib.import_module("gpuinit.kernels.triton_fill")  # the module triton_backend launches from
    stubs = {name: StubKernel() for name in ("fill_kernel", "group_kernel")}
    patches = dict(stubs)
    if device.type != "cuda":
        patches.update(available=lambda: None,
                       accepts=lambda array: isinstance(array, torch.Tensor) and array.device.type == device.type)
    saved = {}
    try:
        for name, value in patches.items():
            module = kt if name in stubs else tb
            saved[module, name] = getattr(module, name)
            setattr(module, name, value)
        yield stubs
    finally:
        for (module, name), real in saved.items():
            setattr(module, name, real)


def _count(stubs):
    """(launches, programs) of the stubs so far."""
    return sum(s.launches for s in stubs.values()), sum(s.programs for s in stubs.values())


def measure(timer, device, width, layers):
    """{"tensors", "seconds": {case name: seconds for the whole model}, "launches": {case name: Triton launches
    per run}, "jobs": {"elementwise", "other"}}; each case is checked to reach the stubbed launches."""
    with torch.device(device):
        model = small_model(width, layers)
    n = sum(1 for _ in model.parameters())
    with stubbed(device) as stubs:
        jobs = _jobs_of(model)
        if len(jobs) != n or any(j.backend is not tb for j in jobs):
            raise AssertionError(f"init_module handed {len(jobs)} of {n} tensors to triton's fill_group")
        elementwise = sum(j.draw.kind in ELEMENTWISE for j in jobs)
        runs = {"group": lambda: tb.fill_group(jobs), "each": lambda: [tb.fill(j) for j in jobs],
                "module": lambda: gpuinit.init_module(model, RECIPE, seed=0, backend="triton")}
        before = _count(stubs)[0]
        tb.fill_group(jobs)  # the kernel launches of a grouped fill (constants of float32 values join them)
        kernels = _count(stubs)[0] - before
        expected = {"group": kernels, "each": elementwise, "module": kernels}
        seconds, launches = {}, {}
        for key, run in runs.items():
            before = _count(stubs)
            run()
            got, programs = (a - b for a, b in zip(_count(stubs), before, strict=True))
            if got != expected[key] or got < 1 or programs < got:
                raise AssertionError(f"{CASES[key]}: {got} stubbed launches of {programs} programs, "
                                     f"{expected[key]} expected")
            launches[CASES[key]] = got
            seconds[CASES[key]] = timer.best(run)
    return {"tensors": n, "seconds": seconds, "launches": launches,
            "jobs": {"elementwise": elementwise, "other": n - elementwise}}


MODEL_CASES = {"ready": "meta -> init_module(device=..., backend='triton'), launches stubbed",
               "floor": "meta -> to_empty(device=...) alone"}


def measure_model(timer, device, params):
    """{"params", "tensors", "seconds": {case name: seconds}, "launches"}: a gpuinit Llama of about ``params``
    bfloat16 parameters, built on meta before each timed run (untimed: any init builds it so), made ready on
    ``device`` by ``init_module(backend="triton")`` with the launches stubbed (materialization, every job, each
    group's table and programs: gpuinit's whole host side), against ``to_empty`` alone (the materialization any
    init pays). The best of ``timer.repeat`` runs each, interleaved."""
    cfg = LlamaConfig.with_params(params)

    def meta():
        return Llama(cfg, device="meta", dtype=torch.bfloat16)

    runs = {MODEL_CASES["ready"]: lambda m: gpuinit.init_module(m, seed=0, device=device, backend="triton"),
            MODEL_CASES["floor"]: lambda m: m.to_empty(device=device)}
    with stubbed(device) as stubs:
        before = _count(stubs)[0]
        runs[MODEL_CASES["ready"]](meta())  # warm-up
        launches = _count(stubs)[0] - before
        if launches < 1:
            raise AssertionError("init_module of the Llama reached no stubbed launch")
        best = dict.fromkeys(runs, float("inf"))
        for _ in range(timer.repeat):
            for name, run in runs.items():
                m = meta()
                timer.sync()
                t = time.perf_counter()
                run(m)
                timer.sync()
                best[name] = min(best[name], time.perf_counter() - t)
                del m
    probe = meta()
    return {"params": sum(p.numel() for p in probe.parameters()), "tensors": sum(1 for _ in probe.parameters()),
            "seconds": best, "launches": launches}


def _jobs_of(model):
    """The jobs ``init_module(model, RECIPE, backend="triton")`` hands to ``fill_group`` (it fills them too)."""
    seen, real = [], tb.fill_group

    def record(jobs):
        seen.extend(jobs)
        return real(jobs)

    tb.fill_group = record
    try:
        gpuinit.init_module(model, RECIPE, seed=0, backend="triton")
    finally:
        tb.fill_group = real
    return seen
