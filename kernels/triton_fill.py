"""The fill kernels in Triton: one-pass in-place fills of torch CUDA tensors (the stream: triton_stream.py).

Each program takes BLOCK Philox blocks of one run of consecutive logical indices, draws each
block's four words once, turns them into four values (docs/stream.md) and stores them straight
into the tensor's dtype. Launch with ``enable_fp_fusion=False`` so that no product and sum fuse
into an FMA: the values are then bit-identical to kernels/numpy_stream.py.
"""
import triton
import triton.language as tl

from ..launch_layout import FILL_META, GROUP_ROW
from .triton_stream import DTYPES, KINDS, block_values  # noqa: F401 - DTYPES and KINDS: the launcher's tables

# The offsets of fill_kernel's meta and of group_kernel's table rows (gpuinit/launch_layout.py FILL_META, GROUP_ROW)
META_BASE = tl.constexpr(FILL_META.BASE)
META_RUN_LEN = tl.constexpr(FILL_META.RUN_LEN)
META_RUNS = tl.constexpr(FILL_META.RUNS)  # tiles per run, or the number of runs where a program fills several
META_N = tl.constexpr(FILL_META.N)  # n1 .. n5
META_S = tl.constexpr(FILL_META.S)
META_G = tl.constexpr(FILL_META.G)
META_MAGIC = tl.constexpr(FILL_META.MAGIC)  # of n1 .. n5
META_SHIFT = tl.constexpr(FILL_META.SHIFT)
ROW_ADDRESS = tl.constexpr(GROUP_ROW.ADDRESS)
ROW_NUMEL = tl.constexpr(GROUP_ROW.NUMEL)
ROW_SEED = tl.constexpr(GROUP_ROW.SEED)
ROW_STREAM = tl.constexpr(GROUP_ROW.STREAM)
ROW_START = tl.constexpr(GROUP_ROW.START)
ROW_PARAMS = tl.constexpr(GROUP_ROW.PARAMS)  # four words
ROW_LEN = tl.constexpr(GROUP_ROW.LEN)


@triton.jit
def _unravel(j, shape_ptr, stride_ptr):
    """sum(i_d * stride_d) for the row-major multi-index i of ``j`` in a 6-D shape (n0 implied): ``shape_ptr``
    points at n1 .. n5, ``stride_ptr`` at the strides of the six dims."""
    acc = j * 0
    for d in tl.static_range(5):
        n = tl.load(shape_ptr + 4 - d)
        acc += (j % n) * tl.load(stride_ptr + 5 - d)
        j = j // n
    return acc + j * tl.load(stride_ptr)


@triton.jit
def _unravel32(j, meta_ptr, STRIDES: tl.constexpr, NDIM: tl.constexpr):
    """_unravel of int32 ``j`` over the NDIM trailing dims of the geometry, with the strides at meta[STRIDES:]
    (META_S: memory, META_G: logical), dividing by multiply-high and shift (launch_layout.divider: the magics
    at meta[META_MAGIC:], the shifts at meta[META_SHIFT:], for n1 .. n5)."""
    acc = tl.zeros(j.shape, tl.int64)
    for d in tl.static_range(NDIM - 1):
        n = tl.load(meta_ptr + (META_N + 4) - d).to(tl.int32)
        magic = tl.load(meta_ptr + (META_MAGIC + 4) - d).to(tl.uint32)
        shift = tl.load(meta_ptr + (META_SHIFT + 4) - d).to(tl.uint32)
        u = j.to(tl.uint32)
        q = ((tl.umulhi(u, magic) + u) >> shift).to(tl.int32)
        acc += (j - q * n).to(tl.int64) * tl.load(meta_ptr + STRIDES + 5 - d)
        j = q
    return acc + j.to(tl.int64) * tl.load(meta_ptr + STRIDES + 6 - NDIM)


@triton.jit
def _tile(start, tile, key, prm, KIND: tl.constexpr, BRANCHES: tl.constexpr, BLOCK: tl.constexpr):
    """Values of tile ``tile`` of the run that starts at logical index ``start``: BLOCK Philox blocks, 4 * BLOCK
    values in index order (a thread holds the four values of its blocks, stored as one vector), the position
    in the run of the tile's first value (an int64 scalar, negative when the run starts inside a block) and
    each value's offset from it (int32)."""
    first = (start >> 2) + tile * BLOCK
    lo_word = (first & 0xFFFFFFFF).to(tl.uint32)
    c0 = lo_word + tl.arange(0, BLOCK).to(tl.uint32)  # 32-bit counters, the carry into the high word
    c1 = (first >> 32).to(tl.uint32) + (c0 < lo_word).to(tl.uint32)
    v0, v1, v2, v3 = block_values(c0, c1, key, prm, KIND, BRANCHES)
    values = tl.reshape(tl.join(tl.join(v0, v2), tl.join(v1, v3)), [4 * BLOCK])  # each thread: whole blocks
    return values, tile * (4 * BLOCK) - (start & 3), tl.arange(0, 4 * BLOCK)


# Scalar arguments whose values change from call to call: typed by annotation and never specialized on
# their value (a Python int's type would depend on its size, and 1 or multiples of 16 would get kernels of
# their own), so one compiled kernel serves every seed, stream and parameter.
VALUE_ARGS = ("seed_lo", "seed_hi", "stream_lo", "stream_hi", "scale", "shift", "lo", "hi", "p_lo", "p_span", "z_lo",
              "z_hi")


@triton.jit(do_not_specialize=VALUE_ARGS)
def fill_kernel(out_ptr, meta_ptr, seed_lo: tl.uint32, seed_hi: tl.uint32, stream_lo: tl.uint32, stream_hi: tl.uint32,
                scale: tl.float32, shift: tl.float32, lo: tl.float32, hi: tl.float32, p_lo: tl.float32,
                p_span: tl.float32, z_lo: tl.float32, z_hi: tl.float32, KIND: tl.constexpr,
                SINGLE_RUN: tl.constexpr, CONTIGUOUS: tl.constexpr, BLOCK: tl.constexpr, BRANCHES: tl.constexpr = 3,
                ALIGNED: tl.constexpr = False, HW_ROUND: tl.constexpr = False, NDIM: tl.constexpr = 0,
                RUNS: tl.constexpr = 1):
    """Fill one tile of one run: runs are the rows of the local tensor seen as (numel / run_len, run_len),
    each a range of consecutive logical indices; a tile is BLOCK Philox blocks of a run.

    ``meta`` (int64, laid out as gpuinit/launch_layout.py's FILL_META): base (logical index of the local origin),
    run_len, tiles per run, the local shape n1..n5 (padded in front to 6 dims; n0 implied), memory strides s0..s5,
    logical strides g0..g5, the dividers of n1..n5.
    Python ints would arrive as i32, u32 or i64 depending on their value; one int64 vector keeps every
    index 64-bit and one compiled kernel per kind and dtype.
    ALIGNED: a single contiguous run that starts on a Philox block, at a 16-byte aligned address (each
    thread's four values are one vector store). HW_ROUND: round to 16 bits with the hardware conversion.
    NDIM > 0 (strided views of fewer than 2**31 elements): the dims the geometry really has, walked with 32-bit
    indices and the dividers; 0: 64-bit indices over all six.
    RUNS > 1 (short runs, e.g. column shards): a program fills RUNS whole runs of BLOCK / RUNS Philox blocks
    each; meta[META_RUNS] holds the number of runs. ALIGNED then means every run starts on a block at a 16-byte
    address.
    """
    key = (seed_lo, seed_hi, stream_lo, stream_hi)
    prm = (scale, shift, lo, hi, p_lo, p_span, z_lo, z_hi)
    if RUNS > 1:
        _fill_runs(out_ptr, meta_ptr, key, prm, KIND, CONTIGUOUS, BLOCK, BRANCHES, ALIGNED, HW_ROUND, NDIM, RUNS)
    else:
        _fill_tiles(out_ptr, meta_ptr, key, prm, KIND, SINGLE_RUN, CONTIGUOUS, BLOCK, BRANCHES, ALIGNED, HW_ROUND, NDIM)


@triton.jit
def _fill_tiles(out_ptr, meta_ptr, key, prm, KIND: tl.constexpr, SINGLE_RUN: tl.constexpr, CONTIGUOUS: tl.constexpr,
                BLOCK: tl.constexpr, BRANCHES: tl.constexpr, ALIGNED: tl.constexpr, HW_ROUND: tl.constexpr,
                NDIM: tl.constexpr):
    """fill_kernel for runs of a tile or more: a program per tile of BLOCK Philox blocks of one run."""
    base = tl.load(meta_ptr + META_BASE)
    run_len = tl.load(meta_ptr + META_RUN_LEN)
    pid = tl.program_id(0).to(tl.int64)
    if SINGLE_RUN:  # one run: a program per tile
        tile = pid
        j0 = 0
        start = base
    else:
        tiles_per_run = tl.load(meta_ptr + META_RUNS)
        run = pid // tiles_per_run
        tile = pid % tiles_per_run
        j0 = run * run_len  # local linear index of the run's first element
        start = base + _unravel(j0, meta_ptr + META_N, meta_ptr + META_G)
    values, first, pos = _tile(start, tile, key, prm, KIND, BRANCHES, BLOCK)
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
            offset = _unravel32((j0 + t).to(tl.int32), meta_ptr, META_S, NDIM)
        else:
            offset = _unravel(j0 + t, meta_ptr + META_N, meta_ptr + META_S)
        store(out_ptr + offset, values, (t >= 0) & (t < run_len), HW_ROUND)


@triton.jit
def _fill_runs(out_ptr, meta_ptr, key, prm, KIND: tl.constexpr, CONTIGUOUS: tl.constexpr, BLOCK: tl.constexpr,
               BRANCHES: tl.constexpr, ALIGNED: tl.constexpr, HW_ROUND: tl.constexpr, NDIM: tl.constexpr,
               RUNS: tl.constexpr):
    """fill_kernel for runs of at most 4 * BLOCK / RUNS values: a [RUNS, BLOCK / RUNS] tile of Philox blocks."""
    SUB: tl.constexpr = BLOCK // RUNS
    base = tl.load(meta_ptr + META_BASE)
    run_len = tl.load(meta_ptr + META_RUN_LEN)
    n_runs = tl.load(meta_ptr + META_RUNS)
    run = tl.program_id(0).to(tl.int64) * RUNS + tl.arange(0, RUNS)
    j0 = run * run_len
    if ALIGNED:
        j0 = tl.multiple_of(j0, 4)
    if NDIM > 0:
        start = base + _unravel32(j0.to(tl.int32), meta_ptr, META_G, NDIM)
    else:
        start = base + _unravel(j0, meta_ptr + META_N, meta_ptr + META_G)
    block = (start >> 2)[:, None] + tl.arange(0, SUB)[None, :]
    v0, v1, v2, v3 = block_values((block & 0xFFFFFFFF).to(tl.uint32), (block >> 32).to(tl.uint32), key, prm, KIND,
                                  BRANCHES)
    values = tl.reshape(tl.join(tl.join(v0, v2), tl.join(v1, v3)), [RUNS, 4 * SUB])
    t = tl.arange(0, 4 * SUB)[None, :] - (start & 3)[:, None]
    mask = (t >= 0) & (t < run_len) & (run < n_runs)[:, None]
    j = j0[:, None] + t
    if CONTIGUOUS:
        offset = j
    elif NDIM > 0:
        offset = _unravel32(j.to(tl.int32), meta_ptr, META_S, NDIM)
    else:
        offset = _unravel(j, meta_ptr + META_N, meta_ptr + META_S)
    store(out_ptr + offset, values, mask, HW_ROUND)


@triton.jit
def _half(word, HIGH: tl.constexpr):
    """The float32 held in the low or high half of an int64 word."""
    if HIGH:
        word = word >> 32
    return (word & 0xFFFFFFFF).to(tl.uint32).to(tl.float32, bitcast=True)


@triton.jit
def group_kernel(table_ptr, owner_ptr, OUT_DTYPE: tl.constexpr, KIND: tl.constexpr, BLOCK: tl.constexpr,
                 BRANCHES: tl.constexpr = 3, HW_ROUND: tl.constexpr = False, ALIGNED: tl.constexpr = False):
    """Fill a list of contiguous tensors of one dtype and one draw kind in one launch.

    ``owner`` (int64, one per program): the row of the tensor the program fills (high word) and the tile of it
    (low word). ``table`` (int64, a row of ROW_LEN words per tensor, laid out as gpuinit/launch_layout.py's
    GROUP_ROW): address, numel, seed, stream, start (the logical index of the tensor's first element: a row shard
    holds one run), then the fill kernel's eight float32 parameters scale .. z_hi, two to a word (the first in the
    low half).
    ALIGNED: every tensor starts on a Philox block at a 16-byte address (8 for 16-bit dtypes), so each
    thread's four values are one vector store.
    """
    own = tl.load(owner_ptr + tl.program_id(0))
    row = table_ptr + (own >> 32) * ROW_LEN
    out_ptr = tl.load(row + ROW_ADDRESS).to(tl.pointer_type(OUT_DTYPE))
    numel = tl.load(row + ROW_NUMEL)
    seed = tl.load(row + ROW_SEED)
    stream = tl.load(row + ROW_STREAM)
    start = tl.load(row + ROW_START)
    if ALIGNED:
        start = (start >> 2) << 2
    p01, p23 = tl.load(row + ROW_PARAMS), tl.load(row + (ROW_PARAMS + 1))
    p45, p67 = tl.load(row + (ROW_PARAMS + 2)), tl.load(row + (ROW_PARAMS + 3))
    key = ((seed & 0xFFFFFFFF).to(tl.uint32), ((seed >> 32) & 0xFFFFFFFF).to(tl.uint32),
           (stream & 0xFFFFFFFF).to(tl.uint32), ((stream >> 32) & 0xFFFFFFFF).to(tl.uint32))
    prm = (_half(p01, False), _half(p01, True), _half(p23, False), _half(p23, True), _half(p45, False),
           _half(p45, True), _half(p67, False), _half(p67, True))
    values, first, pos = _tile(start, own & 0xFFFFFFFF, key, prm, KIND, BRANCHES, BLOCK)
    ptr = out_ptr + first
    if ALIGNED:
        if OUT_DTYPE.primitive_bitwidth == 16:
            ptr = tl.multiple_of(ptr, 8)
        else:
            ptr = tl.multiple_of(ptr, 16)
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
