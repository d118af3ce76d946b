"""``init_``: fill an array in place with a scheme, on the backend its type calls for."""
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from . import jobs, seeding

if TYPE_CHECKING:
    from .initializers import Initializer

_A = TypeVar("_A")  # the array type: init_ returns the array it filled

# Draws that use no randomness: they take no seed from any source.
NO_RANDOMNESS = ("constant", "eye", "dirac")


def init_(array: _A, scheme: "str | Initializer", *, seed: Any = None, generator: Any = None, stream: int = 0,
          in_axis: int | Sequence[int] = 1, out_axis: int | Sequence[int] = 0, batch_axis: int | Sequence[int] = (),
          full_shape: Sequence[int] | None = None, offsets: Sequence[int] | None = None, backend: str | None = None,
          bits: str | None = None, **params: Any) -> _A:
    """Fill ``array`` in place with ``scheme`` and return it.

    Args:
        array: a numpy array, a torch tensor or a cupy array of float16/bfloat16/float32/float64 (numpy's
            bfloat16 is ml_dtypes', as JAX and Keras hold it on the host); a complex one through its real view.
        scheme: a name (``"he_normal"``, ``"kaiming_uniform"``, ... see ``gpuinit.SCHEMES``) or an
            initializer from ``gpuinit.initializers``.
        seed, stream: 64-bit integers; every value is a pure function of (seed, stream, element index,
            scheme parameters). ``seed`` may also be a torch.Generator or numpy Generator (one draw) or a
            numpy SeedSequence. Without it (and without ``generator``) the seed comes from
            ``gpuinit.manual_seed``'s stream once that was called, else torch's global generator for torch
            tensors (``torch.manual_seed``), else fresh entropy (gpuinit.seeding states the rule).
        generator: a torch.Generator to draw the seed from when ``seed`` is None.
        in_axis, out_axis, batch_axis: the fan axes (torch's (out, in, *receptive) layout by default)
            and the axes that hold independent copies (no part in the fans).
        full_shape, offsets: ``array`` is the block of a larger logical tensor that starts at
            ``offsets``; fans come from ``full_shape`` and the values equal those of the full tensor.
            A DTensor (Shard / Replicate placements) gives its own: each rank fills its local shard.
        backend: "numpy", "triton" or "cupy"; default from the array type or $GPUINIT_BACKEND.
        bits: "bfloat16" to fill a uint16/int16 numpy or cupy array with bfloat16 bit patterns (libraries
            without a bfloat16 dtype hold bfloat16 weights that way).
        **params: the scheme's parameters (``gain=``, ``mode=``, ``a=``, ...).

    Everything is checked before the first write: on an error the array is unchanged, and no seed source
    has advanced. A meta tensor, an empty array and a fill without randomness draw no seed.

    >>> import numpy as np, gpuinit
    >>> w = gpuinit.init_(np.empty((256, 128), np.float32), "kaiming_uniform", seed=0, a=5 ** 0.5)
    """
    if type(scheme) is not str:
        scheme, params, seed = _resolve_scheme(scheme, params, seed)
    if seed is not None or generator is not None:
        seeding.check_seed(seed, generator)
    target, draw, region, at, stream, module, direct = jobs.checked(  # every check; the seed comes after them
        array, scheme, params, stream=stream, in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis,
        full_shape=full_shape, offsets=offsets, backend=backend, bits=bits)
    seed = seeding.resolve_seed(seed, array, generator, draw=draw.kind not in NO_RANDOMNESS)
    jobs.run([jobs.Job(target, draw, region, at, seed, stream, module, bits, None, direct)])
    return array


def _resolve_scheme(scheme, params, seed):
    """(name, params, seed) from a name or an initializer object (whose seed serves when none is given)."""
    if isinstance(scheme, str):
        return scheme, params, seed
    spec = getattr(scheme, "scheme_spec", None)
    if spec is None:
        raise TypeError(f"scheme must be a name or a gpuinit initializer, got {type(scheme).__name__}")
    name, own_params, own_seed = spec()
    return name, {**own_params, **params}, own_seed if seed is None else seed
