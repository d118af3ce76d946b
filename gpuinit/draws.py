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

# Kinds a backend computes element by element from the stream, and kinds built on the host.
ELEMENTWISE = ("uniform", "normal", "trunc_normal")
STRUCTURED = ("constant", "eye", "dirac", "orthogonal", "sparse")


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
        pdf = lambda x: math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)
        z = _phi(b) - _phi(a)
        mean = (pdf(a) - pdf(b)) / z
        return p["std"] * math.sqrt(1.0 + (a * pdf(a) - b * pdf(b)) / z - mean * mean)
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
