"""The interception layer: a model's own initialization code runs, and gpuinit serves its fills.

Every whole-tensor fill that the code makes on a parameter or buffer, through ``torch.nn.init`` (also as
``transformers.initialization`` calls it) or the in-place tensor methods ``normal_``, ``uniform_``,
``zero_`` and ``fill_`` (``.data`` included), becomes a gpuinit fill job with the distribution the code
asked for, on the stream of the tensor's fully qualified name (``name#k`` for its k-th fill after the
first). Jobs wait and run grouped (one launch per device, dtype and draw on a GPU); anything else the code
does on a model tensor (partial writes, copies, arithmetic) first runs the waiting jobs, then runs as
written and is counted. A fill replaced before it ran is never written.
"""
import functools
import inspect
import sys
import threading
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field

from .. import distributed, jobs, seeding
from ..errors import BackendUnavailableError, InitError

INIT_NAMES = ("uniform_", "normal_", "trunc_normal_", "constant_", "ones_", "zeros_", "eye_", "dirac_",
              "xavier_uniform_", "xavier_normal_", "kaiming_uniform_", "kaiming_normal_", "orthogonal_", "sparse_")
# where torch and Hugging Face code look the functions up (as transformers.initialization patches them)
LOOKUPS = ("torch.nn.init", "torch.nn.modules.activation", "torch.nn.modules.transformer", "torch.nn.modules.linear",
           "torch.nn.modules.batchnorm", "torch.nn.modules.conv", "torch.nn.modules.normalization",
           "torch.nn.modules.rnn", "torch.nn.modules.sparse")


@dataclass
class OwnInitReport:
    """What own-init did: ``served`` fills by scheme, ``as_written`` operations on model tensors by name that
    ran as the code wrote them, ``untouched`` parameters and buffers that no init code wrote."""
    served: Counter = field(default_factory=Counter)
    as_written: Counter = field(default_factory=Counter)
    untouched: list = field(default_factory=list)
    # per target, what its code left it in the dry run: the last whole fill served, (scheme, params, stream) or None
    # when the code's own generator drew it, unless ``edited`` names it (a write as written after it): save_init
    fills: dict = field(default_factory=dict, repr=False, compare=False)
    edited: set = field(default_factory=set, repr=False, compare=False)
    pads: dict = field(default_factory=dict, repr=False, compare=False)  # fqn: the one row zeroed after its fill


def _num(x):
    return float(x.item()) if hasattr(x, "item") else float(x)


def init_spec(name, a):
    """(scheme, params) for the torch.nn.init function ``name`` called with bound arguments ``a``."""
    if name == "uniform_":
        lo, hi = _num(a["a"]), _num(a["b"])
        return ("constant", {"value": lo}) if lo == hi else ("uniform", {"a": lo, "b": hi})
    if name == "normal_":
        mean, std = _num(a["mean"]), _num(a["std"])
        return ("constant", {"value": mean}) if std == 0 else ("normal", {"mean": mean, "std": std})
    if name == "trunc_normal_":
        lo, hi, mean, std = _num(a["a"]), _num(a["b"]), _num(a["mean"]), _num(a["std"])
        if lo == hi or std == 0:
            return ("constant", {"value": min(max(mean, lo), hi)})
        return ("trunc_normal", {"mean": mean, "std": std, "a": lo, "b": hi})
    if name == "constant_":
        return ("constant", {"value": _num(a["val"])})
    if name in ("ones_", "zeros_", "eye_"):
        return (name[:-1], {})
    if name == "dirac_":
        return ("dirac", {"groups": a["groups"]})
    if name in ("xavier_uniform_", "xavier_normal_", "orthogonal_"):
        return (name[:-1], {"gain": _num(a["gain"])})
    if name in ("kaiming_uniform_", "kaiming_normal_"):
        return (name[:-1], {"a": _num(a["a"]), "mode": a["mode"], "nonlinearity": a["nonlinearity"]})
    if name == "sparse_":
        return ("sparse", {"sparsity": _num(a["sparsity"]), "std": _num(a["std"])})
    raise KeyError(name)


def _zero(args, kwargs):
    return (args[0] if args else None), ("zeros", {})


def _fill(args, kwargs):
    value = args[1] if len(args) > 1 else kwargs.get("value")
    if hasattr(value, "numel") and value.numel() != 1:
        return None
    return (args[0] if args else None), ("constant", {"value": _num(value)})


def _normal(args, kwargs):
    b = dict(zip(("mean", "std"), args[1:], strict=False)) | kwargs
    return (args[0] if args else None), init_spec("normal_", {"mean": b.get("mean", 0.0), "std": b.get("std", 1.0)})


def _uniform(args, kwargs):
    b = dict(zip(("from", "to"), args[1:], strict=False)) | kwargs
    return (args[0] if args else None), init_spec("uniform_", {"a": b.get("from", 0.0), "b": b.get("to", 1.0)})


_FILL_METHODS: dict = {}  # torch.Tensor's in-place fill methods: the function that reads a call's spec
_FACTORIES: dict = {}  # torch's random factories (rand, randn and their _like): the spec of what they draw
_SHAPE_ONLY: set = set()  # torch functions that read no values and write nothing (shapes, dtypes, views' data)


def _fill_methods():
    if not _FILL_METHODS:
        import torch

        T = torch.Tensor
        _PLAIN.update((T, torch.nn.Parameter))
        _DATA_SET[0] = T.data  # the descriptor: its __set__ is a new object at each look
        _DISABLED[0] = torch._C.DisableTorchFunction
        _SHAPE_ONLY.update({T.dim, T.ndimension, T.size, T.stride, T.numel, T.nelement, T.element_size,
                            T.storage_offset, T.is_contiguous, T.is_floating_point, T.is_complex, T.get_device,
                            T.__len__, *(getattr(T, a).__get__ for a in (
                                "shape", "dtype", "device", "ndim", "is_meta", "is_cuda", "is_cpu", "layout",
                                "requires_grad", "data", "is_leaf", "itemsize") if hasattr(T, a))})
        _FILL_METHODS.update({T.zero_: _zero, T.fill_: _fill, T.normal_: _normal, T.uniform_: _uniform})
        rand, randn = init_spec("uniform_", {"a": 0.0, "b": 1.0}), init_spec("normal_", {"mean": 0.0, "std": 1.0})
        _FACTORIES.update({torch.rand: rand, torch.rand_like: rand, torch.randn: randn, torch.randn_like: randn})
    return _FILL_METHODS


_NOT_RANDOM = frozenset(("constant", "zeros", "ones", "eye", "dirac"))
_PLAIN: set = set()  # torch.Tensor and torch.nn.Parameter, once torch is in use (_fill_methods)


def _disabled():
    import torch

    return torch._C.DisableTorchFunction()


_DATA_SET: list = [None]  # torch.Tensor.data (its setter replaces a tensor's memory), once torch is in use
_DISABLED = [_disabled]  # torch._C.DisableTorchFunction once torch is in use (_fill_methods)


def _storage(t):
    """The identity of the memory under ``t`` (a DTensor's local shard; meta tensors have one each too)."""
    local = t.to_local() if distributed.is_dtensor(t) else t
    return local.untyped_storage()._cdata


def _view(t, storage=None):
    local = t.to_local() if distributed.is_dtensor(t) else t
    return (_storage(t) if storage is None else storage, local.storage_offset(), tuple(local.shape),
            tuple(local.stride()), local.dtype)


stream_of = functools.lru_cache(maxsize=1 << 16)(distributed.stream_of)  # a SHA-256 per name, once per process


class Router:
    """Turns fill calls on the module's tensors into gpuinit jobs; ``dry``: check them, write nothing."""

    records = False  # deferred.Recording, which stands in for a router while a model is built, records calls

    def __init__(self, targets, *, seed, skip=(), dry=False):
        self.seed, self.skip, self.dry = seed, set(skip), dry
        _fill_methods()  # torch's types known here
        self.prepare = jobs.Preparer(seed)  # the call's settings are pinned: read once
        self.on_storage = {}  # storage: [[name, target tensor, its view once looked at]], in the order added
        for fqn, t in targets:
            self.add(fqn, t)
        self.calls, self.pending, self.touched = Counter(), {}, set()
        self.waiting = {}  # storage: {name: the target's tensor} of the jobs in ``pending`` (name: job)
        self.where, self.temporaries = "", Counter()  # the module whose code runs (name and a dot); its temporaries
        self.busy = False  # gpuinit's own work: not intercepted
        self.report = OwnInitReport()
        self.derived = {}  # id: (DTensor indexed out of a sharded model tensor, that tensor, the index)
        self.rows = {}  # id: (a row of a filled model tensor, indexed by an int: its name, the row)

    def add(self, fqn, t):
        storage = t.untyped_storage()._cdata if type(t) in _PLAIN else _storage(t)
        targets = self.on_storage.get(storage)
        if targets is None:
            self.on_storage[storage] = [[fqn, t, None]]
        else:
            targets.append([fqn, t, None])

    def fqn_of(self, t, storage=None):
        """The name of the target that ``t`` is a view of exactly (storage, offset, shape, strides, dtype; the first
        added when several are), or None."""
        storage = _storage(t) if storage is None else storage
        targets = self.on_storage.get(storage)
        if not targets:
            return None
        if len(targets) == 1 and targets[0][1] is t:  # the target itself (init code passes its parameter)
            return targets[0][0]
        view = _view(t, storage)
        for target in targets:  # a target's view is keyed when first asked for: most never share a storage
            if target[2] is None:
                target[2] = _view(target[1], storage)
            if target[2] == view:
                return target[0]
        return None

    def owner_of(self, t):
        """The name of the first target on ``t``'s storage, or None."""
        targets = self.on_storage.get(_storage(t))
        return targets[0][0] if targets else None

    def serve(self, t, spec, what, generator=None):
        """Take a fill of ``t`` as a job; False when ``t`` is not a whole model tensor gpuinit can fill. With the
        code's own ``generator`` (a torch.Generator), the values are the generator's: one seed drawn from it (as
        torch's fill advances it), stream 0, so equally seeded generators give equal tensors, as in torch."""
        if type(t) not in _PLAIN:
            import torch

            if not isinstance(t, torch.Tensor):
                return False
        self.busy = True  # gpuinit's own look at the tensor: none of its torch calls is the model's code
        try:
            with _DISABLED[0]():  # nor do they pass through any torch function mode
                storage = t.untyped_storage()._cdata if type(t) in _PLAIN else _storage(t)
                targets = self.on_storage.get(storage)
                if not targets:
                    return self._temporary(t, spec, generator)
                # the target itself (init code passes its parameter), else a view of one
                fqn = targets[0][0] if len(targets) == 1 and targets[0][1] is t else self.fqn_of(t, storage)
                if fqn is None or not t.is_floating_point():
                    return False
                self.touched.add(fqn)
                if fqn in self.skip:  # a rule fills it afterwards
                    return True
                k = self.calls.get(fqn, 0)
                try:
                    job = self.prepare(t, spec[0], spec[1], stream_of(f"{fqn}#{k}" if k else fqn), fqn)
                except (InitError, BackendUnavailableError, TypeError, ValueError):  # not servable: runs as written
                    return False
        finally:
            self.busy = False
        if generator is not None and not self.dry:  # the dry run draws nothing: the real run draws what torch would
            job = job._replace(seed=seeding.draw(generator), stream=0)
        if self.dry:  # what the dry run saw each target left as (gpuinit.save_init replays it)
            report = self.report
            report.fills[fqn] = None if generator is not None else (spec[0], spec[1], job.stream)
            report.edited.discard(fqn)
            report.pads.pop(fqn, None)
        self.calls[fqn] = k + 1
        waiting = self.waiting.get(storage)
        if waiting is not None:
            if self.pending.pop(fqn, None) is not None:  # a waiting fill of the same tensor is replaced, never written
                del waiting[fqn]
            if waiting and not _disjoint(t, waiting.values()):  # another view of the memory waits: it goes first
                self.flush()
                waiting = None
        if not self.dry:
            self.pending[fqn] = job
            if waiting is None:
                self.waiting[storage] = {fqn: t}
            else:
                waiting[fqn] = t
        served = self.report.served
        served[spec[0]] = served.get(spec[0], 0) + 1
        return True

    def _temporary(self, t, spec, generator):
        """A random fill of a tensor that is no model tensor (a temporary the code then copies from, as Mamba's dt
        bias, torchtitan's float32 trunc_normal_ for bf16 weights or an orthogonal_ of a float32 copy do): written
        at once from gpuinit's stream of where it happens (the running module's name and the draw's number in
        the call: the same run to run), so the seed decides it too. False (torch draws it) with the code's own
        generator, on the dry run, and for what gpuinit does not fill."""
        if generator is not None or self.dry or spec[0] in _NOT_RANDOM or t.is_meta or not t.is_floating_point():
            return False
        name = f"{self.where}<temporary>#{self.temporaries[self.where]}"
        try:
            job = jobs.prepare(t, spec[0], spec[1], seed=self.seed, stream=stream_of(name), name=name)
        except (InitError, BackendUnavailableError, TypeError, ValueError):
            return False
        self.temporaries[self.where] += 1
        jobs.run([job])
        served, key = self.report.served, "temporary " + spec[0]
        served[key] = served.get(key, 0) + 1
        return True

    def flush(self):
        if self.pending:
            import torch

            work, self.pending, self.waiting = list(self.pending.values()), {}, {}
            busy, self.busy = self.busy, True
            try:
                with torch._C.DisableTorchFunction():
                    jobs.run(work)
            finally:
                self.busy = busy

    def before(self, func, args, kwargs):
        """Called before a call that runs as written: run waiting jobs it may read or overwrite, count it."""
        import torch

        name = getattr(func, "__name__", "")
        in_place = name.endswith("_") and not name.endswith("__")
        if name == "__set__" and getattr(func, "__self__", None) is _DATA_SET[0]:  # ``t.data = other``
            in_place, name = True, "data ="
        if not (self.pending or in_place or "out" in kwargs):
            return  # nothing waits and nothing is written: most torch calls of init code (shapes, reads)
        tensors = tensor_leaves((*args, *kwargs.values()), torch.Tensor, [])
        self.busy = True  # the storage lookups below are gpuinit's
        try:
            if self.pending and {_storage(x) for x in tensors} & self.waiting.keys():
                self.flush()
            written = [kwargs["out"]] if isinstance(kwargs.get("out"), torch.Tensor) else []
            if in_place and tensors:
                written.append(tensors[0])
            written = [self.owner_of(t) for t in written]
        finally:
            self.busy = False
        name = name or str(func)
        row = self.rows.get(id(tensors[0])) if in_place and tensors and self.rows else None
        for fqn in written:
            if fqn is not None:
                self.touched.add(fqn)
                if row is not None and row[0] is tensors[0] and row[1] == fqn and _zeroes(name, args, kwargs) and (
                        self.report.pads.get(fqn, row[2]) == row[2]):
                    self.report.pads[fqn] = row[2]  # a padding row zeroed after the fill: still one whole fill
                else:
                    self.report.edited.add(fqn)
                self.report.as_written[name] += 1

    def track(self, source, index, out):
        """Indexing a sharded model tensor gives a DTensor that is a copy, not a view (an embedding's padding
        row under FSDP2): remember it, to write back what the code writes into it."""
        if type(index) is int and type(out) in _PLAIN and self.report.fills and out.dim() + 1 == source.dim():
            fqn = self.fqn_of(source)
            if fqn is not None and -source.shape[0] <= index < source.shape[0]:
                self.rows[id(out)] = (out, fqn, index % source.shape[0])
            return
        if (distributed.is_dtensor(source) and distributed.is_dtensor(out) and _storage(out) != _storage(source)
                and self.fqn_of(source) is not None):
            self.derived[id(out)] = (out, source, index)

    def write_back(self, t, name):
        """After an in-place ``name`` on a tracked copy ``t``: each rank copies its block of it into its shard."""
        out, source, index = self.derived[id(t)]
        fqn = self.fqn_of(source)
        local, full_shape, offsets = distributed.local_block(source)
        region = _local_region(index, full_shape, offsets, tuple(local.shape))
        if region is None:
            raise InitError(f"own init: {fqn}[{index!r}] is written in place ({name}) on a sharded tensor, where "
                            "indexing makes a copy; gpuinit writes back only ints and step-1 slices")
        self.touched.add(fqn)
        self.report.edited.add(fqn)
        self.report.as_written[name] += 1
        if local.is_meta:
            return
        self.busy = True
        try:
            values = out.full_tensor()  # every rank runs the same code: the collective is matched
            if region[0] is not None:
                local[region[0]].copy_(values[region[1]])
        finally:
            self.busy = False


def _zeroes(name, args, kwargs):
    """Whether an in-place call writes zeros: ``zero_()``, or ``fill_(0)``."""
    if name == "zero_":
        return True
    value = args[1] if name == "fill_" and len(args) > 1 else kwargs.get("value")
    return name == "fill_" and isinstance(value, (int, float)) and value == 0


def _disjoint(t, others):
    """Whether contiguous ``t`` shares no element with any of ``others`` on its storage (views of one flat
    buffer, as FSDP's parameters are); False when one of them is not contiguous (then nothing is assumed)."""
    with _DISABLED[0]():
        if not t.is_contiguous():
            return False
        lo = t.storage_offset()
        hi = lo + t.numel()
        for o in others:
            if not o.is_contiguous():
                return False
            start = o.storage_offset()
            if start < hi and lo < start + o.numel():
                return False
    return True


def tensor_leaves(items, tensor_type, out):
    """The tensors among ``items``, looking into lists, tuples (named ones too) and dicts, as torch's pytrees do."""
    for x in items:
        if isinstance(x, tensor_type):
            out.append(x)
        elif isinstance(x, (list, tuple)):
            tensor_leaves(x, tensor_type, out)
        elif isinstance(x, dict):
            tensor_leaves(x.values(), tensor_type, out)
    return out


def _local_region(index, full_shape, offsets, local_shape):
    """(index into a block at ``offsets``, index into the values of ``tensor[index]``) for basic indexing by ints
    and step-1 slices, with None for the first where the block holds none of it; None for other indexing."""
    import torch

    items = index if isinstance(index, tuple) else (index,)
    if len(items) > len(full_shape):
        return None
    here, there, empty = [], [], False
    for i, n, off, size in zip(items, full_shape, offsets, local_shape, strict=False):
        if isinstance(i, slice):
            start, stop, step = i.indices(n)
            if step != 1:
                return None
            lo, hi = max(start, off), min(stop, off + size)
            empty |= lo >= hi
            here.append(slice(lo - off, max(lo, hi) - off))
            there.append(slice(lo - start, max(lo, hi) - start))
        elif hasattr(i, "__index__") and not isinstance(i, (bool, torch.Tensor)) and -n <= i < n:
            g = int(i) % n
            empty |= not off <= g < off + size
            here.append(g - off)
        else:
            return None
    return (None if empty else tuple(here), tuple(there))


@contextmanager
def serving(router):
    """Within: torch's grad mode off, torch.nn.init's functions and the in-place fill methods routed to ``router``."""
    import torch

    with torch.no_grad(), Patched(router), _mode(router):
        yield router


def _mode(router):
    import torch
    from torch.overrides import TorchFunctionMode

    fills = _fill_methods()

    class Mode(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if router.busy or func in _SHAPE_ONLY:  # gpuinit's own work, or a look at shapes: no value is read
                return func(*args, **kwargs)
            spec = fills.get(func)
            found = None if spec is None else spec(args, kwargs)
            if found is not None and router.serve(found[0], found[1], func.__name__, kwargs.get("generator")):
                return found[0]
            router.before(func, args, kwargs)
            out = func(*args, **kwargs)
            drawn = _FACTORIES.get(func)
            if drawn is not None and isinstance(out, torch.Tensor) and not router.dry:  # torch.rand(n) and kin
                router.busy = True
                try:
                    with _DISABLED[0]():
                        router._temporary(out, drawn, kwargs.get("generator"))
                finally:
                    router.busy = False
            name = getattr(func, "__name__", "")
            if func is torch.Tensor.__getitem__ and len(args) == 2:
                router.track(args[0], args[1], out)
            elif args and id(args[0]) in router.derived and router.derived[id(args[0])][0] is args[0] and (
                    name.endswith("_") and not name.endswith("__")):
                router.write_back(args[0], name)
            return out

    return Mode()


def _call_key(args, kwargs):
    """The arguments after the tensor as a key, when each is a plain value (by type and value; a float zero by its
    repr: -0.0 is not 0.0); None otherwise (a tensor argument, a NaN, anything else: bound afresh)."""
    for v in (*args, *kwargs.values()):  # floats (nonzero, not NaN) and strings: equal only when the same value
        if not ((type(v) is float and v and v == v) or type(v) is str):
            return _typed_key(args, kwargs)
    return args, tuple(kwargs.items())


def _typed_key(args, kwargs):
    out = []
    for v in (*args, *kwargs.values()):
        if type(v) not in _KEYABLE or v != v:
            return None
        out.append(repr(v) if type(v) is float and not v else (type(v), v))
    return tuple(out), tuple(kwargs), None  # three items: never equal to a two-item key of the fast form


_KEYABLE = frozenset((float, int, str, bool, type(None)))


@functools.lru_cache(maxsize=64)
def _binder(f):
    """A function taking ``f``'s arguments and returning {parameter: value}, defaults applied, as
    ``inspect.signature(f).bind(...)`` then ``apply_defaults()`` give; a call that does not fit the plain case
    (too many positional arguments, an unknown, repeated or missing one) goes to ``bind`` itself, which raises
    what Python would."""
    signature = inspect.signature(f)
    params = list(signature.parameters.values())
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY) for p in params):
        return lambda *args, **kwargs: _bound(signature, args, kwargs)
    positional = [p.name for p in params if p.kind == p.POSITIONAL_OR_KEYWORD]
    defaults = {p.name: p.default for p in params if p.default is not p.empty}
    names = {p.name for p in params}

    npos = len(positional)

    def bind(*args, **kwargs):
        n = len(args)
        if n > npos or (kwargs and (not kwargs.keys() <= names or not kwargs.keys().isdisjoint(positional[:n]))):
            return _bound(signature, args, kwargs)
        out = dict(defaults)
        out.update(zip(positional, args, strict=False))
        out.update(kwargs)
        return out if len(out) == len(names) else _bound(signature, args, kwargs)

    return bind


def _bound(signature, args, kwargs):
    bound = signature.bind(*args, **kwargs)
    bound.apply_defaults()
    return bound.arguments


SHAPE_HELPERS = ("_calculate_fan_in_and_fan_out", "_calculate_correct_fan")  # torch.nn.init's: they read shapes


def _shape_only(f):
    """``f`` (a function of a tensor's shape) run outside the torch function modes on a plain tensor by a thread
    inside own-init: the interception has nothing to see there, and each of its looks at a shape would pass
    through the mode."""
    def helper(tensor, *args, **kwargs):
        if type(tensor) in _PLAIN and getattr(_LOCAL, "routers", None):
            with _DISABLED[0]():
                return f(tensor, *args, **kwargs)
        return f(tensor, *args, **kwargs)

    helper.__name__, helper.__qualname__, helper.__doc__, helper.__wrapped__ = f.__name__, f.__qualname__, f.__doc__, f
    return helper


class Patched:
    """Within: this thread's calls of torch.nn.init's functions (also as transformers.initialization's table holds
    them) hand whole model tensors to ``router``.

    The functions are replaced once for the process while any call is inside (a count under a lock) and put back
    when the last one leaves; each replacement looks up the router of the calling thread (innermost call first),
    so another thread's calls, and this thread's outside the call, run torch's own functions as written."""

    def __init__(self, router):
        self.router = router

    def __enter__(self):
        with _PATCH_LOCK:
            if _PATCH["count"] == 0:
                _install()
            _PATCH["count"] += 1
        routers = getattr(_LOCAL, "routers", None)
        if routers is None:
            routers = _LOCAL.routers = []
        routers.append(self.router)
        return self

    def __exit__(self, *exc):
        routers = _LOCAL.routers
        routers.remove(self.router)  # the innermost is last; remove() also unwinds one left out of order
        with _PATCH_LOCK:
            _PATCH["count"] -= 1
            if _PATCH["count"] == 0:
                _uninstall()


_LOCAL = threading.local()  # .routers: the routers of this thread's calls in progress, innermost last
_PATCH_LOCK = threading.Lock()
_PATCH: dict = {"count": 0, "saved": []}  # calls inside; (where, name, original) to put back


def _install():
    import torch
    import torch.nn.init as tinit

    saved = _PATCH["saved"]
    saved.append((torch.Tensor, "set_", torch.Tensor.set_))  # no torch function mode sees set_
    torch.Tensor.set_ = _set_wrapper(torch.Tensor.set_)
    originals = {n: getattr(tinit, n) for n in INIT_NAMES}
    wrappers = {n: _wrapper(n, f) for n, f in originals.items()}
    for n in SHAPE_HELPERS:  # torch's own code calls them by the module attribute (``init._calculate_...``)
        original = getattr(tinit, n, None)
        if original is not None:
            saved.append((tinit, n, original))
            setattr(tinit, n, _shape_only(original))
    for mod_name in LOOKUPS:
        mod = sys.modules.get(mod_name)
        for n in INIT_NAMES if mod is not None else ():
            if getattr(mod, n, None) is originals[n]:
                saved.append((mod, n, originals[n]))
                setattr(mod, n, wrappers[n])
    hf = sys.modules.get("transformers.initialization")
    table = getattr(hf, "TORCH_INIT_FUNCTIONS", None)
    if isinstance(table, dict):
        for n in INIT_NAMES:
            if table.get(n) is originals[n]:
                saved.append((table, n, originals[n]))
                table[n] = wrappers[n]


def _uninstall():
    saved = _PATCH["saved"]
    for where, n, f in reversed(saved):
        if isinstance(where, dict):
            where[n] = f
        else:
            setattr(where, n, f)
    saved.clear()


def _set_wrapper(original):
    """``Tensor.set_`` that first runs the waiting fills of the tensor's memory and counts the write, for a thread
    inside own-init (set_ replaces the memory a waiting fill would write)."""
    def set_(self, *args, **kwargs):
        routers = getattr(_LOCAL, "routers", None)
        if routers and not routers[-1].busy:
            routers[-1].before(set_, (self, *args), kwargs)
        return original(self, *args, **kwargs)

    set_.__name__, set_.__qualname__, set_.__doc__, set_.__wrapped__ = "set_", "Tensor.set_", original.__doc__, original
    return set_


def _wrapper(name, original):
    """torch.nn.init's ``name`` (``original``) as own-init serves it: a whole model tensor of the calling thread's
    router becomes a gpuinit job; anything else runs ``original``."""
    bind, specs = _binder(original), {}

    def fill(tensor, *args, **kwargs):
        routers = getattr(_LOCAL, "routers", None)
        router = routers[-1] if routers else None
        if router is None or router.busy:
            return original(tensor, *args, **kwargs)
        if router.records:  # a model built under gpuinit.deferred(): the call is recorded (deferred.py)
            return router.record_init(name, original, tensor, args, kwargs)
        key = _call_key(args, kwargs)  # a model repeats a few calls: each is bound and read once
        spec = specs.get(key) if key is not None else None
        generator = None  # a keyed call has none: a torch.Generator is no plain value
        if spec is None:
            arguments = bind(tensor, *args, **kwargs)
            generator = arguments.get("generator")
            try:
                spec = init_spec(name, arguments)
            except (TypeError, ValueError):
                spec = None
            if spec is not None and key is not None:
                if len(specs) >= 1024:
                    specs.clear()
                specs[key] = spec
        if spec is not None and router.serve(tensor, spec, name, generator):
            return tensor
        return original(tensor, *args, **kwargs)

    fill.__name__ = fill.__qualname__ = name
    fill.__doc__, fill.__wrapped__ = original.__doc__, original
    return fill
