"""``gpuinit.deferred()``: a model built on the meta device with what its constructor does to its tensors recorded,
so that own_init runs it at materialization with gpuinit's stream (as torchdistX's ``deferred_init`` and
``materialize_module`` replay construction).

Within the context every tensor is made on meta; each torch call that touches a meta tensor is recorded (the
function, its arguments, its results), ``torch.nn.init``'s functions as one call each. At exit each module built
there keeps, per parameter and buffer name, the identity of the meta tensor its constructor left there.
``replay`` runs the calls that lead to a model's tensors again, in order, on the model's tensors as they are
then (the meta ones in the dry run, the materialized ones after): a fresh tensor that becomes a model tensor
(``Parameter(torch.ones(d) * 0.1)``, a causal-mask buffer) is copied into it, an empty one is the model tensor
itself, and fills go through own-init's interception, so random ones are drawn by gpuinit from the stream of
the tensor's name, as if the constructor's code were the model's init code.
"""
import contextlib
import itertools
import threading
import weakref

from .. import distributed
from ..errors import InitError
from .intercept import INIT_NAMES, Patched, tensor_leaves

_BUILT: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()  # module: (Recording, {name: tensor key})
_ORDER = itertools.count()
_ACTIVE = threading.local()  # .on: this thread is inside deferred()
_EMPTY = frozenset(("empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided"))
_MUTATING_DUNDERS = frozenset(("__setitem__", "__set__", "__iadd__", "__isub__", "__imul__", "__itruediv__"))


def _key(t):
    """What identifies a meta tensor's values: its storage, offset, shape, strides and dtype."""
    return (t.untyped_storage()._cdata, t.storage_offset(), tuple(t.shape), tuple(t.stride()), t.dtype)


class Op:
    __slots__ = ("func", "init", "args", "kwargs", "outs", "reads", "writes", "empty")

    def __init__(self, func, init, args, kwargs, out, mutates):
        import torch

        self.func, self.init, self.args, self.kwargs = func, init, args, kwargs
        ins = tensor_leaves((args, kwargs), torch.Tensor, [])
        self.reads = {_key(t)[0] for t in ins if t.is_meta}
        self.writes = {_key(ins[0])[0]} if mutates and ins and ins[0].is_meta else set()
        self.outs = [(i, id(t), _key(t)) for i, t in enumerate(tensor_leaves((out,), torch.Tensor, [])) if t.is_meta]
        self.empty = not init and getattr(func, "__name__", "") in _EMPTY


class Recording:
    """The calls of one ``deferred()`` context, in order; a stand-in router for the interception's patch of
    torch.nn.init (``records``: its functions call ``record_init``)."""

    records, busy = True, False

    def __init__(self):
        self.ops, self.keep = [], []  # keep: every recorded tensor, alive (its storage's identity stays unique)
        self.order, self.thread = next(_ORDER), threading.get_ident()
        self.modules: dict = {}  # id: module built here

    def before(self, *args):
        """Tensor.set_ on a meta tensor: nothing to record."""

    def record_init(self, name, original, tensor, args, kwargs):
        import torch

        if not (isinstance(tensor, torch.Tensor) and tensor.is_meta):
            return original(tensor, *args, **kwargs)
        self.add(name, True, (tensor, *args), kwargs, tensor, True)
        return tensor  # on meta, torch's own function writes nothing either

    def add(self, func, init, args, kwargs, out, mutates):
        op = Op(func, init, args, kwargs, out, mutates)
        if op.outs or op.writes:
            self.ops.append(op)
            self.keep.append((args, kwargs, out))


def _mutates(func, kwargs):
    name = getattr(func, "__name__", "")
    return (name.endswith("_") and not name.endswith("__")) or name in _MUTATING_DUNDERS or "out" in kwargs


@contextlib.contextmanager
def deferred():
    """Build models within: on the meta device, what their constructors do recorded for ``own_init`` (see the
    module's doc). ``with gpuinit.deferred(): model = GPT(config)`` then ``gpuinit.own_init(model, seed=0,
    device="cuda")`` gives the model its constructor's init, every draw from gpuinit's stream."""
    import torch
    from torch.nn.modules import module as torch_module
    from torch.overrides import TorchFunctionMode

    if getattr(_ACTIVE, "on", False):
        raise InitError("gpuinit.deferred(): already recording in this thread (contexts do not nest)")
    rec = Recording()

    class Record(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            out = func(*args, **kwargs)
            if getattr(func, "__module__", None) == "torch.nn.init" and getattr(func, "__name__", "") in INIT_NAMES:
                rec.add(func.__name__, True, args, kwargs, out, True)  # one that bypassed the patch
            else:
                rec.add(func, False, args, kwargs, out, _mutates(func, kwargs))
            return out

    def seen(module, name, value):
        if threading.get_ident() == rec.thread:
            rec.modules[id(module)] = module
            if isinstance(value, torch.nn.Module):
                rec.modules[id(value)] = value

    handles = [torch_module.register_module_parameter_registration_hook(seen),
               torch_module.register_module_buffer_registration_hook(seen),
               torch_module.register_module_module_registration_hook(seen)]
    _ACTIVE.on = True
    try:
        with torch.device("meta"), Patched(rec), Record():
            yield rec
    finally:
        _ACTIVE.on = False
        for h in handles:
            h.remove()
    for m in rec.modules.values():
        names = {n: _key(t) for d in (m._parameters, m._buffers) for n, t in d.items()
                 if isinstance(t, torch.Tensor) and t.is_meta}
        _BUILT[m] = (rec, names)
    rec.modules = {}


def recorded(modules):
    """The recordings of the (prefix, module) pairs built under ``deferred()``: [(Recording, {key: [fqn]})] in the
    order they were made, and the ids of the recorded modules; None when none is."""
    if not _BUILT:
        return None
    found: dict = {}
    ids = set()
    for prefix, m in modules:
        entry = _BUILT.get(m)
        if entry is None:
            continue
        rec, names = entry
        ids.add(id(m))
        keys = found.setdefault(rec.order, (rec, {}))[1]
        for name, key in names.items():
            fqns = keys.setdefault(key, [])
            if f"{prefix}{name}" not in fqns:
                fqns.append(f"{prefix}{name}")
    if not found:
        return None
    return [found[k] for k in sorted(found)], ids


def replay(recordings, tensors):
    """Run the recorded calls that lead to the model's tensors (``tensors``: {fqn: the tensor now}) on them, under
    own-init's interception (the caller's ``serving``)."""
    import torch

    for rec, keys in recordings:
        names = {key: [tensors[n] for n in fqns if n in tensors] for key, fqns in keys.items()}
        targets = {key: ts[0] for key, ts in names.items() if ts}
        if not targets:
            continue
        device = next(iter(targets.values())).device
        env: dict = {}
        with torch.device(device):
            for op in _needed(rec.ops, {key[0] for key in targets}):
                _run(op, env, targets, device)
            for ts in names.values():  # one tensor under two names that are two tensors now (to_empty unties)
                for t in ts[1:]:
                    if t is not ts[0]:
                        t.copy_(ts[0])


def _needed(ops, storages):
    """The ops whose results or writes reach ``storages`` (storage identities), directly or through what they read."""
    needed, out = set(storages), []
    for op in reversed(ops):
        if op.writes & needed or any(key[0] in needed for _, _, key in op.outs):
            out.append(op)
            needed |= op.reads
    return out[::-1]


def _run(op, env, targets, device):
    import torch

    if op.empty and len(op.outs) == 1 and op.outs[0][2] in targets:
        env[op.outs[0][1]] = targets[op.outs[0][2]]  # an empty tensor that became the model's: the model's
        return
    args, kwargs = _mapped(op.args, env, targets, device), _mapped(op.kwargs, env, targets, device)
    if op.init:
        result = getattr(torch.nn.init, op.func)(*args, **kwargs)
    elif getattr(op.func, "__name__", "") == "__set__" and getattr(getattr(op.func, "__self__", None),
                                                                    "__name__", "") == "data":
        args[0].copy_(args[1])  # ``t.data = x`` on a model tensor: its values, into its memory
        result = None
    else:
        result = op.func(*args, **kwargs)
    results = tensor_leaves((result,), torch.Tensor, [])
    for i, oid, key in op.outs:
        r, t = results[i], targets.get(key)
        if t is None:
            env[oid] = r
            continue
        if r is not t and not _same_memory(r, t):
            _copy_into(t, r)  # a fresh tensor that becomes the model's (Parameter(torch.ones(d) * s), a mask buffer)
        env[oid] = t


def _same_memory(r, t):
    if distributed.is_dtensor(r) or distributed.is_dtensor(t):
        return False
    return (r.untyped_storage()._cdata == t.untyped_storage()._cdata and r.storage_offset() == t.storage_offset()
            and r.stride() == t.stride())


def _copy_into(t, r):
    """``t.copy_(r)``; into a DTensor shard (FSDP2) of the whole ``r``: each rank its own block, no collective."""
    if distributed.is_dtensor(t) and not distributed.is_dtensor(r):
        import torch
        from torch.distributed.tensor import DTensor

        with torch._C.DisableTorchFunction():  # gpuinit's own work: the interception sees the copy only
            local, _, offsets = distributed.local_block(t)
            block = r[tuple(slice(o, o + n) for o, n in zip(offsets, local.shape, strict=True))]
            r = DTensor.from_local(block.to(local.device), t.device_mesh, t.placements, run_check=False,
                                   shape=t.shape, stride=t.stride())
    t.copy_(r)


def _mapped(x, env, targets, device):
    import torch

    if isinstance(x, torch.Tensor):
        found = env.get(id(x))
        if found is None and x.is_meta:  # no recorded call made it (a Parameter wraps a tensor that one made)
            found = targets.get(_key(x))
        return x if found is None else found
    if isinstance(x, torch.device) or (isinstance(x, str) and x == "meta"):
        return device if torch.device(x).type == "meta" else x
    if isinstance(x, tuple):
        return tuple(_mapped(v, env, targets, device) for v in x)
    if isinstance(x, list):
        return [_mapped(v, env, targets, device) for v in x]
    if isinstance(x, dict):
        return {k: _mapped(v, env, targets, device) for k, v in x.items()}
    return x
