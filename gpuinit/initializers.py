"""Keras 3's ``keras.initializers`` drawn by gpuinit: ``GlorotUniform(seed=0)(shape)`` returns a new array.

Classes, arguments, attributes, errors, configs and ``serialize`` / ``deserialize`` / ``get`` follow Keras 3.15
(keras/src/initializers/): configs load both ways; the values come from gpuinit's Philox stream. Shapes are in
Keras's (..., in, out) layout. As in Keras, an unseeded instance takes one seed when made (from
``gpuinit.manual_seed``'s stream, else fresh entropy) and repeats its values on every call, and instances compare
and hash by identity. ``gpuinit.init_(array, instance)`` fills an existing array with ``init_``'s axes.
"""
import functools
import inspect
import re

import numpy as np

from . import initializers_config as _cfg
from .api import init_
from .errors import InitError, short_repr


class Initializer:
    """Keras's base class. A subclass names a gpuinit scheme and the attributes that are its parameters;
    a Keras-style subclass may instead define ``__call__(shape, dtype=None)`` itself."""

    scheme: str | None = None
    _scheme_params: tuple[str, ...] = ()

    @property
    def params(self):
        """The scheme's parameters, from the attributes as they are now."""
        return {k: getattr(self, k) for k in self._scheme_params}

    def _spec(self):
        return self.scheme, self.params, None

    def scheme_spec(self):
        """(scheme, params, seed) for ``gpuinit.init_``, which fills with its own axes."""
        return self._spec()

    def _axes(self, shape):
        return -2, -1, ()

    def __call__(self, shape, dtype=None, *, array=None, backend=None):
        """A new array of ``shape`` and ``dtype`` (float32 when None, as Keras's floatx), filled.

        ``array``: the library of the new array, "numpy" (default), "torch" or "cupy"; ``backend``: the backend
        that fills it, as everywhere in gpuinit (default: by the array's type)."""
        if self.scheme is None:
            raise NotImplementedError("Initializer subclasses must implement the `__call__()` method.")
        array, backend = _cfg.array_and_backend(array, backend)
        shape = _cfg.as_shape(shape)
        in_axis, out_axis, batch_axis = self._axes(shape)
        name, params, seed = self._spec()
        out = _cfg.empty(shape, _cfg.dtype_name(dtype), array)
        return init_(out, name, seed=seed, in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis,
                     backend=backend, **params)

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**_cfg.arguments(config, cls.__name__, _arguments_of(cls)))

    def clone(self):
        return self.__class__.from_config(self.get_config())

    def __repr__(self):
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


@functools.cache
def _arguments_of(cls):
    """The keyword arguments ``cls`` takes, None for any (a ``**kwargs``)."""
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):  # no signature to read: the call itself says
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return tuple(p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY))


class RandomInitializer(Initializer):
    """Keras's base of the random initializers: ``seed`` is an int, None or a serialized SeedGenerator."""

    def __init__(self, seed=None):
        self._init_seed = seed  # what get_config writes (Keras keeps None as None)
        self.seed = _cfg.live_seed(seed)

    def _spec(self):
        seed = self.seed.next() if isinstance(self.seed, _cfg.SeedStream) else self.seed
        return self.scheme, self.params, seed

    def get_config(self):
        return {"seed": self._init_seed}


class Zeros(Initializer):
    """Keras ``Zeros``."""

    scheme = "zeros"


class Ones(Initializer):
    """Keras ``Ones``."""

    scheme = "ones"


class Constant(Initializer):
    """Keras ``Constant``: ``value`` a number, or an array (list, numpy, torch, CuPy) broadcast to the shape."""

    scheme = "constant"
    _scheme_params = ("value",)

    def __init__(self, value=0.0):
        _cfg.to_numpy(value)  # a ValueError now for a value that no call could write
        self.value = value

    def scheme_spec(self):
        if np.ndim(_cfg.to_numpy(self.value)):
            raise InitError("gpuinit.init_ fills with a scalar Constant; call Constant(array)(shape) for an array")
        return self._spec()

    @property
    def params(self):
        values = _cfg.to_numpy(self.value)
        return {"value": float(values)} if values.ndim == 0 else {"value": values}

    def __call__(self, shape, dtype=None, *, array=None, backend=None):
        values = self.params["value"]
        if not isinstance(values, np.ndarray):
            return super().__call__(shape, dtype, array=array, backend=backend)
        array, _ = _cfg.array_and_backend(array, backend)  # an array's values are copied, not drawn
        shape = _cfg.as_shape(shape)
        try:
            values = np.broadcast_to(values, shape)
        except ValueError:
            raise InitError(f"Constant's value of shape {values.shape} does not broadcast to {shape}") from None
        return _cfg.fill_from(_cfg.empty(shape, _cfg.dtype_name(dtype), array), values)

    def get_config(self):
        return {"value": _cfg.serialize_value(self.value)}

    @classmethod
    def from_config(cls, config):
        config = _cfg.arguments(config, cls.__name__, _arguments_of(cls))
        if "value" in config:
            config["value"] = _cfg.deserialize_value(config["value"])
        return cls(**config)


class Identity(Initializer):
    """Keras ``Identity``: ``gain`` * I on a 2-D shape (rectangular allowed)."""

    scheme = "identity"
    _scheme_params = ("gain",)

    def __init__(self, gain=1.0):
        self.gain = gain

    def get_config(self):
        # Keras 3.15's Identity writes {} (it defines no get_config) and so loses gain; its constructor takes it.
        return {"gain": self.gain}


class RandomNormal(RandomInitializer):
    """Keras ``RandomNormal``."""

    scheme = "random_normal"
    _scheme_params = ("mean", "stddev")

    def __init__(self, mean=0.0, stddev=0.05, seed=None):
        self.mean, self.stddev = mean, stddev
        RandomInitializer.__init__(self, seed)

    def get_config(self):  # TruncatedNormal's too (not a subclass, as in Keras)
        return {**RandomInitializer.get_config(self), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomInitializer):
    """Keras ``TruncatedNormal``: normal(mean, stddev) truncated to mean +- 2 stddev."""

    scheme = "truncated_normal"
    _scheme_params = ("mean", "stddev")
    __init__, get_config = RandomNormal.__init__, RandomNormal.get_config


class RandomUniform(RandomInitializer):
    """Keras ``RandomUniform``."""

    scheme = "random_uniform"
    _scheme_params = ("minval", "maxval")

    def __init__(self, minval=-0.05, maxval=0.05, seed=None):
        self.minval, self.maxval = minval, maxval
        super().__init__(seed=seed)

    def get_config(self):
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


class VarianceScaling(RandomInitializer):
    """Keras ``VarianceScaling``: variance scale / n, n = max(1, fan_in / fan_out / their mean).

    ``distribution``: "truncated_normal" (stddev sqrt(scale / n) / 0.87962566103423978, truncated at 2 of those
    stddevs), "untruncated_normal", "uniform" (limit sqrt(3 scale / n)), and Keras's "normal", which Keras
    reads as "truncated_normal" (case-insensitive, as Keras). ``input_axes`` and ``output_axes``, both given,
    name the axes whose sizes are fan_in and fan_out (Keras's EinsumDense writes them).
    """

    scheme = "variance_scaling"
    _scheme_params = ("scale", "mode", "distribution")

    def __init__(self, scale=1.0, mode="fan_in", distribution="truncated_normal", seed=None, input_axes=None,
                 output_axes=None):
        distribution = _cfg.check_variance_scaling(scale, mode, distribution, input_axes, output_axes)
        self.scale, self.mode, self.distribution = scale, mode, distribution
        self.input_axes, self.output_axes = input_axes, output_axes
        super().__init__(seed=seed)

    def _axes(self, shape):
        return _cfg.fan_axes(shape, self.input_axes, self.output_axes)

    def scheme_spec(self):
        if self.input_axes is not None and self.output_axes is not None:
            raise InitError(f"{type(self).__name__} with input_axes / output_axes: gpuinit.init_ takes its fan "
                            "axes as in_axis= / out_axis= / batch_axis=; pass those and an initializer without them")
        return self._spec()

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "mode": self.mode, "distribution": self.distribution,
                "input_axes": self.input_axes, "output_axes": self.output_axes}


def _variance_scaling(class_name, scale, mode, distribution, doc):
    def __init__(self, seed=None, input_axes=None, output_axes=None):
        VarianceScaling.__init__(self, scale, mode, distribution, seed, input_axes, output_axes)

    def get_config(self):
        return {"seed": self._init_seed, "input_axes": self.input_axes, "output_axes": self.output_axes}

    return type(class_name, (VarianceScaling,), {"__init__": __init__, "get_config": get_config,
                                                 "__module__": __name__, "__qualname__": class_name,
                                                 "__doc__": f"Keras ``{class_name}``: {doc}."})


GlorotUniform = _variance_scaling("GlorotUniform", 1.0, "fan_avg", "uniform", "U(-r, r), r = sqrt(6 / (in + out))")
GlorotNormal = _variance_scaling("GlorotNormal", 1.0, "fan_avg", "truncated_normal",
                                 "truncated normal of stddev sqrt(2 / (in + out))")
LecunUniform = _variance_scaling("LecunUniform", 1.0, "fan_in", "uniform", "U(-r, r), r = sqrt(3 / fan_in)")
LecunNormal = _variance_scaling("LecunNormal", 1.0, "fan_in", "truncated_normal",
                                "truncated normal of stddev sqrt(1 / fan_in)")
HeUniform = _variance_scaling("HeUniform", 2.0, "fan_in", "uniform", "U(-r, r), r = sqrt(6 / fan_in)")
HeNormal = _variance_scaling("HeNormal", 2.0, "fan_in", "truncated_normal",
                             "truncated normal of stddev sqrt(2 / fan_in)")


class Orthogonal(RandomInitializer):
    """Keras ``Orthogonal``: a (semi-)orthogonal matrix of the last axis against the others, times ``gain``."""

    scheme = "orthogonal"
    _scheme_params = ("gain",)

    def __init__(self, gain=1.0, seed=None):
        self.gain = gain
        super().__init__(seed=seed)

    def get_config(self):
        return {**super().get_config(), "gain": self.gain}


_CLASSES = (Zeros, Ones, Constant, Identity, RandomNormal, RandomUniform, TruncatedNormal, VarianceScaling,
            GlorotUniform, GlorotNormal, LecunUniform, LecunNormal, HeUniform, HeNormal, Orthogonal)
# Keras's ALL_OBJECTS_DICT (keras/src/initializers/__init__.py): class names, their snake_case, aliases.
ALL_OBJECTS_DICT = {**{c.__name__: c for c in _CLASSES},
                    **{re.sub(r"(?<!^)(?=[A-Z])", "_", c.__name__).lower(): c for c in _CLASSES},
                    "IdentityInitializer": Identity, "normal": RandomNormal, "one": Ones,
                    "OrthogonalInitializer": Orthogonal, "uniform": RandomUniform, "zero": Zeros}


def serialize(initializer):
    """Keras 3's form: {"module": "keras.initializers", "class_name", "config", "registered_name": None}."""
    if initializer is None:
        return None
    if not isinstance(initializer, Initializer):
        raise InitError(f"serialize takes a gpuinit initializer, got {type(initializer).__name__}")
    cls = type(initializer)
    ours = cls in _CLASSES
    return {"module": "keras.initializers" if ours else cls.__module__, "class_name": cls.__name__,
            "config": initializer.get_config(), "registered_name": None if ours else cls.__name__}


def deserialize(config, custom_objects=None):
    """An initializer from ``serialize``'s form (Keras 2's {"class_name", "config"} too) or a name; None stays
    None. ``module`` and ``registered_name`` are read by class_name alone, as Keras reads its built-ins."""
    if config is None:
        return None
    if isinstance(config, str):
        config = {"class_name": config}
    if not isinstance(config, dict) or "class_name" not in config:
        raise InitError(f"Unknown `config` as a `dict`, config={short_repr(config)}: it needs 'class_name' "
                        "(and 'config')")
    cls = _cfg.lookup(config["class_name"], ALL_OBJECTS_DICT, custom_objects)
    inner = _cfg.arguments(config.get("config"), config["class_name"])  # the class's own names: its from_config
    if hasattr(cls, "from_config"):
        return cls.from_config(inner)
    return cls(**inner) if isinstance(cls, type) else cls


def get(identifier):
    """Keras's ``get``: None; a name ("he_normal", "HeNormal", "zeros"); a config dict; a class (instantiated);
    a callable (returned as it is); or an array, for which a function ``(shape, dtype=None)`` returning a copy
    of it (the shape must be its own), as Keras returns."""
    if identifier is None:
        return None
    if isinstance(identifier, (dict, str)):
        obj = deserialize(identifier)
    elif _cfg.is_array(identifier):
        obj = _cfg.fixed_values(identifier)
    else:
        obj = identifier
    if callable(obj):
        return obj() if isinstance(obj, type) else obj
    raise InitError(f"Could not interpret initializer identifier: {short_repr(identifier)}")


__all__ = [c.__name__ for c in _CLASSES] + ["Initializer", "RandomInitializer", "deserialize", "get", "serialize"]
