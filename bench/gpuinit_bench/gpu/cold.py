"""The cold_start case of bench/gpu.py: first calls in fresh processes, and the compiled kernel variants."""
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile

import torch

from gpuinit import jobs

from .bench import KINDS, empty, error_note, init, u64, wall
from .peers import launch_store

# ---- cold start and compiled variants --------------------------------------------------------------

def compiled_variants(kernel):
    """How many compiled variants a Triton kernel holds in this process (None on the interpreter)."""
    try:
        return sum(len(entry[0]) for entry in kernel.device_caches.values())
    except Exception:  # noqa: BLE001 - the cache's layout is Triton's own
        return None


PROCESS_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import torch
import gpuinit
x = torch.empty(1 << 20, device=sys.argv[1])
torch.cuda.synchronize()
t1 = time.perf_counter()
gpuinit.init_(x, "normal", seed=0)
torch.cuda.synchronize()
t2 = time.perf_counter()
gpuinit.init_(x, "normal", seed=1)
torch.cuda.synchronize()
t3 = time.perf_counter()
print(json.dumps({"startup_s": t1 - t0, "first_s": t2 - t1, "second_s": t3 - t2}))
"""


def cold_start(b):
    """First call of each kernel variant (Triton compile included: the run starts on an empty Triton cache)
    against a warm call; compiled variants after many fresh seeds; a new process's first init_."""
    from gpuinit.kernels import triton_fill as kt

    rows, cuda = [], b.cuda
    empty((1,), torch.float32, b).fill_(0.0)  # the device context, before anything is timed
    probe = empty((1024,), torch.float32, b)
    s = wall(lambda: launch_store(probe), cuda)
    rows.append(b.row("cold_start", "first Triton launch (store kernel: driver init + compile)", kind="store",
                      seconds=s))
    for dtype in b.dtypes:
        for name, kind, kernel, fn in cold_variants(b, dtype, kt):
            rows += variant_rows(b, name, kind, dtype, kernel, fn)
    total, expected = compiled_variants(kt.fill_kernel), 5 * len(b.dtypes)
    if total is None:
        rows.append(b.skipped("cold_start", "interpreter: nothing is compiled", "fill_kernel variants in process"))
    else:
        rows.append(b.row("cold_start", "fill_kernel variants in process", value=total, ok=total == expected,
                          note=f"expected {expected}: per dtype, 3 kinds contiguous, uniform strided and block"))
    rows += process_rows(b)
    return rows


def cold_variants(b, dtype, kt):
    """(name, kind, kernel, fn(seed, stream)) of each variant: the fill kernel per kind (kaiming_uniform
    draws uniform: no variant of its own), a strided view, a column block, the grouped launch."""
    r, c = b.scale.cold
    t = empty((r, c), dtype, b)
    view = empty((c, r), dtype, b).T
    pair = [empty((r, c), dtype, b), empty((c,), dtype, b)]

    def contiguous(kind):
        return lambda seed, stream: init(t, kind, seed, stream=stream)

    def grouped(seed, stream):
        jobs.run([jobs.prepare(x, "uniform", {}, seed=seed, stream=(stream + i) % 2**64, backend="triton")
                  for i, x in enumerate(pair)])

    out = [("fill", kind, kt.fill_kernel, contiguous(kind)) for kind in KINDS]
    out.append(("fill t.T view", "uniform", kt.fill_kernel,
                lambda seed, stream: init(view, "uniform", seed, stream=stream)))
    out.append(("fill column block", "uniform", kt.fill_kernel,
                lambda seed, stream: init(t, "uniform", seed, stream=stream, full_shape=(r, 4 * c), offsets=(0, c))))
    out.append(("grouped launch", "uniform", kt.group_kernel, grouped))
    return out


def variant_rows(b, name, kind, dtype, kernel, fn):
    """First call, warm call, and the variants compiled by the first call and by ``b.scale.seeds`` fresh seeds
    and streams (seeds 0, 1, 16, 2**32 and 2**64 - 1 among them: values Triton would specialize on)."""
    size = math.prod(b.scale.cold)
    try:
        before = compiled_variants(kernel)
        first = wall(lambda: fn(1, 0), b.cuda)
        after_first = compiled_variants(kernel)
        warm = statistics.median(wall(lambda: fn(1, 0), b.cuda) for _ in range(b.scale.warm))
        edge = [0, 1, 16, 2**32, 2**64 - 1]
        seeds = (edge + [u64(b.rng) for _ in range(b.scale.seeds)])[:b.scale.seeds]
        for s in seeds:
            fn(s, u64(b.rng))
        if b.cuda:
            torch.cuda.synchronize()
        after = compiled_variants(kernel)
    except Exception as e:  # noqa: BLE001 - recorded, the run goes on
        return [b.row("cold_start", name, kind=kind, dtype=dtype, size=size, ok=False, note=error_note(e))]
    common = {"kind": kind, "dtype": dtype, "size": size}
    rows = [b.row("cold_start", f"{name}: first call", seconds=first, **common,
                  note=f"compile and first launch: {1e3 * (first - warm):.1f} ms more than a warm call"),
            b.row("cold_start", f"{name}: warm call", seconds=warm, note="wall, synchronized", **common)]
    if before is None:
        rows.append(b.skipped("cold_start", "interpreter: nothing is compiled", f"{name}: variants", kind=kind,
                              dtype=dtype))
    else:
        new, late = after - before, after - after_first
        rows.append(b.row("cold_start", f"{name}: variants after {len(seeds)} seeds", kind=kind, dtype=dtype, value=new,
                          ok=late == 0 and new <= 1, note=f"{after_first - before} at the first call, {late} after"))
    return rows


def process_rows(b):
    """A new process's first init_ on an empty Triton cache, then on the cache the first one left."""
    if not b.cuda:
        return [b.skipped("cold_start", "no CUDA", "new process: first init_")]
    rows = []
    with tempfile.TemporaryDirectory(prefix="gpuinit-bench-triton-") as cache:
        for label in ("empty Triton cache", "warm Triton cache"):
            env = {**os.environ, "TRITON_CACHE_DIR": cache}
            try:
                r = run_child([PROCESS_CHILD, str(b.device)], env, timeout=300)
            except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                rows.append(b.row("cold_start", f"new process, {label}: first init_", ok=False, note=error_note(e)))
                continue
            note = (f"import torch + gpuinit + CUDA context {r['startup_s']:.2f} s; second init_ "
                    f"{1e3 * r['second_s']:.2f} ms")
            rows.append(b.row("cold_start", f"new process, {label}: first init_ (normal)", dtype=torch.float32,
                              size=1 << 20, seconds=r["first_s"], note=note))
    return rows


def run_child(args, env=None, timeout=600):
    """The last line of a ``python -c`` child's stdout, parsed as JSON; raises with its stderr's tail."""
    r = subprocess.run([sys.executable, "-c", *args], capture_output=True, text=True, env=env, timeout=timeout,
                       check=False)
    if r.returncode:
        raise RuntimeError(f"child exited {r.returncode}: {r.stderr.strip()[-600:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])
