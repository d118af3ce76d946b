"""The one executor of whole-model init: ``fill_model(module, plan, ...)`` runs a plan (plan.py) in one sequence,
whoever planned it (by_recipe.py for ``init_module``, by_own_code.py for ``own_init``):

1. on a meta module, the model's own code (if the plan has any) runs dry: every fill it makes is checked, and a
   tensor that nothing writes is an error;
2. every fill job is prepared (checked) on the tensors as they are;
3. the module is materialized (or moved to ``device``), ties restored, and the jobs prepared again on the
   materialized tensors;
4. gpuinit's fills of parameters and the fixes after them (padding rows), with the model's own code, its fills
   served, run before them (own_init) or after them (a recipe's fallback); then the buffers' restores and the
   buffers' fills.
"""
import contextlib
import functools
import gc
import sys
import threading

from .. import backends, config, distributed, jobs
from ..errors import InitError
from . import own_code
from .materialize import materialize
from .names import Walk, by_name, on_meta, refuse_fake


def fill_model(module, plan, *, seed, device=None, progress=None):
    """Materialize ``module`` if it is on the meta device (or move it to ``device``) and fill it as ``plan`` says;
    return the OwnInitReport of its own code's run, or None when the plan runs no code. ``seed``: resolved.
    The $GPUINIT_* settings are read once for the whole call."""
    with config.pinned(backends.names()), collector_paused():
        return _fill_model(module, plan, seed, device, progress)


_paused = [0]  # calls in progress that paused the cyclic garbage collector
_paused_lock = threading.Lock()


@contextlib.contextmanager
def collector_paused():
    """Python's cyclic garbage collector off for the call (as ``timeit`` does), back on after it if it was on: a call
    makes a few objects per tensor and frees them all, and a full collection that thousands of them would set off
    in the middle of it scans every object of the process (90 ms in a process with torch loaded), more than the
    call itself. Nested and concurrent calls turn it back on when the last one ends."""
    with _paused_lock:
        if _paused[0] == 0:
            _paused.append(gc.isenabled())
            gc.disable()
        _paused[0] += 1
    try:
        yield
    finally:
        with _paused_lock:
            _paused[0] -= 1
            if _paused[0] == 0 and _paused.pop():
                gc.enable()


def _fill_model(module, plan, seed, device, progress):
    import torch

    planned = plan.walk is not None and plan.walk.module is module
    walk = plan.walk if planned else Walk(module)
    refuse_fake(walk)
    was_meta = plan.on_meta if planned and plan.on_meta is not None else on_meta(module, walk)
    if was_meta and plan.code is not None:
        _check_written(own_code.run(module, plan, seed, dry=True, walk=walk), plan.code, dry=True)
    param_jobs, buffer_jobs = _jobs(module, plan, seed, walk)  # every check, on the tensors as they are
    if was_meta or device is not None:
        materialize(module, device, plan.params, plan.buffers, meta=was_meta, walk=walk)
        walk.changed()
        param_jobs, buffer_jobs = _jobs(module, plan, seed, walk)  # the materialized tensors
    report, code_first = None, plan.code is not None and plan.code.first
    bar = _progress_bar(param_jobs, progress)
    try:
        with torch.no_grad():
            if code_first:
                report = _run_code(module, plan, seed, walk)
            jobs.run(param_jobs, bar)
            for after in plan.after_fills:
                after(module)
            if plan.code is not None and not code_first:
                report = _run_code(module, plan, seed, walk)
            for restore in plan.restores:
                restore(module)
            jobs.run(buffer_jobs)
    except BaseException:
        if was_meta:  # the model's code failed where the dry run could not tell: the model goes back as it came
            materialize(module, "meta", plan.params, plan.buffers, meta=True, walk=walk, check=False)
            walk.changed()
        raise
    finally:
        if bar:
            bar(0, None)
    return report


def _run_code(module, plan, seed, walk):
    report = own_code.run(module, plan, seed, dry=False, walk=walk)
    _check_written(report, plan.code, dry=False)
    return report


def _check_written(report, code, *, dry):
    missing = [fqn for fqn in report.untouched if fqn not in code.skip]
    if missing and (message := code.unwritten(missing, dry)):
        raise InitError(message)


def _jobs(module, plan, seed, walk):
    """The checked fill jobs of ``plan.fills`` and of ``plan.buffer_fills``; a tensor stored twice under distinct
    objects (a view registered twice) is filled once, for its first name."""
    if not plan.fills and not plan.buffer_fills:
        return [], []
    out, seen, tensors = [], set(), by_name(module, walk)
    for targets in (plan.fills, plan.buffer_fills):
        items = []
        for fqn, (scheme, params) in targets:
            t = tensors[fqn]
            key = _view_key(t)
            if key is not None and key in seen:
                continue
            seen.add(key)
            items.append((t, scheme, params, _stream_of(fqn), fqn))
        out.append(jobs.prepare_all(items, seed=seed))
    return out


_stream_of = functools.lru_cache(maxsize=1 << 16)(distributed.stream_of)  # a SHA-256 per name, once per process


def _view_key(t):
    """What identifies the memory a tensor covers (distributed.storage_key), for plain tensors without building a
    storage object: its first element's address, shape, strides, dtype and device; None for a meta tensor."""
    if type(t) not in _PLAIN:
        import torch

        if not _PLAIN:
            _PLAIN.update((torch.Tensor, torch.nn.Parameter))
        if type(t) not in _PLAIN:
            return distributed.storage_key(t)
    if t.is_meta:
        return None
    return (-1 if t.is_cpu else t.device, t.data_ptr(), t.shape, t.stride(), t.dtype)  # torch.device: slow


_PLAIN: set = set()


def _progress_bar(param_jobs, progress):
    """A rich progress bar of the CPU fills of ``param_jobs``, or None when not shown: call it with (elements done,
    name), then (0, None)."""
    if progress is False or (progress is None and not sys.stderr.isatty()):
        return None
    total = sum(j.numel for j in param_jobs if j.backend.NAME in jobs.HOST_BACKENDS)
    if not (progress or total > 50_000_000):
        return None
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("gpuinit"), BarColumn(), TextColumn("{task.completed:,.0f} elements"),
                   TimeRemainingColumn(), transient=False, console=Console(stderr=True))
    task = bar.add_task("fill", total=total)
    bar.start()

    def advance(n, name):
        bar.update(task, advance=n, description=name or "")
        if name is None:
            bar.stop()

    return advance
