"""Static cost of the GPU kernels: instructions per element, per class, and a throughput model, without a GPU.

Compiles every kernel variant the backends launch, for sm_90 (H100) and sm_80 (A100), as the launchers do:
the Triton kernels through Triton's own argument specialization (the launcher's arguments and constexprs,
``enable_fp_fusion=False``), the CUDA C kernels through NVRTC with the CuPy backend's options (nvcc with
the same options where NVRTC is absent). Disassembles them, walks the path one thread takes
(bench/sass_cost.py) and writes DIR/kernel-cost.json, DIR/kernel-cost.md and DIR/sass/<variant>.sass.
docs/performance.md explains the counts, the model and its limits.

    python bench/kernels.py --out bench/results/kernels
    python bench/kernels.py --out /tmp/k --archs sm_90 --kinds normal --dtypes float32 --paths contiguous
"""
import argparse
import json
import math
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
if __name__ == "__main__":
    os.environ.pop("TRITON_INTERPRET", None)  # compile for GPUs, not for Triton's interpreter
import sass_cost as sc

try:
    import triton
    import triton.language as tl
except ImportError:  # the CUDA C variants still run
    triton = None

ARCHS = {"sm_90": 90, "sm_80": 80}
DTYPES = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}
DRAWS = {  # (kind, erfinv branches): the draw a variant is compiled for (gpuinit.draws arguments)
    ("uniform", None): (-0.05, 0.05),
    ("normal", None): (0.0, 0.02),
    ("trunc_normal", 1): (0.0, 1.0, -2.0, 2.0),
    ("trunc_normal", 2): (0.0, 1.0, -3.0, 3.0),
    ("trunc_normal", 3): (0.0, 1.0, -6.0, 6.0),
}
PATHS = ("contiguous", "strided", "column", "grouped")
BACKENDS = ("triton", "cuda", "reference")
REFERENCES = ("store", "tl", "curand")  # the store-only ceiling, tl.rand4x / tl.randn4x, torch-like curand
NUMEL = 2**26  # the tensor size that counts "as launched" assume
RUN_LEN = 128  # the run length of the column-shard rows
SEED, STREAM_OF = 0, "layers.0.mlp.up_proj.weight"  # representative launch arguments (seed=0, a module's stream)
GROUP_SIZE = 9  # tensors in a grouped launch

# Targets on H100 (sm_90). Each selects rows (of backends triton and cuda unless it names one) and bounds a
# metric: absolutely ("max"), against the twin row ("max_ratio"; the row with the same kind, dtype, branches and
# arch and with "twin" changed), or by the model's binding resource ("bound").
THRESHOLDS = [
    {"name": "uniform float32 is memory-bound", "backend": "triton", "kind": "uniform", "dtype": "float32",
     "path": "contiguous", "bound": "memory"},
    {"name": "uniform bfloat16", "backend": "triton", "kind": "uniform", "dtype": "bfloat16", "path": "contiguous",
     "metric": "instructions_per_element", "max": 30},
    {"name": "normal float32", "backend": "triton", "kind": "normal", "dtype": "float32", "path": "contiguous",
     "metric": "instructions_per_element", "max": 62},
    {"name": "normal bfloat16", "backend": "triton", "kind": "normal", "dtype": "bfloat16", "path": "contiguous",
     "metric": "instructions_per_element", "max": 65},
    {"name": "trunc_normal, 1 erfinv branch, float32", "backend": "triton", "kind": "trunc_normal", "branches": 1,
     "dtype": "float32", "path": "contiguous", "metric": "instructions_per_element", "max": 95},
    {"name": "trunc_normal, 1 erfinv branch, bfloat16", "backend": "triton", "kind": "trunc_normal", "branches": 1,
     "dtype": "bfloat16", "path": "contiguous", "metric": "instructions_per_element", "max": 98},
    {"name": "strided within 2x its contiguous twin", "path": "strided", "twin": {"path": "contiguous"},
     "metric": "instructions_per_element", "max_ratio": 2.0},
    {"name": "grouped within 1.15x the single-tensor kernel", "path": "grouped", "twin": {"path": "contiguous"},
     "metric": "instructions_per_element_launched", "max_ratio": 1.15},
    {"name": f"column shard of run length {RUN_LEN} wastes <= 10% of lanes", "path": "column",
     "metric": "wasted_lane_fraction", "max": 0.10},
    {"name": "CUDA within 10% of its Triton twin", "backend": "cuda", "twin": {"backend": "triton"},
     "metric": "instructions_per_element", "max_ratio": 1.10},
]
TARGET_ARCH = "sm_90"
_KEYS = ("backend", "kind", "dtype", "path", "branches")


def violations(rows):
    """The targets (THRESHOLDS, on TARGET_ARCH) that ``rows`` miss, a line each; checks whose rows or twins
    are absent are skipped."""
    out = []
    for t in THRESHOLDS:
        sel = {k: t[k] for k in _KEYS if k in t}
        for r in rows:
            if r["arch"] != TARGET_ARCH or any(r[k] != v for k, v in sel.items()) or (
                    "backend" not in sel and r["backend"] not in ("triton", "cuda")):
                continue
            label = f"{t['name']}: {r['variant']}"
            if "bound" in t:
                if r["binding_resource"] != t["bound"]:
                    out.append(f"{label} is {r['binding_resource']}-bound, not {t['bound']}-bound")
            elif "max" in t:
                if r[t["metric"]] > t["max"]:
                    out.append(f"{label}: {t['metric']} {r[t['metric']]:.3g} > {t['max']}")
            else:
                want = {**{k: r[k] for k in (*_KEYS, "arch")}, **t["twin"]}
                twin = next((x for x in rows if all(x[k] == v for k, v in want.items())), None)
                if twin is not None and r[t["metric"]] > t["max_ratio"] * twin[t["metric"]]:
                    ratio = r[t["metric"]] / twin[t["metric"]]
                    out.append(f"{label}: {t['metric']} {ratio:.3f}x {twin['variant']} > {t['max_ratio']}x")
    return out


# --- variants -----------------------------------------------------------------------------------------------------

def variant_name(v):
    b = f"-b{v['branches']}" if v["branches"] else ""
    return f"{v['backend']}-{v['kernel']}-{v['kind']}{b}-{v['dtype']}-{v['path']}-{v['arch']}"


def plan(archs, kinds, dtypes, paths, backends, branches=(1, 2, 3), references=REFERENCES):
    """The variants to count: dicts of backend, kernel, kind, dtype, path, branches, arch."""
    out, draws = [], [d for d in DRAWS if d[0] in kinds and d[1] in (None, *branches)]
    for arch in archs:
        for (kind, br), dtype, path in ((d, t, p) for d in draws for t in dtypes for p in paths):
            base = {"kind": kind, "dtype": dtype, "path": path, "branches": br, "arch": arch}
            if "triton" in backends:
                kernel = "group_kernel" if path == "grouped" else "fill_kernel"
                out.append({"backend": "triton", "kernel": kernel, **base})
            if "cuda" in backends and path != "grouped":  # the CuPy backend fills tensors one launch each
                out.append({"backend": "cuda", "kernel": "gi_fill", **base})
        if "reference" in backends:
            ref = {"backend": "reference", "path": "contiguous", "branches": None, "arch": arch}
            out += [{**ref, "kernel": "store", "kind": "store", "dtype": t} for t in dtypes if "store" in references]
            for kind in (k for k in ("uniform", "normal") if k in kinds):
                for dtype in (t for t in ("float32", "bfloat16") if t in dtypes):
                    name = "randn4x" if kind == "normal" else "rand4x"
                    names = (f"tl_{name}", f"curand_{name.replace('rand', '')}")
                    out += [{**ref, "kernel": k, "kind": kind, "dtype": dtype}
                            for k in names if k.split("_")[0] in references]
    return out


def is_cuda(v):
    return v["kernel"] == "gi_fill" or v["kernel"].startswith("curand")


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


def _draw(v):
    from gpuinit import draws

    d = getattr(draws, v["kind"])(*DRAWS[(v["kind"], v["branches"])])
    if v["branches"] is not None and d.params["branches"] != v["branches"]:
        raise AssertionError(f"{d.params} reaches {d.params['branches']} erfinv branches, not {v['branches']}")
    return d


class _Recorder:
    """Stands in for a @triton.jit kernel: ``kernel[grid](*args, **kwargs)`` records the call."""

    def __init__(self):
        self.calls = []

    def __getitem__(self, grid):
        return lambda *args, **kwargs: self.calls.append((args, kwargs, grid))


def _region(path, dtype):
    """(tensor, full_shape, offsets) of a NUMEL-element fill on ``path``, as meta tensors (no memory)."""
    import torch

    side = math.isqrt(NUMEL)
    if path == "strided":  # a transposed view: one run of logical indices, not contiguous in memory
        return torch.empty((side, side), dtype=dtype, device="meta").t(), (side, side), (0, 0)
    if path == "column":  # a column shard: one run of RUN_LEN per row
        return torch.empty((NUMEL // RUN_LEN, RUN_LEN), dtype=dtype, device="meta"), (NUMEL // RUN_LEN, side), (0, 0)
    return torch.empty((side, side), dtype=dtype, device="meta"), (side, side), (0, 0)


def _triton_launch(v, block):
    """(kernel, arguments, keyword arguments, values written per program) of the launch the backend makes:
    gpuinit/backends/triton_backend.py's ``launch`` (or ``fill_group``) runs with its kernel replaced by a
    recorder and its BLOCK set to ``block``."""
    import torch
    from gpuinit.kernels import triton_stream as kt

    from gpuinit.backends import triton_backend as tb
    from gpuinit.distributed import stream_of
    from gpuinit.jobs import Job

    out = torch.empty(64, dtype=getattr(torch, v["dtype"]))
    if v["kernel"] == "store":
        return store_kernel, (out, NUMEL), {"BLOCK": block}, 4 * block
    if v["kernel"].startswith("tl_"):
        return rand4x_kernel, (out, NUMEL, 0x5EED), {"NORMAL": v["kind"] == "normal", "BLOCK": block}, 4 * block
    draw, dtype = _draw(v), getattr(torch, v["dtype"])
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
            out, full_shape, offsets = _region(v["path"], dtype)
            tb.launch(out, v["kind"], draw.params, full_shape, offsets, SEED, stream_of(STREAM_OF))
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
    res = sc.resource_usage(cubin)[name]
    divisible = {fn.arg_names[k[0]] for k in attrs}
    spec = {k: t + ("/16" if k in divisible else "") for k, t in signature.items() if t != "constexpr"}
    return {"sass": sc.disassemble(cubin), "name": name, "num_warps": c.metadata.num_warps,
            "shared": max(c.metadata.shared, res["SHARED"]), "registers": res["REG"],
            "local": res["LOCAL"] + res["STACK"], "waste": 1 - useful / (4 * block),
            "fp_fusion": options.enable_fp_fusion, "compiler": f"triton {triton.__version__}", "specialization": spec}


def triton_stats(v, block=256):
    """Per-element counts of a Triton variant: whole-kernel paths at BLOCK / 2 and BLOCK (the launcher's),
    difference quotient for the steady state, the BLOCK total over elements per thread as launched."""
    res = {}
    for b in (block // 2, block):
        c = compile_triton(v, b)
        sec = sc.parse_sass(c["sass"])[c["name"]]
        w = sc.walk(sec, c["name"])
        res[b] = {**c, "sec": sec, "walk": w, "classes": sc.class_counts(sec, w.path),
                  "ept": 4 * b // (c["num_warps"] * 32)}
    lo, hi = res[block // 2], res[block]
    steady = sc.difference_quotient(lo["classes"], lo["ept"], hi["classes"], hi["ept"])
    amb = sc.difference_quotient(lo["walk"].ambiguous, lo["ept"], hi["walk"].ambiguous, hi["ept"])
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


# --- CUDA C -------------------------------------------------------------------------------------------------------

CURAND_SOURCE = r"""
#include <curand_kernel.h>
#include <cuda_bf16.h>
/* Drawn the way torch's distribution kernels draw (ATen/native/cuda/DistributionTemplates.h,
 * distribution_elementwise_grid_stride_kernel): a Philox state per thread from curand_init(seed, idx,
 * offset), four values per call, a grid-stride loop with 32-bit indices, the transform, the store. */
__device__ __forceinline__ void put(float* p, float v) { *p = v; }
__device__ __forceinline__ void put(__nv_bfloat16* p, float v) { *p = __float2bfloat16(v); }
template <typename T, bool NORMAL>
__device__ __forceinline__ void draw(T* out, int numel, unsigned long long seed, unsigned long long offset,
                                     float a, float b) {
  int idx = blockIdx.x * blockDim.x + threadIdx.x;
  curandStatePhilox4_32_10_t state;
  curand_init(seed, idx, offset, &state);
  int stride = blockDim.x * gridDim.x;
  int rounded = ((numel - 1) / (stride * 4) + 1) * stride * 4;
  for (int i = idx; i < rounded; i += stride * 4) {
    float4 r = NORMAL ? curand_normal4(&state) : curand_uniform4(&state);
#pragma unroll
    for (int ii = 0; ii < 4; ii++) {
      int li = i + stride * ii;
      if (li < numel) {
        float x = (&r.x)[ii];
        put(out + li, NORMAL ? x * b + a : (x == 1.0f ? 0.0f : x) * (b - a) + a);
      }
    }
    __syncthreads();
  }
}
#define KERNEL(name, T, NORMAL) extern "C" __global__ void name(T* out, int numel, unsigned long long seed, \
    unsigned long long offset, float a, float b) { draw<T, NORMAL>(out, numel, seed, offset, a, b); }
KERNEL(curand_n4x_float32, float, true)
KERNEL(curand_n4x_bfloat16, __nv_bfloat16, true)
KERNEL(curand_4x_float32, float, false)
KERNEL(curand_4x_bfloat16, __nv_bfloat16, false)
"""


def curand_include(given=None):
    """A folder holding curand_kernel.h: ``given``, the CUDA toolkit's include folder, or the nvidia-curand wheel's."""
    dirs = [given] if given else []
    dirs += [str(Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "include")]
    dirs += [str(Path(d) / "include") for d in sc._package_dirs("nvidia.curand")]
    return next((d for d in dirs if d and (Path(d) / "curand_kernel.h").exists()), None)


def cuda_plan(v):
    """How the CuPy backend launches variant ``v``: the kernel's name expression, its run-time arguments after
    ``out`` and ``meta`` (by ordinal, as the walk's known values), and the threads and grid it launches.
    gpuinit/backends/cupy_backend.py's ``plan`` when it has one (template kernels), else its ``launch`` rebuilt
    (one ``gi_fill<T>`` taking the draw kind and layout as arguments)."""
    import numpy as np
    import torch
    from gpuinit.kernels import numpy_stream

    from gpuinit import regions
    from gpuinit.backends import cupy_backend as cb
    from gpuinit.draws import kernel_params

    out, full_shape, offsets = _region(v["path"], getattr(torch, v["dtype"]))
    storage = {**cb.STORAGE, "bfloat16": "gi_bf16"}[v["dtype"]]
    draw = _draw(v)
    if hasattr(cb, "plan"):
        k = cb.plan(tuple(out.shape), tuple(out.stride()), out.element_size(), 0, v["kind"], draw.params, full_shape,
                    offsets, storage=storage)
        name, threads, grid, args = k["name"], k["threads"], k["grid"], k["args"]
    else:
        geo = regions.launch_geometry(out.shape, out.stride(), full_shape, offsets)
        threads = geo["numel"] // geo["run_len"] * ((geo["run_len"] + 3) // 4 + 1)
        grid = min(-(-threads // cb.THREADS), 65535 * 32)
        *p, flip = kernel_params(v["kind"], draw.params)
        args = (np.int32(geo["single_run"]), np.int32(geo["contiguous"]), np.int32(numpy_stream.KINDS[v["kind"]]),
                np.int32(flip), *(np.float32(x) for x in p))
        name = f"gi_fill<{storage}>"
    return {"name": name, "args": {2 + i: a for i, a in enumerate(args)}, "threads": threads, "grid": grid,
            "numel": out.numel(), "block": cb.THREADS}


def compile_cuda(which, arch, names=(), curand=None):
    """The disassembled module of the gpuinit CUDA C kernels named by the name expressions ``names`` (NVRTC
    with the CuPy backend's options, as CuPy compiles them) or of the curand references (nvcc with default
    options, as torch builds its kernels); ``names`` maps name expressions and reference keys to sections."""
    if which == "gi_fill":
        from gpuinit.backends import cupy_backend as cb

        source = cb.source() if hasattr(cb, "source") else cb.SOURCE.read_text()
        options = (*cb.OPTIONS, f"-I{cb.SOURCE.parent}")
        threads, fp_fusion = cb.THREADS, "--fmad=false" not in options
        if sc.nvrtc_version():
            cubin, lowered = sc.compile_nvrtc(source, options, arch, names)
            compiler = f"nvrtc {sc.nvrtc_version()} {' '.join(cb.OPTIONS)}"
        else:  # explicit instantiations only
            cubin, compiler = sc.compile_nvcc(source, options, arch), f"nvcc {sc.nvcc_version()} {' '.join(cb.OPTIONS)}"
            mangled = {"float": "IfE", "double": "IdE", "gi_f16": "I6gi_f16E", "gi_bf16": "I7gi_bf16E"}
            sections = [x for x in sc.parse_sass(sc.disassemble(cubin)) if x.startswith("_Z7gi_fill")]
            lowered = {n: next((x for x in sections if mangled.get(n[8:-1], "?") in x), None) for n in names}
    else:
        source, threads, fp_fusion = CURAND_SOURCE, 256, True
        cubin, compiler = sc.compile_nvcc(source, ("-O3", f"-I{curand}"), arch), f"nvcc {sc.nvcc_version()} -O3"
        lowered = {}
    sass = sc.disassemble(cubin)
    for name in sc.parse_sass(sass):
        if name.startswith("curand_"):
            lowered[tuple(name.rsplit("_", 1))] = name
    return {"sass": sass, "names": lowered, "params": sc.kernel_param_layout(cubin), "res": sc.resource_usage(cubin),
            "threads": threads, "fp_fusion": fp_fusion, "compiler": compiler}


def param_bytes(args, layout):
    """Constant-bank bytes of run-time arguments ({ordinal: numpy scalar}) at their offsets in ``layout``."""
    return {layout[o] + i: b for o, x in args.items() if o in layout for i, b in enumerate(x.tobytes())}


def torch_iterations(arch, numel):
    """Loop iterations per thread of torch's grid-stride launch: grid capped at SMs * 2048 / 256 blocks of 256."""
    return math.ceil(numel / (4 * sc.GPUS[arch]["sms"] * 2048))


def cuda_stats(v, module):
    """Per-element counts of a CUDA C variant: one iteration of its grid-stride loop (four values) on the taken
    path; as launched, the rest of the path spread over the iterations a thread makes."""
    launch = cuda_plan(v) if v["kernel"] == "gi_fill" else None
    name = module["names"][launch["name"] if launch else (v["kernel"], v["dtype"])]
    params = param_bytes(launch["args"], module["params"][name]) if launch else {}
    sec = sc.parse_sass(module["sass"])[name]
    w = sc.walk(sec, name, params)
    if w.loop is None:
        raise RuntimeError(f"{name}: no loop on the taken path")
    start, end = w.loop  # the path holds the body twice (the second pass leaves the loop)
    body = w.path[start:end]
    if launch:
        iterations = math.ceil(launch["threads"] / (launch["grid"] * launch["block"]))
        waste = 1 - launch["numel"] / (4 * launch["threads"])
    else:
        iterations, waste = torch_iterations(v["arch"], NUMEL), 0.0
    once = sc.walk(sec, name, params, iterate=False).path  # one iteration, peeled or not, as gi_fill's threads run
    per_body, total = sc.class_counts(sec, body), sc.class_counts(sec, once)
    steady = {k: x / 4 for k, x in per_body.items()}
    fixed = {k: total[k] - per_body[k] for k in total}
    counts = [0] * len(sec.ins)
    for j in w.path:
        counts[j] += 1
    res = module["res"][name]
    return {"steady": steady, "launched": {k: steady[k] + fixed[k] / (4 * iterations) for k in steady},
            "sass_note": "column 1: executions on the walked path (the loop runs twice)",
            "elements_per_thread": 4 * iterations,
            "method": f"loop body on the taken path / 4 values; {iterations} iteration(s) per thread as launched",
            "fixed_instructions_per_thread": sum(fixed.values()),
            "ambiguous_instructions_per_element": round(sum(a for p, a in w.ambiguities if start <= p < end) / 4, 2),
            "branch_decisions": dict(w.decisions),
            "registers": res["REG"], "shared_memory": res["SHARED"], "local_memory": res["LOCAL"] + res["STACK"],
            "threads_per_block": module["threads"], "fp_fusion": module["fp_fusion"], "compiler": module["compiler"],
            "specialization": launch["name"] if launch else None, "wasted_lane_fraction": max(0.0, waste),
            "_sass": (module["sass"], name, counts)}


def make_row(v, stats):
    """A table row: the variant, its counts and the model's throughput (from the per-element demand as launched,
    of useful elements: wasted lanes cost instructions but write nothing)."""
    steady, launched, waste = stats.pop("steady"), stats.pop("launched"), stats.pop("wasted_lane_fraction")
    nbytes = DTYPES[v["dtype"]]
    m = sc.model(launched, nbytes, v["arch"], useful_fraction=1 - waste)
    r2 = {"per_class": {k: round(x, 2) for k, x in steady.items()},
          "per_class_launched": {k: round(x, 2) for k, x in launched.items()}}
    return {**v, "variant": variant_name(v),
            "instructions_per_element": round(sum(steady.values()), 2),
            "instructions_per_element_launched": round(sum(launched.values()), 2),
            "instructions_per_useful_element": round(sum(launched.values()) / (1 - waste), 2),
            **r2,
            "wasted_lane_fraction": round(waste, 4), "run_len": RUN_LEN if v["path"] == "column" else None,
            "bytes_per_element": nbytes, **stats, "binding_resource": m["binding_resource"],
            "modeled_elements_per_s": float(f"{m['modeled_elements_per_s']:.4g}"),
            "modeled_hbm_fraction": round(m["modeled_hbm_fraction"], 3),
            "bounds_elements_per_s": {k: float(f"{x:.4g}") for k, x in m["bounds_elements_per_s"].items()},
            "sass": f"{variant_name(v)}.sass"}


def markdown(rows, meta, found):
    cls = sc.CLASSES
    head = ("| backend | kernel | kind | dtype | path | arch | instr/elem steady | as launched | "
            + " | ".join(cls) + " | regs | smem | waste | bound | Gelem/s | HBM |")
    tools = ", ".join(f"{k} {v}" for k, v in meta["toolchain"].items())
    gpus = ", ".join(g["name"] for g in meta["gpus"].values())
    src = meta["source"]
    at = f" at commit {src['commit']}" + (f" (modified: {', '.join(src['modified'])})" if src["modified"] else "")
    at = f" ({meta['label']})" if meta.get("label") else at if src["commit"] else ""
    lines = [(f"# Kernel cost (static, from SASS)\n\nGenerated by `python bench/kernels.py`{at} with {tools}. "
             f"Counts are "
             f"instructions per element and thread (docs/performance.md); the class columns are the steady state. "
             f"Model: {gpus}, demand as launched, tensors of {meta['numel']} elements, column shards of run length "
             f"{meta['run_len']}.\n")]
    for arch in sorted({r["arch"] for r in rows}, reverse=True):
        lines += [f"\n## {arch} ({meta['gpus'][arch]['name']})\n", head, "|" + "---|" * (head.count("|") - 1)]
        order = {"reference": 0, "triton": 1, "cuda": 2}
        for r in sorted((r for r in rows if r["arch"] == arch),
                        key=lambda r: (list(DTYPES).index(r["dtype"]), order[r["backend"]], r["kind"],
                                       r["branches"] or 0, list(PATHS).index(r["path"]), r["kernel"])):
            kind = r["kind"] + (f" ({r['branches']} br)" if r["branches"] else "")
            lines.append(
                f"| {r['backend']} | {r['kernel']} | {kind} | {r['dtype']} | {r['path']} | {arch} | "
                f"{r['instructions_per_element']:.1f} | {r['instructions_per_element_launched']:.1f} | "
                + " | ".join(f"{r['per_class'][c]:.1f}" for c in cls)
                + f" | {r['registers']} | {r['shared_memory']} | {r['wasted_lane_fraction']:.0%} | "
                  f"{r['binding_resource']} | {r['modeled_elements_per_s'] / 1e9:.0f} | "
                  f"{r['modeled_hbm_fraction']:.0%} |")
    lines += [f"\n## Targets on {meta['target_arch']}: {len(found)} missed\n"] + [f"- {x}" for x in found]
    if meta["errors"]:
        lines += ["\n## Errors\n"] + [f"- {x}" for x in meta["errors"]]
    if meta["skipped"]:
        lines += ["\n## Skipped\n"] + [f"- {x}" for x in meta["skipped"]]
    return "\n".join(lines) + "\n"


def source():
    """The commit the kernels were read from, and the kernel files that differ from it."""
    def git(*args):
        try:
            r = subprocess.run(["git", *args], cwd=Path(__file__).resolve().parent.parent, capture_output=True,
                               text=True, check=False)
        except OSError:
            return ""
        return r.stdout if r.returncode == 0 else ""

    changed = git("status", "--porcelain", "--", "kernels", "gpuinit/backends", "gpuinit/draws.py").splitlines()
    return {"commit": git("rev-parse", "--short", "HEAD").strip() or None, "modified": [c[3:] for c in changed if c]}


def toolchain():
    out = {"triton": triton.__version__ if triton else None, "nvrtc": sc.nvrtc_version(), "nvcc": sc.nvcc_version()}
    return {k: v for k, v in out.items() if v}


def _task(v, module=None):
    stats = cuda_stats(v, module) if module is not None else triton_stats(v)
    sass, name, counts = stats.pop("_sass")
    note = stats.pop("sass_note", "column 1: executions on the counted path (one thread)")
    return make_row(v, stats), sc.annotate(sass, name, counts, variant_name(v), note)


def missing(curand=None):
    """{part: why it cannot run here} for the Triton part, the CUDA C part and the curand references."""
    out = {}
    if triton is None:
        out["triton"] = "triton is not installed"
    elif sc.find_tool("ptxas") is None:
        out["triton"] = "ptxas not found"
    if sc.find_tool("nvdisasm") is None or sc.find_tool("cuobjdump") is None:
        out["triton"] = out["cuda"] = out["curand"] = "nvdisasm / cuobjdump not found"
    if sc.nvrtc_version() is None and sc.nvcc_version() is None:
        out["cuda"] = "neither NVRTC nor nvcc found"
    if sc.nvcc_version() is None:
        out.setdefault("curand", "nvcc not found")
    elif curand is None:
        out.setdefault("curand", "curand_kernel.h not found (--curand-include DIR)")
    return out


def run(out, archs=tuple(ARCHS), kinds=("uniform", "normal", "trunc_normal"), dtypes=tuple(DTYPES),
        paths=tuple(PATHS), backends=BACKENDS, branches=(1, 2, 3), references=REFERENCES, jobs=None, curand=None,
        sass=True, label=None, log=print):
    """Count every planned variant that this machine can compile; write the tables; return the rows and the
    variants that failed."""
    out, t0 = Path(out), time.time()
    (out / "sass" if sass else out).mkdir(parents=True, exist_ok=True)
    curand = curand_include(curand)
    gone = missing(curand)
    def part(v):
        return ("curand" if v["kernel"].startswith("curand") else "cuda") if is_cuda(v) else "triton"
    variants = [v for v in plan(archs, kinds, dtypes, paths, backends, branches, references) if part(v) not in gone]
    rows = []
    with ProcessPoolExecutor(jobs or os.cpu_count()) as pool:
        modules, names = {}, {}
        for v in variants:
            if v["kernel"] == "gi_fill":
                names.setdefault(ARCHS[v["arch"]], set()).add(cuda_plan(v)["name"])
        for v in variants:
            if is_cuda(v):
                key = ("gi_fill" if v["kernel"] == "gi_fill" else "curand", ARCHS[v["arch"]])
                if key not in modules:
                    modules[key] = pool.submit(compile_cuda, key[0], key[1], sorted(names.get(key[1], ())), curand)
        tasks, errors, written = [(v, pool.submit(_task, v)) for v in variants if not is_cuda(v)], [], {}
        for key, module in modules.items():
            try:
                m = module.result()
            except Exception as e:  # noqa: BLE001 - reported with the results
                errors.append(f"{key[0]} for sm_{key[1]}: {type(e).__name__}: {str(e)[:1000]}")
                continue
            tasks += [(v, pool.submit(_task, v, m)) for v in variants if is_cuda(v) and ARCHS[v["arch"]] == key[1]
                      and (v["kernel"] == "gi_fill") == (key[0] == "gi_fill")]
        for v, job in tasks:
            try:
                row, text = job.result()
            except Exception as e:  # noqa: BLE001 - reported with the results
                errors.append(f"{variant_name(v)}: {type(e).__name__}: {str(e)[:1000]}")
                log(errors[-1])
                continue
            if sass:  # variants with the same code and path (CUDA trunc_normal draws) share a file
                body = text.split("\n", 1)[1]
                row["sass"] = written.setdefault(body, row["sass"])
                if row["sass"] == f"{row['variant']}.sass":
                    (out / "sass" / row["sass"]).write_text(text)
            else:
                row["sass"] = None
            rows.append(row)
            log(f"{row['variant']:<64} {row['instructions_per_element']:7.1f} /element steady, "
                f"{row['instructions_per_element_launched']:7.1f} launched, {row['registers']:3d} registers, "
                f"{row['binding_resource']}-bound")
    found = violations(rows)
    meta = {"seconds": round(time.time() - t0, 1), "toolchain": toolchain(), "source": source(), "label": label,
            "gpus": sc.GPUS,
            "numel": NUMEL,
            "run_len": RUN_LEN, "target_arch": TARGET_ARCH, "thresholds": THRESHOLDS,
            "skipped": [f"{k}: {why}" for k, why in gone.items()], "errors": errors}
    table = {"meta": meta, "rows": rows, "violations": found}
    (out / "kernel-cost.json").write_text(json.dumps(table, indent=1) + "\n")
    (out / "kernel-cost.md").write_text(markdown(rows, meta, found))
    return rows, errors


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="folder for kernel-cost.json, kernel-cost.md and sass/")
    p.add_argument("--archs", default=",".join(ARCHS), help="GPU architectures (default: %(default)s)")
    p.add_argument("--kinds", default="uniform,normal,trunc_normal", help="draws (default: %(default)s)")
    p.add_argument("--dtypes", default=",".join(DTYPES), help="dtypes (default: %(default)s)")
    p.add_argument("--paths", default=",".join(PATHS), help="launch paths (default: %(default)s)")
    p.add_argument("--backends", default=",".join(BACKENDS), help="kernel families (default: %(default)s)")
    p.add_argument("--branches", default="1,2,3", help="erfinv branches of the trunc_normal variants")
    p.add_argument("--references", default=",".join(REFERENCES), help="reference kernels: store, tl, curand")
    p.add_argument("--jobs", type=int, default=None, help="compiling processes (default: one per core)")
    p.add_argument("--curand-include", default=None, help="folder holding curand_kernel.h (curand references)")
    p.add_argument("--no-sass", action="store_true", help="write the tables only, not sass/")
    p.add_argument("--label", default=None, help="what the tables describe (e.g. the kernels' commit)")
    a = p.parse_args(argv)
    def split(s):
        return tuple(x for x in s.split(",") if x)
    rows, errors = run(a.out, split(a.archs), split(a.kinds), split(a.dtypes), split(a.paths), split(a.backends),
                       tuple(int(b) for b in split(a.branches)), split(a.references), a.jobs, a.curand_include,
                       not a.no_sass, a.label)
    found = violations(rows)
    print(f"{len(rows)} variants in {a.out}; {len(found)} miss their targets on {TARGET_ARCH}")
    for line in found:
        print("  " + line)
    for line in errors:
        print(f"error: {line}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
