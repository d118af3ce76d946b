"""The gpuinit stream in Triton: one-pass in-place fills of torch CUDA tensors.

Each program takes BLOCK Philox blocks of one run of consecutive logical indices, draws each
block's four words once, turns them into four values (docs/stream.md) and stores them straight
into the tensor's dtype. Launch with ``enable_fp_fusion=False`` so that no product and sum fuse
into an FMA: the values are then bit-identical to kernels/numpy_stream.py.
"""
import triton
import triton.language as tl

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
def block_values(c0, c1, seed_lo, seed_hi, stream_lo, stream_hi, scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi,
                 flip, KIND: tl.constexpr, BRANCHES: tl.constexpr):
    """The four values of the Philox blocks whose index words are ``c0`` (low) and ``c1`` (high), one float32
    tensor per lane."""
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
def _unravel32(j, meta_ptr, STRIDES: tl.constexpr, NDIM: tl.constexpr):
    """_unravel of int32 ``j`` over the NDIM trailing dims of the geometry, with the strides at meta[STRIDES:]
    (8: memory, 14: logical), dividing by multiply-high and shift (regions.divider: magics at meta[20:25],
    shifts at meta[25:30], for n1 .. n5)."""
    acc = tl.zeros(j.shape, tl.int64)
    for d in tl.static_range(NDIM - 1):
        n = tl.load(meta_ptr + 7 - d).to(tl.int32)
        magic = tl.load(meta_ptr + 24 - d).to(tl.uint32)
        shift = tl.load(meta_ptr + 29 - d).to(tl.uint32)
        u = j.to(tl.uint32)
        q = ((tl.umulhi(u, magic) + u) >> shift).to(tl.int32)
        acc += (j - q * n).to(tl.int64) * tl.load(meta_ptr + STRIDES + 5 - d)
        j = q
    return acc + j.to(tl.int64) * tl.load(meta_ptr + STRIDES + 6 - NDIM)


@triton.jit
def _tile(start, tile, seed_lo, seed_hi, stream_lo, stream_hi, scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi, flip,
          KIND: tl.constexpr, BRANCHES: tl.constexpr, BLOCK: tl.constexpr):
    """Values of tile ``tile`` of the run that starts at logical index ``start``: BLOCK Philox blocks, 4 * BLOCK
    values in index order (a thread holds the four values of its blocks, stored as one vector), the position
    in the run of the tile's first value (an int64 scalar, negative when the run starts inside a block) and
    each value's offset from it (int32)."""
    first = (start >> 2) + tile * BLOCK
    lo_word = (first & 0xFFFFFFFF).to(tl.uint32)
    c0 = lo_word + tl.arange(0, BLOCK).to(tl.uint32)  # 32-bit counters, the carry into the high word
    c1 = (first >> 32).to(tl.uint32) + (c0 < lo_word).to(tl.uint32)
    v0, v1, v2, v3 = block_values(c0, c1, seed_lo, seed_hi, stream_lo, stream_hi, scale, shift, lo, hi, p_lo, p_span,
                                  z_lo, z_hi, flip, KIND, BRANCHES)
    values = tl.reshape(tl.join(tl.join(v0, v2), tl.join(v1, v3)), [4 * BLOCK])  # each thread: whole blocks
    return values, tile * (4 * BLOCK) - (start & 3), tl.arange(0, 4 * BLOCK)


# Scalar arguments whose values change from call to call: typed by annotation and never specialized on
# their value (a Python int's type would depend on its size, and 1 or multiples of 16 would get kernels of
# their own), so one compiled kernel serves every seed, stream and parameter.
VALUE_ARGS = ("seed_lo", "seed_hi", "stream_lo", "stream_hi", "scale", "shift", "lo", "hi", "p_lo", "p_span", "z_lo",
              "z_hi", "flip")


@triton.jit(do_not_specialize=VALUE_ARGS)
def fill_kernel(out_ptr, meta_ptr, seed_lo: tl.uint32, seed_hi: tl.uint32, stream_lo: tl.uint32, stream_hi: tl.uint32,
                scale: tl.float32, shift: tl.float32, lo: tl.float32, hi: tl.float32, p_lo: tl.float32,
                p_span: tl.float32, z_lo: tl.float32, z_hi: tl.float32, flip: tl.int32, KIND: tl.constexpr,
                SINGLE_RUN: tl.constexpr, CONTIGUOUS: tl.constexpr, BLOCK: tl.constexpr, BRANCHES: tl.constexpr = 3,
                ALIGNED: tl.constexpr = False, HW_ROUND: tl.constexpr = False, NDIM: tl.constexpr = 0,
                RUNS: tl.constexpr = 1):
    """Fill one tile of one run: runs are the rows of the local tensor seen as (numel / run_len, run_len),
    each a range of consecutive logical indices; a tile is BLOCK Philox blocks of a run.

    ``meta`` (int64): base (logical index of the local origin), run_len, tiles per run, the local
    shape n1..n5 (padded in front to 6 dims; n0 implied), memory strides s0..s5, logical strides g0..g5.
    Python ints would arrive as i32, u32 or i64 depending on their value; one int64 vector keeps every
    index 64-bit and one compiled kernel per kind and dtype.
    ALIGNED: a single contiguous run that starts on a Philox block, at a 16-byte aligned address (each
    thread's four values are one vector store). HW_ROUND: round to 16 bits with the hardware conversion.
    NDIM > 0 (strided views of fewer than 2**31 elements): the dims the geometry really has, walked with 32-bit
    indices and the dividers of meta[20:30]; 0: 64-bit indices over all six.
    RUNS > 1 (short runs, e.g. column shards): a program fills RUNS whole runs of BLOCK / RUNS Philox blocks
    each; meta[2] holds the number of runs. ALIGNED then means every run starts on a block at a 16-byte address.
    """
    if RUNS > 1:
        _fill_runs(out_ptr, meta_ptr, seed_lo, seed_hi, stream_lo, stream_hi, scale, shift, lo, hi, p_lo, p_span,
                   z_lo, z_hi, flip, KIND, CONTIGUOUS, BLOCK, BRANCHES, ALIGNED, HW_ROUND, NDIM, RUNS)
        return
    base = tl.load(meta_ptr + 0)
    run_len = tl.load(meta_ptr + 1)
    pid = tl.program_id(0).to(tl.int64)
    if SINGLE_RUN:  # one run: a program per tile
        tile = pid
        j0 = 0
        start = base
    else:
        tiles_per_run = tl.load(meta_ptr + 2)
        run = pid // tiles_per_run
        tile = pid % tiles_per_run
        j0 = run * run_len  # local linear index of the run's first element
        start = base + _unravel(j0, meta_ptr + 3, meta_ptr + 14)
    values, first, pos = _tile(start, tile, seed_lo, seed_hi, stream_lo, stream_hi, scale, shift, lo, hi, p_lo,
                               p_span, z_lo, z_hi, flip, KIND, BRANCHES, BLOCK)
    if CONTIGUOUS:  # one 64-bit address per program, 32-bit offsets, no mask inside the run
        ptr = out_ptr + (j0 + first)
        if ALIGNED:  # the four values of a block: one 16-byte store (8 bytes for 16-bit dtypes)
            if out_ptr.dtype.element_ty.primitive_bitwidth == 16:
                ptr = tl.multiple_of(ptr, 8)
            else:
                ptr = tl.multiple_of(ptr, 16)
        if (first >= 0) & (first + 4 * BLOCK <= run_len):
            store(ptr + pos, values, None, HW_ROUND)
        else:
            store(ptr + pos, values, (pos >= -first) & (pos < run_len - first), HW_ROUND)
    else:
        t = first + pos
        if NDIM > 0:  # 32-bit local indices, divisions by magic numbers
            offset = _unravel32((j0 + t).to(tl.int32), meta_ptr, 8, NDIM)
        else:
            offset = _unravel(j0 + t, meta_ptr + 3, meta_ptr + 8)
        store(out_ptr + offset, values, (t >= 0) & (t < run_len), HW_ROUND)


@triton.jit
def _fill_runs(out_ptr, meta_ptr, seed_lo, seed_hi, stream_lo, stream_hi, scale, shift, lo, hi, p_lo, p_span, z_lo,
               z_hi, flip, KIND: tl.constexpr, CONTIGUOUS: tl.constexpr, BLOCK: tl.constexpr,
               BRANCHES: tl.constexpr, ALIGNED: tl.constexpr, HW_ROUND: tl.constexpr, NDIM: tl.constexpr,
               RUNS: tl.constexpr):
    """fill_kernel for runs of at most 4 * BLOCK / RUNS values: a [RUNS, BLOCK / RUNS] tile of Philox blocks."""
    SUB: tl.constexpr = BLOCK // RUNS
    base = tl.load(meta_ptr + 0)
    run_len = tl.load(meta_ptr + 1)
    n_runs = tl.load(meta_ptr + 2)
    run = tl.program_id(0).to(tl.int64) * RUNS + tl.arange(0, RUNS)
    j0 = run * run_len
    if ALIGNED:
        j0 = tl.multiple_of(j0, 4)
    if NDIM > 0:
        start = base + _unravel32(j0.to(tl.int32), meta_ptr, 14, NDIM)
    else:
        start = base + _unravel(j0, meta_ptr + 3, meta_ptr + 14)
    block = (start >> 2)[:, None] + tl.arange(0, SUB)[None, :]
    v0, v1, v2, v3 = block_values((block & 0xFFFFFFFF).to(tl.uint32), (block >> 32).to(tl.uint32), seed_lo, seed_hi,
                                  stream_lo, stream_hi, scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi, flip, KIND,
                                  BRANCHES)
    values = tl.reshape(tl.join(tl.join(v0, v2), tl.join(v1, v3)), [RUNS, 4 * SUB])
    t = tl.arange(0, 4 * SUB)[None, :] - (start & 3)[:, None]
    mask = (t >= 0) & (t < run_len) & (run < n_runs)[:, None]
    j = j0[:, None] + t
    if CONTIGUOUS:
        offset = j
    elif NDIM > 0:
        offset = _unravel32(j.to(tl.int32), meta_ptr, 8, NDIM)
    else:
        offset = _unravel(j, meta_ptr + 3, meta_ptr + 8)
    store(out_ptr + offset, values, mask, HW_ROUND)


@triton.jit
def group_kernel(table_ptr, params_ptr, owner_ptr, OUT_DTYPE: tl.constexpr, KIND: tl.constexpr,
                 BLOCK: tl.constexpr, BRANCHES: tl.constexpr = 3, HW_ROUND: tl.constexpr = False):
    """Fill a list of contiguous tensors of one dtype and one draw kind in one launch.

    ``owner`` (int32, a row per program): the tensor the program fills. ``table`` (int64, a row per tensor):
    address, numel, first tile, seed, stream, flip, start (the logical index of the tensor's first element: a
    row shard holds one run). ``params`` (float32, a row per tensor): scale, shift, lo, hi, p_lo, p_span, z_lo,
    z_hi.
    """
    pid = tl.program_id(0)
    row_index = tl.load(owner_ptr + pid).to(tl.int64)
    row = table_ptr + row_index * 7
    out_ptr = tl.load(row).to(tl.pointer_type(OUT_DTYPE))
    numel = tl.load(row + 1)
    seed = tl.load(row + 3)
    stream = tl.load(row + 4)
    prm = params_ptr + row_index * 8
    values, first, pos = _tile(tl.load(row + 6), (pid - tl.load(row + 2)).to(tl.int64), (seed & 0xFFFFFFFF).to(tl.uint32),
                               ((seed >> 32) & 0xFFFFFFFF).to(tl.uint32), (stream & 0xFFFFFFFF).to(tl.uint32),
                               ((stream >> 32) & 0xFFFFFFFF).to(tl.uint32), tl.load(prm), tl.load(prm + 1),
                               tl.load(prm + 2), tl.load(prm + 3), tl.load(prm + 4), tl.load(prm + 5),
                               tl.load(prm + 6), tl.load(prm + 7), tl.load(row + 5), KIND, BRANCHES, BLOCK)
    ptr = out_ptr + first
    if (first >= 0) & (first + 4 * BLOCK <= numel):
        store(ptr + pos, values, None, HW_ROUND)
    else:
        store(ptr + pos, values, (pos >= -first) & (pos < numel - first), HW_ROUND)


@triton.jit
def store(ptr, values, mask, HW_ROUND: tl.constexpr):
    """Store float32 ``values`` in the pointer's dtype, rounded to nearest even: with HW_ROUND by the hardware
    conversion, else bfloat16 by integer rounding (the same bits for finite values; the interpreter has no
    bfloat16 conversion of its own)."""
    if ptr.dtype.element_ty == tl.bfloat16 and not HW_ROUND:
        bits = values.to(tl.uint32, bitcast=True)
        bits = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        tl.store(ptr, bits.to(tl.uint16).to(tl.bfloat16, bitcast=True), mask=mask)
    else:
        tl.store(ptr, values.to(ptr.dtype.element_ty), mask=mask)
