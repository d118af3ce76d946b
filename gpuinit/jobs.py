"""A fill job: one array, the draw fitted to its dtype, the region it holds of its logical tensor, a seed,
a stream and the backend that writes it. ``prepare`` makes every check; callers build all the jobs of a
call before ``run`` writes any of them, so an error leaves every array as it was."""
import math
import sys
from typing import NamedTuple

import numpy as np

from . import backends, complex_parts, distributed, draws, regions, schemes, seeding
from .backends.checks import holds_values, value_dtype
from .errors import InitError

HOST_BACKENDS = ("numpy", "staged")  # fill on the CPU: progress is reported per slice


class _JobFields(NamedTuple):
    array: object  # what the backend writes: the array, or a DTensor's local shard
    draw: draws.Draw
    full_shape: tuple
    offsets: tuple
    seed: int
    stream: int
    backend: object  # the backend module
    bits: str | None = None
    name: str | None = None  # the parameter or buffer it fills, for messages and progress
    direct: object = None  # the backend's way to write the array at once, found when checked (backend.direct)


class Job(_JobFields):
    """What one fill writes; immutable (a job is what ``prepare`` checked), compared by identity, and cheap to
    make (a model makes thousands). ``job._replace(...)`` gives a changed copy."""

    __slots__ = ()
    __eq__ = object.__eq__  # two jobs are two fills, even of equal arrays
    __ne__ = object.__ne__
    __hash__ = object.__hash__

    @property
    def numel(self):
        return math.prod(self.array.shape)

    @property
    def writes(self):
        return self.direct is not None or holds_values(self.array)

    def _replace(self, **changes):
        """A changed copy; ``direct`` was found for the array and region checked, so it is dropped."""
        changes.setdefault("direct", None)
        return super()._replace(**changes)


def prepare(array, scheme, params, *, seed, stream=0, in_axis=1, out_axis=0, batch_axis=(), full_shape=None,
            offsets=None, backend=None, bits=None, name=None):
    """A checked Job filling ``array`` with ``scheme(**params)``; raises InitError (naming ``name``) if any
    part of it cannot be done. ``seed=None`` takes the next seed of ``gpuinit.manual_seed``'s source, once
    everything else has passed."""
    target, draw, full_shape, offsets, stream, module, direct = checked(
        array, scheme, params, stream=stream, in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis,
        full_shape=full_shape, offsets=offsets, backend=backend, bits=bits, name=name)
    if seed is None:
        seed = seeding.next_seed()
    elif type(seed) is not int or not 0 <= seed < 1 << 64:
        seed = _named(name, seeding.check_u64, "seed", seed)
    return Job(target, draw, full_shape, offsets, seed, stream, module, bits, name, direct)


def checked(array, scheme, params, *, stream=0, in_axis=1, out_axis=0, batch_axis=(), full_shape=None,
            offsets=None, backend=None, bits=None, name=None):
    """Every check of a fill, before its seed: (the array the backend writes, the Draw, full_shape, offsets,
    stream, the backend module, the backend's ``direct`` for the array); raises InitError naming ``name``.

    A call whose every input that a check depends on equals an earlier call's (the array's type, dtype, shape,
    strides, device and writability, the scheme and its plain parameters, the axes, backend and settings)
    passed those checks already: its result is taken from a table, with no check made again but the stream's
    (each tensor of a model has its own)."""
    key = _key(array, scheme, _params_key(params), in_axis, out_axis, batch_axis, backend,
               backends.settings()) if full_shape is None and offsets is None and bits is None else None
    return _checked(key, array, scheme, params, stream, in_axis, out_axis, batch_axis, full_shape, offsets, backend,
                    bits, name)


def prepare_all(items, *, seed):
    """[Job] of ``items``, each (array, scheme, params, stream, name) with the default axes and backend, all with
    ``seed`` (an integer): what ``prepare`` gives for each, with what is the same for all of them (the settings,
    the key of each distinct params object) found once for the call."""
    prepare_one, plain, out = Preparer(seed), {}, []
    for array, scheme, params, stream, name in items:
        p = plain.get(id(params), plain)  # the items hold their params: an id stays theirs for the call
        if p is plain:
            p = plain[id(params)] = _params_key(params)
        out.append(prepare_one(array, scheme, params, stream, name, p))
    return out


class Preparer:
    """``prepare`` for the many fills of one whole-model call, with the default axes and backend and one seed: the
    settings are read once, when it is made (a whole-model call pins them)."""

    def __init__(self, seed):
        if type(seed) is not int or not 0 <= seed < 1 << 64:
            seed = seeding.check_u64("seed", seed)
        self.seed, self.settings, self.plain = seed, backends.settings(), {}
        self.seen = {}  # (id(params), scheme, array type, (dtype, shape, strides, device)): its _CHECKED entry

    def __call__(self, array, scheme, params, stream, name, plain=None):
        """The checked Job (InitError naming ``name``); ``plain``: _params_key(params), when known (else found
        once per params object: the table holds each, so an id stays its own)."""
        if plain is None:
            known = self.plain.get(id(params))
            if known is not None and known[0] is params:
                plain = known[1]
            else:
                plain = _params_key(params)
                self.plain[id(params)] = (params, plain)
            held = True
        else:
            held = False
        kind = type(array)
        if kind in _TORCH_TYPES and type(scheme) is str and plain is not None and type(stream) is int \
                and 0 <= stream < 1 << 64 and (array.is_cpu or array.is_cuda) and not array.is_neg() \
                and not array.is_inference() and array.layout is _TORCH_TYPES[kind]:
            # _key and _checked for the common case (a model's CPU or CUDA tensor), inline: a model has thousands
            sig = (array.dtype, array.shape, array.stride(), -1 if array.is_cpu else array.get_device())
            seen = (id(params), scheme, kind, sig) if held else None
            done = self.seen.get(seen) if held else None
            if done is None:
                done = _CHECKED.get((kind, (*sig, False), scheme, plain, 1, 0, (), None, self.settings))
                if done is not None and held:
                    self.seen[seen] = done
            if done is not None:
                return _new_job(Job, (array, done[0], done[1], done[2], self.seed, stream, done[3], None, name,
                                      done[4]))
        key = _key(array, scheme, plain, 1, 0, (), None, self.settings)
        target, draw, full_shape, offsets, stream, module, direct = _checked(
            key, array, scheme, params, stream, 1, 0, (), None, None, None, None, name)
        return Job(target, draw, full_shape, offsets, self.seed, stream, module, None, name, direct)


_new_job = tuple.__new__  # Job(...) without its keyword handling: _new_job(Job, (every field))


def _checked(key, array, scheme, params, stream, in_axis, out_axis, batch_axis, full_shape, offsets, backend, bits,
             name):
    done = _CHECKED.get(key) if key is not None else None
    if done is not None:
        if type(stream) is not int or not 0 <= stream < 1 << 64:
            stream = _named(name, seeding.check_u64, "stream", stream)
        draw, full_shape, offsets, module, direct = done
        return array, draw, full_shape, offsets, stream, module, direct
    out = _named(name, _check, array, scheme, params, stream, in_axis, out_axis, batch_axis, full_shape, offsets,
                 backend, bits)
    if key is not None and out[0] is array:  # a complex array's result holds its real view: checked every time
        if len(_CHECKED) >= _MEMO_MAX:
            _CHECKED.clear()
        _CHECKED[key] = out[1:4] + out[5:]  # never the array: the table holds none of the caller's
    return out


def forget():
    """Empty the tables of checked calls and planned draws (they are renewed as calls come)."""
    _CHECKED.clear()
    _DRAWS.clear()


def _named(name, f, *args):
    """f(*args), its InitError prefixed with ``name`` when given."""
    try:
        return f(*args)
    except InitError as e:
        if name is None:
            raise
        raise type(e)(f"{name}: {e}") from e


def _check(array, scheme, params, stream, in_axis, out_axis, batch_axis, full_shape, offsets, backend, bits):
    if distributed.is_dtensor(array):  # the local shard is a block of the global tensor
        if full_shape is not None or offsets is not None:
            raise InitError("a DTensor carries its own global shape and offsets: pass neither full_shape nor "
                            "offsets")
        array, full_shape, offsets = distributed.local_block(array)
    module = backends.select(array, backend)
    try:
        module.check(array, bits)
    except InitError:
        view = complex_parts.real_view(array) if bits is None else None
        if view is None:
            raise
        return _check_complex(array, view, module, scheme, params, stream, in_axis, out_axis, batch_axis,
                              full_shape, offsets)
    full_shape, offsets = regions.check_region(tuple(array.shape), full_shape, offsets)
    draw = _draw(scheme, params, full_shape, in_axis, out_axis, batch_axis, value_dtype(array, bits))
    stream = seeding.check_u64("stream", stream)
    find = getattr(module, "direct", None)
    return array, draw, full_shape, offsets, stream, module, find and find(array, full_shape, offsets, bits)


def _check_complex(array, view, module, scheme, params, stream, in_axis, out_axis, batch_axis, full_shape, offsets):
    """_check of a complex array: the job fills its real view (complex_parts), a block of the real view of the
    complex tensor, with the draw of the scheme on the complex shape made complex."""
    module.check(view)
    full_shape, offsets = regions.check_region(tuple(array.shape), full_shape, offsets)
    draw = _draw(scheme, params, full_shape, in_axis, out_axis, batch_axis, value_dtype(array))
    full_shape, offsets = (*full_shape, 2), (*offsets, 0)
    stream = seeding.check_u64("stream", stream)
    find = getattr(module, "direct", None)
    return view, draw, full_shape, offsets, stream, module, find and find(view, full_shape, offsets, None)


_CHECKED: dict = {}  # call key (_key): (draw, full_shape, offsets, backend module, direct) that passed every check
_MEMO_MAX = 4096


def _key(array, scheme, plain, in_axis, out_axis, batch_axis, backend, settings):
    """What every check of a call depends on, as a hashable key; None where a part of it is not a plain value
    of an exact type (a subclass, a DTensor, a list, a tensor parameter): such calls are checked in full.
    ``plain``: _params_key of the parameters; ``settings``: backends.settings()."""
    kind = type(array)
    if kind is np.ndarray:
        sig = (array.dtype, array.shape, array.strides, array.flags.writeable)
    elif kind in _TORCH_TYPES:
        if array.layout is not _TORCH_TYPES[kind] \
                or array.is_inference() and not sys.modules["torch"].is_inference_mode_enabled():
            return None  # an inference tensor outside inference mode (no key holds the mode): checked, refused
        device = -1 if array.is_cpu else array.get_device() if array.is_cuda else array.device  # torch.device: slow
        sig = (array.dtype, array.shape, array.stride(), device, array.is_neg())
    else:
        torch = sys.modules.get("torch")
        if torch is None or kind not in (torch.Tensor, torch.nn.Parameter):
            return None
        _TORCH_TYPES[kind] = torch.strided
        return _key(array, scheme, plain, in_axis, out_axis, batch_axis, backend, settings)
    if plain is None or type(scheme) is not str \
            or not (type(in_axis) is int or _axis(in_axis)) or not (type(out_axis) is int or _axis(out_axis)) \
            or not (batch_axis == () or _axis(batch_axis)) or not (backend is None or type(backend) is str):
        return None
    return (kind, sig, scheme, plain, in_axis, out_axis, batch_axis, backend, settings)


_TORCH_TYPES: dict = {}  # torch.Tensor and torch.nn.Parameter: torch.strided, once torch is in use


def _axis(axis):
    return type(axis) is int or (type(axis) is tuple and all(type(a) is int for a in axis))


def _params_key(params):
    """Plain parameters as a key, each by name, type and value, so True is not 1; a float zero by its repr, so
    -0.0 is not 0.0 (other floats are equal only when they are the same number; a NaN equals nothing, so it is
    always checked again); None when one is not plain (a tensor, whose repr rounds). The order is the caller's:
    the same parameters in another order make another key of the same result."""
    if not params:
        return ()
    key = []
    for k, v in params.items():
        kind = type(v)
        if kind is float:
            key.append((k, float, v if v else repr(v)))
        elif kind in _EXACT:
            key.append((k, kind, v))
        elif kind in _PLAIN:
            key.append((k, kind, repr(v)))
        else:
            return None
    return tuple(key)


_DRAWS: dict = {}  # (scheme, params, shape, axes, dtype): the fitted Draw (they are immutable); a model repeats them
_DRAWS_MAX = 4096


def _draw(scheme, params, full_shape, in_axis, out_axis, batch_axis, dtype):
    """The Draw of ``scheme(**params)`` on ``full_shape`` fitted to ``dtype``, planned once per distinct key (the
    tensors of a model's layers share a few). Only plain values key it (``_params_key``); anything else is
    planned every time."""
    key = None
    plain = _params_key(params)
    if plain is not None:
        key = (scheme, plain, full_shape, in_axis, out_axis,
               tuple(batch_axis) if isinstance(batch_axis, list) else batch_axis, dtype)
        try:
            hash(key)
        except TypeError:  # axes of a form the checks will refuse
            key = None
    draw = _DRAWS.get(key) if key is not None else None
    if draw is None:
        layout = schemes.Layout.of(full_shape, in_axis, out_axis, batch_axis)
        draw = schemes.plan(scheme, layout, params)
        if dtype in complex_parts.REAL:
            draw, dtype = complex_parts.complex_draw(scheme, draw), complex_parts.REAL[dtype]
        draw = draws.fit(draw, dtype)
        if key is not None:
            if len(_DRAWS) >= _DRAWS_MAX:
                _DRAWS.clear()
            _DRAWS[key] = draw
    return draw


_EXACT = (bool, int, str, type(None))  # keyed by value: equal values of one of these types are the same value
_PLAIN = (bool, int, float, str, type(None), np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
          np.int64, np.uint8, np.uint16, np.uint32, np.uint64)


def run(jobs, on_progress=None):
    """Write every job: each backend fills its jobs as one group (one kernel launch per dtype and draw kind
    on a GPU, one thread pool over all pieces on the CPU). ``on_progress(elements, name)`` is called after
    each slice of CPU work when given. A job alone goes to ``backend.fill``, several to ``backend.fill_group``."""
    if len(jobs) == 1 and on_progress is None:
        if jobs[0].writes:
            jobs[0].backend.fill(jobs[0])
        return
    by_backend = {}
    for job in jobs:
        if job.writes:
            by_backend.setdefault(job.backend, []).append(job)
    for backend, group in by_backend.items():
        step = max(1, len(group) // 20) if on_progress and backend.NAME in HOST_BACKENDS else len(group)
        for i in range(0, len(group), step):
            part = group[i:i + step]
            if len(part) == 1:
                backend.fill(part[0])
            else:
                backend.fill_group(part)
            if on_progress and backend.NAME in HOST_BACKENDS:
                on_progress(sum(j.numel for j in part), part[-1].name)
