"""What a backend draws: a kind and its final numbers (no fans, no gains, no names).

A ``Draw`` is the only thing that crosses from the schemes to the backends. The constructors
below check their numbers and precompute what the kernels use, in float64 on the host, then
rounded once to float32 (docs/stream.md).
"""
import math
from dataclasses import dataclass, field

import numpy as np

from .errors import InitError
from .kernels.numpy_stream import TRUNC_LIMIT

# Kinds a backend computes element by element from the stream; the others (constant, eye, dirac, orthogonal,
# sparse) each backend builds from the array's shape.
ELEMENTWISE = ("uniform", "normal", "trunc_normal")


@dataclass(frozen=True)
class Draw:
    kind: str
    params: dict = field(default_factory=dict)


def _finite(name, value, *, positive=False, nonnegative=False):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InitError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise InitError(f"{name} must be finite, got {value}")
    if positive and not value > 0:
        raise InitError(f"{name} must be > 0, got {value}")
    if nonnegative and value < 0:
        raise InitError(f"{name} must be >= 0, got {value}")
    return value


def _f32_inward(lo, hi):
    """float32 bounds inside [lo, hi]: the largest float32 <= hi, the smallest >= lo."""
    with np.errstate(over="ignore"):  # beyond float32's range: +-inf, refused by fit()
        lo32, hi32 = np.float32(lo), np.float32(hi)
    if np.isfinite(lo32) and float(lo32) < lo:
        lo32 = np.nextafter(lo32, np.float32(np.inf))
    if np.isfinite(hi32) and float(hi32) > hi:
        hi32 = np.nextafter(hi32, np.float32(-np.inf))
    return float(lo32), float(hi32)


def constant(value):
    return Draw("constant", {"value": _finite("value", value)})


def uniform(low, high):
    """Uniform on [low, high]: x = center + half_width * v, v the signed uniform in (-1, 1)."""
    low, high = _finite("low", low), _finite("high", high)
    if not low < high:
        raise InitError(f"uniform needs low < high, got low={low}, high={high}")
    lo, hi = _f32_inward(low, high)
    return Draw("uniform", {"center": (low + high) / 2, "half_width": (high - low) / 2, "lo": lo, "hi": hi})


def normal(mean, std):
    mean, std = _finite("mean", mean), _finite("std", std, nonnegative=True)
    return Draw("normal", {"mean": mean, "std": std})


def _phi(x):
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def trunc_normal(mean, std, a, b):
    """Normal(mean, std) truncated to the absolute interval [a, b], by inverse CDF in one pass."""
    mean, std = _finite("mean", mean), _finite("std", std, positive=True)
    for name, v in (("a", a), ("b", b)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or math.isnan(v):
            raise InitError(f"{name} must be a real number, got {v!r}")
    a, b = float(a), float(b)
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
    return Draw("trunc_normal", {"mean": mean, "std": std, "p_lo": p_lo, "p_span": p_hi - p_lo,
                                 "z_lo": zl, "z_hi": zh, "flip": bool(flip), "lo": lo, "hi": hi,
                                 "branches": _erfinv_branches(p_lo, p_hi)})


def _erfinv_branches(p_lo, p_hi):
    """How many of erfinv's branches (w < 5, w < 16, the rest) values of u in [p_lo, p_hi] can reach,
    with a factor 2 of margin: kernels may skip the others (selection changes no bits)."""
    tail = min(p_lo, 1.0 - p_hi)
    def u_at(w):  # the u where 4u(1 - u) = exp(-w)
        return (1.0 - math.sqrt(1.0 - math.exp(-w))) / 2.0

    return 1 if tail > 2 * u_at(5.0) else 2 if tail > 2 * u_at(16.0) else 3


def eye(gain=1.0):
    return Draw("eye", {"gain": _finite("gain", gain)})


def dirac(groups=1):
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise InitError(f"groups must be a positive integer, got {groups!r}")
    return Draw("dirac", {"groups": int(groups)})


def orthogonal(gain, out_axis, batch_axis):
    return Draw("orthogonal", {"gain": _finite("gain", gain), "out_axis": out_axis, "batch_axis": batch_axis})


def sparse(sparsity, std):
    sparsity = _finite("sparsity", sparsity)
    if not 0.0 <= sparsity <= 1.0:
        raise InitError(f"sparsity must lie in [0, 1], got {sparsity}")
    return Draw("sparse", {"sparsity": sparsity, "std": _finite("std", std, nonnegative=True)})


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


def fit(draw, dtype):
    """``draw`` as written into an array of ``dtype`` (float16, bfloat16, float32 or float64): its clamping
    bounds rounded inward to that dtype, so every value lies in the draw's interval; raises InitError when
    a value could not be represented there."""
    kind, p = draw.kind, draw.params
    f32 = DTYPE_MAX["float32"]
    limit = min(DTYPE_MAX[dtype], f32)
    within = dtype if DTYPE_MAX[dtype] <= f32 else "float32, in which random draws are computed"
    if kind in ("constant", "eye"):
        key = "value" if kind == "constant" else "gain"
        _within(key, abs(p[key]), DTYPE_MAX[dtype], dtype)
    elif kind == "orthogonal":
        _within("gain", abs(p["gain"]), limit, within)
    elif kind in ("normal", "sparse"):
        reach = (abs(p.get("mean", 0.0)) + NORMAL_TAIL * p["std"]) * (1 + 2.0**-20)  # float32 rounding
        _within("the draw's largest value, |mean| + 5.77 std,", reach, limit, within)
    elif kind == "uniform":
        for key in ("center", "half_width"):
            _within(f"uniform's {key.replace('_', ' ')}", abs(p[key]), f32, "float32")
        return _clamped(draw, p["center"] - p["half_width"], p["center"] + p["half_width"], dtype, limit, within)
    elif kind == "trunc_normal":
        _within("std", p["std"], f32, "float32")
        _within("mean", abs(p["mean"]), f32, "float32")
        z_hi = -p["z_lo"] if p["flip"] else p["z_hi"]  # the lower-tail form's upper end
        p_hi = p["p_lo"] + p["p_span"]
        if p["p_span"] < MIN_TRUNC_MASS * p_hi:
            raise InitError(f"trunc_normal: [a, b] is too narrow against std: it holds {p['p_span']:.3g} of the "
                            f"normal's mass, less than 2**-10 of Phi({z_hi:.4g}), so float32 quantiles cannot spread "
                            "over it (near the mean the interval must be at least about 0.0012 std wide); use "
                            "uniform on [a, b] instead")
        lo = max(p["lo"], p["mean"] - TRUNC_TAIL * p["std"])
        hi = min(p["hi"], p["mean"] + TRUNC_TAIL * p["std"])
        return _clamped(draw, lo, hi, dtype, limit, within)
    return draw


def _within(name, value, limit, dtype):
    if not value <= limit:
        raise InitError(f"{name} {value:.6g} does not fit {dtype} (largest finite value {limit:.6g})")


def _clamped(draw, lo, hi, dtype, limit, within):
    """``draw`` with its clamping bounds the ``dtype`` values inside [lo, hi], which must fit the dtype."""
    if not (-limit <= lo and hi <= limit):
        raise InitError(f"{draw.kind}: values reach [{lo:.6g}, {hi:.6g}], beyond the largest finite value of "
                        f"{within}, {limit:.6g}")
    # clamping at the dtype's largest values changes no value (the check above) and keeps bounds finite
    lo_t, hi_t = (np.float32(v) for v in _f32_inward(max(draw.params["lo"], -limit), min(draw.params["hi"], limit)))
    if dtype in ("float16", "bfloat16"):
        lo_t, hi_t = _grid(lo_t, dtype, up=True), _grid(hi_t, dtype, up=False)
    if not lo_t <= hi_t:
        raise InitError(f"{draw.kind}: no {dtype} value lies in [{lo:.7g}, {hi:.7g}]")
    return Draw(draw.kind, {**draw.params, "lo": float(lo_t), "hi": float(hi_t)})


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


def expected_std(draw):
    """The standard deviation of the values a Draw writes (None for structured draws)."""
    p = draw.params
    if draw.kind == "constant":
        return 0.0
    if draw.kind == "uniform":
        return p["half_width"] / math.sqrt(3.0)
    if draw.kind == "normal":
        return p["std"]
    if draw.kind == "trunc_normal":
        a, b = (p["lo"] - p["mean"]) / p["std"], (p["hi"] - p["mean"]) / p["std"]
        pdf_a, pdf_b = (math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi) for x in (a, b))
        z = _phi(b) - _phi(a)
        mean = (pdf_a - pdf_b) / z
        return p["std"] * math.sqrt(1.0 + (a * pdf_a - b * pdf_b) / z - mean * mean)
    return None


def kernel_params(kind, p):
    """(scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi, flip) of an elementwise draw, in the order of the
    kernels' arguments and of the C header's gi_params; "words" draws the raw words."""
    if kind == "uniform":
        return p["half_width"], p["center"], p["lo"], p["hi"], 0.0, 0.0, 0.0, 0.0, 0
    if kind == "normal":
        return p["std"], p["mean"], 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0
    if kind == "trunc_normal":
        return p["std"], p["mean"], p["lo"], p["hi"], p["p_lo"], p["p_span"], p["z_lo"], p["z_hi"], int(p["flip"])
    if kind == "words":
        return 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0
    raise ValueError(f"no elementwise draw named {kind!r}")


def folded_params(kind, p):
    """(scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi) as the GPU kernels take them, with exact foldings that
    save work per value and change no bit: a flip (z -> -z before z * scale) becomes a negated scale, and
    trunc_normal's p_span carries the open uniform's 2**-24 (float32(p_span) * 2**-24 is exact while it is a
    normal float32, which every interval draws.trunc_normal accepts guarantees)."""
    scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi, flip = kernel_params(kind, p)
    if flip:
        scale = -scale
    if kind == "trunc_normal":
        span = np.float32(p_span) * np.float32(2.0**-24)
        if not span >= np.finfo(np.float32).tiny:
            raise InitError(f"trunc_normal: p_span {p_span!r} is below float32's normal range")
        p_span = float(span)
    return scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi
