"""gpuinit: fast, reproducible, shard-invariant in-place weight initialization.

>>> import numpy as np, gpuinit
>>> w = gpuinit.init_(np.empty((512, 256), np.float32), "glorot_uniform", seed=0)
"""
from .api import init_
from .backends import available_backends
from .distributed import fingerprint
from .errors import BackendUnavailableError, ConfigError, InitError, UnknownBackendError, ZeroFanError
from .kernels.numpy_stream import philox4x32
from .schemes import SCHEMES, calculate_gain
from .seeding import manual_seed

__version__ = "0.1.0"  # the one version number: pyproject.toml reads it (dynamic = ["version"])
__all__ = [
    "SCHEMES",
    "BackendUnavailableError",
    "ConfigError",
    "InitError",
    "UnknownBackendError",
    "ZeroFanError",
    "available_backends",
    "calculate_gain",
    "fingerprint",
    "init_",
    "init_module",
    "initializers",
    "manual_seed",
    "models",
    "nn",
    "own_init",
    "philox4x32",
]


def init_module(module, recipe="torch", *, seed=None, device=None, rules=None, progress=None, backend=None):
    """Materialize a torch module and fill every parameter and buffer: see gpuinit.modules.init_module."""
    from .modules import init_module as _init_module

    return _init_module(module, recipe, seed=seed, device=device, rules=rules, progress=progress, backend=backend)


def own_init(module, *, seed=None, device=None, rules=None):
    """Run a torch module's own init code with its fills served by gpuinit: see gpuinit.own_init.own_init."""
    from .own_model import own_init as _own_init

    return _own_init(module, seed=seed, device=device, rules=rules)


def __getattr__(name):
    if name in ("initializers", "nn", "models", "modules"):
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
