"""``jax.nn.initializers`` drawn from gpuinit's stream: the same factories, arguments, defaults and axes (JAX's
(..., in, out) layout), each returning ``init(key, shape, dtype=None, out_sharding=None)`` for Flax
(``nn.Dense(features, kernel_init=glorot_uniform())``) and Equinox code.

The key decides the values: ``init(key, shape, dtype)`` holds what ``gpuinit.init_`` writes into an array of that
shape and dtype with the seed and stream of ``gpuinit.jax.key_seed(key)``, so one key gives the same values and
distinct keys distinct ones. Called with a concrete key, the array is made on its device (``out_sharding`` or JAX's
default) by ``gpuinit.jax.init``; under a trace (``jax.jit``, ``jax.vmap``, ``jax.eval_shape``), by a host callback
(``jax.pure_callback``). Values match JAX's in distribution, never bit for bit.
"""
import jax
import numpy as np

from .. import jobs
from ..draws import real_value
from ..errors import InitError, short_repr
from ..initializers_config import as_shape
from . import arrays


def _initializer(scheme, params, axes, default_dtype, check=None):
    """``init(key, shape, dtype, out_sharding)`` drawing ``scheme(**params)`` with fan axes ``axes`` (JAX's
    in_axis=-2, out_axis=-1 where not given)."""
    axes = {"in_axis": -2, "out_axis": -1, "batch_axis": (), **axes}

    def init(key, shape, dtype=default_dtype, out_sharding=None):
        shape, dtype = as_shape(shape), arrays.value_dtype(dtype)
        if check is not None:
            check(shape)
        if isinstance(key, jax.core.Tracer):
            return _traced(key, shape, dtype, scheme, params, axes, out_sharding)
        seed, stream = arrays.key_seed(key)
        return arrays.init(shape, scheme, seed=seed, stream=stream, dtype=dtype, device=out_sharding, **axes,
                           **params)

    return init


def _traced(key, shape, dtype, scheme, params, axes, out_sharding):
    """The initializer's array under a trace: every check now, the values by a host callback when it runs."""
    jobs.checked(np.empty(shape, dtype), scheme, params, **axes)  # np.empty reserves, never touches, the memory

    def values(key_data):
        seed, stream = arrays.key_seed(key_data)
        return arrays.host_values(shape, dtype, scheme, seed, stream, axes, params)

    out = jax.pure_callback(values, jax.ShapeDtypeStruct(shape, dtype), jax.random.key_data(key),
                            vmap_method="sequential")
    return out if out_sharding is None else jax.lax.with_sharding_constraint(out, out_sharding)


def _jax_axes(in_axis, out_axis, batch_axis):
    return {"in_axis": in_axis, "out_axis": out_axis, "batch_axis": batch_axis}


def _need_2d(in_axis):
    """JAX's check: the default in_axis needs at least two dimensions."""

    def check(shape):
        if isinstance(in_axis, int) and in_axis == -2 and len(shape) <= 1:
            raise InitError(f"Can't compute input and output sizes of a {len(shape)}-dimensional weights tensor with "
                            "default in_axis. Must be at least 2D or specify in_axis explicitly.")

    return check


# ---- constants ---------------------------------------------------------------------------------------------------

def zeros(key, shape, dtype=None, out_sharding=None):
    """An array of zeros (the key is ignored), as ``jax.nn.initializers.zeros``."""
    return _constant(0.0)(key, shape, dtype, out_sharding)


def ones(key, shape, dtype=None, out_sharding=None):
    """An array of ones (the key is ignored), as ``jax.nn.initializers.ones``."""
    return _constant(1.0)(key, shape, dtype, out_sharding)


def constant(value, dtype=None):
    """Arrays full of ``value`` (a number, written as gpuinit writes it: checked to fit the dtype; or an array,
    broadcast to the shape as JAX does)."""
    if np.ndim(value) == 0:
        return _constant(value, dtype)

    def init(key, shape, dtype=dtype, out_sharding=None):
        return jax.numpy.full(as_shape(shape), value, arrays.value_dtype(dtype), device=out_sharding)

    return init


def _constant(value, default_dtype=None):
    def init(key, shape, dtype=default_dtype, out_sharding=None):
        dtype = arrays.value_dtype(dtype)
        fill = arrays.host_values((), dtype, "constant", 0, 0, {}, {"value": value})  # checked, in the dtype
        return jax.numpy.full(as_shape(shape), fill, dtype, device=out_sharding)

    return init


# ---- random draws ------------------------------------------------------------------------------------------------

def uniform(scale=1e-2, dtype=None):
    """U[0, scale], as ``jax.nn.initializers.uniform``."""
    return _initializer("uniform", {"a": 0.0, "b": scale}, {}, dtype)


def normal(stddev=1e-2, dtype=None):
    """N(0, stddev^2), as ``jax.nn.initializers.normal``."""
    return _initializer("normal", {"mean": 0.0, "std": stddev}, {}, dtype)


def truncated_normal(stddev=1e-2, dtype=None, lower=-2.0, upper=2.0):
    """N(0, stddev^2) truncated to [lower * stddev, upper * stddev] (no variance correction), as
    ``jax.nn.initializers.truncated_normal``."""
    std, a, b = (_real(name, v) for name, v in (("stddev", stddev), ("lower", lower), ("upper", upper)))
    return _initializer("trunc_normal", {"mean": 0.0, "std": std, "a": a * std, "b": b * std}, {}, dtype)


def _real(name, value):
    number = real_value(value)
    if number is None:
        raise InitError(f"{name} must be a real number, got {short_repr(value)}")
    return number


def variance_scaling(scale, mode, distribution, in_axis=-2, out_axis=-1, batch_axis=(), dtype=None):
    """Variance scale / n, n the fan of ``mode`` ("fan_in", "fan_out", "fan_avg", "fan_geo_avg") over the axes;
    ``distribution`` "truncated_normal" (std sqrt(scale / n) / 0.8796..., truncated at two of those), "normal"
    (untruncated) or "uniform" (on +-sqrt(3 scale / n)), as ``jax.nn.initializers.variance_scaling``."""
    if distribution not in ("truncated_normal", "normal", "uniform"):
        raise InitError(f"invalid distribution for variance scaling initializer: {short_repr(distribution)}")
    return _initializer("variance_scaling", {"scale": scale, "mode": mode, "distribution": distribution},
                        _jax_axes(in_axis, out_axis, batch_axis), dtype, _need_2d(in_axis))


def _variance_scaling(scale, mode, distribution, doc):
    def factory(in_axis=-2, out_axis=-1, batch_axis=(), dtype=None):
        return variance_scaling(scale, mode, distribution, in_axis, out_axis, batch_axis, dtype)

    factory.__doc__ = f"{doc}: variance_scaling({scale}, {mode!r}, {distribution!r})."
    return factory


glorot_uniform = _variance_scaling(1.0, "fan_avg", "uniform", "Glorot (Xavier) uniform")
glorot_normal = _variance_scaling(1.0, "fan_avg", "truncated_normal", "Glorot (Xavier) normal")
lecun_uniform = _variance_scaling(1.0, "fan_in", "uniform", "LeCun uniform")
lecun_normal = _variance_scaling(1.0, "fan_in", "truncated_normal", "LeCun normal")
he_uniform = _variance_scaling(2.0, "fan_in", "uniform", "He (Kaiming) uniform")
he_normal = _variance_scaling(2.0, "fan_in", "truncated_normal", "He (Kaiming) normal")
for _name in ("glorot_uniform", "glorot_normal", "lecun_uniform", "lecun_normal", "he_uniform", "he_normal"):
    globals()[_name].__name__ = globals()[_name].__qualname__ = _name
xavier_uniform, xavier_normal = glorot_uniform, glorot_normal
kaiming_uniform, kaiming_normal = he_uniform, he_normal


def orthogonal(scale=1.0, column_axis=-1, dtype=None):
    """A (semi-)orthogonal matrix of the ``column_axis`` against the other axes, times ``scale``, as
    ``jax.nn.initializers.orthogonal``: gpuinit's ``orthogonal`` with that axis as its out axis."""
    if isinstance(column_axis, bool) or not isinstance(column_axis, int):
        raise InitError(f"column_axis must be an int, got {short_repr(column_axis)}")

    def check(shape):
        if len(shape) < 2:
            raise InitError("orthogonal initializer requires at least a 2D shape")
        if not -len(shape) <= column_axis < len(shape):
            raise InitError(f"column_axis={column_axis} is out of range for shape {shape}")

    def init(key, shape, dtype=dtype, out_sharding=None):
        shape = as_shape(shape)
        check(shape)
        column = column_axis % len(shape)
        axes = {"out_axis": column, "in_axis": 0 if column else 1}
        return _initializer("orthogonal", {"gain": scale}, axes, dtype)(key, shape, dtype, out_sharding)

    return init


def delta_orthogonal(scale=1.0, column_axis=-1, dtype=None):
    """Delta orthogonal (Xiao et al. 2018) for a 3-, 4- or 5-D kernel (k..., in, out), in <= out: zero but its centre
    tap, an orthogonal (in, out) matrix times ``scale``, as ``jax.nn.initializers.delta_orthogonal``."""
    if type(column_axis) is not int or column_axis != -1:
        raise InitError(f"delta_orthogonal: gpuinit's orthogonal centre tap has its columns on the last axis "
                        f"(column_axis=-1), got column_axis={short_repr(column_axis)}")
    return _initializer("delta_orthogonal", {"gain": scale}, {"in_axis": -2, "out_axis": -1}, dtype)


__all__ = ["constant", "delta_orthogonal", "glorot_normal", "glorot_uniform", "he_normal", "he_uniform",
           "kaiming_normal", "kaiming_uniform", "lecun_normal", "lecun_uniform", "normal", "ones", "orthogonal",
           "truncated_normal", "uniform", "variance_scaling", "xavier_normal", "xavier_uniform", "zeros"]
