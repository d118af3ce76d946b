"""Where a fill gets its 64-bit seed: one rule for ``init_``, ``init_module`` and ``gpuinit.nn.init``.

``resolve_seed`` applies it, first match wins:

1. ``seed=`` given: an integer in [0, 2**64) is the seed; a ``torch.Generator`` or a ``numpy.random.Generator``
   gives one draw (and advances); a ``numpy.random.SeedSequence`` gives ``generate_state(1, uint64)[0]``
   (deterministic, nothing advances).
2. ``generator=`` given (a ``torch.Generator``, where the API has the argument): one draw from it.
3. ``gpuinit.manual_seed(s)`` was called (and not undone by ``manual_seed(None)``): the next seed of
   gpuinit's own stream, whatever the array type.
4. a torch tensor or module: one draw from torch's global (CPU) generator, so ``torch.manual_seed(s)`` makes a
   torch script reproducible.
5. anything else (numpy, cupy): 64 fresh bits from the operating system's entropy.

A fill that draws nothing (a meta tensor, an empty array, a constant, eye or dirac fill) takes nothing from
any source; a seed it was given is still checked. Nothing here imports torch (``sys.modules`` only).
"""
import secrets
import sys
import threading

import numpy as np

from .errors import InitError

_lock = threading.Lock()
_rng = None  # gpuinit's own stream: None until manual_seed(s)
_SEED_FORMS = "an integer in [0, 2**64), a torch.Generator, a numpy.random.Generator or a numpy.random.SeedSequence"


def manual_seed(seed: int | np.integer | None) -> None:
    """Make every later call without ``seed=`` (or ``generator=``) reproducible, torch tensors included:
    they draw their seeds from one stream seeded with ``seed``. ``manual_seed(None)`` undoes it (torch
    tensors then follow ``torch.manual_seed`` again, other arrays fresh entropy)."""
    global _rng
    rng = None if seed is None else np.random.default_rng(check_u64("seed", seed))
    with _lock:
        _rng = rng


def is_seeded():
    """Whether ``gpuinit.manual_seed`` set gpuinit's own stream (rule 3)."""
    return _rng is not None


def next_seed():
    """A fresh 64-bit seed from the default source: gpuinit's stream once ``manual_seed`` was called, else
    the operating system's entropy."""
    with _lock:
        if _rng is not None:
            return int(_rng.integers(0, 2**64, dtype=np.uint64))
    return secrets.randbits(64)


def check_seed(seed=None, generator=None):
    """Raise InitError unless ``seed`` is None or one of the forms ``resolve_seed`` takes, and ``generator`` is
    None or a torch.Generator. Draws nothing."""
    if seed is not None and not (_is_generator(seed) or isinstance(seed, np.random.SeedSequence)):
        check_u64("seed", seed, forms=_SEED_FORMS)
    if generator is not None and not _is_torch_generator(generator):
        raise InitError(f"generator must be a torch.Generator, got {generator!r}")


def resolve_seed(seed=None, array=None, generator=None, *, draw=True):
    """The seed a fill of ``array`` uses (the rule in this module's docstring), checked.

    ``array`` is what is filled: a torch tensor or module makes torch's global generator the fallback; a
    meta tensor or an empty array draws nothing. ``draw=False``: the fill needs no randomness (returns an
    integer ``seed`` as given, else 0, advancing nothing)."""
    if seed is None and generator is None:  # the common case first: no seed given
        if not draw:
            return 0
        torch = sys.modules.get("torch")
        if torch is not None and isinstance(array, torch.Tensor):
            if array.is_meta or 0 in array.shape:  # a DTensor's shape is its global one
                return 0
            if _rng is None:
                return _torch_draw(torch.default_generator)
        elif _empty(array):
            return 0
        if _rng is not None:
            with _lock:
                if _rng is not None:
                    return int(_rng.integers(0, 2**64, dtype=np.uint64))
        if torch is not None and isinstance(array, torch.nn.Module):
            return _torch_draw(torch.default_generator)
        return secrets.randbits(64)
    if type(seed) is int and generator is None and 0 <= seed < 1 << 64:
        return seed
    check_seed(seed, generator)
    if seed is not None and not _is_generator(seed) and not isinstance(seed, np.random.SeedSequence):
        return int(seed)
    if not draw or _empty(array):
        return 0
    if isinstance(seed, np.random.SeedSequence):
        return int(seed.generate_state(1, np.uint64)[0])
    if isinstance(seed, np.random.Generator):
        return int(seed.integers(0, 2**64, dtype=np.uint64))
    if seed is not None or generator is not None:
        return _torch_draw(generator if seed is None else seed)
    with _lock:
        if _rng is not None:
            return int(_rng.integers(0, 2**64, dtype=np.uint64))
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, (torch.Tensor, torch.nn.Module)):
        return _torch_draw(torch.default_generator)
    return secrets.randbits(64)


def check_u64(name, value, forms="an integer in [0, 2**64)"):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**64:
        raise InitError(f"{name} must be {forms}, got {value!r}")
    return int(value)


def as_int64(x):
    """The int64 with the bits of unsigned 64-bit ``x`` (for int64 tensors and tables)."""
    return x - (1 << 64) if x >= 1 << 63 else x


def draw(generator):
    """One seed from a torch.Generator, as ``generator=`` gives it (the generator advances by one draw)."""
    return _torch_draw(generator)


def _torch_draw(generator):
    """One uniform 64-bit integer from a torch.Generator (it advances by one draw)."""
    torch = sys.modules["torch"]  # imported: the generator is a torch object

    if generator is torch.default_generator:  # a scalar of this thread's, not a new tensor per draw
        t = getattr(_scalars, "t", None)
        if t is None:
            with torch.inference_mode(False):  # a normal tensor, written in and out of inference mode alike
                t = _scalars.t = torch.empty((), dtype=torch.int64, device="cpu")
    else:
        t = torch.empty((), dtype=torch.int64, device=generator.device)
    return int(t.random_(-2**63, None, generator=generator).item()) % 2**64


_scalars = threading.local()


def _is_torch_generator(x):
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Generator)


def _is_generator(x):
    return isinstance(x, np.random.Generator) or _is_torch_generator(x)


def _empty(array):
    """True for what holds no values to write: a meta tensor or an array with a zero-length dimension (the
    logical shape: a DTensor is judged by its global shape, the same on every rank)."""
    if array is None or not hasattr(array, "shape"):
        return False
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor) and array.is_meta:
        return True
    return 0 in tuple(array.shape)
