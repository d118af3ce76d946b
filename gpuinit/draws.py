"""What a backend draws: a kind and its final numbers (no fans, no gains, no names).

A draw is the only thing that crosses from the schemes to the backends: one small frozen dataclass per kind
(``Uniform``, ``Normal``, ``TruncNormal``, ``Constant``, ``Eye``, ``Dirac``, ``Orthogonal``, ``DeltaOrthogonal``,
``Sparse``), each
naming its kind in ``kind``; ``Draw`` is any of them. The constructors below (``uniform``, ``normal``, ...)
check their numbers and precompute what the kernels use, in float64 on the host, then rounded once to float32
(docs/stream.md).
"""
import math
import sys
from dataclasses import dataclass, replace
from typing import ClassVar, NamedTuple, TypeVar

import numpy as np

from .errors import InitError, short_repr
from .kernels.numpy_stream import TRUNC_LIMIT

# Kinds a backend computes element by element from the stream; the others (constant, eye, dirac, orthogonal,
# sparse) each backend builds from the array's shape.
ELEMENTWISE = ("uniform", "normal", "trunc_normal")


@dataclass(frozen=True)
class Uniform:
    """Uniform on [lo, hi]: x = center + half_width * v, v the signed uniform in (-1, 1), clamped to [lo, hi]
    (the interval's bounds rounded inward to float32, then to the dtype written)."""
    kind: ClassVar[str] = "uniform"
    center: float
    half_width: float
    lo: float
    hi: float


@dataclass(frozen=True)
class Normal:
    """N(mean, std^2) by Box-Muller: x = mean + std * z."""
    kind: ClassVar[str] = "normal"
    mean: float
    std: float


@dataclass(frozen=True)
class TruncNormal:
    """N(mean, std^2) truncated to [lo, hi] by inverse CDF: z = Phi^-1(p_lo + p_span * u) clamped to
    [z_lo, z_hi] and negated if ``flip`` (the interval mirrored into the lower tail), x = mean + std * z clamped
    to [lo, hi]; ``branches``: how many of erfinv's branches the u of the draw can reach (1 to 3)."""
    kind: ClassVar[str] = "trunc_normal"
    mean: float
    std: float
    p_lo: float
    p_span: float
    z_lo: float
    z_hi: float
    flip: bool
    lo: float
    hi: float
    branches: int


@dataclass(frozen=True)
class Constant:
    """Every value ``value``."""
    kind: ClassVar[str] = "constant"
    value: float


@dataclass(frozen=True)
class Eye:
    """``gain`` on the diagonal of a 2-D tensor, zeros elsewhere."""
    kind: ClassVar[str] = "eye"
    gain: float


@dataclass(frozen=True)
class Dirac:
    """The Dirac delta of a convolution kernel in each of ``groups`` groups of output channels."""
    kind: ClassVar[str] = "dirac"
    groups: int


@dataclass(frozen=True)
class Orthogonal:
    """``gain`` times a (semi-)orthogonal matrix: ``out_axis`` against the other non-batch axes, per copy along
    ``batch_axis``."""
    kind: ClassVar[str] = "orthogonal"
    gain: float
    out_axis: int
    batch_axis: tuple[int, ...]


@dataclass(frozen=True)
class DeltaOrthogonal:
    """Zeros but at the centre tap of every spatial axis, which holds ``gain`` times a (semi-)orthogonal matrix
    of the ``in_axis`` and ``out_axis`` (Xiao et al. 2018)."""
    kind: ClassVar[str] = "delta_orthogonal"
    gain: float
    in_axis: int
    out_axis: int


@dataclass(frozen=True)
class Sparse:
    """N(0, std^2) with a fraction ``sparsity`` of each column zero."""
    kind: ClassVar[str] = "sparse"
    sparsity: float
    std: float


@dataclass(frozen=True)
class Parts:
    """A complex array's real and imaginary parts, each its own draw: the draws of the last axis (of size 2) of
    its real view, ``real`` at index 0 and ``imag`` at 1."""
    kind: ClassVar[str] = "parts"
    real: "Draw"
    imag: "Draw"


@dataclass(frozen=True)
class Words:
    """The raw 32-bit words of the stream (the keys of sparse's zeros): an elementwise draw of the kernels that
    no scheme returns."""
    kind: ClassVar[str] = "words"


WORDS = Words()
Draw = Uniform | Normal | TruncNormal | Constant | Eye | Dirac | Orthogonal | DeltaOrthogonal | Sparse | Parts
Elementwise = Uniform | Normal | TruncNormal | Words  # what the kernels draw, kernel_params' draws
_Clamped = TypeVar("_Clamped", Uniform, TruncNormal)


def real_value(value: object) -> float | None:
    """``value`` as a float when it is a real number: a Python or NumPy int or float (not a bool), or a 0-d NumPy
    array or torch tensor of such a dtype; None for anything else (a bool, a complex number, a string, ...)."""
    if type(value) is float:
        return value
    if isinstance(value, np.ndarray) and value.ndim == 0:
        value = value[()]
    elif not isinstance(value, (int, float, np.generic)):
        torch = sys.modules.get("torch")
        if torch is None or not isinstance(value, torch.Tensor) or value.dim() or value.is_complex() \
                or value.dtype == torch.bool or value.is_meta:
            return None
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        return None
    return float(value)


def finite(name: str, value: object, *, positive: bool = False, nonnegative: bool = False) -> float:
    """``value`` as a float, checked: a real number (``real_value``), finite, and > 0 or >= 0 where asked."""
    number = real_value(value)
    if number is None:
        raise InitError(f"{name} must be a real number, got {short_repr(value)}")
    value = number
    if not math.isfinite(value):
        raise InitError(f"{name} must be finite, got {value}")
    if positive and not value > 0:
        raise InitError(f"{name} must be > 0, got {value}")
    if nonnegative and value < 0:
        raise InitError(f"{name} must be >= 0, got {value}")
    return value


def _real(name: str, value: object) -> float:
    """``value`` as a float: any real number (``real_value``) but NaN (infinite bounds are allowed)."""
    number = real_value(value)
    if number is None or math.isnan(number):
        raise InitError(f"{name} must be a real number, got {short_repr(value)}")
    return number


def _f32_inward(lo: float, hi: float) -> tuple[float, float]:
    """float32 bounds inside [lo, hi]: the largest float32 <= hi, the smallest >= lo."""
    with np.errstate(over="ignore"):  # beyond float32's range: +-inf, refused by fit()
        lo32, hi32 = np.float32(lo), np.float32(hi)
    if np.isfinite(lo32) and float(lo32) < lo:
        lo32 = np.nextafter(lo32, np.float32(np.inf))
    if np.isfinite(hi32) and float(hi32) > hi:
        hi32 = np.nextafter(hi32, np.float32(-np.inf))
    return float(lo32), float(hi32)


def constant(value: object) -> Constant:
    return Constant(finite("value", value))


def uniform(low: object, high: object) -> Uniform:
    """Uniform on [low, high]: x = center + half_width * v, v the signed uniform in (-1, 1)."""
    low, high = finite("low", low), finite("high", high)
    if not low < high:
        raise InitError(f"uniform needs low < high, got low={low}, high={high}")
    lo, hi = _f32_inward(low, high)
    return Uniform(center=(low + high) / 2, half_width=(high - low) / 2, lo=lo, hi=hi)


def normal(mean: object, std: object) -> Normal:
    mean, std = finite("mean", mean), finite("std", std, nonnegative=True)
    return Normal(mean=mean, std=std)


def _phi(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def trunc_normal(mean: object, std: object, a: object, b: object) -> TruncNormal:
    """Normal(mean, std) truncated to the absolute interval [a, b], by inverse CDF in one pass."""
    mean, std = finite("mean", mean), finite("std", std, positive=True)
    a, b = _real("a", a), _real("b", b)
    if not a < b:
        raise InitError(f"trunc_normal needs a < b, got a={a}, b={b}")
    z_lo, z_hi = (a - mean) / std, (b - mean) / std
    flip = z_lo + z_hi > 0  # keep the interval in the lower tail, where Phi keeps precision
    if flip:
        z_lo, z_hi = -z_hi, -z_lo
    if z_hi < -TRUNC_LIMIT:
        raise InitError(f"[a, b] = [{a}, {b}] lies more than {TRUNC_LIMIT:g} std from the mean {mean}")
    p_lo, p_hi = _phi(z_lo), _phi(z_hi)
    lo, hi = _f32_inward(a, b)
    zl, zh = _f32_inward(z_lo, z_hi)
    return TruncNormal(mean=mean, std=std, p_lo=p_lo, p_span=p_hi - p_lo, z_lo=zl, z_hi=zh, flip=bool(flip),
                       lo=lo, hi=hi, branches=_erfinv_branches(p_lo, p_hi))


def _erfinv_branches(p_lo: float, p_hi: float) -> int:
    """How many of erfinv's branches (w < 5, w < 16, the rest) values of u in [p_lo, p_hi] can reach,
    with a factor 2 of margin: kernels may skip the others (selection changes no bits)."""
    tail = min(p_lo, 1.0 - p_hi)
    def u_at(w):  # the u where 4u(1 - u) = exp(-w)
        return (1.0 - math.sqrt(1.0 - math.exp(-w))) / 2.0

    return 1 if tail > 2 * u_at(5.0) else 2 if tail > 2 * u_at(16.0) else 3


def erfinv_branches(draw: Elementwise) -> int:
    """The erfinv branches a kernel compiles for ``draw``: trunc_normal's ``branches``, all 3 for the other
    kinds (which evaluate none)."""
    return draw.branches if isinstance(draw, TruncNormal) else 3


def eye(gain: object = 1.0) -> Eye:
    return Eye(finite("gain", gain))


def dirac(groups: object = 1) -> Dirac:
    if isinstance(groups, np.ndarray) and groups.ndim == 0:
        groups = groups[()]
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise InitError(f"groups must be a positive integer, got {short_repr(groups)}")
    return Dirac(int(groups))


def orthogonal(gain: object, out_axis: int, batch_axis: tuple[int, ...]) -> Orthogonal:
    return Orthogonal(gain=finite("gain", gain), out_axis=out_axis, batch_axis=tuple(batch_axis))


def delta_orthogonal(gain: object, in_axis: int, out_axis: int) -> DeltaOrthogonal:
    return DeltaOrthogonal(gain=finite("gain", gain), in_axis=in_axis, out_axis=out_axis)


def sparse(sparsity: object, std: object) -> Sparse:
    sparsity = finite("sparsity", sparsity)
    if not 0.0 <= sparsity <= 1.0:
        raise InitError(f"sparsity must lie in [0, 1], got {sparsity}")
    return Sparse(sparsity=sparsity, std=finite("std", std, nonnegative=True))


# ---- fitting a draw to the dtype it is written in ----------------------------------------------------

# The largest finite value of each dtype a backend writes. Random draws are computed in float32 whatever
# the array's dtype (docs/stream.md), so their values must also fit float32.
DTYPE_MAX = {"float16": 65504.0, "bfloat16": (2 - 2.0**-7) * 2.0**127,
             "float32": float(np.finfo(np.float32).max), "float64": float(np.finfo(np.float64).max)}
NORMAL_TAIL = math.sqrt(48 * math.log(2.0))  # |z| of a Box-Muller normal: u >= 2**-24
TRUNC_TAIL = 9.67  # |z| of the truncated normal's quantile: u in [2**-72, 1 - 2**-24]
# trunc_normal refuses intervals whose mass is below this fraction of Phi at their upper end (lower-tail
# form): there the float32 u = p_lo + u' * p_span takes fewer than about 2**13 distinct values.
MIN_TRUNC_MASS = 2.0**-10


def fit(draw: Draw, dtype: str) -> Draw:
    """``draw`` as written into an array of ``dtype`` (float16, bfloat16, float32 or float64): its clamping
    bounds rounded inward to that dtype, so every value lies in the draw's interval; raises InitError when
    a value could not be represented there."""
    if isinstance(draw, Parts):
        return Parts(fit(draw.real, dtype), fit(draw.imag, dtype))
    f32 = DTYPE_MAX["float32"]
    limit = min(DTYPE_MAX[dtype], f32)
    within = dtype if DTYPE_MAX[dtype] <= f32 else "float32, in which random draws are computed"
    if isinstance(draw, Constant):
        _within("value", abs(draw.value), DTYPE_MAX[dtype], dtype)
    elif isinstance(draw, Eye):
        _within("gain", abs(draw.gain), DTYPE_MAX[dtype], dtype)
    elif isinstance(draw, (Orthogonal, DeltaOrthogonal)):
        _within("gain", abs(draw.gain), limit, within)
    elif isinstance(draw, (Normal, Sparse)):
        mean = draw.mean if isinstance(draw, Normal) else 0.0
        reach = (abs(mean) + NORMAL_TAIL * draw.std) * (1 + 2.0**-20)  # float32 rounding
        _within("the draw's largest value, |mean| + 5.77 std,", reach, limit, within)
    elif isinstance(draw, Uniform):
        _within("uniform's center", abs(draw.center), f32, "float32")
        _within("uniform's half width", abs(draw.half_width), f32, "float32")
        return _clamped(draw, draw.center - draw.half_width, draw.center + draw.half_width, dtype, limit, within)
    elif isinstance(draw, TruncNormal):
        _within("std", draw.std, f32, "float32")
        _within("mean", abs(draw.mean), f32, "float32")
        z_hi = -draw.z_lo if draw.flip else draw.z_hi  # the lower-tail form's upper end
        p_hi = draw.p_lo + draw.p_span
        if draw.p_span < MIN_TRUNC_MASS * p_hi:
            raise InitError(f"trunc_normal: [a, b] is too narrow against std: it holds {draw.p_span:.3g} of the "
                            f"normal's mass, less than 2**-10 of Phi({z_hi:.4g}), so float32 quantiles cannot spread "
                            "over it (near the mean the interval must be at least about 0.0012 std wide); use "
                            "uniform on [a, b] instead")
        lo = max(draw.lo, draw.mean - TRUNC_TAIL * draw.std)
        hi = min(draw.hi, draw.mean + TRUNC_TAIL * draw.std)
        return _clamped(draw, lo, hi, dtype, limit, within)
    return draw


def _within(name: str, value: float, limit: float, dtype: str) -> None:
    if not value <= limit:
        raise InitError(f"{name} {value:.6g} does not fit {dtype} (largest finite value {limit:.6g})")


def _clamped(draw: _Clamped, lo: float, hi: float, dtype: str, limit: float, within: str) -> _Clamped:
    """``draw`` with its clamping bounds the ``dtype`` values inside [lo, hi], which must fit the dtype."""
    if not (-limit <= lo and hi <= limit):
        raise InitError(f"{draw.kind}: values reach [{lo:.6g}, {hi:.6g}], beyond the largest finite value of "
                        f"{within}, {limit:.6g}")
    # clamping at the dtype's largest values changes no value (the check above) and keeps bounds finite
    lo_t, hi_t = (np.float32(v) for v in _f32_inward(max(draw.lo, -limit), min(draw.hi, limit)))
    if dtype in ("float16", "bfloat16"):
        lo_t, hi_t = _grid(lo_t, dtype, up=True), _grid(hi_t, dtype, up=False)
    if not lo_t <= hi_t:
        raise InitError(f"{draw.kind}: no {dtype} value lies in [{lo:.7g}, {hi:.7g}]")
    return replace(draw, lo=float(lo_t), hi=float(hi_t))


def _grid(x, dtype, up):
    """The smallest ``dtype`` value >= float32 ``x`` (``up``), else the largest <= x, as float32."""
    x = np.float32(x)
    if not np.isfinite(x):
        return x
    if dtype == "float16":
        v = np.float16(x)
        if up and np.float32(v) < x:
            v = np.nextafter(v, np.float16(np.inf))
        elif not up and np.float32(v) > x:
            v = np.nextafter(v, np.float16(-np.inf))
        return np.float32(v)
    bits = np.array(x, np.float32).view(np.uint32)
    v = (bits & np.uint32(0xFFFF0000)).view(np.float32)  # toward zero
    if (up and v < x) or (not up and v > x):  # one bfloat16 step away from zero
        v = (bits & np.uint32(0xFFFF0000)) + np.uint32(0x10000)
        v = np.array(v, np.uint32).view(np.float32)
    return np.float32(v)


def expected_std(draw: Draw) -> float | None:
    """The standard deviation of the values a Draw writes (None for structured draws)."""
    if isinstance(draw, Constant):
        return 0.0
    if isinstance(draw, Uniform):
        return draw.half_width / math.sqrt(3.0)
    if isinstance(draw, Normal):
        return draw.std
    if isinstance(draw, TruncNormal):
        a, b = (draw.lo - draw.mean) / draw.std, (draw.hi - draw.mean) / draw.std
        pdf_a, pdf_b = (math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) for x in (a, b))
        z = _phi(b) - _phi(a)
        mean = (pdf_a - pdf_b) / z
        return draw.std * math.sqrt(1.0 + (a * pdf_a - b * pdf_b) / z - mean * mean)
    return None


# ---- the kernels' parameters ------------------------------------------------------------------------

class KernelParams(NamedTuple):
    """The numbers an elementwise kernel takes, in the order of its arguments and of the C header's gi_params
    floats (kernels/cuda/gpuinit_stream.cuh): scale and shift (uniform: half width and center; normal and
    trunc_normal: std and mean), the final clamp [lo, hi], trunc_normal's p_lo, p_span, z_lo, z_hi, and its
    flip; zeros where a kind reads none."""
    scale: float
    shift: float
    lo: float
    hi: float
    p_lo: float
    p_span: float
    z_lo: float
    z_hi: float
    flip: int


def kernel_params(draw: Elementwise) -> KernelParams:
    """The KernelParams of an elementwise draw; ``WORDS`` draws the raw words."""
    if isinstance(draw, Uniform):
        return KernelParams(draw.half_width, draw.center, draw.lo, draw.hi, 0.0, 0.0, 0.0, 0.0, 0)
    if isinstance(draw, Normal):
        return KernelParams(draw.std, draw.mean, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    if isinstance(draw, TruncNormal):
        return KernelParams(draw.std, draw.mean, draw.lo, draw.hi, draw.p_lo, draw.p_span, draw.z_lo, draw.z_hi,
                            int(draw.flip))
    if isinstance(draw, Words):
        return KernelParams(1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0)
    raise ValueError(f"no elementwise draw named {getattr(draw, 'kind', draw)!r}")


def folded_params(draw: Elementwise) -> tuple[float, ...]:
    """(scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi) as the GPU kernels take them, with exact foldings that
    save work per value and change no bit: a flip (z -> -z before z * scale) becomes a negated scale, and
    trunc_normal's p_span carries the open uniform's 2**-24 (float32(p_span) * 2**-24 is exact while it is a
    normal float32, which every interval draws.trunc_normal accepts guarantees)."""
    scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi, flip = kernel_params(draw)
    if flip:
        scale = -scale
    if isinstance(draw, TruncNormal):
        span = np.float32(p_span) * np.float32(2.0**-24)
        if not span >= np.finfo(np.float32).tiny:
            raise InitError(f"trunc_normal: p_span {p_span!r} is below float32's normal range")
        p_span = float(span)
    return scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi
