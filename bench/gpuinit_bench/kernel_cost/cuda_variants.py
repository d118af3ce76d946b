"""The CUDA C variants of bench/kernel_cost.py: the CuPy backend's kernel and the curand references, compiled with
NVRTC (or nvcc), disassembled and walked (gpuinit_bench/sass)."""
import math
import os
from pathlib import Path

from ..sass import tools
from ..sass.parse import parse_sass
from ..sass.throughput import GPUS
from ..sass.walk import class_counts, walk
from .variants import NUMEL, draw_of, region

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
    dirs += [str(Path(d) / "include") for d in tools.package_dirs("nvidia.curand")]
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

    out, full_shape, offsets = region(v["path"], getattr(torch, v["dtype"]))
    storage = {**cb.STORAGE, "bfloat16": "gi_bf16"}[v["dtype"]]
    draw = draw_of(v)
    if hasattr(cb, "plan"):
        k = cb.plan(tuple(out.shape), tuple(out.stride()), out.element_size(), 0, draw, full_shape, offsets,
                    storage=storage)
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
        if tools.nvrtc_version():
            cubin, lowered = tools.compile_nvrtc(source, options, arch, names)
            compiler = f"nvrtc {tools.nvrtc_version()} {' '.join(cb.OPTIONS)}"
        else:  # explicit instantiations only
            cubin = tools.compile_nvcc(source, options, arch)
            compiler = f"nvcc {tools.nvcc_version()} {' '.join(cb.OPTIONS)}"
            mangled = {"float": "IfE", "double": "IdE", "gi_f16": "I6gi_f16E", "gi_bf16": "I7gi_bf16E"}
            sections = [x for x in parse_sass(tools.disassemble(cubin)) if x.startswith("_Z7gi_fill")]
            lowered = {n: next((x for x in sections if mangled.get(n[8:-1], "?") in x), None) for n in names}
    else:
        source, threads, fp_fusion = CURAND_SOURCE, 256, True
        cubin, compiler = tools.compile_nvcc(source, ("-O3", f"-I{curand}"), arch), f"nvcc {tools.nvcc_version()} -O3"
        lowered = {}
    sass = tools.disassemble(cubin)
    for name in parse_sass(sass):
        if name.startswith("curand_"):
            lowered[tuple(name.rsplit("_", 1))] = name
    return {"sass": sass, "names": lowered, "params": tools.kernel_param_layout(cubin),
            "res": tools.resource_usage(cubin), "threads": threads, "fp_fusion": fp_fusion, "compiler": compiler}


def param_bytes(args, layout):
    """Constant-bank bytes of run-time arguments ({ordinal: numpy scalar}) at their offsets in ``layout``."""
    return {layout[o] + i: b for o, x in args.items() if o in layout for i, b in enumerate(x.tobytes())}


def torch_iterations(arch, numel):
    """Loop iterations per thread of torch's grid-stride launch: grid capped at SMs * 2048 / 256 blocks of 256."""
    return math.ceil(numel / (4 * GPUS[arch]["sms"] * 2048))


def cuda_stats(v, module):
    """Per-element counts of a CUDA C variant: one iteration of its grid-stride loop (four values) on the taken
    path; as launched, the rest of the path spread over the iterations a thread makes."""
    launch = cuda_plan(v) if v["kernel"] == "gi_fill" else None
    name = module["names"][launch["name"] if launch else (v["kernel"], v["dtype"])]
    params = param_bytes(launch["args"], module["params"][name]) if launch else {}
    sec = parse_sass(module["sass"])[name]
    w = walk(sec, name, params)
    if w.loop is None:
        raise RuntimeError(f"{name}: no loop on the taken path")
    start, end = w.loop  # the path holds the body twice (the second pass leaves the loop)
    body = w.path[start:end]
    if launch:
        iterations = math.ceil(launch["threads"] / (launch["grid"] * launch["block"]))
        waste = 1 - launch["numel"] / (4 * launch["threads"])
    else:
        iterations, waste = torch_iterations(v["arch"], NUMEL), 0.0
    once = walk(sec, name, params, iterate=False).path  # one iteration, peeled or not, as gi_fill's threads run
    per_body, total = class_counts(sec, body), class_counts(sec, once)
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
