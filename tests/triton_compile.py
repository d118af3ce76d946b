"""Compile the Triton kernels ahead of time for a GPU architecture, without a GPU (checks and CI)."""
import itertools

KIND_NAMES = ("uniform", "normal", "trunc_normal", "words")
DTYPES = {"float32": "*fp32", "bfloat16": "*bf16", "float16": "*fp16", "float64": "*fp64"}


def compile_fill_kernel(kind, dtype, arch, contiguous=True, single_run=True, block=256):
    """The compiled kernel (``.asm["ptx"]``, ``.asm["cubin"]``) for CUDA compute capability ``arch``."""
    import triton
    from gpuinit.kernels import triton_fill as kt
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    ints = ("seed_lo", "seed_hi", "stream_lo", "stream_hi")
    floats = ("scale", "shift", "lo", "hi", "p_lo", "p_span", "z_lo", "z_hi")
    signature = {"out_ptr": DTYPES[dtype], "meta_ptr": "*i64", **{k: "u32" for k in ints},
                 **{k: "fp32" for k in floats}, "KIND": "constexpr", "SINGLE_RUN": "constexpr",
                 "CONTIGUOUS": "constexpr", "BLOCK": "constexpr", "BRANCHES": "constexpr", "ALIGNED": "constexpr",
                 "HW_ROUND": "constexpr", "NDIM": "constexpr", "RUNS": "constexpr"}
    constexprs = {"KIND": kt.KINDS[kind], "SINGLE_RUN": single_run, "CONTIGUOUS": contiguous, "BLOCK": block,
                  "BRANCHES": 3, "ALIGNED": single_run and contiguous, "HW_ROUND": True,
                  "NDIM": 0 if contiguous else 2, "RUNS": 1 if single_run else 8}
    src = ASTSource(fn=kt.fill_kernel, signature=signature, constexprs=constexprs)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"enable_fp_fusion": False})


def compile_group_kernel(kind, dtype, arch, block=256):
    """The grouped-launch kernel, compiled for CUDA compute capability ``arch``."""
    import triton
    from gpuinit.kernels import triton_fill as kt
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    signature = {"table_ptr": "*i64", "owner_ptr": "*i64", "OUT_DTYPE": "constexpr", "KIND": "constexpr",
                 "BLOCK": "constexpr", "BRANCHES": "constexpr", "HW_ROUND": "constexpr", "ALIGNED": "constexpr"}
    constexprs = {"OUT_DTYPE": kt.DTYPES[f"torch.{dtype}"], "KIND": kt.KINDS[kind], "BLOCK": block, "BRANCHES": 3,
                  "HW_ROUND": True, "ALIGNED": True}
    src = ASTSource(fn=kt.group_kernel, signature=signature, constexprs=constexprs)
    return triton.compile(src, target=GPUTarget("cuda", arch, 32), options={"enable_fp_fusion": False})


def compile_all(archs=(80, 90)):
    """Yield (kernel, kind, dtype, arch, compiled): the fill kernel for every kind x dtype, the grouped
    kernel for every dtype (its most complex draw), a strided and a short-runs fill, for each arch."""
    for kind, dtype, arch in itertools.product(KIND_NAMES, DTYPES, archs):
        yield "fill", kind, dtype, arch, compile_fill_kernel(kind, dtype, arch)
    for dtype, arch in itertools.product(DTYPES, archs):
        yield "group", "trunc_normal", dtype, arch, compile_group_kernel("trunc_normal", dtype, arch)
    for arch in archs:  # a strided view, and short runs several to a program
        yield "strided", "normal", "bfloat16", arch, compile_fill_kernel("normal", "bfloat16", arch, contiguous=False)
        yield "runs", "normal", "bfloat16", arch, compile_fill_kernel("normal", "bfloat16", arch, single_run=False)
