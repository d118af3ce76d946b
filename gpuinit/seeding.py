"""The default seed source for calls without ``seed=`` (outside torch)."""
import threading

import numpy as np

from .errors import InitError

_lock = threading.Lock()
_rng = np.random.default_rng()


def manual_seed(seed):
    """Make every later call without ``seed=`` reproducible: they draw their seeds from ``seed``."""
    global _rng
    with _lock:
        _rng = np.random.default_rng(check_u64("seed", seed))


def next_seed():
    """A fresh 64-bit seed from the default source."""
    with _lock:
        return int(_rng.integers(0, 2**64, dtype=np.uint64))


def check_u64(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**64:
        raise InitError(f"{name} must be an integer in [0, 2**64), got {value!r}")
    return int(value)


def as_int64(x):
    """The int64 with the bits of unsigned 64-bit ``x`` (for int64 tensors and tables)."""
    return x - (1 << 64) if x >= 1 << 63 else x
