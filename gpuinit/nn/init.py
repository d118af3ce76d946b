"""A drop-in for ``torch.nn.init`` on gpuinit's stream and kernels.

Same names (the private helpers torch's own layers call included), signatures, defaults, return values,
warnings and exception types as ``torch.nn.init`` 2.13, plus a keyword ``seed=``. The seed follows
``gpuinit.seeding``: ``seed=``, else ``generator=``, else ``gpuinit.manual_seed``'s stream once it was called,
else torch's global generator, so ``torch.manual_seed(s)`` makes a script reproducible. Functions that draw
nothing (constants, eye, dirac, meta or empty tensors) draw no seed.

Errors: the checks torch makes in Python (dimensions, ``mode``, ``nonlinearity``, ``groups``) raise what torch
raises, with its messages, as InitError (a ValueError) where torch raises ValueError. Whatever else gpuinit
refuses (a bad range or std, a dtype it does not fill, a value that does not fit the dtype) is torch's tensor
ops' business in torch, which raise RuntimeError: here an :class:`InitRuntimeError`, both InitError and
RuntimeError; an inference tensor outside ``torch.inference_mode()`` too, but before anything is written (torch's
ops write it, then raise). Parameters take Python numbers, numpy scalars and 0-d tensors; anything else is an
:class:`InitTypeError` (a TypeError, as in torch).
"""
import math
import warnings

import torch

from .. import seeding
from ..api import init_
from ..backends.checks import INFERENCE_OUTSIDE
from ..draws import real_value
from ..errors import InitError, short_repr
from ..schemes import calculate_gain

__all__ = [  # torch.nn.init's, its deprecated aliases included
    "calculate_gain", "constant", "constant_", "dirac", "dirac_", "eye", "eye_", "kaiming_normal",
    "kaiming_normal_", "kaiming_uniform", "kaiming_uniform_", "normal", "normal_", "ones_", "orthogonal",
    "orthogonal_", "sparse", "sparse_", "trunc_normal_", "uniform", "uniform_", "xavier_normal",
    "xavier_normal_", "xavier_uniform", "xavier_uniform_", "zeros_",
]
_FILLED_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.complex64, torch.complex128)


class InitRuntimeError(InitError, RuntimeError):
    """Raised where torch.nn.init raises RuntimeError (from its tensor ops): a bad range or std, a dtype or a
    value gpuinit cannot write."""


class InitNotImplementedError(InitRuntimeError, NotImplementedError):
    """A random fill of a dtype gpuinit does not draw (integer, bool: torch raises NotImplementedError)."""


class InitTypeError(InitError, TypeError):
    """A parameter that is not a real number or a 0-d tensor (torch raises TypeError)."""


class InitZeroDivisionError(InitError, ZeroDivisionError):
    """A zero std in trunc_normal_ (torch divides by it)."""


def _num(name, value):
    """A float from a Python or numpy real number, a 0-d real numpy array or a 0-d real tensor (a bool tensor
    reads as 0 or 1, as torch reads it)."""
    if type(value) is float:
        return value
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype == torch.bool:
        return float(value.item())
    number = real_value(value)
    if number is None:
        raise InitTypeError(f"{name} must be a real number or a 0-d tensor, got {short_repr(value)}")
    return number


def _run(tensor, scheme, seed=None, generator=None, **params):
    """``init_`` under no_grad; an InitError of gpuinit's own checks becomes an InitRuntimeError."""
    if seed is not None or generator is not None:
        seeding.check_seed(seed, generator)  # a bad seed or generator stays a plain InitError
    if tensor.dtype not in _FILLED_DTYPES:
        raise InitNotImplementedError(f"gpuinit.nn.init draws float16, bfloat16, float32, float64, complex64 and "
                                      f"complex128 tensors, not {tensor.dtype}")
    grad = torch.is_grad_enabled()
    if grad:  # torch.no_grad(), without building a context manager per call
        torch._C._set_grad_enabled(False)
    try:
        return init_(tensor, scheme, seed=seed, generator=generator, **params)
    except InitError as e:
        if isinstance(e, (RuntimeError, ArithmeticError, TypeError)):
            raise
        raise InitRuntimeError(str(e)) from e
    finally:
        if grad:
            torch._C._set_grad_enabled(True)


def _need_dims(tensor, ok, what):
    if not ok(tensor.dim()):
        raise InitError(f"Only tensors with {what} dimensions are supported")


# ---- the private helpers torch's layers call -------------------------------------------------------------

def _no_grad_uniform_(tensor, a, b, generator=None, *, seed=None):
    a, b = _num("a", a), _num("b", b)
    if a > b:
        raise InitRuntimeError(f"uniform_ expects to return a [from, to) range, but found from={a} > to={b}")
    if a == b:  # torch fills a (nn.Linear's bias when fan_in == 0)
        return _run(tensor, "constant", seed, generator, value=a)
    return _run(tensor, "uniform", seed, generator, a=a, b=b)


def _no_grad_normal_(tensor, mean, std, generator=None, *, seed=None):
    mean, std = _num("mean", mean), _num("std", std)
    if not std >= 0:
        raise InitRuntimeError(f"normal expects std >= 0.0, but found std {std}")
    return _run(tensor, "normal", seed, generator, mean=mean, std=std)


def _no_grad_trunc_normal_(tensor, mean, std, a, b, generator=None, *, seed=None):
    mean, std, a, b = _num("mean", mean), _num("std", std), _num("a", a), _num("b", b)
    if not tensor.is_meta and ((mean < a - 2 * std) or (mean > b + 2 * std)):
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
                      "The distribution of values may be incorrect.", stacklevel=3)
    if std == 0:
        raise InitZeroDivisionError("trunc_normal_: std is zero (torch.nn.init divides by it)")
    if a > b:
        raise InitRuntimeError(f"trunc_normal_ expects a <= b, but found a={a} > b={b}")
    if a == b:  # torch fills a
        return _run(tensor, "constant", seed, generator, value=a)
    return _run(tensor, "trunc_normal", seed, generator, mean=mean, std=std, a=a, b=b)


def _writable(tensor):
    """torch's own in-place ops write an inference tensor outside inference mode before they refuse it: refused
    here first."""
    if tensor.is_inference() and not torch.is_inference_mode_enabled():
        raise InitRuntimeError(INFERENCE_OUTSIDE)


def _no_grad_fill_(tensor, val):
    _writable(tensor)
    with torch.no_grad():  # torch's own fill: any dtype, -inf and nan included, its casts and overflow errors
        return tensor.fill_(val)


def _no_grad_zero_(tensor):
    _writable(tensor)
    with torch.no_grad():
        return tensor.zero_()


def _calculate_fan_in_and_fan_out(tensor):
    if tensor.dim() < 2:
        raise InitError("Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    receptive_field_size = math.prod(tensor.shape[2:])
    return tensor.size(1) * receptive_field_size, tensor.size(0) * receptive_field_size


def _calculate_correct_fan(tensor, mode):
    mode = mode.lower()
    valid_modes = ["fan_in", "fan_out"]
    if mode not in valid_modes:
        raise InitError(f"Mode {mode} not supported, please use one of {valid_modes}")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


# ---- torch.nn.init's public functions ----------------------------------------------------------------------

def uniform_(tensor, a=0.0, b=1.0, generator=None, *, seed=None):
    r"""Fill ``tensor`` with values from :math:`\mathcal{U}(a, b)` (``a == b`` fills ``a``)."""
    return _no_grad_uniform_(tensor, a, b, generator, seed=seed)


def normal_(tensor, mean=0.0, std=1.0, generator=None, *, seed=None):
    r"""Fill ``tensor`` with values from :math:`\mathcal{N}(\text{mean}, \text{std}^2)` (std 0 fills mean)."""
    return _no_grad_normal_(tensor, mean, std, generator, seed=seed)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None, *, seed=None):
    r"""Fill ``tensor`` from :math:`\mathcal{N}(\text{mean}, \text{std}^2)` truncated to the absolute
    bounds ``[a, b]``, in one pass (inverse CDF), no resampling and no temporaries; ``a == b`` fills ``a``."""
    return _no_grad_trunc_normal_(tensor, mean, std, a, b, generator=generator, seed=seed)


def constant_(tensor, val):
    """Fill ``tensor`` with ``val``: any dtype, as torch's ``fill_`` casts it (``-inf`` and ``nan`` too)."""
    return _no_grad_fill_(tensor, val)


def ones_(tensor):
    """Fill ``tensor`` with ones."""
    return _no_grad_fill_(tensor, 1.0)


def zeros_(tensor):
    """Fill ``tensor`` with zeros."""
    return _no_grad_zero_(tensor)


def eye_(tensor):
    """Fill a 2-D ``tensor`` with the identity matrix (rectangular allowed)."""
    _need_dims(tensor, lambda n: n == 2, "2")
    return _structured(tensor, "eye")


def dirac_(tensor, groups=1):
    """Fill a {3, 4, 5}-D ``tensor`` with the Dirac delta, per group of output channels."""
    _need_dims(tensor, lambda n: n in (3, 4, 5), "3, 4, or 5")
    if tensor.size(0) % groups != 0:
        raise InitError("dim 0 must be divisible by groups")
    return _structured(tensor, "dirac", groups=int(groups))


def _structured(tensor, scheme, **params):
    """eye and dirac: gpuinit fills the float and complex dtypes it writes; any other dtype (int, bool, float8)
    gets the same values through a float64 copy, as torch writes them there."""
    _writable(tensor)
    if tensor.is_meta:
        return tensor
    if tensor.dtype in _FILLED_DTYPES:
        return _run(tensor, scheme, **params)
    values = _run(torch.empty(tensor.shape, dtype=torch.float64, device=tensor.device), scheme, **params)
    with torch.no_grad():
        return tensor.copy_(values)


def xavier_uniform_(tensor, gain=1.0, generator=None, *, seed=None):
    r"""Glorot & Bengio (2010): :math:`\mathcal{U}(-r, r)`,
    :math:`r = \text{gain}\sqrt{6/(\text{fan\_in}+\text{fan\_out})}`."""
    return _xavier(tensor, "xavier_uniform", gain, generator, seed)


def xavier_normal_(tensor, gain=1.0, generator=None, *, seed=None):
    r"""Glorot & Bengio (2010): :math:`\mathcal{N}(0, \sigma^2)`,
    :math:`\sigma = \text{gain}\sqrt{2/(\text{fan\_in}+\text{fan\_out})}`."""
    return _xavier(tensor, "xavier_normal", gain, generator, seed)


def _xavier(tensor, scheme, gain, generator, seed):
    _calculate_fan_in_and_fan_out(tensor)
    gain = _num("gain", gain)
    if not gain >= 0:  # torch: a reversed uniform range, or a negative std
        raise InitRuntimeError(f"{scheme}_: gain must be >= 0, got {gain}")
    if gain == 0:  # torch: U(-0.0, 0.0) (or U(0.0, -0.0) for gain -0.0), N(0, 0): zeros, with torch's signs
        value = -math.copysign(0.0, gain) if scheme == "xavier_uniform" else 0.0
        return _run(tensor, "constant", seed, generator, value=value)
    return _run(tensor, scheme, seed, generator, gain=gain)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None, *, seed=None):
    r"""He et al. (2015): :math:`\mathcal{U}(-r, r)`, :math:`r = \sqrt{3}\,\text{gain}/\sqrt{\text{fan\_mode}}`."""
    return _kaiming(tensor, "kaiming_uniform", a, mode, nonlinearity, generator, seed)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None, *, seed=None):
    r"""He et al. (2015): :math:`\mathcal{N}(0, \sigma^2)`, :math:`\sigma = \text{gain}/\sqrt{\text{fan\_mode}}`."""
    return _kaiming(tensor, "kaiming_normal", a, mode, nonlinearity, generator, seed)


def _kaiming(tensor, scheme, a, mode, nonlinearity, generator, seed):
    if 0 in tensor.shape:
        seeding.check_seed(seed, generator)
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return tensor
    _calculate_correct_fan(tensor, mode)
    calculate_gain(nonlinearity, a)
    return _run(tensor, scheme, seed, generator, a=a, mode=mode.lower(), nonlinearity=nonlinearity)


def orthogonal_(tensor, gain=1, generator=None, *, seed=None):
    """Saxe et al. (2013): a (semi-)orthogonal matrix, trailing dimensions flattened, times ``gain``."""
    _need_dims(tensor, lambda n: n >= 2, "2 or more")
    return _run(tensor, "orthogonal", seed, generator, gain=_num("gain", gain))


def sparse_(tensor, sparsity, std=0.01, generator=None, *, seed=None):
    """Martens (2010): N(0, std) with exactly ceil(sparsity * rows) zeros in each column."""
    _need_dims(tensor, lambda n: n == 2, "2")
    return _run(tensor, "sparse", seed, generator, sparsity=_num("sparsity", sparsity), std=_num("std", std))


def _make_deprecate(meth):
    new_name = meth.__name__
    old_name = new_name[:-1]

    def deprecated_init(*args, **kwargs):
        warnings.warn(f"`nn.init.{old_name}` is now deprecated in favor of `nn.init.{new_name}`.",
                      FutureWarning, stacklevel=2)
        return meth(*args, **kwargs)

    deprecated_init.__doc__ = f"{old_name}(...): deprecated, see :func:`{new_name}`."
    deprecated_init.__name__ = old_name
    return deprecated_init


uniform = _make_deprecate(uniform_)
normal = _make_deprecate(normal_)
constant = _make_deprecate(constant_)
eye = _make_deprecate(eye_)
dirac = _make_deprecate(dirac_)
xavier_uniform = _make_deprecate(xavier_uniform_)
xavier_normal = _make_deprecate(xavier_normal_)
kaiming_uniform = _make_deprecate(kaiming_uniform_)
kaiming_normal = _make_deprecate(kaiming_normal_)
orthogonal = _make_deprecate(orthogonal_)
sparse = _make_deprecate(sparse_)
