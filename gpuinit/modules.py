"""``init_module``: a torch module, typically built on the meta device, materialized and filled in place.

Each parameter's values come from the stream named by its fully qualified name (``stream_of``), so
they do not depend on construction order, on how many parameters exist elsewhere, or on which rank
holds which shard. A recipe says what each layer type draws; ``rules`` override it by name.
"""
import sys
from typing import Any, NamedTuple

from . import backends, distributed, jobs, seeding
from .errors import BackendUnavailableError, InitError
from .module_rules import _aliases, _check_patterns, _check_rules, _plan_buffers, _rule_for, tied
from .module_rules import _buffer_rules as _buffer_rules  # gpuinit.own_model reads it here
from .recipes import OWN_RECIPES, RECIPES, _kinds, _residual_outputs, _spec, n_layers


def has_reset(module, fqn):
    from .fallback import has_reset as _has_reset

    return _has_reset(module, fqn)


def reset_fallback(module, fqns, *, seed, dry=False):
    from .fallback import reset_fallback as _reset_fallback

    return _reset_fallback(module, fqns, seed=seed, dry=dry)


# ---- planning (everything checked before anything is written) --------------------------------------

class PlanEntry(NamedTuple):
    """One parameter of plan_module's plan (unpackable as a 4-tuple)."""

    fqn: str
    tensor: Any
    spec: Any  # (scheme, params), or None when its module's own reset code fills it
    module: Any


def _retie(module, names, kind):
    """Register each tied tensor again under all its names (``to_empty`` and ``to`` make a copy per name)."""
    slot = "_parameters" if kind == "parameters" else "_buffers"
    for fqn, owner in names.items():
        if fqn != owner:
            mod, _, name = fqn.rpartition(".")
            getattr(module.get_submodule(mod) if mod else module, slot)[name] = _param(module, owner)


def plan_module(module, recipe="torch", rules=None, *, fallback=False):
    """[PlanEntry(fully qualified name, tensor, (scheme, params), owner module)] for every parameter (a tied one once,
    under its first name); raises for any parameter that neither the recipe nor a rule covers, unless
    ``fallback``: then its spec is None (its module's own reset code fills it: gpuinit/fallback.py)."""
    if recipe not in RECIPES:
        raise InitError(f"unknown recipe {recipe!r}; recipes: {sorted([*RECIPES, *OWN_RECIPES])}")
    rules = _check_rules(rules)
    names = tied(module)
    aliases = _aliases(names)
    ctx = {"root": module, "n_layers": n_layers(module), "residual": _residual_outputs(module)}
    asks, owners = {}, {}  # the recipe is asked only for parameters that no rule covers
    for mname, m in module.named_modules():
        kind = _kinds(m)
        for pname, p in m.named_parameters(recurse=False):
            fqn = f"{mname}.{pname}" if mname else pname
            if names.get(fqn, fqn) == fqn:
                owners[fqn] = (m, p)
                asks.setdefault(fqn, (kind, m, pname, mname))
        if kind == "mha" and m.out_proj.bias is not None:  # MultiheadAttention zeroes its out_proj's bias
            asks[f"{mname}.out_proj.bias" if mname else "out_proj.bias"] = (kind, m, "out_proj.bias", mname)
    plan, missing = [], []
    for fqn, (m, p) in owners.items():
        spec = _rule_for(aliases.get(fqn, [fqn]), rules)
        if spec is None:
            kind, owner, pname, mname = asks[fqn]
            spec = _spec(RECIPES[recipe], kind, owner, pname, {**ctx, "module_name": mname})
        if spec is None and not (fallback and has_reset(module, fqn)):
            missing.append(f"{fqn} ({type(m).__name__})")
        plan.append(PlanEntry(fqn, p, spec, m))
    if missing:
        raise InitError(f"recipe {recipe!r} and the rules cover no scheme for: {', '.join(missing)}"
                        f"{' (and their modules have no reset_parameters)' if fallback else ''}; add a rule "
                        "(name pattern, scheme, params) for them, or use recipe 'own'")
    return plan


# ---- init_module -------------------------------------------------------------------------------------

def init_module(module, recipe="torch", *, seed=None, device=None, rules=None, progress=None, backend=None):
    """Materialize ``module`` (``to_empty`` on ``device`` when it is on the meta device) and fill every
    parameter and buffer in place; return it.

    Args:
        recipe: "torch" (each layer's default ``reset_parameters`` distribution), "gpt2" (normal 0.02,
            residual output projections scaled by 1/sqrt(2 * layers), zero biases, unit norms),
            "xavier", "he", "lecun" (weights by the scheme, biases zero), "own" (the module's own init code:
            every ``reset_parameters()``, then its ``init_weights()``, each fill served by gpuinit:
            gpuinit.own_init), "hf" (the same, for a Hugging Face model: its ``_init_weights``).
        seed: 64-bit, or a torch / NumPy generator or SeedSequence (gpuinit.seeding.resolve_seed: without one,
            gpuinit.manual_seed's source, else torch's global generator); a parameter's values are a function
            of (seed, its fully qualified name, index).
        device: where a meta module is materialized (default: CUDA when available, else CPU).
        rules: ordered ``(name pattern, scheme, params)`` overriding the recipe (``fnmatch`` patterns on
            fully qualified names of parameters and buffers), e.g. ``("*.wo.weight", "normal", {"std": 0.002})``.
            A rule fills a buffer only when its pattern spells the buffer's name after the last dot
            (``*.running_mean``): wildcards there match parameters. A pattern that matches nothing is an error.
        progress: a progress bar: True, False, or None (shown when a CPU fill is large and stderr is a tty).
        backend: the backend of every fill (gpuinit.backends.names()); default: by each tensor's type.

    Tied parameters (one tensor under several names) are filled once, from the stream of their first name
    in ``named_parameters`` order, and stay tied after materialization.
    Buffers that are not parameters are restored as the module defines them: ``reset_running_stats()``
    (batch norm), ``reset_buffers()`` (e.g. rotary caches), a Hugging Face model's ``_init_weights`` for
    its parameter-free modules (rotary embeddings), or a rule; a buffer of a meta module that none of
    these covers is an error.
    Parameters are DTensors under FSDP2 / tensor parallelism: each rank fills its local shard.
    Every rule, parameter and buffer is checked before anything is written or materialized.
    """
    with backends.using(backend):
        return _init_module(module, recipe, seed=seed, device=device, rules=rules, progress=progress)


def _init_module(module, recipe, *, seed, device, rules, progress):
    import torch

    if recipe in OWN_RECIPES:
        from .own_model import own_init

        if recipe == "hf" and not (callable(getattr(module, "_init_weights", None)) and hasattr(module, "config")):
            raise InitError("recipe 'hf' runs a Hugging Face model's own _init_weights, and this module has none "
                            "(no config and _init_weights); recipe 'own' runs any module's own init code")

        own_init(module, seed=seed, device=device, rules=rules)
        return module
    seed = seeding.resolve_seed(seed, module)
    rules = _check_rules(rules)
    plan = plan_module(module, recipe, rules, fallback=True)
    own = [fqn for fqn, _, spec, _ in plan if spec is None]  # filled by their module's reset code
    plan = [entry for entry in plan if entry.spec is not None]
    param_names = tied(module)
    buffer_names = tied(module, "buffers")
    _check_patterns(rules, param_names, buffer_names)
    was_meta = any(t.is_meta for t in _tensors(module))
    if own and was_meta and (left := reset_fallback(module, own, seed=seed, dry=True)):
        raise InitError(f"recipe {recipe!r} and the rules cover no scheme for {', '.join(left)}, and their modules' "
                        "reset code does not write them; add a rule (name pattern, scheme, params) for them")
    buffer_actions, buffer_rules = _plan_buffers(module, rules, buffer_names, was_meta)
    targets = [(fqn, spec) for fqn, _, spec, _ in plan]
    param_jobs, buffer_jobs = _jobs(module, targets, buffer_rules, seed=seed)  # every check, on the tensors as they are
    moved = was_meta or device is not None
    if moved:
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        _probe(device, {t.dtype for t in _tensors(module) if t.is_floating_point()})
        if was_meta:
            module.to_empty(device=device)
        else:
            module.to(device)
        _retie(module, param_names, "parameters")
        _retie(module, buffer_names, "buffers")
        param_jobs, buffer_jobs = _jobs(module, targets, buffer_rules, seed=seed)  # the materialized tensors
    bar = _progress_bar(sum(j.numel for j in param_jobs if j.backend.NAME in jobs.HOST_BACKENDS), progress)
    with torch.no_grad():
        jobs.run(param_jobs, bar)
        for fqn, _, _, m in plan:
            _zero_padding_row(m, fqn, _param(module, fqn))
        if own and (left := reset_fallback(module, own, seed=seed)):
            raise InitError(f"the reset code of {', '.join(left)} did not write them")
        for action in buffer_actions:
            action(module)
        jobs.run(buffer_jobs)
    if bar:
        bar(0, None)
    return module


def _jobs(module, *target_lists, seed):
    """A list of checked fill jobs per list of (name, (scheme, params)); a tensor stored twice under distinct
    objects (a view registered twice) is filled once, for its first name."""
    out, seen = [], set()
    for targets in target_lists:
        out.append([])
        for fqn, (scheme, params) in targets:
            t = _param(module, fqn)
            key = distributed.storage_key(t)
            if key is not None and key in seen:
                continue
            seen.add(key)
            out[-1].append(jobs.prepare(t, scheme, params, seed=seed, stream=distributed.stream_of(fqn), name=fqn))
    return out


def _probe(device, dtypes):
    """Raise, before materializing, when no backend fills tensors of these dtypes on ``device``."""
    import torch

    for dtype in dtypes:
        try:
            probe = torch.empty(0, dtype=dtype, device=device)
        except (RuntimeError, AssertionError) as e:  # torch without CUDA asserts
            raise BackendUnavailableError(f"cannot materialize on {device}: {e}") from e
        try:
            jobs.prepare(probe, "zeros", {}, seed=0)
        except (InitError, BackendUnavailableError) as e:
            raise type(e)(f"cannot fill {dtype} tensors on {device}: {e}") from e


def _tensors(module):
    yield from module.parameters()
    yield from module.buffers()


def _param(module, fqn):
    owner, _, name = fqn.rpartition(".")
    return getattr(module.get_submodule(owner) if owner else module, name)


def _progress_bar(total, progress):
    """A rich progress bar, or None when not shown: call it with (elements done, name), then (0, None)."""
    if not (progress if progress is not None else (total > 50_000_000 and sys.stderr.isatty())):
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


def _zero_padding_row(m, fqn, t):
    """Embeddings keep their padding row at zero (the same on every recipe, as torch and HF do)."""
    pad = getattr(m, "padding_idx", None)
    if pad is None or not fqn.endswith("weight") or _kinds(m) != "embedding":
        return
    local, _, offsets = distributed.local_block(t) if distributed.is_dtensor(t) else (t, None, (0, 0))
    row = pad - offsets[0]
    if 0 <= row < local.shape[0]:
        local[row].zero_()
