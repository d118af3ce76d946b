"""The initializers of the literature, as functions from a layout and parameters to a ``Draw``.

One source of truth: fans, gains and variance scaling are computed here, once, on the host.
Every variance-scaling scheme (Glorot/Xavier, LeCun, He/Kaiming and their variants) is a
parameterisation of :func:`variance_scaling`.

Each scheme's docstring states what it draws as a formula and works it out for an example layout. Fans are
JAX's: for a torch weight (out, in, *kernel), fan_in = in * prod(kernel) and fan_out = out * prod(kernel), so
a (256, 512) weight has fan_in 512, fan_out 256 and (fan_in + fan_out) / 2 = 384. A truncated normal's
``std`` is that of the normal before truncation; ``draws.expected_std`` is the std of the values written.
"""
import difflib
import functools
import inspect
import math
from dataclasses import dataclass

from . import draws
from .errors import InitError, ZeroFanError, short_repr

# std of a standard normal truncated to (-2, 2): Keras and JAX divide by it so that the
# truncated draw keeps the variance the rule asks for.
TRUNCATED_NORMAL_STD_2 = 0.87962566103423978
MODES = ("fan_in", "fan_out", "fan_avg", "fan_geo_avg")
DISTRIBUTIONS = ("truncated_normal", "untruncated_normal", "normal", "uniform")


@dataclass(frozen=True)
class Layout:
    """The logical (full) shape and which axes are inputs, outputs and independent copies."""

    shape: tuple
    in_axis: tuple = (1,)
    out_axis: tuple = (0,)
    batch_axis: tuple = ()

    @classmethod
    def of(cls, shape, in_axis=1, out_axis=0, batch_axis=()):
        shape = tuple(int(s) for s in shape)
        nd = len(shape)

        def norm(axes, name):
            axes = (axes,) if isinstance(axes, int) else tuple(axes)
            out = []
            for a in axes:
                if isinstance(a, bool) or not isinstance(a, int):
                    raise InitError(f"{name} must be an int or a tuple of ints, got {short_repr(a)}")
                if nd >= 2 and not -nd <= a < nd:
                    raise InitError(f"{name}={a} is out of range for a {nd}-D shape {shape}")
                out.append(a % nd if nd else a)
            return tuple(out)

        ins, outs, batch = norm(in_axis, "in_axis"), norm(out_axis, "out_axis"), norm(batch_axis, "batch_axis")
        if nd >= 2 and (set(ins) & set(outs) or (set(ins) | set(outs)) & set(batch)):
            raise InitError(f"in_axis {ins}, out_axis {outs} and batch_axis {batch} must not overlap")
        return cls(shape, ins, outs, batch)

    @property
    def fans(self):
        """(fan_in, fan_out) as JAX computes them; Keras's rules for 0-D and 1-D shapes."""
        shape = self.shape
        if len(shape) == 0:
            return 1, 1
        if len(shape) == 1:
            return shape[0], shape[0]
        def size(axes):
            return math.prod(shape[a] for a in axes)

        rest = set(range(len(shape))) - set(self.in_axis) - set(self.out_axis) - set(self.batch_axis)
        receptive = size(rest)
        return size(self.in_axis) * receptive, size(self.out_axis) * receptive


def _need_ndim(layout, name, ok, message):
    if not ok(len(layout.shape)):
        raise InitError(f"{name}: {message}, got shape {layout.shape}")


def _torch_fans(layout, name):
    _need_ndim(layout, name, lambda n: n >= 2,
               "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions")
    return layout.fans


def fan(layout, mode, *, floor=0.0, name="variance_scaling"):
    """The n of sigma = sqrt(scale / n): fan_in, fan_out, their mean or their geometric mean."""
    fan_in, fan_out = layout.fans
    if mode not in MODES:
        raise InitError(f"mode must be one of {MODES}, got {short_repr(mode)}")
    n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2,
         "fan_geo_avg": math.sqrt(fan_in * fan_out)}[mode]
    n = max(floor, n)
    if n == 0:
        raise ZeroFanError(f"{name}: {mode} is zero for shape {layout.shape}")
    return n


def variance_scaling(layout, scale=1.0, mode="fan_in", distribution="truncated_normal", *, floor=1.0):
    """Draw with variance ``scale / n``, n from ``mode`` (Keras / JAX ``VarianceScaling``).

    - ``truncated_normal``: std = sqrt(scale / n) / 0.8796..., truncated to [-2 std, 2 std]
    - ``untruncated_normal`` (alias ``normal``): std = sqrt(scale / n)
    - ``uniform``: on [-r, r] with r = sqrt(3 scale / n)

    ``floor`` bounds n from below as Keras does (``scale /= max(1, n)``); torch-named schemes pass 0.

    Example, a (256, 512) weight, scale 2 over fan_avg = 384: r = sqrt(3 * 2 / 384) = 1/8.

    >>> variance_scaling(Layout.of((256, 512)), scale=2.0, mode="fan_avg", distribution="uniform").half_width
    0.125
    """
    draws.finite("scale", scale, positive=True)
    if distribution not in DISTRIBUTIONS:
        raise InitError(f"distribution must be one of {DISTRIBUTIONS}, got {short_repr(distribution)}")
    variance = scale / fan(layout, mode, floor=floor)
    if distribution == "uniform":
        r = math.sqrt(3.0 * variance)
        return draws.uniform(-r, r)
    if distribution == "truncated_normal":
        std = math.sqrt(variance) / TRUNCATED_NORMAL_STD_2
        return draws.trunc_normal(0.0, std, -2.0 * std, 2.0 * std)
    return draws.normal(0.0, math.sqrt(variance))


def calculate_gain(nonlinearity, param=None):
    """The recommended gain for a nonlinearity (torch.nn.init.calculate_gain)."""
    linear_fns = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                  "conv_transpose3d"]
    if nonlinearity in linear_fns or nonlinearity == "sigmoid":
        return 1
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            negative_slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            negative_slope = param
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + negative_slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4  # found empirically (pytorch/pytorch#50664)
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


# ---- Keras names --------------------------------------------------------------------------------

def zeros(layout):
    """Every value 0 (Keras ``Zeros``).

    >>> zeros(Layout.of((256, 512)))
    Constant(value=0.0)
    """
    return draws.constant(0.0)


def ones(layout):
    """Every value 1 (Keras ``Ones``).

    >>> ones(Layout.of((256, 512)))
    Constant(value=1.0)
    """
    return draws.constant(1.0)


def constant(layout, value=0.0):
    """Every value ``value`` (Keras ``Constant``).

    >>> constant(Layout.of((512,)), value=0.1)
    Constant(value=0.1)
    """
    return draws.constant(value)


def random_normal(layout, mean=0.0, stddev=0.05):
    """N(mean, stddev^2), untruncated (Keras ``RandomNormal``).

    >>> random_normal(Layout.of((256, 512)))
    Normal(mean=0.0, std=0.05)
    """
    return draws.normal(mean, stddev)


def random_uniform(layout, minval=-0.05, maxval=0.05):
    """U(minval, maxval): center (minval + maxval) / 2, half width (maxval - minval) / 2 (Keras ``RandomUniform``).

    >>> d = random_uniform(Layout.of((256, 512)), minval=-0.5, maxval=1.5)
    >>> d.center, d.half_width
    (0.5, 1.0)
    """
    return draws.uniform(minval, maxval)


def truncated_normal(layout, mean=0.0, stddev=0.05):
    """Normal(mean, stddev) truncated to two stddev around the mean (Keras / TF): N(mean, stddev^2) on
    [mean - 2 stddev, mean + 2 stddev], whose values have std 0.87962566 stddev.

    Example, the default stddev 0.05: the interval [-0.1, 0.1], the values' std 0.05 * 0.87962566.

    >>> d = truncated_normal(Layout.of((256, 512)))
    >>> round(d.lo, 6), round(d.hi, 6), round(draws.expected_std(d), 6)
    (-0.1, 0.1, 0.043981)
    """
    draws.finite("stddev", stddev, positive=True)
    return draws.trunc_normal(mean, stddev, mean - 2.0 * stddev, mean + 2.0 * stddev)


def glorot_uniform(layout):
    """Glorot & Bengio (2010), Keras ``GlorotUniform``: U(-r, r), r = sqrt(6 / (fan_in + fan_out)).

    Example, a (256, 512) weight: r = sqrt(6 / 768).

    >>> round(glorot_uniform(Layout.of((256, 512))).half_width, 6)
    0.088388
    """
    return variance_scaling(layout, scale=1.0, mode="fan_avg", distribution="uniform")


def glorot_normal(layout):
    """Glorot & Bengio (2010), Keras ``GlorotNormal``: N(0, sigma^2) truncated to [-2 sigma, 2 sigma],
    sigma = sqrt(2 / (fan_in + fan_out)) / 0.87962566, so that the values' std is sqrt(2 / (fan_in + fan_out)).

    Example, a (256, 512) weight: sigma = sqrt(2 / 768) / 0.87962566, the values' std sqrt(2 / 768).

    >>> d = glorot_normal(Layout.of((256, 512)))
    >>> round(d.std, 6), round(draws.expected_std(d), 6)
    (0.058014, 0.051031)
    """
    return variance_scaling(layout, scale=1.0, mode="fan_avg", distribution="truncated_normal")


def lecun_uniform(layout):
    """LeCun et al. (1998), Keras ``LecunUniform``: U(-r, r), r = sqrt(3 / fan_in).

    Example, a (256, 512) weight: r = sqrt(3 / 512).

    >>> round(lecun_uniform(Layout.of((256, 512))).half_width, 6)
    0.076547
    """
    return variance_scaling(layout, scale=1.0, mode="fan_in", distribution="uniform")


def lecun_normal(layout):
    """LeCun et al. (1998), Keras ``LecunNormal``: N(0, sigma^2) truncated to [-2 sigma, 2 sigma],
    sigma = sqrt(1 / fan_in) / 0.87962566, so that the values' std is sqrt(1 / fan_in).

    Example, a (256, 512) weight: sigma = sqrt(1 / 512) / 0.87962566, the values' std sqrt(1 / 512).

    >>> d = lecun_normal(Layout.of((256, 512)))
    >>> round(d.std, 6), round(draws.expected_std(d), 6)
    (0.050242, 0.044194)
    """
    return variance_scaling(layout, scale=1.0, mode="fan_in", distribution="truncated_normal")


def he_uniform(layout):
    """He et al. (2015), Keras ``HeUniform``: U(-r, r), r = sqrt(6 / fan_in).

    Example, a (256, 512) weight: r = sqrt(6 / 512).

    >>> round(he_uniform(Layout.of((256, 512))).half_width, 6)
    0.108253
    """
    return variance_scaling(layout, scale=2.0, mode="fan_in", distribution="uniform")


def he_normal(layout):
    """He et al. (2015), Keras ``HeNormal``: N(0, sigma^2) truncated to [-2 sigma, 2 sigma],
    sigma = sqrt(2 / fan_in) / 0.87962566, so that the values' std is sqrt(2 / fan_in).

    Example, a (256, 512) weight: sigma = sqrt(2 / 512) / 0.87962566, the values' std sqrt(2 / 512) = 1/16.

    >>> d = he_normal(Layout.of((256, 512)))
    >>> round(d.std, 6), round(draws.expected_std(d), 6)
    (0.071053, 0.0625)
    """
    return variance_scaling(layout, scale=2.0, mode="fan_in", distribution="truncated_normal")


def orthogonal(layout, gain=1.0):
    """(Semi-)orthogonal matrix (Saxe et al. 2013): the out axis against all other non-batch axes.

    W = gain * Q, Q from the QR of a normal draw of the (out, rest) matrix (of its transpose when it is wide),
    signed by diag(R): W W^T = gain^2 I when out <= rest, W^T W = gain^2 I otherwise.

    >>> import numpy as np, gpuinit
    >>> w = gpuinit.init_(np.empty((3, 5)), "orthogonal", seed=0, gain=2.0)
    >>> np.allclose(w @ w.T, 4 * np.eye(3))
    True
    """
    _need_ndim(layout, "orthogonal", lambda n: n >= 2, "Only tensors with 2 or more dimensions are supported")
    if len(layout.out_axis) != 1:
        raise InitError(f"orthogonal needs a single out_axis, got {layout.out_axis}")
    return draws.orthogonal(gain, layout.out_axis[0], layout.batch_axis)


def delta_orthogonal(layout, gain=1.0):
    """Delta orthogonal (Xiao et al. 2018, JAX ``delta_orthogonal``; JAX calls the gain ``scale``): a 3-, 4- or
    5-D convolution kernel, zero but at its centre tap (index (k - 1) // 2 of each spatial axis), which holds
    ``orthogonal(gain)`` of the (in, out) matrix (its two axes in the tensor's order), so W W^T = gain^2 I over
    the in axis; needs in <= out. JAX's layout (k..., in, out) is ``in_axis=-2, out_axis=-1``.

    >>> import numpy as np, gpuinit
    >>> w = gpuinit.init_(np.empty((3, 2, 3, 4), np.float32), "delta_orthogonal", seed=0, in_axis=-2, out_axis=-1)
    >>> m = w[1, 0]
    >>> bool(np.allclose(m @ m.T, np.eye(3), atol=1e-6)), int(np.count_nonzero(w)) == m.size
    (True, True)
    """
    _need_ndim(layout, "delta_orthogonal", lambda n: n in (3, 4, 5),
               "Only tensors with 3, 4, or 5 dimensions are supported")
    if len(layout.in_axis) != 1 or len(layout.out_axis) != 1 or layout.batch_axis:
        raise InitError(f"delta_orthogonal needs one in_axis and one out_axis and no batch_axis, got in_axis "
                        f"{layout.in_axis}, out_axis {layout.out_axis}, batch_axis {layout.batch_axis}")
    n_in, n_out = layout.shape[layout.in_axis[0]], layout.shape[layout.out_axis[0]]
    if n_in > n_out:
        raise InitError(f"delta_orthogonal: fan_in must be less or equal than fan_out, got in {n_in} > out {n_out} "
                        f"(in_axis {layout.in_axis[0]}, out_axis {layout.out_axis[0]} of shape {layout.shape})")
    return draws.delta_orthogonal(gain, layout.in_axis[0], layout.out_axis[0])


def identity(layout, gain=1.0):
    """gain * I on a 2-D shape (rectangular allowed, Keras ``Identity``): W[i, i] = gain, 0 elsewhere.

    >>> import numpy as np, gpuinit
    >>> gpuinit.init_(np.empty((2, 3), np.float32), "identity", gain=2.0)
    array([[2., 0., 0.],
           [0., 2., 0.]], dtype=float32)
    """
    _need_ndim(layout, "identity", lambda n: n == 2, "Only tensors with 2 dimensions are supported")
    return draws.eye(gain)


# ---- the tutorial's variants (plain normals with the sigma of its table) ------------------------

def xavier_logistic_uniform(layout):
    """Glorot & Bengio (2010) for the logistic sigmoid (4 times the tanh bound): U(-r, r),
    r = 4 sqrt(6 / (fan_in + fan_out)) = sqrt(16 * 3 / fan_avg).

    Example, a (256, 512) weight: r = 4 sqrt(6 / 768).

    >>> round(xavier_logistic_uniform(Layout.of((256, 512))).half_width, 6)
    0.353553
    """
    return variance_scaling(layout, scale=16.0, mode="fan_avg", distribution="uniform")


def xavier_logistic_normal(layout):
    """Glorot & Bengio (2010) for the logistic sigmoid: N(0, sigma^2), sigma = 4 sqrt(2 / (fan_in + fan_out)),
    untruncated.

    Example, a (256, 512) weight: sigma = 4 sqrt(2 / 768).

    >>> round(xavier_logistic_normal(Layout.of((256, 512))).std, 6)
    0.204124
    """
    return variance_scaling(layout, scale=16.0, mode="fan_avg", distribution="untruncated_normal")


def he_fan_avg_uniform(layout):
    """He et al.'s variance 2 / n over fan_avg: U(-r, r), r = sqrt(6 / fan_avg) = sqrt(12 / (fan_in + fan_out)).

    Example, a (256, 512) weight: r = sqrt(12 / 768) = 1/8.

    >>> he_fan_avg_uniform(Layout.of((256, 512))).half_width
    0.125
    """
    return variance_scaling(layout, scale=2.0, mode="fan_avg", distribution="uniform")


def he_fan_avg_normal(layout):
    """He et al.'s variance 2 / n over fan_avg: N(0, sigma^2), sigma = sqrt(4 / (fan_in + fan_out)), untruncated.

    Example, a (256, 512) weight: sigma = sqrt(4 / 768).

    >>> round(he_fan_avg_normal(Layout.of((256, 512))).std, 6)
    0.072169
    """
    return variance_scaling(layout, scale=2.0, mode="fan_avg", distribution="untruncated_normal")


def he_leaky_uniform(layout, negative_slope=0.01):
    """He et al. (2015) for a leaky rectifier: r = sqrt(6 / ((1 + a^2) fan_in)).

    U(-r, r), a the negative slope. Example, a (256, 512) weight and a = 0.2: r = sqrt(6 / (1.04 * 512)).

    >>> round(he_leaky_uniform(Layout.of((256, 512)), negative_slope=0.2).half_width, 6)
    0.106151
    """
    return variance_scaling(layout, 2.0 / (1.0 + _slope(negative_slope) ** 2), "fan_in", "uniform")


def he_leaky_normal(layout, negative_slope=0.01):
    """He et al. (2015) for a leaky rectifier: sigma = sqrt(2 / ((1 + a^2) fan_in)).

    N(0, sigma^2), untruncated, a the negative slope. Example, a (256, 512) weight and a = 0.2:
    sigma = sqrt(2 / (1.04 * 512)).

    >>> round(he_leaky_normal(Layout.of((256, 512)), negative_slope=0.2).std, 6)
    0.061286
    """
    return variance_scaling(layout, 2.0 / (1.0 + _slope(negative_slope) ** 2), "fan_in", "untruncated_normal")


def _slope(a):
    return draws.finite("negative_slope", a)


# ---- torch names (torch.nn.init semantics; fans need >= 2 dims) ---------------------------------

def uniform(layout, a=0.0, b=1.0):
    """U(a, b) (torch.nn.init.uniform_): center (a + b) / 2, half width (b - a) / 2.

    >>> d = uniform(Layout.of((256, 512)), a=-1.0, b=3.0)
    >>> d.center, d.half_width
    (1.0, 2.0)
    """
    return draws.uniform(a, b)


def normal(layout, mean=0.0, std=1.0):
    """N(mean, std^2), untruncated (torch.nn.init.normal_).

    >>> normal(Layout.of((256, 512)), std=0.02)
    Normal(mean=0.0, std=0.02)
    """
    return draws.normal(mean, std)


def trunc_normal(layout, mean=0.0, std=1.0, a=-2.0, b=2.0):
    """Normal(mean, std) truncated to the absolute bounds [a, b] (torch.nn.init.trunc_normal_).

    Example, std 0.02 on [-0.04, 0.04] (two std): the values' std is 0.02 * 0.87962566.

    >>> d = trunc_normal(Layout.of((256, 512)), std=0.02, a=-0.04, b=0.04)
    >>> round(d.lo, 6), round(d.hi, 6), round(draws.expected_std(d), 6)
    (-0.04, 0.04, 0.017593)
    """
    return draws.trunc_normal(mean, std, a, b)


def eye(layout):
    """The identity on a 2-D shape (torch.nn.init.eye_): W[i, i] = 1, 0 elsewhere.

    >>> import numpy as np, gpuinit
    >>> gpuinit.init_(np.empty((2, 3), np.float32), "eye")
    array([[1., 0., 0.],
           [0., 1., 0.]], dtype=float32)
    """
    return identity(layout, 1.0)


def dirac(layout, groups=1):
    """The Dirac delta of a 3-, 4- or 5-D convolution weight (torch.nn.init.dirac_): with out channels split in
    ``groups`` groups of m = out / groups, W[g m + i, i, centre] = 1 for i < min(m, in), 0 elsewhere (the
    centre: index k // 2 of each kernel dim of size k), so the convolution passes its input through.

    >>> import numpy as np, gpuinit
    >>> gpuinit.init_(np.empty((4, 2, 3), np.float32), "dirac", groups=2)[:, :, 1]
    array([[1., 0.],
           [0., 1.],
           [1., 0.],
           [0., 1.]], dtype=float32)
    """
    _need_ndim(layout, "dirac", lambda n: n in (3, 4, 5), "Only tensors with 3, 4, or 5 dimensions are supported")
    d = draws.dirac(groups)
    if layout.shape[0] % d.groups:
        raise InitError("dim 0 must be divisible by groups")
    return d


def xavier_uniform(layout, gain=1.0):
    """Glorot & Bengio (2010): U(-r, r), r = gain * sqrt(6 / (fan_in + fan_out)).

    Example, a (256, 512) weight and tanh's gain 5/3: r = 5/3 * sqrt(6 / 768).

    >>> round(xavier_uniform(Layout.of((256, 512)), gain=calculate_gain("tanh")).half_width, 6)
    0.147314
    """
    _torch_fans(layout, "xavier_uniform")
    return variance_scaling(layout, _gain_sq(gain), "fan_avg", "uniform", floor=0.0)


def xavier_normal(layout, gain=1.0):
    """Glorot & Bengio (2010): N(0, sigma^2), sigma = gain * sqrt(2 / (fan_in + fan_out)), untruncated.

    Example, a (256, 512) weight: sigma = sqrt(2 / 768).

    >>> round(xavier_normal(Layout.of((256, 512))).std, 6)
    0.051031
    """
    _torch_fans(layout, "xavier_normal")
    return variance_scaling(layout, _gain_sq(gain), "fan_avg", "untruncated_normal", floor=0.0)


def kaiming_uniform(layout, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He et al. (2015): U(-r, r), r = sqrt(3) * gain / sqrt(fan_mode).

    gain = calculate_gain(nonlinearity, a): sqrt(2 / (1 + a^2)) for leaky_relu. Example, a (256, 512) weight
    with torch.nn.Linear's a = sqrt(5): gain = sqrt(1/3), r = sqrt(3) * sqrt(1/3) / sqrt(512) = 1 / sqrt(512).

    >>> round(kaiming_uniform(Layout.of((256, 512)), a=math.sqrt(5)).half_width, 6)
    0.044194
    """
    return _kaiming(layout, a, mode, nonlinearity, "uniform")


def kaiming_normal(layout, a=0.0, mode="fan_in", nonlinearity="leaky_relu"):
    """He et al. (2015): N(0, sigma^2), sigma = gain / sqrt(fan_mode), untruncated.

    Example, a (256, 512) weight before a relu (gain sqrt(2)): sigma = sqrt(2) / sqrt(512) = 1/16.

    >>> kaiming_normal(Layout.of((256, 512)), nonlinearity="relu").std
    0.0625
    """
    return _kaiming(layout, a, mode, nonlinearity, "untruncated_normal")


def _kaiming(layout, a, mode, nonlinearity, distribution):
    _torch_fans(layout, "kaiming")
    if mode not in ("fan_in", "fan_out"):
        raise InitError(f"Mode {mode} not supported, please use one of ['fan_in', 'fan_out']")
    return variance_scaling(layout, _gain_sq(calculate_gain(nonlinearity, a)), mode, distribution, floor=0.0)


def _gain_sq(gain):
    return draws.finite("gain", gain) ** 2


def sparse(layout, sparsity, std=0.01):
    """N(0, std) with exactly ceil(sparsity * rows) zeros per column (Martens 2010).

    Example, a (256, 512) weight with sparsity 0.1: ceil(0.1 * 256) = 26 zeros in each column.

    >>> d = sparse(Layout.of((256, 512)), sparsity=0.1)
    >>> math.ceil(d.sparsity * 256), d.std
    (26, 0.01)
    """
    _need_ndim(layout, "sparse", lambda n: n == 2, "Only tensors with 2 dimensions are supported")
    return draws.sparse(sparsity, std)


# ---- the registry ---------------------------------------------------------------------------------

_KERAS = ("zeros", "ones", "constant", "random_normal", "random_uniform", "truncated_normal", "variance_scaling",
          "glorot_uniform", "glorot_normal", "lecun_uniform", "lecun_normal", "he_uniform", "he_normal",
          "orthogonal", "identity")
_TUTORIAL = ("xavier_logistic_uniform", "xavier_logistic_normal", "he_leaky_uniform", "he_leaky_normal",
             "he_fan_avg_uniform", "he_fan_avg_normal")
_JAX = ("delta_orthogonal",)
TORCH_NAMES = ("uniform", "normal", "trunc_normal", "eye", "dirac", "xavier_uniform", "xavier_normal",
               "kaiming_uniform", "kaiming_normal", "sparse")
SCHEMES = {name: globals()[name] for name in _KERAS + _TUTORIAL + _JAX + TORCH_NAMES}


def resolve(name):
    """The scheme function for a name; unknown names get the closest matches in the message."""
    if not isinstance(name, str):
        raise InitError(f"scheme must be a name or an initializer, got {type(name).__name__}")
    key = name.lower()
    if key not in SCHEMES:
        close = difflib.get_close_matches(key, SCHEMES, n=3, cutoff=0.5)
        hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        raise InitError(f"unknown scheme {short_repr(name)}{hint} Known: {', '.join(sorted(SCHEMES))}")
    return SCHEMES[key]


def plan(name, layout, params):
    """The Draw for scheme ``name`` on ``layout`` with keyword ``params``, all checked."""
    fn = resolve(name)
    sig, accepted, required = _signature(fn)
    unknown = set(params) - accepted
    if unknown:
        raise InitError(f"scheme {name!r} takes {list(accepted) or 'no parameters'}, not {short_repr(sorted(unknown))}")
    if not required <= set(params):
        try:
            sig.bind(layout, **params)
        except TypeError as e:
            raise InitError(f"scheme {name!r}: {e}") from None
    return fn(layout, **params)


@functools.cache
def _signature(fn):
    """(signature, the keyword parameters a scheme takes after its layout, in order, those without a default)."""
    sig = inspect.signature(fn)
    params = [p for p in list(sig.parameters.values())[1:] if p.kind is not inspect.Parameter.KEYWORD_ONLY]
    return sig, dict.fromkeys(p.name for p in params).keys(), {p.name for p in params if p.default is p.empty}
