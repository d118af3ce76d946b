"""The gpuinit stream's values in Triton: Philox4x32-10 words and their conversions (docs/stream.md), as
kernels/numpy_stream.py computes them, one IEEE operation at a time (launch with ``enable_fp_fusion=False``)."""
import triton
import triton.language as tl

from . import numpy_stream as ks

UNIFORM: tl.constexpr = tl.constexpr(0)
NORMAL: tl.constexpr = tl.constexpr(1)
WORDS: tl.constexpr = tl.constexpr(3)  # the raw words, bit-cast to float32 (sparse keys, tests)
KINDS = ks.KINDS  # the launcher's KIND values; block_values draws trunc_normal (2) for the kinds not named above
DTYPES = {"torch.float32": tl.float32, "torch.bfloat16": tl.bfloat16, "torch.float16": tl.float16,
          "torch.float64": tl.float64}

# float32 constants, taken from the reference so that there is one source of truth.
LOG_P = tl.constexpr(tuple(float(c) for c in ks.LOG_P))
SIN_P = tl.constexpr(tuple(float(c) for c in ks.SIN_P))
COS_P = tl.constexpr(tuple(float(c) for c in ks.COS_P))
ERF_0 = tl.constexpr(tuple(float(c) for c in ks.ERFINV_BRANCHES[0][3]))
ERF_1 = tl.constexpr(tuple(float(c) for c in ks.ERFINV_BRANCHES[1][3]))
ERF_2 = tl.constexpr(tuple(float(c) for c in ks.ERFINV_BRANCHES[2][3]))
SQRTHF = tl.constexpr(float(ks.SQRTHF))
LOG_Q1 = tl.constexpr(float(ks.LOG_Q1))
LOG_Q2 = tl.constexpr(float(ks.LOG_Q2))
PI_2M23 = tl.constexpr(float(ks.PI_2M23))
SQRT2 = tl.constexpr(float(ks.SQRT2))
U_MIN = tl.constexpr(float(ks.U_MIN))
U_MAX = tl.constexpr(float(ks.U_MAX))


@triton.jit
def _horner(t, C: tl.constexpr, N: tl.constexpr):
    p = tl.full(t.shape, C[0], tl.float32)
    for i in tl.static_range(1, N):
        p = p * t + C[i]
    return p


@triton.jit
def _signed_int(w):
    return ((w >> 8) | 1).to(tl.int32) - (1 << 23)


@triton.jit
def _signed_uniform(w):
    return _signed_int(w).to(tl.float32) * 1.1920928955078125e-07  # 2**-23


@triton.jit
def _log(x, SCALE: tl.constexpr = 0):
    """log(x * 2**SCALE): a power of two folded into the exponent costs nothing and changes no bit. Products
    that are exact (by powers of two, or fe * LOG_Q2) are fused with their sum: the same bits, one instruction."""
    bits = x.to(tl.int32, bitcast=True)
    e = (bits >> 23) - (126 - SCALE)
    m = ((bits & 0x007FFFFF) | 0x3F000000).to(tl.float32, bitcast=True)
    small = m < SQRTHF
    e = e - small.to(tl.int32)
    f = tl.fma(m, tl.where(small, 2.0, 1.0), -1.0)  # (m - 1) + m when small: 2m - 1, exact either way
    z = f * f
    y = _horner(f, LOG_P, 9)
    y = y * f
    y = y * z
    fe = e.to(tl.float32)
    y = y + fe * LOG_Q1
    y = tl.fma(z, -0.5, y)
    f = f + y
    return tl.fma(fe, LOG_Q2, f)


@triton.jit
def _sincos_pi(s):
    q = (s + (1 << 21)) >> 22
    x = (s - q * (1 << 22)).to(tl.float32) * PI_2M23
    z = x * x
    sx = _horner(z, SIN_P, 3)
    sx = sx * z
    sx = sx * x
    sx = sx + x
    cx = _horner(z, COS_P, 3)
    cx = cx * z
    cx = cx * z
    cx = tl.fma(z, -0.5, cx)
    cx = cx + 1.0
    odd = (q & 1) != 0
    c = tl.where(odd, sx, cx)
    sn = tl.where(odd, cx, sx)
    c = tl.where(((q + 1) & 2) != 0, -c, c)
    sn = tl.where((q & 2) != 0, -sn, sn)
    return c, sn


@triton.jit
def _normal_pair(w0, w1):
    r = tl.sqrt_rn(_log(((w0 >> 8) | 1).to(tl.float32), -24) * -2.0)  # log of the open uniform
    c, s = _sincos_pi(_signed_int(w1))
    return r * c, r * s


@triton.jit
def _normal_quantile(u, BRANCHES: tl.constexpr):
    """BRANCHES: how many erfinv branches the draw's u can reach (gpuinit/draws.py); others are skipped."""
    w = -_log(u * (1.0 - u), 2)  # -log(4 u (1 - u))
    p = _horner(w - 2.5, ERF_0, 9)
    if BRANCHES > 1:
        sw = tl.sqrt_rn(w)
        p = tl.where(w >= 5.0, _horner(sw - 3.0, ERF_1, 9), p)
        if BRANCHES > 2:
            p = tl.where(w >= 16.0, _horner(sw - 5.0, ERF_2, 17), p)
    p = p * tl.fma(u, 2.0, -1.0)
    return p * SQRT2


@triton.jit
def _trunc_standard(w, p_lo, p_span, z_lo, z_hi, BRANCHES: tl.constexpr):
    """``p_span`` arrives times 2**-24 (the open uniform's scale, exact: launcher.trunc_args); a flip is folded
    into the affine map's scale by the launcher."""
    u = ((w >> 8) | 1).to(tl.float32) * p_span + p_lo
    u = tl.minimum(tl.maximum(u, U_MIN), U_MAX)
    return tl.minimum(tl.maximum(_normal_quantile(u, BRANCHES), z_lo), z_hi)


@triton.jit
def _affine_clamp(x, scale, shift, lo, hi, CLAMP: tl.constexpr):
    y = x * scale + shift
    if CLAMP:
        y = tl.minimum(tl.maximum(y, lo), hi)
    return y


@triton.jit
def _philox(c0, c1, c2, c3, k0, k1):
    """Philox4x32-10 (docs/stream.md), each product one 32 x 32 -> 64-bit multiply."""
    for _ in tl.static_range(10):
        p0 = c0.to(tl.uint64) * 0xD2511F53
        p2 = c2.to(tl.uint64) * 0xCD9E8D57
        c0, c1, c2, c3 = ((p2 >> 32).to(tl.uint32) ^ c1 ^ k0, p2.to(tl.uint32), (p0 >> 32).to(tl.uint32) ^ c3 ^ k1,
                          p0.to(tl.uint32))
        k0 = k0 + 0x9E3779B9
        k1 = k1 + 0xBB67AE85
    return c0, c1, c2, c3


@triton.jit
def block_values(c0, c1, key, prm, KIND: tl.constexpr, BRANCHES: tl.constexpr):
    """The four values of the Philox blocks whose index words are ``c0`` (low) and ``c1`` (high), one float32
    tensor per lane. ``key``: (seed_lo, seed_hi, stream_lo, stream_hi); ``prm``: the draw's (scale, shift, lo,
    hi, p_lo, p_span, z_lo, z_hi)."""
    seed_lo, seed_hi, stream_lo, stream_hi = key
    scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi = prm
    w0, w1, w2, w3 = _philox(c0, c1, stream_lo.to(tl.uint32), stream_hi.to(tl.uint32), seed_lo.to(tl.uint32),
                             seed_hi.to(tl.uint32))
    if KIND == WORDS:
        return (w0.to(tl.float32, bitcast=True), w1.to(tl.float32, bitcast=True), w2.to(tl.float32, bitcast=True),
                w3.to(tl.float32, bitcast=True))
    if KIND == NORMAL:
        v0, v1 = _normal_pair(w0, w1)
        v2, v3 = _normal_pair(w2, w3)
    elif KIND == UNIFORM:
        v0, v1, v2, v3 = _signed_uniform(w0), _signed_uniform(w1), _signed_uniform(w2), _signed_uniform(w3)
    else:
        v0 = _trunc_standard(w0, p_lo, p_span, z_lo, z_hi, BRANCHES)
        v1 = _trunc_standard(w1, p_lo, p_span, z_lo, z_hi, BRANCHES)
        v2 = _trunc_standard(w2, p_lo, p_span, z_lo, z_hi, BRANCHES)
        v3 = _trunc_standard(w3, p_lo, p_span, z_lo, z_hi, BRANCHES)
    CLAMP: tl.constexpr = KIND != NORMAL
    return (_affine_clamp(v0, scale, shift, lo, hi, CLAMP), _affine_clamp(v1, scale, shift, lo, hi, CLAMP),
            _affine_clamp(v2, scale, shift, lo, hi, CLAMP), _affine_clamp(v3, scale, shift, lo, hi, CLAMP))
