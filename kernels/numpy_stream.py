"""The gpuinit random stream on NumPy: Philox4x32-10 words and their conversions.

This module is the reference every other backend must reproduce (docs/stream.md).
Element ``i`` of a tensor drawn with ``(seed, stream)`` comes from the Philox block
``i // 4`` (lane ``i % 4``), with

    key     = (seed & 0xffffffff, seed >> 32)
    counter = (block & 0xffffffff, block >> 32, stream & 0xffffffff, stream >> 32)

All float math is float32, one IEEE operation at a time (+, -, *, sqrt; no fused multiply-add,
no library transcendentals), so every backend that follows docs/stream.md gets the same bits.
"""
import math

import numpy as np

# Philox4x32 constants (Salmon et al., SC'11; Random123 philox.h).
PHILOX_M0 = 0xD2511F53  # multiplier applied to counter word 0
PHILOX_M1 = 0xCD9E8D57  # multiplier applied to counter word 2
PHILOX_W0 = 0x9E3779B9  # key increment, word 0 (golden ratio)
PHILOX_W1 = 0xBB67AE85  # key increment, word 1 (sqrt(3) - 1)
PHILOX_ROUNDS = 10

# Codes of the elementwise draws in every kernel (gi_params.kind in kernels/cuda/gpuinit_stream.cuh).
KINDS = {"uniform": 0, "normal": 1, "trunc_normal": 2, "words": 3}

_MASK32 = np.uint64(0xFFFFFFFF)
_SHIFT32 = np.uint64(32)
TWO_POW_M23 = np.float32(2.0**-23)  # spacing of the signed uniform grid
TWO_POW_23 = 1 << 23
SQRT2 = np.float32(math.sqrt(2.0))
# Truncated normal: u is kept in [2**-72, 1 - 2**-24], so |z| <= 9.6 (the quantile is accurate to
# about 2e-7 relative over that range); intervals that lie wholly beyond TRUNC_LIMIT are refused.
U_MIN = np.float32(2.0**-72)
U_MAX = np.float32(1.0 - 2.0**-24)
TRUNC_LIMIT = 9.0


def philox4x32(counter, key, rounds=PHILOX_ROUNDS):
    """Philox4x32 on uint32 arrays: ``counter[..., 4]`` and ``key[..., 2]`` broadcast.

    >>> philox4x32(np.zeros(4, np.uint32), np.zeros(2, np.uint32))  # Random123 vector
    array([1713891541, 3782854029, 3159862348, 2600524760], dtype=uint32)
    """
    counter = np.asarray(counter)
    key = np.asarray(key)
    for name, a, n in (("counter", counter, 4), ("key", key, 2)):
        if a.shape[-1:] != (n,) or not np.issubdtype(a.dtype, np.integer):
            raise ValueError(f"{name} must be an integer array of shape [..., {n}], got {a.dtype} {a.shape}")
        if a.size and (a.min() < 0 or a.max() > 0xFFFFFFFF):
            raise ValueError(f"{name} words must lie in [0, 2**32)")
    c = [counter[..., i].astype(np.uint64) for i in range(4)]
    k0, k1 = key[..., 0].astype(np.uint64), key[..., 1].astype(np.uint64)
    for _ in range(rounds):
        c, k0, k1 = _round(c, k0, k1)
    return np.stack(np.broadcast_arrays(*c), axis=-1).astype(np.uint32)


def _round(c, k0, k1):
    p0 = np.uint64(PHILOX_M0) * c[0]
    p1 = np.uint64(PHILOX_M1) * c[2]
    c = [(p1 >> _SHIFT32) ^ c[1] ^ k0, p1 & _MASK32, (p0 >> _SHIFT32) ^ c[3] ^ k1, p0 & _MASK32]
    return c, (k0 + np.uint64(PHILOX_W0)) & _MASK32, (k1 + np.uint64(PHILOX_W1)) & _MASK32


def block_words(blocks, seed, stream):
    """Philox4x32-10 of counters ``(blocks, stream)`` under key ``seed``: uint32 ``[*blocks.shape, 4]``.

    ``blocks`` is a uint64 array of block indices; ``seed`` and ``stream`` are 64-bit ints.
    The loop keeps words in uint64 arrays and works in place: ten rounds of two products,
    two shifts, two masks and four XORs over the block vector.
    """
    blocks = np.asarray(blocks, dtype=np.uint64)
    n = blocks.size
    c0 = blocks.reshape(-1) & _MASK32
    c1 = blocks.reshape(-1) >> _SHIFT32
    # Round 1 on the constant stream words is done on scalars.
    s_lo, s_hi = stream & 0xFFFFFFFF, stream >> 32
    k0, k1 = seed & 0xFFFFFFFF, seed >> 32
    p1 = PHILOX_M1 * s_lo
    p0 = np.uint64(PHILOX_M0) * c0
    c0 = c1 ^ np.uint64((p1 >> 32) ^ k0)
    c1 = np.full(n, p1 & 0xFFFFFFFF, np.uint64)
    c2 = (p0 >> _SHIFT32) ^ np.uint64(s_hi ^ k1)
    c3 = p0 & _MASK32
    t = np.empty(n, np.uint64)
    for r in range(1, PHILOX_ROUNDS):
        k0 = np.uint64((seed + r * PHILOX_W0) & 0xFFFFFFFF)
        k1 = np.uint64(((seed >> 32) + r * PHILOX_W1) & 0xFFFFFFFF)
        np.multiply(c0, np.uint64(PHILOX_M0), out=p0)  # p0 = M0 * c0
        np.multiply(c2, np.uint64(PHILOX_M1), out=t)  # t  = M1 * c2
        np.right_shift(t, _SHIFT32, out=c0)
        c0 ^= c1
        c0 ^= k0  # c0' = hi(M1 c2) ^ c1 ^ k0
        np.bitwise_and(t, _MASK32, out=c1)  # c1' = lo(M1 c2)
        np.right_shift(p0, _SHIFT32, out=c2)
        c2 ^= c3
        c2 ^= k1  # c2' = hi(M0 c0) ^ c3 ^ k1
        np.bitwise_and(p0, _MASK32, out=c3)  # c3' = lo(M0 c0)
    out = np.empty((n, 4), np.uint32)
    for i, w in enumerate((c0, c1, c2, c3)):
        out[:, i] = w
    return out.reshape(blocks.shape + (4,))


# ---- conversions: uint32 word -> float32 -------------------------------------------------
# Only integer operations and single IEEE float32 +, -, *, sqrt (each rounded to nearest, never
# fused): every backend that follows the same order gets the same bits (docs/stream.md).

F32 = np.float32
SQRTHF = F32(0.707106781186547524)
# Cephes logf (Moshier): log(1 + f) = f - f^2/2 + f^3 P(f), f in [sqrt(1/2) - 1, sqrt(2) - 1].
LOG_P = tuple(F32(c) for c in (7.0376836292e-2, -1.1514610310e-1, 1.1676998740e-1, -1.2420140846e-1,
                               1.4249322787e-1, -1.6668057665e-1, 2.0000714765e-1, -2.4999993993e-1,
                               3.3333331174e-1))
LOG_Q1 = F32(-2.12194440e-4)  # ln 2 = LOG_Q2 - LOG_Q1, split so that e * LOG_Q2 is exact
LOG_Q2 = F32(0.693359375)
# Cephes sinf / cosf minimax polynomials on [-pi/4, pi/4].
SIN_P = (F32(-1.9515295891e-4), F32(8.3321608736e-3), F32(-1.6666654611e-1))
COS_P = (F32(2.443315711809948e-5), F32(-1.388731625493765e-3), F32(4.166664568298827e-2))
PI_2M23 = F32(F32(math.pi) * F32(2.0**-23))  # float32(pi) * 2**-23, exact


def _signed_int(words):
    """s = ((w >> 8) | 1) - 2**23: odd integers in [-(2**23 - 1), 2**23 - 1]."""
    return ((words >> np.uint32(8)) | np.uint32(1)).astype(np.int32) - np.int32(TWO_POW_23)


def signed_uniform(words):
    """v = s * 2**-23: odd multiples of 2**-23 in (-1, 1), symmetric, exact."""
    return _signed_int(words).astype(np.float32) * TWO_POW_M23


def open_uniform(words):
    """u = ((w >> 8) | 1) * 2**-24 in (0, 1): odd multiples of 2**-24, never 0 or 1, exact."""
    k = ((words >> np.uint32(8)) | np.uint32(1)).astype(np.float32)
    return k * F32(2.0**-24)


def log_f32(x):
    """Natural log of positive normal float32 ``x`` (Cephes logf, < 2 ulp), in fixed operation order."""
    bits = x.view(np.int32)
    e = (bits >> 23) - np.int32(126)
    m = ((bits & np.int32(0x007FFFFF)) | np.int32(0x3F000000)).view(np.float32)  # x = m 2**e, m in [1/2, 1)
    small = m < SQRTHF
    e -= small
    f = m - F32(1.0)
    f += np.where(small, m, F32(0.0))  # 2m - 1 when m < sqrt(1/2): exact
    z = f * f
    y = np.full(f.shape, LOG_P[0], np.float32)
    for c in LOG_P[1:]:
        y *= f
        y += c
    y *= f
    y *= z
    fe = e.astype(np.float32)
    y += fe * LOG_Q1
    y -= z * F32(0.5)
    f += y
    f += fe * LOG_Q2
    return f


def sincos_pi(s):
    """(cos(pi v), sin(pi v)) for v = s * 2**-23: quadrant q = round(2v) and r = v - q/2 in integers,
    then Cephes polynomials at x = r * pi, |x| <= pi/4."""
    q = (s + np.int32(1 << 21)) >> 22  # round(s / 2**22); s is odd, so no ties
    x = (s - (q << 22)).astype(np.float32) * PI_2M23
    z = x * x
    sin_x = SIN_P[0] * z
    sin_x += SIN_P[1]
    sin_x *= z
    sin_x += SIN_P[2]
    sin_x *= z
    sin_x *= x
    sin_x += x
    cos_x = COS_P[0] * z
    cos_x += COS_P[1]
    cos_x *= z
    cos_x += COS_P[2]
    cos_x *= z
    cos_x *= z
    cos_x -= z * F32(0.5)
    cos_x += F32(1.0)
    swap = (q & 1).astype(bool)  # odd quadrants exchange sin and cos
    c = np.where(swap, sin_x, cos_x)
    sn = np.where(swap, cos_x, sin_x)
    np.negative(c, out=c, where=((q + 1) & 2).astype(bool))  # quadrants 1, 2: cos < 0
    np.negative(sn, out=sn, where=(q & 2).astype(bool))  # quadrants 2, 3: sin < 0
    return c, sn


def bfloat16_bits(values, xp=np):
    """float32 -> bfloat16 bit patterns (int16), round to nearest even; ``xp``: numpy or cupy."""
    bits = xp.ascontiguousarray(values, dtype=xp.float32).view(xp.uint32)
    bits = (bits + (xp.uint32(0x7FFF) + ((bits >> xp.uint32(16)) & xp.uint32(1)))) >> xp.uint32(16)
    return bits.astype(xp.uint16).view(xp.int16)


def normal_from_words(words):
    """Box-Muller on lane pairs (0, 1) and (2, 3) of ``words[..., 4k]``.

    For a pair (w0, w1): r = sqrt(-2 log u(w0)), t = pi * v(w1);
    lane 0 gets r cos t, lane 1 gets r sin t. |z| <= sqrt(48 ln 2) = 5.77.
    """
    w = words.reshape(words.shape[:-1] + (-1, 2))
    r = log_f32(open_uniform(w[..., 0]))
    r *= F32(-2.0)
    np.sqrt(r, out=r)
    c, sn = sincos_pi(_signed_int(w[..., 1]))
    out = np.empty(w.shape, np.float32)
    np.multiply(r, c, out=out[..., 0])
    np.multiply(r, sn, out=out[..., 1])
    return out.reshape(words.shape)


# erfinv(x) = p(w) * x with w = -log((1 - x)(1 + x)), Giles (2010), "Approximating the erfinv
# function", GPU Computing Gems: his single-precision branches for w < 5 and w < 16, and the last
# branch of his double-precision version for the deep tail (|z| > 5.4, reached only by truncations
# that start there). Each branch: (upper limit of w, shift applied to w or sqrt(w), coefficients).
ERFINV_BRANCHES = (
    (5.0, False, 2.5, (2.81022636e-08, 3.43273939e-07, -3.5233877e-06, -4.39150654e-06, 0.00021858087,
                       -0.00125372503, -0.00417768164, 0.246640727, 1.50140941)),
    (16.0, True, 3.0, (-0.000200214257, 0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773,
                       -0.0076224613, 0.00943887047, 1.00167406, 2.83297682)),
    (math.inf, True, 5.0, (-2.7109920616438573243e-11, -2.5556418169965252055e-10, 1.5076572693500548083e-09,
                           -3.7894654401267369937e-09, 7.6157012080783393804e-09, -1.4960026627149240478e-08,
                           2.9147953450901080826e-08, -6.7711997758452339498e-08, 2.2900482228026654717e-07,
                           -9.9298272942317002539e-07, 4.5260625972231537039e-06, -1.9681778105531670567e-05,
                           7.5995277030017761139e-05, -0.00021503011930044477347, -0.00013871931833623122026,
                           1.0103004648645343977, 4.8499064014085844221)),
)


def _erfinv_factor(w, use_sqrt, shift, coeffs):
    t = (np.sqrt(w) if use_sqrt else w) - np.float32(shift)
    p = np.full(w.shape, np.float32(coeffs[0]), np.float32)
    for c in coeffs[1:]:
        p *= t
        p += np.float32(c)
    return p


def normal_quantile(u):
    """Phi^-1(u) for float32 u in (0, 1), computed from u directly so that tails keep precision.

    Phi^-1(u) = sqrt(2) erfinv(2u - 1), and erfinv's w = -log(4 u (1 - u)) has no cancellation.
    """
    w = log_f32((u * F32(4.0)) * (F32(1.0) - u))
    np.negative(w, out=w)
    p = _erfinv_factor(w, *ERFINV_BRANCHES[0][1:])
    lower = ERFINV_BRANCHES[0][0]
    for upper, *branch in ERFINV_BRANCHES[1:]:
        sel = w >= np.float32(lower)
        if sel.any():
            p[sel] = _erfinv_factor(w[sel], *branch)
        lower = upper
    x = u * F32(2.0) - F32(1.0)
    p *= x
    p *= SQRT2
    return p


def trunc_normal_from_words(words, p_lo, p_span, lo, hi, flip):
    """Inverse-CDF truncated standard normal, one word per element, values in [lo, hi].

    u = p_lo + open_uniform(w) * p_span with p_lo = Phi(lo), p_span = Phi(hi) - Phi(lo)
    (both float32, lower-tail form: the host flips intervals that lie in the upper tail);
    z = clamp(Phi^-1(u), lo, hi), negated when ``flip``.
    """
    u = open_uniform(words)
    u *= np.float32(p_span)
    u += np.float32(p_lo)
    np.clip(u, U_MIN, U_MAX, out=u)
    z = normal_quantile(u)
    np.clip(z, np.float32(lo), np.float32(hi), out=z)
    if flip:
        np.negative(z, out=z)
    return z


# ---- elementwise draws over runs of consecutive element indices ------------------------------


def draw_values(draw, starts, length, seed, stream):
    """float32 ``[len(starts), length]``: elements ``starts[r] + t`` for ``t < length`` of a draw.

    ``draw`` is a gpuinit.draws Uniform (center, half_width, lo, hi), Normal (mean, std) or
    TruncNormal (mean, std, p_lo, p_span, z_lo, z_hi, flip, lo, hi); every value is a pure
    function of (seed, stream, element index, the draw's numbers).
    """
    starts = np.asarray(starts, dtype=np.uint64).reshape(-1)
    lane0 = (starts & np.uint64(3)).astype(np.intp)
    if len(starts) == 1:
        nblocks = (int(lane0[0]) + length + 3) // 4
    else:
        nblocks = (length + 3) // 4 + 1
    blocks = (starts >> np.uint64(2))[:, None] + np.arange(nblocks, dtype=np.uint64)
    words = block_words(blocks, seed, stream).reshape(len(starts), nblocks * 4)
    vals = _convert(draw, words)
    if len(starts) == 1:
        return vals[:, lane0[0]:lane0[0] + length]
    return np.take_along_axis(vals, lane0[:, None] + np.arange(length), axis=1)


def _convert(d, words):
    kind = d.kind
    if kind == "uniform":
        x = signed_uniform(words)
        x *= np.float32(d.half_width)
        x += np.float32(d.center)
        return np.clip(x, np.float32(d.lo), np.float32(d.hi), out=x)
    if kind == "normal":
        x = normal_from_words(words)
        x *= np.float32(d.std)
        x += np.float32(d.mean)
        return x
    if kind == "trunc_normal":
        x = trunc_normal_from_words(words, d.p_lo, d.p_span, d.z_lo, d.z_hi, d.flip)
        x *= np.float32(d.std)
        x += np.float32(d.mean)
        return np.clip(x, np.float32(d.lo), np.float32(d.hi), out=x)
    raise ValueError(f"no elementwise draw named {kind!r}")


def element_words(starts, length, seed, stream):
    """uint32 ``[len(starts), length]``: the raw word of elements ``starts[r] + t``."""
    starts = np.asarray(starts, dtype=np.uint64).reshape(-1)
    idx = starts[:, None] + np.arange(length, dtype=np.uint64)
    words = block_words(idx >> np.uint64(2), seed, stream)
    lane = (idx & np.uint64(3)).astype(np.intp)
    return np.take_along_axis(words, lane[..., None], axis=-1)[..., 0]
