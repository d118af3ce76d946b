"""The model's own init code, run with its fills served by gpuinit (intercept.py): which code runs and how.

In this order: each module's ``reset_parameters()`` (or ``_reset_parameters()``) and ``reset_buffers()``,
children before their parent as construction runs them, then the model's own ``init_weights()`` (a Hugging Face
model's ``_init_weights`` on every module, a torchtitan-style model's ``init_weights()``); a recipe's fallback
(by_recipe.py) runs the reset code of some modules only.
"""
import contextlib
import functools
import inspect
import sys

from .. import distributed
from ..errors import InitError
from . import deferred
from .intercept import Router, serving
from .names import Walk, by_name

RESET_METHODS = ("reset_parameters", "_reset_parameters")


def run(module, plan, seed, *, dry, walk=None):
    """Run ``plan.code`` on ``module``, its fills served on gpuinit's stream (``dry``: checked, nothing written);
    return an OwnInitReport whose ``untouched`` lists the targets no code wrote. ``walk``: names.Walk(module)."""
    code = plan.code
    walk = walk or Walk(module)
    tensors = by_name(module, walk)
    targets = [(fqn, tensors[fqn]) for fqn in code.targets]
    router = Router(targets, seed=seed, skip=code.skip, dry=dry)
    untied = {}
    order = _post_order(module, walk)
    # constructors recorded (gpuinit.deferred): they are the code; not a Hugging Face model's, which skip their init
    # on meta, where its own init code (below) is the code
    built = deferred.recorded(order) if code.modules is None and not _hugging_face(module) else None
    if code.modules is None and built is None:
        _clear_hf_flags(walk, tensors.values())
        untied = _untie_hf_targets(module, plan.params, walk)
    try:
        with serving(router), _reads_on_meta(dry):
            if built is not None:
                deferred.replay(built[0], tensors)
            for prefix, m in order:
                router.where = prefix
                if built is not None and id(m) in built[1]:
                    continue
                if code.modules is None:
                    _reset(m, prefix, router)
                    if _reset_buffers(m):  # its buffers are restored as init_module restores them (on meta too)
                        for name, b in m._buffers.items():
                            if b is not None:
                                router.touched.add(f"{prefix}{name}")
                                router.report.edited.add(f"{prefix}{name}")
                                router.report.as_written["reset_buffers"] += 1
                elif prefix[:-1] in code.modules:
                    _reset(m, prefix, router)
            if code.modules is None and (built is None or id(module) not in built[1]):
                router.where = ""
                _model_init(module)
    finally:
        for (owner, name), t in untied.items():
            owner._parameters[name] = t
    router.flush()
    router.derived.clear()  # it holds model tensors: to_empty swaps them out only when nothing else does
    router.rows.clear()
    walk.changed()  # the code may have replaced tensors
    now = by_name(module, walk) if any(fqn not in router.touched for fqn, _ in targets) else tensors
    for fqn, t in targets:  # a tensor the code replaced (``self.freqs_cis = ...``, as torchtitan does) is written
        if fqn not in router.touched and now.get(fqn) is not t:
            router.touched.add(fqn)
            router.report.edited.add(fqn)
            router.report.as_written["replaced"] += 1
    router.report.untouched = [fqn for fqn, _ in targets if fqn not in router.touched]
    return router.report


@contextlib.contextmanager
def _reads_on_meta(dry):
    """The dry run on meta: a read of values (``.item()``, ``bool(t)``, ``.tolist()``) in the code is an InitError
    that says what happened, not torch's bare message about meta tensors."""
    try:
        yield
    except (RuntimeError, NotImplementedError) as e:
        if not dry or "meta" not in str(e):
            raise
        raise InitError(f"own init: the model's init code read a tensor's values during the dry run on the meta "
                        f"device, which has none ({type(e).__name__}: {str(e).splitlines()[0][:200]}); materialize the "
                        "model first (model.to_empty(device=...)) and call own_init on it, or build it on its device"
                        ) from e


def has_reset(m):
    """Whether module ``m`` has reset code (which a recipe's fallback runs)."""
    return any(callable(_attribute(m, n)) for n in RESET_METHODS)


def _untie_hf_targets(module, param_names, walk):
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
        owner = walk.module_at(owner_name)
        t = owner._parameters[name]
        saved[(owner, name)] = t
        owner._parameters[name] = torch.nn.Parameter(torch.empty(t.shape, dtype=t.dtype, device="meta"),
                                                     requires_grad=t.requires_grad)
    return saved


def _post_order(m, walk):
    """(name prefix, module) with children before their parent, each module once (in ``named_children`` order);
    a name prefix is "" or ends with a dot."""
    if walk.post is not None:
        return [(f"{name}." if name else "", child) for name, child in walk.post]
    seen, out, stack = set(), [], [("", m, False)]
    while stack:
        prefix, m, expanded = stack.pop()
        if expanded:
            out.append((prefix, m))
            continue
        if id(m) in seen:
            continue
        seen.add(id(m))
        stack.append((prefix, m, True))
        stack.extend(reversed([(f"{prefix}{name}.", child, False) for name, child in m.named_children()]))
    if walk.rename is not None:  # canonical names, as the walk's
        out = [(f"{name}." if (name := walk.rename(prefix[:-1])) else "", m) for prefix, m in out]
    return out


def _reset(m, prefix, router):
    f = _class_reset(type(m), RESET_METHODS)
    d = m.__dict__
    if f is not False and "parametrizations" not in m._modules and not any(n in d for n in _LOOKED_UP):
        if f is not None:  # the class's own method, which nothing on the instance hides (most modules)
            f(m)
        return
    fn = next((f for f in (_attribute(m, n) for n in RESET_METHODS) if callable(f)), None)
    if fn is None or not _no_args(fn):
        return
    if _attribute(m, "parametrizations") is None:
        fn()
        return
    _reset_parametrized(m, prefix, fn, router)


def _reset_buffers(m):
    """A module's ``reset_buffers()`` (gpuinit's convention for buffers its constructor computes, e.g. rotary
    tables: init_module restores them so too), where it has one taking no arguments; whether it ran."""
    f = _class_reset(type(m), BUFFER_METHODS)
    if f is not False and "reset_buffers" not in m.__dict__:
        if f is not None:
            f(m)
        return f is not None
    fn = _attribute(m, "reset_buffers")
    if callable(fn) and _no_args(fn):
        fn()
        return True
    return False


BUFFER_METHODS = ("reset_buffers",)
_LOOKED_UP = (*RESET_METHODS, "parametrizations")
_CLASS_RESET: dict = {}  # (module class, method names): _class_reset's answer


def _class_reset(cls, names):
    """The plain function that is the first of the methods ``names`` of ``cls``'s instances and takes no argument
    besides the instance, or None where the class has none taking none; False where an instance must be looked at
    (a method or ``parametrizations`` that is not a plain function of the class, attribute lookup of its own). An
    instance attribute of one of the names hides the class's function: the caller looks for those."""
    try:
        return _CLASS_RESET[cls, names]
    except KeyError:
        pass
    import types

    out = None
    if cls.__getattribute__ is not object.__getattribute__ or \
            inspect.getattr_static(cls, "parametrizations", None) is not None:
        out = False
    else:
        for name in names:
            f = inspect.getattr_static(cls, name, None)
            if f is None:
                continue
            out = (f if _cached_bare(f, True) else None) if type(f) is types.FunctionType else False
            break
    if len(_CLASS_RESET) >= 4096:  # parametrized modules make a class each
        _CLASS_RESET.clear()
    _CLASS_RESET[cls, names] = out
    return out


def _attribute(m, name):
    """``getattr(m, name, None)`` for a module, without raising (and catching) the AttributeError of a missing
    one, which nn.Module's __getattr__ builds with its message: most modules have no reset method of one of the
    two names and no parametrizations."""
    if name in m.__dict__ or name in m._modules or name in m._parameters or name in m._buffers \
            or hasattr(type(m), name):
        return getattr(m, name, None)
    return None


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
        originals = [f"{prefix}parametrizations.{n}.{o}" for o in [*plist._parameters, *plist._buffers]]
        if originals and all(o in router.skip for o in originals):
            continue  # rules fill the originals
        lacking = next((p for p in plist if not hasattr(p, "right_inverse")), None)
        if lacking is not None:
            raise InitError(f"own init: {prefix}{n} is parametrized by {type(lacking).__name__}, which has no "
                            "right_inverse, so the values its module's reset code fills cannot set "
                            f"{', '.join(originals)}; add a rule naming them")
        state = [dict(p._buffers) for p in plist]  # what right_inverse replaces (``self.base = ...``) it wrote
        if any(distributed.is_dtensor(o) for o in [*plist.parameters(), *plist.buffers()]):
            _set_sharded_originals(plist, t, router)
        else:
            setattr(m, n, t)  # the originals are set (Tensor.set_, which no torch function mode sees)
        for original in [*plist._parameters, *plist._buffers]:
            router.touched.add(f"{prefix}parametrizations.{n}.{original}")
            router.report.as_written["right_inverse"] += 1
        _set_state(plist, f"{prefix}parametrizations.{n}.", router, state)


def _set_state(plist, prefix, router, before):
    """The buffers a parametrization's constructor computes from the tensor it was registered on, computed again
    from the new values as that constructor does: spectral_norm's power-iteration vectors (a fresh normal draw,
    here from gpuinit's stream of their names, normalized, then 15 iterations). A buffer that its
    ``right_inverse`` did not write either (in place, or by replacing it: ``before`` holds each parametrization's
    buffers before it ran) is an error naming it, unless a rule fills it."""
    import torch
    from torch.nn.utils import parametrizations

    value = plist.original if plist.is_tensor else None
    for i, p in enumerate(plist):
        names = {b: f"{prefix}{i}.{b}" for b, t in p._buffers.items() if t is not None}
        for b, name in names.items():
            if p._buffers[b] is not before[i].get(b):
                router.touched.add(name)
                router.report.as_written["right_inverse"] += 1
        if isinstance(p, parametrizations._SpectralNorm) and {"_u", "_v"} <= names.keys() and value is not None:
            with torch.no_grad():
                for b in ("_u", "_v"):
                    vector = getattr(p, b)
                    torch.nn.init.normal_(vector)  # served: the stream of the buffer's name
                    vector.copy_(torch.nn.functional.normalize(vector, dim=0, eps=p.eps))
                p._power_method(p._reshape_weight_to_matrix(value), 15)
            for b in ("_u", "_v"):
                router.touched.add(names[b])
        missing = [name for name in names.values() if name not in router.touched and name not in router.skip]
        if missing:
            raise InitError(f"own init: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} state of "
                            f"the parametrization {type(p).__name__}, computed by its constructor from the tensor "
                            "it was registered on, which gpuinit cannot compute again (it does for spectral_norm); "
                            "add a rule naming it")
        if value is not None and i + 1 < len(plist):
            with torch.no_grad():
                value = p(value)  # what the next one was registered on


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


def _hugging_face(module):
    return callable(getattr(module, "_init_weights", None)) and callable(getattr(module, "post_init", None))


def _unwrapped_class(module):
    """The module's class under the subclass FSDP2's ``fully_shard`` makes of it (bases: FSDPModule, class)."""
    cls = type(module)
    fsdp = sys.modules.get("torch.distributed.fsdp")
    wrapper = getattr(fsdp, "FSDPModule", None)
    while wrapper is not None and len(cls.__bases__) == 2 and cls.__bases__[0] is wrapper:
        cls = cls.__bases__[1]
    return cls


def _no_args(fn):
    """Whether ``fn`` can be called with no arguments (a bound method's function is looked at once per class)."""
    func = getattr(fn, "__func__", None)
    if func is None or getattr(fn, "__self__", None) is None:
        func, bound = fn, False
    else:
        bound = True
    try:
        hash(func)
    except TypeError:
        return _bare(func, bound)
    return _cached_bare(func, bound)


def _bare(fn, bound):
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False
    if bound:  # the instance fills the first parameter
        if not params or params[0].kind not in (params[0].POSITIONAL_ONLY, params[0].POSITIONAL_OR_KEYWORD):
            return bool(params) and params[0].kind == params[0].VAR_POSITIONAL
        params = params[1:]
    return all(p.default is not p.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)


_cached_bare = functools.lru_cache(maxsize=1024)(_bare)


def _clear_hf_flags(walk, tensors):
    """Hugging Face marks initialized modules and tensors and skips them later: start from a fresh model."""
    for _, m in walk.modules():
        m.__dict__.pop("_is_hf_initialized", None)
    for t in tensors:
        if "_is_hf_initialized" in getattr(t, "__dict__", {}):
            del t._is_hf_initialized
