"""Keras-style initializer classes: ``GlorotUniform(seed=0)(shape)`` returns a new filled array.

Shapes follow Keras's (..., in, out) layout: fan_in = shape[-2] * receptive, fan_out = shape[-1] * receptive.
Each class is a name and parameters of a scheme in ``gpuinit.schemes``; passing an instance to
``gpuinit.init_`` fills an existing array instead (with ``init_``'s axes).
"""
import difflib
import re
from typing import ClassVar

import numpy as np

from .api import init_
from .errors import InitError


class Initializer:
    """Base class: ``scheme`` names the scheme, ``_params`` lists the constructor's parameters."""

    scheme = None
    _params = ()
    seeded = True  # random initializers take seed=; constant ones do not

    def __init__(self, *args, seed=None, **kwargs):
        if seed is not None and not self.seeded:
            raise TypeError(f"{type(self).__name__} takes no seed")
        names = self._params
        if len(args) > len(names):
            raise TypeError(f"{type(self).__name__} takes at most {len(names)} positional arguments")
        values = dict(zip(names, args))
        for k, v in kwargs.items():
            if k not in names or k in values:
                raise TypeError(f"{type(self).__name__} got an unexpected or repeated argument {k!r}")
            values[k] = v
        self.params = {k: values.get(k, self.defaults[k]) for k in names}
        self.seed = seed

    defaults: ClassVar[dict] = {}

    def scheme_spec(self):
        return self.scheme, dict(self.params), self.seed

    def __call__(self, shape, dtype="float32", *, backend="numpy"):
        """A new array of ``shape`` and ``dtype`` on ``backend`` ("numpy", "torch" or "cupy"), filled."""
        shape = (shape,) if isinstance(shape, int) else tuple(shape)
        array = _empty(shape, str(dtype).removeprefix("torch."), backend)
        return init_(array, self, in_axis=-2, out_axis=-1)

    def get_config(self):
        config = dict(self.params)
        if self.seeded:
            config["seed"] = self.seed
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other):
        return type(self) is type(other) and self.get_config() == other.get_config()


def _empty(shape, dtype, backend):
    if backend == "numpy":
        if dtype == "bfloat16":
            raise InitError("numpy has no bfloat16; use backend='torch'")
        return np.empty(shape, dtype)
    if backend == "torch":
        import torch

        return torch.empty(shape, dtype=getattr(torch, dtype))
    if backend == "cupy":
        import cupy

        return cupy.empty(shape, dtype)
    raise InitError(f"backend must be 'numpy', 'torch' or 'cupy', got {backend!r}")


def _initializer(class_name, scheme, seeded=True, **defaults):
    cls = type(class_name, (Initializer,), {"scheme": scheme, "_params": tuple(defaults), "defaults": defaults,
                                            "seeded": seeded,
                                            "__doc__": f"Keras ``{class_name}``: scheme ``{scheme}``."})
    cls.__module__ = __name__
    return cls


Zeros = _initializer("Zeros", "zeros", seeded=False)
Ones = _initializer("Ones", "ones", seeded=False)
Constant = _initializer("Constant", "constant", seeded=False, value=0.0)
RandomNormal = _initializer("RandomNormal", "random_normal", mean=0.0, stddev=0.05)
RandomUniform = _initializer("RandomUniform", "random_uniform", minval=-0.05, maxval=0.05)
TruncatedNormal = _initializer("TruncatedNormal", "truncated_normal", mean=0.0, stddev=0.05)
VarianceScaling = _initializer("VarianceScaling", "variance_scaling", scale=1.0, mode="fan_in",
                               distribution="truncated_normal")
GlorotUniform = _initializer("GlorotUniform", "glorot_uniform")
GlorotNormal = _initializer("GlorotNormal", "glorot_normal")
LecunUniform = _initializer("LecunUniform", "lecun_uniform")
LecunNormal = _initializer("LecunNormal", "lecun_normal")
HeUniform = _initializer("HeUniform", "he_uniform")
HeNormal = _initializer("HeNormal", "he_normal")
Orthogonal = _initializer("Orthogonal", "orthogonal", gain=1.0)
Identity = _initializer("Identity", "identity", seeded=False, gain=1.0)

_CLASSES = [Zeros, Ones, Constant, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling, GlorotUniform,
            GlorotNormal, LecunUniform, LecunNormal, HeUniform, HeNormal, Orthogonal, Identity]
_ALIASES = {"zero": Zeros, "one": Ones, "normal": RandomNormal, "uniform": RandomUniform,
            "OrthogonalInitializer": Orthogonal, "IdentityInitializer": Identity}


def _snake(name):
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


_BY_NAME = {**{c.__name__: c for c in _CLASSES}, **{_snake(c.__name__): c for c in _CLASSES}, **_ALIASES}


def get(identifier):
    """An initializer from a name ("he_normal", "HeNormal"), a config dict, an instance or None."""
    if identifier is None or isinstance(identifier, Initializer):
        return identifier
    if isinstance(identifier, dict):
        cls = get(identifier.get("class_name")).__class__ if "class_name" in identifier else None
        if cls is None:
            raise InitError(f"a config dict needs 'class_name' and 'config', got {identifier}")
        return cls.from_config(identifier.get("config", {}))
    if isinstance(identifier, str):
        if identifier not in _BY_NAME:
            close = difflib.get_close_matches(identifier, _BY_NAME, n=3)
            raise InitError(f"unknown initializer {identifier!r}" + (f"; did you mean {close}?" if close else ""))
        return _BY_NAME[identifier]()
    raise InitError(f"cannot interpret {identifier!r} as an initializer")


def serialize(initializer):
    """Keras's serialized form: {"class_name": ..., "config": ...}."""
    return {"class_name": type(initializer).__name__, "config": initializer.get_config()}


__all__ = [c.__name__ for c in _CLASSES] + ["Initializer", "get", "serialize"]
