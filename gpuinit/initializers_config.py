"""What ``gpuinit.initializers`` needs to read and write Keras 3 configs: seeds, dtypes, fan axes, constant
values, arrays, and names. Reference: Keras 3.15, keras/src/initializers/ and keras/src/saving/."""
import difflib
import math
import operator
import warnings

import numpy as np

from . import seeding
from .draws import DTYPE_MAX, real_value
from .errors import InitError, UnknownArgumentError, short_repr
from .schemes import Layout

FLOATX = "float32"  # keras.backend.floatx()'s default: the dtype of a call without dtype=


class SeedStream:
    """A Keras ``SeedGenerator`` given as a seed (its serialized config): a new seed on every call, so that the
    calls differ, in a sequence that its own seed makes reproducible."""

    def __init__(self, config):
        seed = config.get("seed")
        self.config = config
        self.initial = seeding.next_seed() if seed is None else u64("SeedGenerator seed", seed)
        self.calls = 0

    def next(self):
        seed = np.random.default_rng([self.initial, self.calls]).integers(0, 2**64, dtype=np.uint64)
        self.calls += 1
        return int(seed)


def live_seed(seed):
    """The seed an initializer draws with, from its ``seed=`` argument, by Keras's rules: an integer; None
    (one seed drawn now from ``gpuinit.manual_seed``'s source and kept: every call of the instance repeats);
    a serialized ``keras.random.SeedGenerator`` (a new seed per call). Anything else is a ValueError."""
    if seed is None:
        return seeding.next_seed()
    if isinstance(seed, dict) and seed.get("class_name") == "SeedGenerator":
        return SeedStream(arguments(seed.get("config"), "SeedGenerator", SEED_GENERATOR_ARGUMENTS))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InitError("`seed` argument should be an integer in [0, 2**64), None or a serialized "
                        f"keras.random.SeedGenerator; received seed={short_repr(seed)}")
    return u64("seed", seed)


def u64(name, value):
    """seeding.check_u64 with the value abbreviated in the message (a seed may come from any config)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < 2**64:
        raise InitError(f"{name} must be an integer in [0, 2**64), got {short_repr(value)}")
    return int(value)


SEED_GENERATOR_ARGUMENTS = ("seed", "name", "backend")  # keras.random.SeedGenerator's


def arguments(config, name, accepted=None):
    """A serialized object's "config" as a new dict of keyword arguments for ``name``: None is {}; anything but
    a dict with string keys, or (``accepted`` given) a key outside ``accepted``, is refused, naming ``name``."""
    if config is None:
        return {}
    if not isinstance(config, dict):
        raise InitError(f"{name}'s config must be a dict of its arguments, got {short_repr(config)}")
    for key in config:
        if not isinstance(key, str):
            raise InitError(f"{name}'s config: keys are argument names (strings), got {short_repr(key)}")
    unknown = sorted(set(config) - set(accepted)) if accepted is not None else []
    if unknown:
        raise UnknownArgumentError(f"{name}'s config: {name} takes {list(accepted) or 'no arguments'}, not "
                                   f"{short_repr(unknown)}")
    return dict(config)


def as_shape(shape):
    """``shape`` as a tuple of Python ints: an integer, or a sequence of integers (anything ``operator.index`` takes,
    as JAX and NumPy take them, but bools), none negative; an InitError otherwise (3.5 is not rounded, "34" is not
    (3, 4))."""
    try:
        if isinstance(shape, (bool, np.bool_, str, bytes)):
            raise TypeError
        try:
            dims = (operator.index(shape),)  # an integer (a 0-d integer array too)
        except TypeError:
            items = tuple(shape)  # read once: an iterator gives its items a single time
            if any(isinstance(s, (bool, np.bool_)) for s in items):
                raise TypeError from None
            dims = tuple(operator.index(s) for s in items)
    except TypeError:
        raise InitError(f"shape must be an int or a sequence of ints, got {short_repr(shape)}") from None
    if any(d < 0 for d in dims):
        raise InitError(f"shape must not have negative sizes, got {dims}")
    return dims


def dtype_name(dtype):
    """"float32" for None (Keras's floatx), a name for a string, a numpy dtype or a torch dtype."""
    if dtype is None:
        return FLOATX
    if isinstance(dtype, str) or str(dtype).startswith("torch."):
        return str(dtype).removeprefix("torch.")
    try:
        return np.dtype(dtype).name
    except TypeError:
        raise InitError(f"cannot interpret {short_repr(dtype)} as a dtype") from None


ARRAYS = ("numpy", "torch", "cupy")  # the libraries an initializer's new array comes from


def array_and_backend(array, backend):
    """(array library, fill backend) of an initializer call. ``backend=`` names the fill backend, as everywhere
    in gpuinit; ``backend="torch"`` (or "cupy") without ``array=``, which once named the array's library, still
    does so, with a DeprecationWarning."""
    if array is None and backend in ("torch", "cupy"):
        warnings.warn(f"backend={backend!r} names the backend that fills (numpy, triton, cupy, ...); for a "
                      f"{backend} array pass array={backend!r}", DeprecationWarning, stacklevel=3)
        return backend, None
    array = "numpy" if array is None else array
    if array not in ARRAYS:
        raise InitError(f"array must be 'numpy', 'torch' or 'cupy', got {short_repr(array)}")
    return array, backend


def numpy_dtype(name):
    """The numpy dtype of a name; "bfloat16" is ml_dtypes' (JAX's and Keras's on the host), imported only then."""
    if name != "bfloat16":
        return np.dtype(name)
    try:
        import ml_dtypes
    except ImportError:
        raise InitError("numpy's bfloat16 comes from ml_dtypes (pip install ml_dtypes; JAX and Keras install it), "
                        "or use array='torch'") from None
    return np.dtype(ml_dtypes.bfloat16)


def empty(shape, dtype, array):
    if array == "numpy":
        return np.empty(shape, numpy_dtype(dtype))
    if array == "torch":
        import torch

        return torch.empty(shape, dtype=getattr(torch, dtype))
    import cupy

    return cupy.empty(shape, dtype)


def fan_axes(shape, input_axes, output_axes):
    """``init_``'s (in_axis, out_axis, batch_axis) for a Keras shape: Keras's (..., in, out) layout unless both
    ``input_axes`` and ``output_axes`` are given; then Keras multiplies their sizes alone (compute_fans in
    keras/src/initializers/random_initializers.py), so every other axis becomes a batch axis."""
    if input_axes is None or output_axes is None:
        return -2, -1, ()
    nd = len(shape)
    ins, outs = tuple(input_axes), tuple(output_axes)
    for a in ins + outs:
        if isinstance(a, bool) or not isinstance(a, (int, np.integer)) or not -nd <= a < nd:
            raise InitError(f"input_axes {short_repr(list(ins))} / output_axes {short_repr(list(outs))}: "
                            f"{short_repr(a)} is no axis of shape {shape}")
    named = {int(a) % nd for a in ins + outs}
    batch = tuple(a for a in range(nd) if a not in named)
    keras_fans = (math.prod(shape[a] for a in ins), math.prod(shape[a] for a in outs))
    if Layout.of(shape, ins, outs, batch).fans != keras_fans:
        raise InitError(f"input_axes {short_repr(list(ins))} and output_axes {short_repr(list(outs))} on shape "
                        f"{shape}: gpuinit's layout cannot give Keras's fans {short_repr(keras_fans)} (1-D shapes "
                        "have fan_in = fan_out)")
    return ins, outs, batch


def check_variance_scaling(scale, mode, distribution, input_axes, output_axes):
    """VarianceScaling's arguments checked as Keras checks them (ValueError); the distribution's name, lower
    case, Keras's legacy "normal" read as "truncated_normal" (keras/src/initializers/random_initializers.py)."""
    number = real_value(scale)
    if number is None or not number > 0:
        raise InitError(f"Argument `scale` must be positive float. Received: scale={short_repr(scale)}")
    modes = ("fan_in", "fan_out", "fan_avg")
    if mode not in modes:
        raise InitError(f"Invalid `mode` argument: {short_repr(mode)}. Please use one of {modes}")
    allowed = ("truncated_normal", "untruncated_normal", "uniform")
    name = distribution.lower() if isinstance(distribution, str) else distribution
    name = "truncated_normal" if name == "normal" else name
    if name not in allowed:
        raise InitError(f"Invalid `distribution` argument: {short_repr(distribution)}. Please use one of {allowed} "
                        "(or 'normal', read as 'truncated_normal')")
    for axes_name, axes in (("input_axes", input_axes), ("output_axes", output_axes)):
        if axes is not None and (isinstance(axes, (str, bytes)) or not hasattr(axes, "__iter__")):
            raise InitError(f"`{axes_name}` must be None or a list of ints, got {short_repr(axes)}")
    return name


# ---- Constant's value -------------------------------------------------------------------------------------

def to_numpy(value):
    """``value`` (a number, a list, a numpy / torch / CuPy array) as float64 numpy; ValueError unless finite."""
    root = type(value).__module__.split(".")[0]
    if root == "torch":
        value = value.detach().cpu().double().numpy()
    elif root == "cupy":
        value = value.get()
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        raise InitError(f"Constant's value must be a number or an array of numbers, got {short_repr(value)}") from None
    if not np.isfinite(array).all():
        raise InitError(f"Constant's value must be finite, got {short_repr(value)}")
    return array


def serialize_value(value):
    """``value`` as Keras's serialize_keras_object writes it: numpy arrays as "__numpy__", other arrays as
    "__tensor__" ({"value": nested lists, "dtype": name}), numpy scalars as Python numbers."""
    if isinstance(value, (np.generic, np.ndarray)) and np.ndim(value) == 0:
        return value.item()
    if isinstance(value, np.ndarray):
        return {"class_name": "__numpy__", "config": {"value": value.tolist(), "dtype": value.dtype.name}}
    if hasattr(value, "dtype") and hasattr(value, "tolist"):
        return {"class_name": "__tensor__", "config": {"value": value.tolist(), "dtype": dtype_name(value.dtype)}}
    return value


def deserialize_value(value):
    """Constant's value from a config: "__numpy__" / "__tensor__" dicts as numpy arrays, anything else as it is."""
    if not isinstance(value, dict) or value.get("class_name") not in ("__numpy__", "__tensor__"):
        return value
    where = f"Constant's value, a serialized {value['class_name']}"
    config = value.get("config")
    if not isinstance(config, dict) or "value" not in config:
        raise InitError(f"{where}, needs a config dict with 'value' (and 'dtype'), got {short_repr(config)}")
    dtype = config.get("dtype")
    if dtype is not None and not isinstance(dtype, str):
        raise InitError(f"{where}, has dtype {short_repr(dtype)}: a dtype name or None")
    try:
        return np.array(config["value"], dtype=dtype if dtype in np.sctypeDict else None)
    except (TypeError, ValueError, OverflowError):
        raise InitError(f"{where}, must hold a number or nested lists of numbers, got "
                        f"{short_repr(config['value'])}") from None


def fill_from(array, values):
    """Copy numpy ``values`` (float64, of ``array``'s shape) into ``array``, after checking they fit its dtype."""
    dtype = dtype_name(array.dtype)
    if dtype not in DTYPE_MAX:
        raise InitError(f"gpuinit fills floating-point arrays ({', '.join(DTYPE_MAX)}), got {dtype}")
    if values.size and not np.abs(values).max() <= DTYPE_MAX[dtype]:
        raise InitError(f"Constant's value {np.abs(values).max():.6g} does not fit {dtype}")
    root = type(array).__module__.split(".")[0]
    if root == "torch":
        import torch

        return array.copy_(torch.from_numpy(np.ascontiguousarray(values)))
    if root == "cupy":
        import cupy

        array[...] = cupy.asarray(values)
        return array
    array[...] = values
    return array


def is_array(x):
    """A numpy array or scalar, or a torch / CuPy array (what Keras's get takes as the values themselves)."""
    root = type(x).__module__.split(".")[0]
    return isinstance(x, (np.ndarray, np.generic)) or (root in ("torch", "cupy") and hasattr(x, "shape"))


def fixed_values(values):
    """keras.initializers.get(array): a function that returns a copy of ``values`` cast to ``dtype``; the shape
    asked for must be theirs."""

    def initialize_fn(shape, dtype=None):
        if as_shape(shape) != tuple(values.shape):
            raise InitError(f"Expected `shape` to be {tuple(values.shape)} for direct tensor as initializer. "
                            f"Received shape={short_repr(shape)}")
        name = dtype_name(dtype)
        root = type(values).__module__.split(".")[0]
        if root == "torch":
            import torch

            return values.detach().to(dtype=getattr(torch, name), copy=True)
        if root == "cupy":
            return values.astype(name, copy=True)
        return np.array(values, dtype=numpy_dtype(name))

    return initialize_fn


# ---- names ------------------------------------------------------------------------------------------------

def lookup(name, table, custom_objects=None):
    """The class a Keras name stands for; custom_objects first, as Keras does."""
    if custom_objects and isinstance(name, str) and name in custom_objects:
        return custom_objects[name]
    if isinstance(name, str) and name in table:
        return table[name]
    if name in ("STFT", "stft", "STFTInitializer"):
        raise InitError("Keras's STFT initializer (an STFT convolution kernel, not a random draw) has no gpuinit "
                        "counterpart")
    close = difflib.get_close_matches(name, table, n=3) if isinstance(name, str) else []
    raise InitError(f"Could not interpret initializer identifier: unknown initializer {short_repr(name)}"
                    + (f"; did you mean {' or '.join(close)}?" if close else ""))
