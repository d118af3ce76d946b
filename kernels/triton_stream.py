"""The gpuinit stream in Triton: one-pass in-place fills of torch CUDA tensors.

Each program takes BLOCK Philox blocks of one run of consecutive logical indices, draws each
block's four words once, turns them into four values (docs/stream.md) and stores them straight
into the tensor's dtype. Launch with ``enable_fp_fusion=False`` so that no product and sum fuse
into an FMA: the values are then bit-identical to kernels/numpy_stream.py.
"""
import triton
import triton.language as tl
from triton.language.random import philox_impl

from . import numpy_stream as ks

UNIFORM: tl.constexpr = tl.constexpr(0)
NORMAL: tl.constexpr = tl.constexpr(1)
TRUNC_NORMAL: tl.constexpr = tl.constexpr(2)
WORDS: tl.constexpr = tl.constexpr(3)  # the raw words, bit-cast to float32 (sparse keys, tests)
KINDS = ks.KINDS
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
def _open_uniform(w):
    return ((w >> 8) | 1).to(tl.float32) * 5.9604644775390625e-08  # 2**-24


@triton.jit
def _log(x):
    bits = x.to(tl.int32, bitcast=True)
    e = (bits >> 23) - 126
    m = ((bits & 0x007FFFFF) | 0x3F000000).to(tl.float32, bitcast=True)
    small = m < SQRTHF
    e = e - small.to(tl.int32)
    f = m - 1.0
    f = f + tl.where(small, m, 0.0)
    z = f * f
    y = _horner(f, LOG_P, 9)
    y = y * f
    y = y * z
    fe = e.to(tl.float32)
    y = y + fe * LOG_Q1
    y = y - z * 0.5
    f = f + y
    return f + fe * LOG_Q2


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
    cx = cx - z * 0.5
    cx = cx + 1.0
    odd = (q & 1) != 0
    c = tl.where(odd, sx, cx)
    sn = tl.where(odd, cx, sx)
    c = tl.where(((q + 1) & 2) != 0, -c, c)
    sn = tl.where((q & 2) != 0, -sn, sn)
    return c, sn


@triton.jit
def _normal_pair(w0, w1):
    r = tl.sqrt_rn(_log(_open_uniform(w0)) * -2.0)
    c, s = _sincos_pi(_signed_int(w1))
    return r * c, r * s


@triton.jit
def _normal_quantile(u, BRANCHES: tl.constexpr):
    """BRANCHES: how many erfinv branches the draw's u can reach (gpuinit/draws.py); others are skipped."""
    w = -_log((u * 4.0) * (1.0 - u))
    p = _horner(w - 2.5, ERF_0, 9)
    if BRANCHES > 1:
        sw = tl.sqrt_rn(w)
        p = tl.where(w >= 5.0, _horner(sw - 3.0, ERF_1, 9), p)
        if BRANCHES > 2:
            p = tl.where(w >= 16.0, _horner(sw - 5.0, ERF_2, 17), p)
    p = p * ((u * 2.0) - 1.0)
    return p * SQRT2


@triton.jit
def _trunc_standard(w, p_lo, p_span, z_lo, z_hi, flip, BRANCHES: tl.constexpr):
    u = _open_uniform(w) * p_span + p_lo
    u = tl.minimum(tl.maximum(u, U_MIN), U_MAX)
    z = tl.minimum(tl.maximum(_normal_quantile(u, BRANCHES), z_lo), z_hi)
    return tl.where(flip != 0, -z, z)


@triton.jit
def _affine_clamp(x, scale, shift, lo, hi, CLAMP: tl.constexpr):
    y = x * scale + shift
    if CLAMP:
        y = tl.minimum(tl.maximum(y, lo), hi)
    return y


@triton.jit
def block_values(block, seed_lo, seed_hi, stream_lo, stream_hi, scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi,
                 flip, KIND: tl.constexpr, BRANCHES: tl.constexpr):
    """The four values of each Philox block in ``block`` (int64), one float32 tensor per lane."""
    c0 = (block & 0xFFFFFFFF).to(tl.uint32)
    c1 = (block >> 32).to(tl.uint32)
    c2 = tl.zeros_like(c0) + stream_lo.to(tl.uint32)
    c3 = tl.zeros_like(c0) + stream_hi.to(tl.uint32)
    w0, w1, w2, w3 = philox_impl(c0, c1, c2, c3, seed_lo.to(tl.uint32), seed_hi.to(tl.uint32), 10)
    if KIND == WORDS:
        return (w0.to(tl.float32, bitcast=True), w1.to(tl.float32, bitcast=True), w2.to(tl.float32, bitcast=True),
                w3.to(tl.float32, bitcast=True))
    if KIND == NORMAL:
        v0, v1 = _normal_pair(w0, w1)
        v2, v3 = _normal_pair(w2, w3)
    elif KIND == UNIFORM:
        v0, v1, v2, v3 = _signed_uniform(w0), _signed_uniform(w1), _signed_uniform(w2), _signed_uniform(w3)
    else:
        v0 = _trunc_standard(w0, p_lo, p_span, z_lo, z_hi, flip, BRANCHES)
        v1 = _trunc_standard(w1, p_lo, p_span, z_lo, z_hi, flip, BRANCHES)
        v2 = _trunc_standard(w2, p_lo, p_span, z_lo, z_hi, flip, BRANCHES)
        v3 = _trunc_standard(w3, p_lo, p_span, z_lo, z_hi, flip, BRANCHES)
    CLAMP: tl.constexpr = KIND != NORMAL
    return (_affine_clamp(v0, scale, shift, lo, hi, CLAMP), _affine_clamp(v1, scale, shift, lo, hi, CLAMP),
            _affine_clamp(v2, scale, shift, lo, hi, CLAMP), _affine_clamp(v3, scale, shift, lo, hi, CLAMP))


@triton.jit
def _unravel(j, shape_ptr, stride_ptr):
    """sum(i_d * stride_d) for the row-major multi-index i of ``j`` in a 6-D shape (n0 implied)."""
    acc = j * 0
    for d in tl.static_range(5):
        n = tl.load(shape_ptr + 4 - d)
        acc += (j % n) * tl.load(stride_ptr + 5 - d)
        j = j // n
    return acc + j * tl.load(stride_ptr)


@triton.jit
def _tile(start, tile, seed_lo, seed_hi, stream_lo, stream_hi, scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi, flip,
          KIND: tl.constexpr, BRANCHES: tl.constexpr, BLOCK: tl.constexpr):
    """Values of tile ``tile`` of the run that starts at logical index ``start``: BLOCK Philox blocks,
    4 * BLOCK values in index order, and each value's position ``t`` in the run (t < 0: before it)."""
    block = (start >> 2) + tile * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    v0, v1, v2, v3 = block_values(block, seed_lo, seed_hi, stream_lo, stream_hi, scale, shift, lo, hi, p_lo,
                                  p_span, z_lo, z_hi, flip, KIND, BRANCHES)
    values = tl.interleave(tl.interleave(v0, v2), tl.interleave(v1, v3))  # lanes 0, 1, 2, 3 of each block
    t = (start >> 2) * 4 + tile * (4 * BLOCK) + tl.arange(0, 4 * BLOCK).to(tl.int64) - start
    return values, t


# Scalar arguments whose values change from call to call: typed by annotation and never specialized on
# their value (a Python int's type would depend on its size, and 1 or multiples of 16 would get kernels of
# their own), so one compiled kernel serves every seed, stream and parameter.
VALUE_ARGS = ("seed_lo", "seed_hi", "stream_lo", "stream_hi", "scale", "shift", "lo", "hi", "p_lo", "p_span", "z_lo",
              "z_hi", "flip")


@triton.jit(do_not_specialize=VALUE_ARGS)
def fill_kernel(out_ptr, meta_ptr, seed_lo: tl.uint32, seed_hi: tl.uint32, stream_lo: tl.uint32, stream_hi: tl.uint32,
                scale: tl.float32, shift: tl.float32, lo: tl.float32, hi: tl.float32, p_lo: tl.float32,
                p_span: tl.float32, z_lo: tl.float32, z_hi: tl.float32, flip: tl.int32, KIND: tl.constexpr,
                SINGLE_RUN: tl.constexpr, CONTIGUOUS: tl.constexpr, BLOCK: tl.constexpr, BRANCHES: tl.constexpr = 3):
    """Fill one tile of one run: runs are the rows of the local tensor seen as (numel / run_len, run_len),
    each a range of consecutive logical indices; a tile is BLOCK Philox blocks of a run.

    ``meta`` (int64): base (logical index of the local origin), run_len, tiles per run, the local
    shape n1..n5 (padded in front to 6 dims; n0 implied), memory strides s0..s5, logical strides g0..g5.
    Python ints would arrive as i32, u32 or i64 depending on their value; one int64 vector keeps every
    index 64-bit and one compiled kernel per kind and dtype.
    """
    base = tl.load(meta_ptr + 0)
    run_len = tl.load(meta_ptr + 1)
    tiles_per_run = tl.load(meta_ptr + 2)
    pid = tl.program_id(0).to(tl.int64)
    run = pid // tiles_per_run
    tile = pid % tiles_per_run
    j0 = run * run_len  # local linear index of the run's first element
    if SINGLE_RUN:
        start = base
    else:
        start = base + _unravel(j0, meta_ptr + 3, meta_ptr + 14)
    values, t = _tile(start, tile, seed_lo, seed_hi, stream_lo, stream_hi, scale, shift, lo, hi, p_lo, p_span, z_lo,
                      z_hi, flip, KIND, BRANCHES, BLOCK)
    mask = (t >= 0) & (t < run_len)
    j = j0 + t
    if CONTIGUOUS:
        offset = j
    else:
        offset = _unravel(j, meta_ptr + 3, meta_ptr + 8)
    store(out_ptr + offset, values, mask)


@triton.jit(do_not_specialize=["n_tensors"])
def group_kernel(table_ptr, params_ptr, n_tensors: tl.int32, OUT_DTYPE: tl.constexpr, KIND: tl.constexpr,
                 BLOCK: tl.constexpr, BRANCHES: tl.constexpr = 3):
    """Fill a list of contiguous tensors of one dtype and one draw kind in one launch.

    ``table`` (int64, a row per tensor): address, numel, first tile, seed, stream, flip, start (the
    logical index of the tensor's first element: a row shard holds one run); rows sorted by first tile.
    ``params`` (float32, a row per tensor): scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi.
    """
    pid = tl.program_id(0).to(tl.int64)
    lo_row = 0
    hi_row = n_tensors  # the tensor of this program: the last row whose first tile is <= pid
    for _ in tl.static_range(32):  # binary search, n_tensors < 2**32
        active = hi_row - lo_row > 1
        mid = (lo_row + hi_row) // 2
        go_right = tl.load(table_ptr + mid * 7 + 2) <= pid
        lo_row = tl.where(active & go_right, mid, lo_row)
        hi_row = tl.where(active & (not go_right), mid, hi_row)
    row = table_ptr + lo_row * 7
    out_ptr = tl.load(row).to(tl.pointer_type(OUT_DTYPE))
    numel = tl.load(row + 1)
    seed = tl.load(row + 3)
    stream = tl.load(row + 4)
    prm = params_ptr + lo_row * 8
    values, t = _tile(tl.load(row + 6), pid - tl.load(row + 2), (seed & 0xFFFFFFFF).to(tl.uint32),
                      ((seed >> 32) & 0xFFFFFFFF).to(tl.uint32), (stream & 0xFFFFFFFF).to(tl.uint32),
                      ((stream >> 32) & 0xFFFFFFFF).to(tl.uint32), tl.load(prm), tl.load(prm + 1), tl.load(prm + 2),
                      tl.load(prm + 3), tl.load(prm + 4), tl.load(prm + 5), tl.load(prm + 6), tl.load(prm + 7),
                      tl.load(row + 5), KIND, BRANCHES, BLOCK)
    store(out_ptr + t, values, (t >= 0) & (t < numel))


@triton.jit
def store(ptr, values, mask):
    """Store float32 ``values`` in the pointer's dtype, rounded to nearest even (bfloat16 by integer
    rounding, which the interpreter and the GPU compute alike)."""
    if ptr.dtype.element_ty == tl.bfloat16:
        bits = values.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        tl.store(ptr, bits.to(tl.uint16).to(tl.bfloat16, bitcast=True), mask=mask)
    else:
        tl.store(ptr, values.to(ptr.dtype.element_ty), mask=mask)
