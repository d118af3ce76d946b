"""The Triton variants of bench/kernel_cost.py: the launch the backend makes, compiled through Triton's own
argument specialization, disassembled and walked (gpuinit_bench/sass)."""
import math

from ..sass import tools
from ..sass.parse import parse_sass
from ..sass.walk import class_counts, difference_quotient, walk
from .variants import ARCHS, GROUP_SIZE, NUMEL, SEED, STREAM_OF, draw_of, region

try:
    import triton
    import triton.language as tl
except ImportError:  # the CUDA C variants still run
    triton = None



# --- Triton -------------------------------------------------------------------------------------------------------

if triton is not None:
    @triton.jit
    def store_kernel(out_ptr, n, BLOCK: tl.constexpr):
        """The write ceiling: a constant stored at the fill kernel's tile, 4 * BLOCK values per program."""
        offs = tl.program_id(0).to(tl.int64) * (4 * BLOCK) + tl.arange(0, 4 * BLOCK)
        tl.store(out_ptr + offs, tl.full((4 * BLOCK,), 0.5, out_ptr.dtype.element_ty), mask=offs < n)

    @triton.jit
    def rand4x_kernel(out_ptr, n, seed, NORMAL: tl.constexpr, BLOCK: tl.constexpr):
        """Triton's own Philox draws (tl.rand4x / tl.randn4x), four values per counter, stored in four slabs."""
        pid = tl.program_id(0)
        offs = pid * BLOCK + tl.arange(0, BLOCK)
        if NORMAL:
            r0, r1, r2, r3 = tl.randn4x(seed, offs)
        else:
            r0, r1, r2, r3 = tl.rand4x(seed, offs)
        base = pid.to(tl.int64) * (4 * BLOCK) + tl.arange(0, BLOCK)
        ty = out_ptr.dtype.element_ty
        tl.store(out_ptr + base, r0.to(ty), mask=base < n)
        tl.store(out_ptr + base + BLOCK, r1.to(ty), mask=base + BLOCK < n)
        tl.store(out_ptr + base + 2 * BLOCK, r2.to(ty), mask=base + 2 * BLOCK < n)
        tl.store(out_ptr + base + 3 * BLOCK, r3.to(ty), mask=base + 3 * BLOCK < n)


class _Recorder:
    """Stands in for a @triton.jit kernel: ``kernel[grid](*args, **kwargs)`` records the call."""

    def __init__(self):
        self.calls = []

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.calls.append((args, kwargs, grid))


def _triton_launch(v, block):
    """(kernel, arguments, keyword arguments, values written per program) of the launch the backend makes:
    gpuinit/backends/triton_backend.py's ``launch`` (or ``fill_group``) runs with its kernel replaced by a
    recorder and its BLOCK set to ``block``."""
    import torch
    from gpuinit.kernels import triton_fill as kt

    from gpuinit.backends import triton_backend as tb
    from gpuinit.distributed import stream_of
    from gpuinit.jobs import Job

    out = torch.empty(64, dtype=getattr(torch, v["dtype"]))
    if v["kernel"] == "store":
        return store_kernel, (out, NUMEL), {"BLOCK": block}, 4 * block
    if v["kernel"].startswith("tl_"):
        return rand4x_kernel, (out, NUMEL, 0x5EED), {"NORMAL": v["kind"] == "normal", "BLOCK": block}, 4 * block
    draw, dtype = draw_of(v), getattr(torch, v["dtype"])
    real, recorder, saved = getattr(kt, v["kernel"]), _Recorder(), tb.BLOCK
    setattr(kt, v["kernel"], recorder)
    tb.BLOCK = block
    try:
        if v["path"] == "grouped":
            jobs = [Job(torch.empty((64, 64), dtype=dtype), draw, (64, 64), (0, 0), SEED, stream_of(f"{STREAM_OF}.{i}"),
                        tb) for i in range(GROUP_SIZE)]
            tb.fill_group(jobs)
            numel = GROUP_SIZE * 64 * 64
        else:
            out, full_shape, offsets = region(v["path"], dtype)
            tb.launch(out, draw, full_shape, offsets, SEED, stream_of(STREAM_OF))
            numel = out.numel()
    finally:
        setattr(kt, v["kernel"], real)
        tb.BLOCK = saved
    (args, kwargs, grid), = recorder.calls
    return real, args, kwargs, numel / math.prod(grid)


def compile_triton(v, block):
    """Compile as ``kernel[grid](*args, **kwargs)`` would for GPU ``v["arch"]``: Triton's binder specializes
    the arguments (types, 16-byte divisibility, ints equal to 1), then triton.compile."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource, make_backend
    from triton.runtime.jit import create_function_from_signature

    fn, args, kwargs, useful = _triton_launch(v, block)
    target = GPUTarget("cuda", ARCHS[v["arch"]], 32)
    backend = make_backend(target)
    kwargs = {**kwargs, "debug": bool(fn.debug)}
    bound, spec, options = create_function_from_signature(fn.signature, fn.params, backend)(*args, **kwargs)
    options, signature, constexprs, attrs = fn._pack_args(backend, kwargs, bound, spec, options)
    c = triton.compile(ASTSource(fn, signature, constexprs, attrs), target=target, options=options.__dict__)
    name, cubin = c.metadata.name, c.asm["cubin"]
    res = tools.resource_usage(cubin)[name]
    divisible = {fn.arg_names[k[0]] for k in attrs}
    spec = {k: t + ("/16" if k in divisible else "") for k, t in signature.items() if t != "constexpr"}
    return {"sass": tools.disassemble(cubin), "name": name, "num_warps": c.metadata.num_warps,
            "shared": max(c.metadata.shared, res["SHARED"]), "registers": res["REG"],
            "local": res["LOCAL"] + res["STACK"], "waste": 1 - useful / (4 * block),
            "fp_fusion": options.enable_fp_fusion, "compiler": f"triton {triton.__version__}", "specialization": spec}


def triton_stats(v, block=256):
    """Per-element counts of a Triton variant: whole-kernel paths at BLOCK / 2 and BLOCK (the launcher's),
    difference quotient for the steady state, the BLOCK total over elements per thread as launched."""
    res = {}
    for b in (block // 2, block):
        c = compile_triton(v, b)
        sec = parse_sass(c["sass"])[c["name"]]
        w = walk(sec, c["name"])
        res[b] = {**c, "sec": sec, "walk": w, "classes": class_counts(sec, w.path),
                  "ept": 4 * b // (c["num_warps"] * 32)}
    lo, hi = res[block // 2], res[block]
    steady = difference_quotient(lo["classes"], lo["ept"], hi["classes"], hi["ept"])
    amb = difference_quotient(lo["walk"].ambiguous, lo["ept"], hi["walk"].ambiguous, hi["ept"])
    counts = [0] * len(hi["sec"].ins)
    for j in hi["walk"].path:
        counts[j] += 1
    return {"steady": steady, "launched": {k: x / hi["ept"] for k, x in hi["classes"].items()},
            "elements_per_thread": hi["ept"],
            "method": f"difference quotient of whole-kernel paths, BLOCK {block // 2} -> {block} "
                      f"({lo['ept']} -> {hi['ept']} values per thread)",
            "fixed_instructions_per_thread": round(sum(hi["classes"].values()) - hi["ept"] * sum(steady.values()), 1),
            "ambiguous_instructions_per_element": round(max(0.0, amb), 2),
            "branch_decisions": dict(hi["walk"].decisions),
            "registers": hi["registers"], "shared_memory": hi["shared"], "local_memory": hi["local"],
            "threads_per_block": hi["num_warps"] * 32, "fp_fusion": hi["fp_fusion"], "compiler": hi["compiler"],
            "specialization": hi["specialization"], "wasted_lane_fraction": max(0.0, hi["waste"]),
            "_sass": (hi["sass"], hi["name"], counts)}
