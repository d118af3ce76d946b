"""A fill job: one array, the draw fitted to its dtype, the region it holds of its logical tensor, a seed,
a stream and the backend that writes it. ``prepare`` makes every check; callers build all the jobs of a
call before ``run`` writes any of them, so an error leaves every array as it was."""
import math
from dataclasses import dataclass

import numpy as np

from . import backends, distributed, draws, regions, schemes, seeding
from .backends.checks import holds_values, value_dtype
from .errors import InitError

HOST_BACKENDS = ("numpy", "staged")  # fill on the CPU: progress is reported per slice


@dataclass(frozen=True, eq=False)
class Job:
    array: object  # what the backend writes: the array, or a DTensor's local shard
    draw: draws.Draw
    full_shape: tuple
    offsets: tuple
    seed: int
    stream: int
    backend: object  # the backend module
    bits: str | None = None
    name: str | None = None  # the parameter or buffer it fills, for messages and progress

    @property
    def numel(self):
        return math.prod(self.array.shape)

    @property
    def writes(self):
        return holds_values(self.array)


def prepare(array, scheme, params, *, seed, stream=0, in_axis=1, out_axis=0, batch_axis=(), full_shape=None,
            offsets=None, backend=None, bits=None, name=None):
    """A checked Job filling ``array`` with ``scheme(**params)``; raises InitError (naming ``name``) if any
    part of it cannot be done. ``seed=None`` takes the next seed of ``gpuinit.manual_seed``'s source, once
    everything else has passed."""
    try:
        if distributed.is_dtensor(array):  # the local shard is a block of the global tensor
            if full_shape is not None or offsets is not None:
                raise InitError("a DTensor carries its own global shape and offsets: pass neither full_shape nor "
                                "offsets")
            array, full_shape, offsets = distributed.local_block(array)
        module = backends.select(array, backend)
        module.check(array, bits)
        full_shape, offsets = regions.check_region(tuple(array.shape), full_shape, offsets)
        draw = _draw(scheme, params, full_shape, in_axis, out_axis, batch_axis, value_dtype(array, bits))
        stream = seeding.check_u64("stream", stream)
        seed = seeding.next_seed() if seed is None else seeding.check_u64("seed", seed)
    except InitError as e:
        if name is None:
            raise
        raise type(e)(f"{name}: {e}") from e
    return Job(array, draw, full_shape, offsets, seed, stream, module, bits, name)


_DRAWS: dict = {}  # (scheme, params, shape, axes, dtype): the fitted Draw (they are immutable); a model repeats them
_DRAWS_MAX = 4096


def _draw(scheme, params, full_shape, in_axis, out_axis, batch_axis, dtype):
    """The Draw of ``scheme(**params)`` on ``full_shape`` fitted to ``dtype``, planned once per distinct key (the
    tensors of a model's layers share a few). Only plain values key it, each by type and repr (exact for them):
    True is refused where 1 is taken, and -0.0 is not 0.0 (a constant's sign of zero); anything else (a tensor,
    whose repr rounds) is planned every time."""
    key = None
    if all(type(v) in _PLAIN for v in params.values()):
        key = (scheme, tuple(sorted((k, type(v), repr(v)) for k, v in params.items())), full_shape, in_axis,
               out_axis, tuple(batch_axis) if isinstance(batch_axis, list) else batch_axis, dtype)
        try:
            hash(key)
        except TypeError:  # axes of a form the checks will refuse
            key = None
    draw = _DRAWS.get(key) if key is not None else None
    if draw is None:
        layout = schemes.Layout.of(full_shape, in_axis, out_axis, batch_axis)
        draw = draws.fit(schemes.plan(scheme, layout, params), dtype)
        if key is not None:
            if len(_DRAWS) >= _DRAWS_MAX:
                _DRAWS.clear()
            _DRAWS[key] = draw
    return draw


_PLAIN = (bool, int, float, str, type(None), np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
          np.int64, np.uint8, np.uint16, np.uint32, np.uint64)


def run(jobs, on_progress=None):
    """Write every job: each backend fills its jobs as one group (one kernel launch per dtype and draw kind
    on a GPU, one thread pool over all pieces on the CPU). ``on_progress(elements, name)`` is called after
    each slice of CPU work when given. A job alone goes to ``backend.fill``, several to ``backend.fill_group``."""
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
