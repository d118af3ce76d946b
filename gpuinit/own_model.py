"""``own_init``: run a model's own initialization code with every fill it makes served by gpuinit (gpuinit/own.py).

The code that runs, in this order: each module's ``reset_parameters()`` (or ``_reset_parameters()``), children
before their parent as construction runs them, then the model's own ``init_weights()`` (a Hugging Face model's
``_init_weights`` on every module, a torchtitan-style model's ``init_weights()``). A meta model is first run
dry on the meta device, which checks every fill and finds the tensors no code writes, before anything is
materialized.
"""
import inspect
import sys

from . import distributed, jobs, modules, seeding
from .errors import InitError
from .own import OwnInitReport, Router, _mode, _Patched

__all__ = ["OwnInitReport", "own_init"]


def own_init(module, *, seed=None, device=None, rules=None):
    """Initialize ``module`` in place by its own code on gpuinit's stream; return an ``OwnInitReport``.

    ``device``: where a meta module is materialized (default: CUDA when available, else CPU), or where a
    materialized one is moved. ``rules``: ``(name pattern, scheme, params)`` as in ``init_module``; a tensor a
    rule names is filled by the rule after the code ran (the code's fills of it are dropped). On a meta
    module every parameter and buffer must be written by the code or named by a rule.
    """
    import torch

    seed = seeding.resolve_seed(seed, module)
    rules = modules._check_rules(rules)
    param_names, buffer_names = modules.tied(module), modules.tied(module, "buffers")
    modules._check_patterns(rules, param_names, buffer_names)
    ruled_params, ruled_buffers = _ruled(param_names, rules, modules._rule_for), _ruled(
        buffer_names, rules, lambda names, r: modules._rule_for(names, modules._buffer_rules(r, names[0])))
    skip = {fqn for fqn, _ in ruled_params + ruled_buffers}
    was_meta = any(t.is_meta for t in modules._tensors(module))
    if was_meta:
        dry = _run(module, param_names, buffer_names, seed, skip, dry=True)
        missing = [n for n in dry.untouched if n not in skip]
        if missing:
            raise InitError(f"own init: no init code writes {', '.join(missing)} (set in the constructor, which "
                            "does not run on a meta model); add a rule naming them")
        modules._jobs(module, ruled_params, ruled_buffers, seed=seed)  # the rules' checks, on meta
    if was_meta or device is not None:
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        modules._probe(device, {t.dtype for t in modules._tensors(module) if t.is_floating_point()})
        if was_meta:
            module.to_empty(device=device)
        else:
            module.to(device)
        modules._retie(module, param_names, "parameters")
        modules._retie(module, buffer_names, "buffers")
    param_jobs, buffer_jobs = modules._jobs(module, ruled_params, ruled_buffers, seed=seed)
    report = _run(module, param_names, buffer_names, seed, skip, dry=False)
    with torch.no_grad():
        jobs.run(param_jobs + buffer_jobs)
    return report


def _ruled(names, rules, rule_for):
    """[(owner name, (scheme, params))] of the tensors a rule names, under any of their names."""
    out = []
    for fqn, aliases in modules._aliases(names).items():
        spec = rule_for(aliases, rules)
        if spec is not None:
            out.append((fqn, spec))
    return out


def _run(module, param_names, buffer_names, seed, skip, *, dry):
    import torch

    targets = [(fqn, modules._param(module, fqn)) for names in (param_names, buffer_names)
               for fqn, owner in names.items() if owner == fqn]
    router = Router(targets, seed=seed, skip=skip, dry=dry)
    _clear_hf_flags(module)
    untied = _untie_hf_targets(module, param_names)
    try:
        with torch.no_grad(), _Patched(router), _mode(router):
            for prefix, m in _post_order(module):
                _reset(m, prefix, router)
            _model_init(module)
    finally:
        for (owner, name), t in untied.items():
            owner._parameters[name] = t
    router.flush()
    router.derived.clear()  # it holds model tensors: to_empty swaps them out only when nothing else does
    for fqn, t in targets:  # a tensor the code replaced (``self.freqs_cis = ...``, as torchtitan does) is written
        if fqn not in router.touched and modules._param(module, fqn) is not t:
            router.touched.add(fqn)
            router.report.as_written["replaced"] += 1
    router.report.untouched = [fqn for fqn, _ in targets if fqn not in router.touched]
    return router.report


def _untie_hf_targets(module, param_names):
    """Hugging Face initializes the target of a tie (``lm_head.weight``) as a tensor of its own and then ties it to
    the source (``embed_tokens.weight``), which keeps the source's values (its padding row zero): while the code
    runs, each target is a meta stand-in whose fills go nowhere. Returns {(module, name): the tied parameter}."""
    import torch

    keys = getattr(module, "all_tied_weights_keys", None)
    saved = {}
    for target, source in keys.items() if isinstance(keys, dict) else ():
        if target not in param_names or param_names[target] != param_names.get(source):
            continue  # not tied in this model
        owner_name, _, name = target.rpartition(".")
        owner = module.get_submodule(owner_name) if owner_name else module
        t = owner._parameters[name]
        saved[(owner, name)] = t
        owner._parameters[name] = torch.nn.Parameter(torch.empty(t.shape, dtype=t.dtype, device="meta"),
                                                     requires_grad=t.requires_grad)
    return saved


def _post_order(m, prefix="", seen=None):
    """(name prefix, module) with children before their parent, each module once."""
    seen = set() if seen is None else seen
    if id(m) in seen:
        return
    seen.add(id(m))
    for name, child in m.named_children():
        yield from _post_order(child, f"{prefix}{name}.", seen)
    yield prefix, m


def _reset(m, prefix, router):
    fn = getattr(m, "reset_parameters", None)
    if not callable(fn):
        fn = getattr(m, "_reset_parameters", None)
    if not callable(fn) or not _no_args(fn):
        return
    if getattr(m, "parametrizations", None) is None:
        fn()
        return
    _reset_parametrized(m, prefix, fn, router)


def _reset_parametrized(m, prefix, fn, router):
    """A parametrized module (e.g. weight_norm): its reset fills each parametrized tensor as a plain tensor
    named as the module calls it, whose ``right_inverse`` then sets the originals, as registering the
    parametrization on a constructed module does."""
    import torch
    from torch.nn.utils import parametrize

    names = list(m.parametrizations.keys())
    temps = {n: torch.empty_like(getattr(m, n)) for n in names}
    for n, t in temps.items():
        router.add(f"{prefix}{n}", t)
    with parametrize.cached():
        for n, t in temps.items():
            parametrize._cache[(id(m), n)] = t
        fn()
    router.flush()
    for n, t in temps.items():
        plist = m.parametrizations[n]
        if any(distributed.is_dtensor(o) for o in [*plist.parameters(), *plist.buffers()]):
            _set_sharded_originals(plist, t, router)
        else:
            setattr(m, n, t)  # the originals are set (Tensor.set_, which no torch function mode sees)
        for original in [*plist._parameters, *plist._buffers]:
            router.touched.add(f"{prefix}parametrizations.{n}.{original}")
            router.report.as_written["right_inverse"] += 1


def _set_sharded_originals(plist, value, router):
    """``right_inverse`` of a parametrization over DTensors (FSDP2): each original is written in place, its own
    shard of the value redistributed to its placements (``set_`` would swap out the shard FSDP2 owns)."""
    import torch

    router.busy = True  # the writes of right_inverse are not the model's code
    try:
        with torch.no_grad():
            for p in reversed(plist):
                value = p.right_inverse(value)
            values = [value] if plist.is_tensor else list(value)
            names = ["original"] if plist.is_tensor else [f"original{i}" for i in range(len(values))]
            for name, v in zip(names, values, strict=True):
                original = getattr(plist, name)
                if distributed.is_dtensor(original):
                    v = v.redistribute(original.device_mesh, original.placements).to_local()
                    original = original.to_local()
                original.copy_(v)
    finally:
        router.busy = False


def _model_init(module):
    """The model's own whole-model init: Hugging Face's ``init_weights`` (``_init_weights`` on every module,
    then tying) or a torchtitan-style ``init_weights()``."""
    fn = getattr(module, "init_weights", None)
    if not (callable(fn) and _no_args(fn)):
        return
    own_class = _unwrapped_class(module)
    if own_class is type(module) or not hasattr(own_class, "is_custom_code"):
        fn()
        return
    # Hugging Face skips parameter-less modules (GPT-2's attention, which rescales c_proj; T5's root, which
    # fills the shared embedding) of "custom code" models: it must not take FSDP2's FSDP<Model> class for that.
    module.is_custom_code = own_class.is_custom_code
    try:
        fn()
    finally:
        del module.is_custom_code


def _unwrapped_class(module):
    """The module's class under the subclass FSDP2's ``fully_shard`` makes of it (bases: FSDPModule, class)."""
    cls = type(module)
    fsdp = sys.modules.get("torch.distributed.fsdp")
    wrapper = getattr(fsdp, "FSDPModule", None)
    while wrapper is not None and len(cls.__bases__) == 2 and cls.__bases__[0] is wrapper:
        cls = cls.__bases__[1]
    return cls


def _no_args(fn):
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)


def _clear_hf_flags(module):
    """Hugging Face marks initialized modules and tensors and skips them later: start from a fresh model."""
    for m in module.modules():
        m.__dict__.pop("_is_hf_initialized", None)
    for t in modules._tensors(module):
        if "_is_hf_initialized" in getattr(t, "__dict__", {}):
            del t._is_hf_initialized
