"""Backend registry and dispatch: which module fills which array.

A backend is a module that meets the contract of ``contract.Backend`` (checked by ``contract.validate`` when it
is loaded): ``NAME``, ``INSTALL``, ``available()``, ``accepts(array)``, ``check(array, bits=None)``,
``fill(job)`` and ``fill_group(jobs)`` (``jobs.Job`` objects).
Adding one: write the module, add it to ``_MODULES``, and map its array types in ``default_name``.
``_FALLBACKS`` holds backends that ``default_name`` chooses and ``backend=`` may name, but that $GPUINIT_BACKEND
and the CLI's ``--backend`` do not list: "staged", which fills torch tensors on devices without a gpuinit kernel
(mps, xpu, hpu, PrivateUse1 backends, ...) on the CPU, block by block, and copies them over (staged_backend.py).
Type checks look only in ``sys.modules``, so nothing here imports torch or cupy.
"""
import contextlib
import contextvars
import importlib
import sys

import numpy as np

from .. import config
from ..errors import BackendUnavailableError, InitError, UnknownBackendError
from .contract import validate

_MODULES = {"numpy": "gpuinit.backends.numpy_backend", "triton": "gpuinit.backends.triton_backend",
            "cupy": "gpuinit.backends.cupy_backend"}
_FALLBACKS = {"staged": "gpuinit.backends.staged_backend"}
_ALL = {**_MODULES, **_FALLBACKS}
ENV_VAR = config.BACKEND
_USING = contextvars.ContextVar("gpuinit_backend", default=None)
JAX_IMMUTABLE = ("a jax.Array is immutable, so gpuinit cannot fill it in place: gpuinit.jax.init(array, scheme, "
                 "seed=...) returns a new jax.Array with gpuinit's values on the array's devices (JAX's (..., in, out) "
                 "layout by default), and gpuinit.jax.initializers has jax.nn.initializers' factories")


def names():
    """The backends ``backend=``, $GPUINIT_BACKEND and the CLI's ``--backend`` take (not the fallbacks)."""
    return list(_MODULES)


@contextlib.contextmanager
def using(name):
    """Within the block, fills with no ``backend=`` of their own use backend ``name`` (None: no change), as
    ``init_module(backend=...)`` does for every fill it makes. The name is checked (and the backend loaded)
    on entry."""
    if name is None:
        yield
        return
    load(name.strip().lower() if isinstance(name, str) else name)
    token = _USING.set(name)
    try:
        yield
    finally:
        _USING.reset(token)


_VALID: dict = {}  # name: backend module, once imported and checked against the contract


def load(name):
    """The backend module ``name``: UnknownBackendError (a ValueError) for a name that is none of gpuinit's,
    BackendUnavailableError saying what to install for one that cannot run here."""
    module = _VALID.get(name) if isinstance(name, str) else None
    if module is None:
        module = _import(name)
    why = module.available()
    if why:
        raise BackendUnavailableError(f"backend {name!r} is unavailable: {why}; install {module.INSTALL}")
    return module


def _import(name):
    if not isinstance(name, str) or name not in _ALL:
        raise UnknownBackendError(f"unknown backend {name!r}; backends: {sorted(_MODULES)}, and "
                                  f"{sorted(_FALLBACKS)} for torch tensors on devices without a gpuinit kernel")
    try:
        module = importlib.import_module(_ALL[name])
    except ImportError as e:
        raise BackendUnavailableError(f"backend {name!r} cannot be imported ({e})") from e
    validate(module, name)
    _VALID[name] = module
    return module


def available_backends():
    """Names of the backends that can run here."""
    out = []
    for name in _ALL:
        try:
            load(name)
        except BackendUnavailableError:
            continue
        out.append(name)
    return out


def array_kind(array):
    """'numpy', 'torch-<device>' (cpu, cuda, meta, ...), 'cupy' or 'dlpack-cuda' (another library's CUDA
    array), without importing anything."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        return f"torch-{array.device.type}"
    cupy = sys.modules.get("cupy")
    if cupy is not None and isinstance(array, cupy.ndarray):
        return "cupy"
    if isinstance(array, np.ndarray):
        return "numpy"
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(array, jax.Array):  # before DLPack: a CUDA jax.Array exports one, read-only
        raise InitError(JAX_IMMUTABLE)
    if hasattr(array, "__dlpack_device__") and array.__dlpack_device__()[0] == 2:  # kDLCUDA
        return "dlpack-cuda"
    raise TypeError(f"gpuinit fills numpy arrays, torch tensors and cupy arrays, got {type(array).__module__}."
                    f"{type(array).__name__}")


def default_name(kind):
    """The backend an array of ``kind`` (array_kind) goes to: torch tensors on a device without a kernel of
    gpuinit's (mps, xpu, hpu, PrivateUse1, ...) are staged through the CPU."""
    name = {"numpy": "numpy", "torch-cpu": "numpy", "torch-meta": "numpy", "torch-cuda": "triton", "cupy": "cupy",
            "dlpack-cuda": "cupy"}.get(kind)
    if name is None and kind.startswith("torch-"):
        return "staged"
    return name


def settings():
    """What ``select`` depends on besides the array and ``backend=``: the variables' raw values, pinned
    settings and the enclosing ``using()``. Equal values choose the same backend."""
    return config.snapshot(), _USING.get()


def select(array, backend=None):
    """The backend module for ``array``: ``backend=``, else the one of an enclosing ``using()``, else
    $GPUINIT_BACKEND, else by array type. Every $GPUINIT_* variable is parsed here, so that a bad one is an
    error before anything is written."""
    config.check(_MODULES)
    kind = array_kind(array)
    if backend is None and kind != "torch-meta":  # a meta tensor is only checked, never written
        backend = _USING.get()
    if isinstance(backend, str):
        backend = backend.strip().lower()  # as $GPUINIT_BACKEND is read
    name = backend if backend is not None else config.backend(_MODULES)
    chosen = name is None
    if chosen:
        name = default_name(kind)
    if name is None:
        raise BackendUnavailableError(f"no backend fills {kind} tensors")
    module = load(name)
    if not module.accepts(array):
        raise BackendUnavailableError(f"backend {name!r} cannot fill a {kind} array")
    if chosen and name in _FALLBACKS:
        module.warn_once(kind.removeprefix("torch-"))
    return module
