"""A drop-in for ``torch.nn.init`` on gpuinit's stream and kernels.

Same names, signatures, defaults, return values, warnings and errors as ``torch.nn.init``, plus a
keyword ``seed=``. Without it, a seed is drawn from ``generator=`` or torch's global generator, so
``torch.manual_seed(s)`` makes a script reproducible. Functions that draw nothing draw no seed.
"""
import warnings

import torch

from ..api import init_
from ..schemes import calculate_gain

__all__ = [
    "calculate_gain",
    "constant_",
    "dirac_",
    "eye_",
    "kaiming_normal_",
    "kaiming_uniform_",
    "normal_",
    "ones_",
    "orthogonal_",
    "sparse_",
    "trunc_normal_",
    "uniform_",
    "xavier_normal_",
    "xavier_uniform_",
    "zeros_",
]


def _seed(tensor, seed, generator):
    if seed is not None or tensor.is_meta:
        return 0 if seed is None else seed
    device = generator.device if generator is not None else "cpu"
    return int(torch.empty((), dtype=torch.int64, device=device).random_(generator=generator).item())


def _fill(tensor, scheme, seed=None, generator=None, draws=True, **params):
    with torch.no_grad():
        return init_(tensor, scheme, seed=_seed(tensor, seed, generator) if draws else 0, **params)


def uniform_(tensor, a=0.0, b=1.0, generator=None, *, seed=None):
    r"""Fill ``tensor`` with values from :math:`\mathcal{U}(a, b)`."""
    return _fill(tensor, "uniform", seed, generator, a=a, b=b)


def normal_(tensor, mean=0.0, std=1.0, generator=None, *, seed=None):
    r"""Fill ``tensor`` with values from :math:`\mathcal{N}(\text{mean}, \text{std}^2)`."""
    return _fill(tensor, "normal", seed, generator, mean=mean, std=std)


def trunc_normal_(tensor, mean=0.0, std=1.0, a=-2.0, b=2.0, generator=None, *, seed=None):
    r"""Fill ``tensor`` from :math:`\mathcal{N}(\text{mean}, \text{std}^2)` truncated to the absolute
    bounds ``[a, b]``, in one pass (inverse CDF), no resampling and no temporaries."""
    if (mean < a - 2 * std) or (mean > b + 2 * std):
        warnings.warn("mean is more than 2 std from [a, b] in nn.init.trunc_normal_. "
                      "The distribution of values may be incorrect.", stacklevel=2)
    return _fill(tensor, "trunc_normal", seed, generator, mean=mean, std=std, a=a, b=b)


def constant_(tensor, val):
    """Fill ``tensor`` with ``val``."""
    return _fill(tensor, "constant", draws=False, value=val)


def ones_(tensor):
    """Fill ``tensor`` with ones."""
    return _fill(tensor, "ones", draws=False)


def zeros_(tensor):
    """Fill ``tensor`` with zeros."""
    return _fill(tensor, "zeros", draws=False)


def eye_(tensor):
    """Fill a 2-D ``tensor`` with the identity matrix (rectangular allowed)."""
    return _fill(tensor, "eye", draws=False)


def dirac_(tensor, groups=1):
    """Fill a {3, 4, 5}-D ``tensor`` with the Dirac delta, per group of output channels."""
    return _fill(tensor, "dirac", draws=False, groups=groups)


def xavier_uniform_(tensor, gain=1.0, generator=None, *, seed=None):
    r"""Glorot & Bengio (2010): :math:`\mathcal{U}(-r, r)`, :math:`r = \text{gain}\sqrt{6/(\text{fan\_in}+\text{fan\_out})}`."""
    return _fill(tensor, "xavier_uniform", seed, generator, gain=gain)


def xavier_normal_(tensor, gain=1.0, generator=None, *, seed=None):
    r"""Glorot & Bengio (2010): :math:`\mathcal{N}(0, \sigma^2)`, :math:`\sigma = \text{gain}\sqrt{2/(\text{fan\_in}+\text{fan\_out})}`."""
    return _fill(tensor, "xavier_normal", seed, generator, gain=gain)


def kaiming_uniform_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None, *, seed=None):
    r"""He et al. (2015): :math:`\mathcal{U}(-r, r)`, :math:`r = \sqrt{3}\,\text{gain}/\sqrt{\text{fan\_mode}}`."""
    return _kaiming(tensor, "kaiming_uniform", a, mode, nonlinearity, generator, seed)


def kaiming_normal_(tensor, a=0, mode="fan_in", nonlinearity="leaky_relu", generator=None, *, seed=None):
    r"""He et al. (2015): :math:`\mathcal{N}(0, \sigma^2)`, :math:`\sigma = \text{gain}/\sqrt{\text{fan\_mode}}`."""
    return _kaiming(tensor, "kaiming_normal", a, mode, nonlinearity, generator, seed)


def _kaiming(tensor, scheme, a, mode, nonlinearity, generator, seed):
    if 0 in tensor.shape:
        warnings.warn("Initializing zero-element tensors is a no-op", stacklevel=3)
        return tensor
    return _fill(tensor, scheme, seed, generator, a=a, mode=mode, nonlinearity=nonlinearity)


def orthogonal_(tensor, gain=1, generator=None, *, seed=None):
    """Saxe et al. (2013): a (semi-)orthogonal matrix, trailing dimensions flattened, times ``gain``."""
    return _fill(tensor, "orthogonal", seed, generator, gain=gain)


def sparse_(tensor, sparsity, std=0.01, generator=None, *, seed=None):
    """Martens (2010): N(0, std) with exactly ceil(sparsity * rows) zeros in each column."""
    return _fill(tensor, "sparse", seed, generator, sparsity=sparsity, std=std)


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
