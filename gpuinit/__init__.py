"""gpuinit: fast, reproducible, shard-invariant in-place weight initialization.

>>> import numpy as np, gpuinit
>>> w = gpuinit.init_(np.empty((512, 256), np.float32), "glorot_uniform", seed=0)
"""
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from . import source_tree  # noqa: F401  (first: a checkout's gpuinit.kernels is its top-level kernels/ folder)
from .api import init_
from .backends import available_backends
from .errors import BackendUnavailableError, ConfigError, InitError, UnknownBackendError, ZeroFanError
from .kernels.numpy_stream import philox4x32
from .schemes import SCHEMES, calculate_gain
from .seeding import manual_seed

if TYPE_CHECKING:
    from .model_init import OwnInitReport

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
    "deferred",
    "fingerprint",
    "init_",
    "init_module",
    "initializers",
    "manual_seed",
    "models",
    "nn",
    "own_init",
    "philox4x32",
    "save_init",
]


_M = TypeVar("_M")  # the module type: init_module returns the module it filled


def init_module(module: _M, recipe: str = "torch", *, seed: Any = None, device: Any = None,
                rules: Iterable[Sequence[Any]] | None = None, progress: bool | None = None,
                backend: str | None = None) -> _M:
    """Materialize a torch module and fill every parameter and buffer: see gpuinit.model_init.init_module."""
    from .model_init import init_module as _init_module

    return _init_module(module, recipe, seed=seed, device=device, rules=rules, progress=progress, backend=backend)


def own_init(module: Any, *, seed: Any = None, device: Any = None,
             rules: Iterable[Sequence[Any]] | None = None) -> "OwnInitReport":
    """Run a torch module's own init code with its fills served by gpuinit: see gpuinit.model_init.own_init."""
    from .model_init import own_init as _own_init

    return _own_init(module, seed=seed, device=device, rules=rules)


def save_init(module: Any, path: Any, recipe: str = "torch", *, seed: Any = None,
              rules: Iterable[Sequence[Any]] | None = None, format: str = "safetensors", max_shard_size: Any = "5GB",
              memory: Any = "256MiB", workers: int = 1, metadata: dict | None = None) -> list:
    """Write a meta model's initialized tensors to safetensors files, block by block, never materializing it:
    see gpuinit.model_init.save."""
    from .model_init.save import save_init as _save_init

    return _save_init(module, path, recipe, seed=seed, rules=rules, format=format, max_shard_size=max_shard_size,
                      memory=memory, workers=workers, metadata=metadata)


def deferred() -> "AbstractContextManager[Any]":
    """Build models within on the meta device, their constructors' init recorded for own_init to replay with
    gpuinit's stream: see gpuinit.model_init.deferred."""
    from .model_init.deferred import deferred as _deferred

    return _deferred()


def fingerprint(module: Any) -> dict[str, int]:
    """{parameter name: 64-bit checksum of its values}, the same whatever the sharding: see
    gpuinit.model_init.fingerprint and gpuinit.distributed.checksums."""
    from .model_init.fingerprint import fingerprint as _fingerprint

    return _fingerprint(module)


def __getattr__(name):
    if name in ("initializers", "jax", "nn", "models", "model_init", "modules"):
        import importlib

        # gpuinit.jax imports JAX (not in __all__); gpuinit.modules: the earlier name of gpuinit.model_init
        # (gpuinit.modules.plan_module, init_module)
        return importlib.import_module(f"{__name__}.{'model_init' if name == 'modules' else name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
