"""What the cases of bench/gpu.py share: their scales, the ``Bench`` they run on, rows, timing and memory."""
import gc
import math
import statistics
import subprocess
import time
from dataclasses import dataclass, field

import numpy as np
import torch

import gpuinit

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
