"""The cases of bench/gpu.py. Each case is a function of a ``Bench`` that returns rows (``make_row``); a
failure inside a case is a row with ``ok=False``, never an exception out of it.

On a GPU, times are medians of CUDA-event timings after a warm-up call. On the CPU (Triton's interpreter,
perf_counter, no warm-up, tiny shapes) only the code paths and the bits are exercised.
"""
import gc
import importlib.util
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import triton
import triton.language as tl
from gpuinit.kernels import numpy_stream as ks
from torch import nn
from triton.language.extra import libdevice

import gpuinit
from gpuinit import jobs
from gpuinit.backends import triton_backend

COLS = 8192  # sweep buffers are seen as (n / 8192, 8192) matrices, so that fans exist
SQRT5 = math.sqrt(5.0)
KINDS = {  # name: (gpuinit scheme, its params, torch.nn.init peer)
    "uniform": ("uniform", {}, lambda t: torch.nn.init.uniform_(t)),
    "normal": ("normal", {}, lambda t: torch.nn.init.normal_(t)),
    "trunc_normal": ("trunc_normal", {"a": -2.0, "b": 2.0}, lambda t: torch.nn.init.trunc_normal_(t, a=-2.0, b=2.0)),
    "kaiming_uniform": ("kaiming_uniform", {"a": SQRT5}, lambda t: torch.nn.init.kaiming_uniform_(t, a=SQRT5)),
}
INT_VIEWS = {torch.float32: (torch.int32, np.int32), torch.bfloat16: (torch.int16, np.int16),
             torch.float16: (torch.int16, np.int16), torch.float64: (torch.int64, np.int64)}


class Skip(Exception):
    """A measurement that does not apply here: recorded as a row with ok=None and the reason."""


@dataclass(frozen=True)
class Scale:
    """Shapes of the cases that do not follow --sizes."""
    cold: tuple  # (rows, cols) of the cold-start tensor
    warm: int  # warm calls timed per kernel variant
    seeds: int  # fresh seeds per kernel variant when counting compiled variants
    sample: tuple  # (rows, cols): the correctness block, at a random row of a 2**40-element tensor
    check_view: tuple  # base (rows, cols) whose .T the correctness check fills
    check_block: tuple  # (rows, full cols, block cols) of the correctness column block
    group: tuple  # shapes of the correctness grouped launch
    view: tuple  # base (rows, cols) whose .T is timed
    shard: tuple  # (rows, full cols, block cols) of the timed column shard
    small: tuple  # (width, layers) of the many-small-tensors model: 12 tensors a layer
    orthogonal: int
    model_repeat: int


GROUP_SHAPES = ((33,), (64, 17), (5, 7, 3), (256, 64), (1,), (3, 1000), (4096, 256))
SCALES = {
    "full": Scale(cold=(1024, 1024), warm=5, seeds=50, sample=(16, 65536), check_view=(2048, 512),
                  check_block=(1024, 8192, 128), group=GROUP_SHAPES, view=(8192, 4096), shard=(8192, 8192, 128),
                  small=(256, 167), orthogonal=8192, model_repeat=3),
    "quick": Scale(cold=(1024, 1024), warm=5, seeds=50, sample=(4, 65536), check_view=(1024, 256),
                   check_block=(512, 4096, 128), group=GROUP_SHAPES, view=(2048, 1024), shard=(2048, 2048, 128),
                   small=(128, 42), orthogonal=2048, model_repeat=2),
    # Triton's interpreter takes ~0.1 s a launch and ~0.1 s a program (1024 elements): the least that runs
    # every code path
    "cpu": Scale(cold=(2, 16), warm=1, seeds=1, sample=(2, 256), check_view=(8, 2), check_block=(2, 64, 8),
                 group=((33,), (5, 7, 3), (16, 40)), view=(4, 2), shard=(2, 64, 8), small=(8, 1), orthogonal=32,
                 model_repeat=1),
}


# ---- rows, timing, memory -------------------------------------------------------------------------------

def dtype_name(dtype):
    return None if dtype is None else str(dtype).removeprefix("torch.")


def make_row(case, impl, *, kind=None, dtype=None, size=None, seconds=None, nbytes=None, hbm=None, peak=None, ok=True,
             note="", value=None):
    """One result: ``size`` elements written in ``seconds``; ``pct_hbm`` is ``nbytes`` per second against the
    nominal ``hbm`` bytes/s; ``pct_store_ceiling`` is set by ``apply_ceiling``."""
    timed = seconds is not None and seconds > 0
    return {"case": case, "kind": kind, "dtype": dtype_name(dtype), "size": size, "impl": impl,
            "elements_per_s": size / seconds if timed and size else None, "pct_store_ceiling": None,
            "pct_hbm": 100 * nbytes / seconds / hbm if timed and nbytes and hbm else None,
            "ms": seconds * 1e3 if seconds is not None else None, "peak_extra_bytes": peak, "ok": ok, "note": note,
            "value": value}


def apply_ceiling(rows):
    """Set ``pct_store_ceiling`` of every timed row: the fastest store (kind "store") of the group = 100."""
    stores = [r["ms"] for r in rows if r["kind"] == "store" and r["ms"]]
    if stores:
        for r in rows:
            if r["ms"]:
                r["pct_store_ceiling"] = 100 * min(stores) / r["ms"]
    return rows


def error_note(e):
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0][:200] if lines else ''}"


def wall(fn, cuda):
    """Seconds of one call, host and device: synchronized on both sides."""
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fn()
    if cuda:
        torch.cuda.synchronize()
    return time.perf_counter() - t0


@dataclass
class Bench:
    device: torch.device
    dtypes: list
    sizes: list
    repeat: int
    scale: Scale
    hbm: float | None  # nominal bytes/s of the device memory
    model_params: float
    rng: np.random.Generator
    clocks: list = field(default_factory=list)

    @property
    def cuda(self):
        return self.device.type == "cuda"

    def time(self, fn, repeat=None):
        """Median seconds of ``fn()`` after a warm-up call: CUDA events on the current stream (cupy's work runs
        on the same legacy default stream); perf_counter and no warm-up on the CPU (nothing is compiled)."""
        for _ in range(1 if self.cuda else 0):
            fn()
        times = []
        for _ in range(max(1, repeat or self.repeat)):
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                times.append(wall(fn, False))
        return statistics.median(times)

    def peak_extra(self, fn, pool="torch"):
        """Bytes ``fn`` allocates beyond what is allocated before it, at its peak (torch's caching allocator, or
        what cupy's memory pool grows by); None on the CPU."""
        if not self.cuda:
            return None
        torch.cuda.synchronize()
        if pool == "cupy":
            import cupy

            mem = cupy.get_default_memory_pool()
            mem.free_all_blocks()
            base = mem.total_bytes()
            fn()
            torch.cuda.synchronize()
            extra = mem.total_bytes() - base
            mem.free_all_blocks()
            return max(0, extra)
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return max(0, torch.cuda.max_memory_allocated() - base)

    def row(self, case, impl, **kw):
        return make_row(case, impl, hbm=self.hbm, **kw)

    def skipped(self, case, why, impl="-", **kw):
        return self.row(case, impl, ok=None, note=f"skipped: {why}", **kw)

    def measure(self, case, impl, fn, *, kind=None, dtype=None, size=None, nbytes=None, repeat=None, pool="torch",
                note=""):
        """A timed row for ``fn``; a failure (out of memory included) is a row with ok=False."""
        try:
            seconds = self.time(fn, repeat)
            peak = self.peak_extra(fn, pool) if pool else None
        except Skip as e:
            return self.skipped(case, str(e), impl, kind=kind, dtype=dtype, size=size)
        except NotImplementedError as e:
            return self.skipped(case, f"not supported: {error_note(e)}", impl, kind=kind, dtype=dtype, size=size)
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            self.free()
            return self.row(case, impl, kind=kind, dtype=dtype, size=size, ok=False, note=error_note(e))
        return self.row(case, impl, kind=kind, dtype=dtype, size=size, seconds=seconds, nbytes=nbytes, peak=peak,
                        note=note)

    def free(self):
        gc.collect()
        if self.cuda:
            torch.cuda.empty_cache()

    def no_room(self, nbytes):
        """Why ``nbytes`` of work space do not fit in free device memory, or None."""
        if not self.cuda:
            return None
        self.free()
        free, _ = torch.cuda.mem_get_info(self.device)
        return None if nbytes <= free else f"needs {nbytes / 2**30:.1f} GiB, {free / 2**30:.1f} GiB free"

    def sample_clock(self, when):
        if self.cuda:
            self.clocks.append({"when": when, **sm_clock(self.device)})


def sm_clock(device):
    """The SM clock now and its maximum (nvidia-smi), and torch.cuda.clock_rate where it exists."""
    out = {}
    try:
        index = device.index if device.index is not None else torch.cuda.current_device()
        r = subprocess.run(["nvidia-smi", "-i", str(index), "--query-gpu=clocks.sm,clocks.max.sm",
                            "--format=csv,noheader"], capture_output=True, text=True, timeout=20, check=True)
        out["nvidia_smi"] = r.stdout.strip()
    except Exception as e:  # noqa: BLE001 - no nvidia-smi, or another driver
        out["nvidia_smi"] = f"unavailable: {error_note(e)}"
    try:
        out["torch_clock_rate_mhz"] = torch.cuda.clock_rate(device)
    except Exception as e:  # noqa: BLE001 - needs pynvml; absent in old torch
        out["torch_clock_rate_mhz"] = f"unavailable: {error_note(e)}"
    return out


def u64(rng):
    return int(rng.integers(0, 2**64, dtype=np.uint64))


def empty(shape, dtype, b):
    return torch.empty(shape, dtype=dtype, device=b.device)


def init(t, kind, seed=1, **kw):
    scheme, params, _ = KINDS[kind]
    return gpuinit.init_(t, scheme, seed=seed, backend="triton", **params, **kw)


def itemsize(dtype):
    return torch.empty((), dtype=dtype).element_size()


# ---- Triton's own generator and a store-only kernel, as peers -----------------------------------------

def peer_block():
    """Counters per program of the peer kernels: larger on the interpreter, whose cost is per program."""
    return 4096 if triton_backend.interpreting() else 1024


@triton.jit
def store_kernel(out_ptr, n, BLOCK: tl.constexpr):
    """Write 1.0 everywhere: the store ceiling of a Triton kernel."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, tl.full((BLOCK,), 1.0, tl.float32).to(out_ptr.dtype.element_ty), mask=offs < n)


@triton.jit
def _store_run(out_ptr, offs, values, n):
    tl.store(out_ptr + offs, values.to(out_ptr.dtype.element_ty), mask=offs < n)


@triton.jit
def _trunc(u, p_lo, p_span, lo, hi):
    z = 1.4142135623730951 * libdevice.erfinv(2.0 * (p_lo + u * p_span) - 1.0)
    return tl.minimum(tl.maximum(z, lo), hi)


@triton.jit
def philox_kernel(out_ptr, n, seed, scale, shift, p_lo, p_span, lo, hi, KIND: tl.constexpr, BLOCK: tl.constexpr):
    """Triton's generator: KIND 0 ``tl.rand4x`` (uniform), 1 ``tl.randn4x`` (normal), 2 ``tl.rand4x`` through
    libdevice's erfinv (truncated normal by the inverse CDF, as torch.nn.init.trunc_normal_); values times
    ``scale`` plus ``shift``. A program draws four values for each of BLOCK counters: four runs of BLOCK."""
    pid = tl.program_id(0).to(tl.int64)
    counters = pid * BLOCK + tl.arange(0, BLOCK)
    if KIND == 1:
        r0, r1, r2, r3 = tl.randn4x(seed, counters)
    else:
        r0, r1, r2, r3 = tl.rand4x(seed, counters)
        if KIND == 2:
            r0 = _trunc(r0, p_lo, p_span, lo, hi)
            r1 = _trunc(r1, p_lo, p_span, lo, hi)
            r2 = _trunc(r2, p_lo, p_span, lo, hi)
            r3 = _trunc(r3, p_lo, p_span, lo, hi)
    base = pid * (4 * BLOCK) + tl.arange(0, BLOCK)
    _store_run(out_ptr, base, r0 * scale + shift, n)
    _store_run(out_ptr, base + BLOCK, r1 * scale + shift, n)
    _store_run(out_ptr, base + 2 * BLOCK, r2 * scale + shift, n)
    _store_run(out_ptr, base + 3 * BLOCK, r3 * scale + shift, n)


PHI_2 = 0.5 * (1.0 + math.erf(2.0 / math.sqrt(2.0)))  # Phi(2)
PEERS = {  # kind: (name, KIND, scale(fan_in), shift)
    "uniform": ("tl.rand4x", 0, lambda fan_in: 1.0, 0.0),
    "normal": ("tl.randn4x", 1, lambda fan_in: 1.0, 0.0),
    "trunc_normal": ("tl.rand4x + libdevice.erfinv", 2, lambda fan_in: 1.0, 0.0),
    "kaiming_uniform": ("tl.rand4x", 0, lambda fan_in: 2.0 / math.sqrt(fan_in), None),  # U(-1/sqrt(fan_in), +)
}


def launch_store(buf):
    block = 4 * peer_block()
    store_kernel[(triton.cdiv(buf.numel(), block),)](buf, buf.numel(), BLOCK=block)


def launch_philox(buf, kind, fan_in, seed=12345):
    _, code, scale_of, shift = PEERS[kind]
    if code == 2 and triton_backend.interpreting():
        raise Skip("libdevice.erfinv is not in Triton's interpreter")
    scale = scale_of(fan_in)
    shift = -scale / 2 if shift is None else shift
    n, block = buf.numel(), peer_block()
    philox_kernel[(triton.cdiv(n, 4 * block),)](buf, n, seed, scale, shift, 1.0 - PHI_2, 2.0 * PHI_2 - 1.0, -2.0, 2.0,
                                                KIND=code, BLOCK=block)


# ---- bits: what the device wrote against the reference stream --------------------------------------------

def device_bits(t):
    as_int, _ = INT_VIEWS[t.dtype]
    return t.detach().contiguous().view(as_int).cpu().numpy().reshape(-1)


def reference_bits(draw, starts, length, seed, stream, dtype):
    """The NumPy reference stream's bits of runs ``starts[r] + (0 .. length)`` of ``draw``, in ``dtype``."""
    values = ks.draw_values(draw.kind, draw.params, starts, length, seed, stream).reshape(-1)
    if dtype == torch.bfloat16:
        return ks.bfloat16_bits(values)
    as_float = {torch.float32: np.float32, torch.float16: np.float16, torch.float64: np.float64}[dtype]
    return values.astype(as_float).view(INT_VIEWS[dtype][1])


def mismatches(t, draw, starts, length, seed, stream):
    """(number of elements of ``t`` whose bits differ from the reference, index of the first), t's elements
    being the runs in row-major order."""
    bad = np.flatnonzero(device_bits(t) != reference_bits(draw, starts, length, seed, stream, t.dtype))
    return int(bad.size), (int(bad[0]) if bad.size else None)


def draw_of(t, kind, seed, stream=0, **region):
    scheme, params, _ = KINDS[kind]
    return jobs.prepare(t, scheme, params, seed=seed, stream=stream, backend="triton", **region).draw


def spot_check(view, kind, seed, rng):
    """Compare a random row and the last row of a ``(rows, cols)`` gpuinit-filled ``view`` with the reference:
    (mismatches, elements compared)."""
    rows, cols = view.shape
    picks = sorted({int(rng.integers(rows)), rows - 1})
    sample = torch.cat([view[r] for r in picks])
    bad, _ = mismatches(sample, draw_of(view, kind, seed), [r * cols for r in picks], cols, seed, 0)
    return bad, sample.numel()


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
    from gpuinit.kernels import triton_stream as kt

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


# ---- correctness on the device ------------------------------------------------------------------------

def correctness(b):
    """Bits written on the device against the NumPy reference stream, for every kind and dtype: a block at a
    random row of a 2**40-element tensor, a transposed view, a column block, and a grouped launch."""
    rows = []
    for dtype in b.dtypes:
        for kind in KINDS:
            for layout, check in (("block at a random offset", check_sample), ("t.T view", check_view),
                                  ("column block", check_block), ("grouped launch", check_grouped)):
                seed, stream = u64(b.rng), u64(b.rng)
                try:
                    bad, first, size, detail = check(b, kind, dtype, seed, stream)
                except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                    rows.append(b.row("correctness", layout, kind=kind, dtype=dtype, ok=False, note=error_note(e)))
                    continue
                note = f"{detail}; seed {seed:#x}, stream {stream:#x}"
                if bad:
                    note += f"; first mismatch at element {first}"
                rows.append(b.row("correctness", layout, kind=kind, dtype=dtype, size=size, value=bad, ok=bad == 0,
                                  note=note))
            b.free()
    return rows


def check_sample(b, kind, dtype, seed, stream):
    rows, cols = b.scale.sample
    full = (2**40 // cols, cols)
    r0 = int(b.rng.integers(0, full[0] - rows))
    t = empty((rows, cols), dtype, b)
    region = {"full_shape": full, "offsets": (r0, 0)}
    init(t, kind, seed, stream=stream, **region)
    bad, first = mismatches(t, draw_of(t, kind, seed, stream, **region), [r0 * cols], rows * cols, seed, stream)
    return bad, first, t.numel(), f"rows {r0}.. of {full}"


def check_view(b, kind, dtype, seed, stream):
    r, c = b.scale.check_view
    view = empty((r, c), dtype, b).T
    init(view, kind, seed, stream=stream)
    bad, first = mismatches(view, draw_of(view, kind, seed, stream), [0], view.numel(), seed, stream)
    return bad, first, view.numel(), f"({r}, {c}).T"


def check_block(b, kind, dtype, seed, stream):
    r, full_cols, w = b.scale.check_block
    c0 = w * int(b.rng.integers(0, full_cols // w))
    t = empty((r, w), dtype, b)
    region = {"full_shape": (r, full_cols), "offsets": (0, c0)}
    init(t, kind, seed, stream=stream, **region)
    bad, first = mismatches(t, draw_of(t, kind, seed, stream, **region), [i * full_cols + c0 for i in range(r)], w,
                            seed, stream)
    return bad, first, t.numel(), f"({r}, {w}) at (0, {c0}) of ({r}, {full_cols})"


def check_grouped(b, kind, dtype, seed, stream):
    scheme, params, _ = KINDS[kind]
    shapes = [s for s in b.scale.group if len(s) > 1 or kind != "kaiming_uniform"]  # kaiming needs fans
    tensors = [empty(shape, dtype, b) for shape in shapes]
    streams = [(stream + i) % 2**64 for i in range(len(tensors))]
    todo = [jobs.prepare(t, scheme, params, seed=seed, stream=s, backend="triton")
            for t, s in zip(tensors, streams, strict=True)]
    jobs.run(todo)
    bad, first, offset = 0, None, 0
    for t, job, s in zip(tensors, todo, streams, strict=True):
        n, f = mismatches(t, job.draw, [0], t.numel(), seed, s)
        if n and first is None:
            first = offset + f
        bad, offset = bad + n, offset + t.numel()
    return bad, first, offset, f"{len(tensors)} tensors in one jobs.run"


# ---- throughput of whole buffers --------------------------------------------------------------------

def cupy_missing(b):
    """Why cupy cannot run here, or None."""
    if not b.cuda:
        return "no CUDA"
    try:
        from gpuinit.backends import cupy_backend

        return cupy_backend.available()
    except Exception as e:  # noqa: BLE001 - a broken cupy install
        return error_note(e)


def sweep(b):
    """Each --sizes x --dtypes buffer: the store ceilings, then every kind by gpuinit and its peers."""
    rows = []
    for n in b.sizes:
        for dtype in b.dtypes:
            rows += sweep_buffer(b, n, dtype)
            b.free()
    b.sample_clock("after the sweep")
    return rows


def sweep_buffer(b, n, dtype):
    nbytes = n * itemsize(dtype)
    why = b.no_room(3 * nbytes)
    if why:
        return [b.skipped("sweep", why, dtype=dtype, size=n)]
    buf = empty((n,), dtype, b)
    view = buf.view(-1, min(COLS, n))
    common = {"dtype": dtype, "size": n, "nbytes": nbytes}
    rows = [b.measure("sweep", "torch fill_(1.0)", lambda: buf.fill_(1.0), kind="store", **common),
            b.measure("sweep", "triton store kernel", lambda: launch_store(buf), kind="store", **common)]
    for kind in KINDS:
        for impl, fn, opts in sweep_impls(b, kind, view, buf):
            r = b.measure("sweep", impl, fn, kind=kind, **common, **opts)
            if impl == "gpuinit" and r["ok"]:
                bad, checked = spot_check(view, kind, 1, b.rng)
                r.update(ok=bad == 0, value=bad, note=f"bits vs reference: {bad} of {checked} sampled differ")
            rows.append(r)
    return apply_ceiling(rows)


def sweep_impls(b, kind, view, buf):
    """(impl, fn, measure options) of ``kind`` on ``view`` (``buf`` seen as (rows, COLS))."""
    _, _, torch_init = KINDS[kind]
    yield "gpuinit", lambda: init(view, kind), {}
    yield f"triton {PEERS[kind][0]}", lambda: launch_philox(buf, kind, view.shape[1]), {}
    slow = kind == "trunc_normal"
    yield f"torch.nn.init.{kind}_", lambda: torch_init(view), {"repeat": max(1, b.repeat // 4) if slow else None}
    if kind in ("uniform", "normal"):
        yield f"tensor.{kind}_()", getattr(view, f"{kind}_"), {}
    if view.dtype == torch.float32 and b.cuda:
        why = cupy_missing(b)
        if why is None:
            yield from cupy_impls(kind, view)
        else:
            yield "cupy", skip(f"cupy: {why}"), {}


def skip(why):
    def fn():
        raise Skip(why)

    return fn


def cupy_impls(kind, view):
    import cupy

    scheme, params, _ = KINDS[kind]
    arr = cupy.from_dlpack(view)  # the same memory
    yield "gpuinit cupy backend", lambda: gpuinit.init_(arr, scheme, seed=1, **params), {"pool": "cupy"}
    n = view.numel()
    if kind == "uniform":
        yield "cupy.random.random (allocates)", lambda: cupy.random.random(n, dtype=cupy.float32), {"pool": "cupy"}
    if kind == "normal":
        yield ("cupy.random.standard_normal (allocates)", lambda: cupy.random.standard_normal(n, dtype=cupy.float32),
               {"pool": "cupy"})


# ---- strided views and shards ------------------------------------------------------------------------

def views(b):
    """gpuinit on a transposed view and on a column shard, each against a contiguous twin of its size."""
    rows = []
    for dtype in b.dtypes:
        try:
            rows += transposed_rows(b, dtype)
            rows += shard_rows(b, dtype)
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            rows.append(b.row("views", "-", dtype=dtype, ok=False, note=error_note(e)))
        b.free()
    return rows


def transposed_rows(b, dtype):
    r, c = b.scale.view
    view, twin = empty((r, c), dtype, b).T, empty((c, r), dtype, b)
    common = {"dtype": dtype, "size": r * c, "nbytes": r * c * itemsize(dtype)}
    rows = [b.measure("transposed", "torch fill_(1.0) of the twin", lambda: twin.fill_(1.0), kind="store", **common)]
    for kind, (_, _, torch_init) in KINDS.items():
        rows += [b.measure("transposed", f"gpuinit ({r}, {c}).T", lambda k=kind: init(view, k), kind=kind, **common),
                 b.measure("transposed", f"gpuinit contiguous ({c}, {r})", lambda k=kind: init(twin, k), kind=kind,
                           **common),
                 b.measure("transposed", f"torch.nn.init ({r}, {c}).T", lambda f=torch_init: f(view), kind=kind,
                           **common)]
    return apply_ceiling(rows)


def shard_rows(b, dtype):
    r, full_cols, w = b.scale.shard
    block = empty((r, w), dtype, b)
    region = {"full_shape": (r, full_cols), "offsets": (0, w * (full_cols // w // 2))}
    common = {"dtype": dtype, "size": r * w, "nbytes": r * w * itemsize(dtype)}
    rows = [b.measure("column shard", "torch fill_(1.0)", lambda: block.fill_(1.0), kind="store", **common)]
    for kind in KINDS:
        rows += [b.measure("column shard", f"gpuinit ({r}, {w}) block at {region['offsets']} of {region['full_shape']}",
                           lambda k=kind: init(block, k, **region), kind=kind, **common),
                 b.measure("column shard", f"gpuinit whole ({r}, {w})", lambda k=kind: init(block, k), kind=kind,
                           **common)]
    return apply_ceiling(rows)


# ---- many small tensors ----------------------------------------------------------------------------

def small_model(width, layers):
    """A transformer's parameter list: per layer two LayerNorms (1-D weight and bias) and four Linears with
    biases (qkv, out, up, down): 12 tensors."""
    d = width
    return nn.ModuleList(nn.ModuleList([nn.LayerNorm(d), nn.Linear(d, 3 * d), nn.Linear(d, d), nn.LayerNorm(d),
                                        nn.Linear(d, 4 * d), nn.Linear(4 * d, d)]) for _ in range(layers))


def reset_all(model):
    with torch.no_grad():
        for m in model.modules():
            if hasattr(m, "reset_parameters"):
                m.reset_parameters()
    return model


class triton_on_cpu:
    """Make init_module use the Triton backend (the interpreter) for CPU tensors, as it does for CUDA ones."""

    def __init__(self, b):
        self.on = not b.cuda

    def __enter__(self):
        if self.on:
            self.old = os.environ.get("GPUINIT_BACKEND")
            os.environ["GPUINIT_BACKEND"] = "triton"

    def __exit__(self, *exc):
        if self.on:
            if self.old is None:
                os.environ.pop("GPUINIT_BACKEND", None)
            else:
                os.environ["GPUINIT_BACKEND"] = self.old


def small_tensors(b):
    """~2000 tensors of a transformer (norms, matrices, biases): gpuinit's grouped fill against a Python loop
    of per-tensor calls, on a materialized model and from the meta device."""
    width, layers = b.scale.small
    rows = []
    for dtype in b.dtypes:
        try:
            rows += small_rows(b, dtype, width, layers)
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            rows.append(b.row("small tensors", "-", dtype=dtype, ok=False, note=error_note(e)))
        b.free()
    return rows


def small_rows(b, dtype, width, layers):
    with torch.device("meta"):
        model = small_model(width, layers).to(dtype)
    model.to_empty(device=b.device)
    params = list(model.parameters())
    n, nbytes = sum(p.numel() for p in params), sum(p.numel() * p.element_size() for p in params)
    plan = gpuinit.modules.plan_module(model)
    common = {"kind": f"{len(params)} tensors", "dtype": dtype, "size": n, "nbytes": nbytes}
    repeat = min(b.repeat, 5)

    def per_tensor():
        for i, (_, p, (scheme, prm), _) in enumerate(plan):
            gpuinit.init_(p, scheme, seed=0, stream=i, backend="triton", **prm)

    def from_meta_gpuinit():
        with torch.device("meta"):
            m = small_model(width, layers).to(dtype)
        return gpuinit.init_module(m, seed=0, device=b.device)

    def from_meta_torch():
        with torch.device("meta"):
            m = small_model(width, layers).to(dtype)
        return reset_all(m.to_empty(device=b.device))

    def on_device_torch():
        old = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(b.device):
                return small_model(width, layers)
        finally:
            torch.set_default_dtype(old)

    ways = [("gpuinit.init_module (materialized: grouped launches)", lambda: gpuinit.init_module(model, seed=0)),
            ("gpuinit.init_ per tensor", per_tensor),
            ("torch reset_parameters per module", lambda: reset_all(model)),
            ("meta -> gpuinit.init_module(device=...)", from_meta_gpuinit),
            ("meta -> to_empty + reset_parameters", from_meta_torch),
            ("torch default on the device", on_device_torch)]
    rows = []
    with triton_on_cpu(b):
        for impl, fn in ways:
            note = "includes building the modules" if "meta" in impl or "default" in impl else ""
            rows.append(b.measure("small tensors", impl, fn, repeat=repeat, note=note, **common))
    return rows


# ---- orthogonal ----------------------------------------------------------------------------------

def orthogonal(b):
    """gpuinit's orthogonal (normal draw + QR on the device) against torch.nn.init.orthogonal_."""
    size, rows = b.scale.orthogonal, []
    for dtype in b.dtypes:
        w = empty((size, size), dtype, b)
        common = {"kind": "orthogonal", "dtype": dtype, "size": size * size, "nbytes": w.numel() * w.element_size(),
                  "repeat": min(3, b.repeat)}
        rows += [b.measure("orthogonal", "gpuinit", lambda w=w: gpuinit.init_(w, "orthogonal", seed=1,
                                                                               backend="triton"), **common),
                 b.measure("orthogonal", "torch.nn.init.orthogonal_", lambda w=w: torch.nn.init.orthogonal_(w),
                           **common)]
        del w
        b.free()
    return rows


# ---- a whole model ---------------------------------------------------------------------------------

def load_model_bench():
    spec = importlib.util.spec_from_file_location("gpuinit_bench_model", Path(__file__).with_name("model.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def model(b):
    """A Llama of --model-params parameters in bfloat16, three ways, each in a fresh process (bench/model.py):
    gpuinit from the meta device, torch's default construction on the device, meta + to_empty +
    reset_parameters. Peak memory is the process's own and includes the parameters."""
    if not b.cuda:
        return [b.skipped("model", "no CUDA")]
    if not b.model_params:
        return [b.skipped("model", "--model-params 0")]
    bench_model = load_model_bench()
    rows = []
    for way in bench_model.WAYS:
        args = [bench_model.CHILD, way, str(b.model_params), str(b.device), "bfloat16", str(b.scale.model_repeat)]
        try:
            r = run_child(args, timeout=600)
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            rows.append(b.row("model", way, dtype=torch.bfloat16, ok=False, note=error_note(e)))
            continue
        kind = f"Llama, {r['n_params'] / 1e6:,.0f}M parameters"
        rows.append(b.row("model", way, kind=kind, dtype=torch.bfloat16, size=r["n_params"], seconds=r["seconds"],
                          nbytes=r["param_bytes"], peak=r["peak_bytes"],
                          note=f"median of {b.scale.model_repeat}; parameters {r['param_bytes'] / 2**30:.2f} GiB"))
        if "ceiling_seconds" in r:
            rows.append(b.row("model", "torch fill_ of one buffer of the parameters' size", kind="store",
                              dtype=torch.bfloat16, size=r["param_bytes"] // 2, seconds=r["ceiling_seconds"],
                              nbytes=r["param_bytes"]))
    return apply_ceiling(rows)


CASES = {"cold_start": cold_start, "correctness": correctness, "sweep": sweep, "views": views,
         "small_tensors": small_tensors, "orthogonal": orthogonal, "model": model}
