"""GPU benchmark: gpuinit's Triton kernels against the write ceiling, torch.nn.init and cupy.random.

For each size and dtype, on one buffer: the ceiling is ``fill_(1.0)`` of that buffer; each scheme's
time is the median of many runs timed with CUDA events after a warm-up; peak memory is what
torch.cuda.max_memory_allocated adds to the buffer. Prints a markdown table; ``--out DIR`` also writes
DIR/gpu-<device>.json and .md (``--out bench/results`` regenerates the committed results).

    python bench/gpu.py                          # 2**28 and 2**30 elements, float32 and bfloat16
    TRITON_INTERPRET=1 python bench/gpu.py --device cpu --sizes 65536 --repeat 2   # the kernels on the CPU
"""
import argparse
import json
import math
import platform
import re
import statistics
import time
from pathlib import Path

import torch

import gpuinit
from gpuinit.cli_checks import UsageError, writable_dir

SCHEMES = {  # name: (gpuinit scheme, params, torch.nn.init peer)
    "uniform": ("uniform", {}, lambda t: torch.nn.init.uniform_(t)),
    "normal": ("normal", {}, lambda t: torch.nn.init.normal_(t)),
    "trunc_normal": ("trunc_normal", {}, lambda t: torch.nn.init.trunc_normal_(t)),
    "kaiming_uniform": ("kaiming_uniform", {"a": math.sqrt(5)}, lambda t: torch.nn.init.kaiming_uniform_(t, a=5**0.5)),
    "xavier_normal": ("xavier_normal", {}, lambda t: torch.nn.init.xavier_normal_(t)),
}
COLS = 8192  # buffers are seen as (n / 8192, 8192) matrices, so that fans exist


class Timer:
    """Median seconds of ``fn`` after a warm-up: CUDA events on the current stream (cupy's work runs on
    the same legacy default stream), perf_counter on the CPU."""

    def __init__(self, device):
        self.cuda = device.type == "cuda"

    def __call__(self, fn, repeat):
        fn()  # warm-up (compiles the kernel)
        times = []
        for _ in range(repeat):
            if self.cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                fn()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end) / 1e3)
            else:
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
        return statistics.median(times)


def peak_extra(fn, device):
    """Bytes of device memory ``fn`` allocates beyond what is already allocated, at its peak."""
    if device.type != "cuda":
        return None
    torch.cuda.synchronize()
    base = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    fn()
    torch.cuda.synchronize()
    return max(0, torch.cuda.max_memory_allocated() - base)


def cupy_peers(n, dtype):
    """cupy.random draws of the same size (they allocate their output), where the cupy backend runs."""
    from gpuinit.backends import cupy_backend

    if cupy_backend.available() is not None or dtype != torch.float32:
        return {}
    import cupy

    return {"uniform": lambda: cupy.random.random(n, dtype=cupy.float32),
            "normal": lambda: cupy.random.standard_normal(n, dtype=cupy.float32)}


def cupy_rows(timer, n, repeat):
    """The CuPy backend on a cupy float32 buffer: ceiling ``fill(1.0)``, each scheme, cupy.random."""
    import cupy

    buf = cupy.empty(n, dtype=cupy.float32)
    view, nbytes = buf.reshape(-1, min(COLS, n)), n * 4
    ceiling = timer(lambda: buf.fill(1.0), repeat)
    rows = [row(n, torch.float32, "cupy: fill (ceiling)", ceiling, nbytes, ceiling)]
    peers = cupy_peers(n, torch.float32)
    for name, (scheme, params, _) in SCHEMES.items():
        t = timer(lambda scheme=scheme, params=params: gpuinit.init_(view, scheme, seed=1, **params), repeat)
        rows.append(with_cupy_peer(row(n, torch.float32, f"cupy: {name}", t, nbytes, ceiling), peers.get(name), timer,
                                   repeat))
    return rows


def with_cupy_peer(r, peer, timer, repeat):
    """Row ``r`` with the time of its cupy.random peer and gpuinit's speedup over it, where there is one."""
    if peer is not None:
        r["cupy_s"] = timer(peer, repeat)
        r["vs_cupy"] = r["cupy_s"] / r["seconds"]
    return r


def run(device, sizes, dtypes, repeat):
    timer, rows = Timer(device), []
    for n in sizes:
        for dtype in dtypes:
            rows += buffer_rows(device, timer, n, dtype, repeat)
            if device.type == "cuda":
                torch.cuda.empty_cache()
        if device.type == "cuda" and cupy_peers(n, torch.float32):
            rows += cupy_rows(timer, n, repeat)
    rows += orthogonal_rows(device, timer, dtypes, size=8192 if device.type == "cuda" else 64)
    return rows


def buffer_rows(device, timer, n, dtype, repeat):
    """The ceiling, then every scheme and its peers, on one buffer of ``n`` elements."""
    buf = torch.empty(n, dtype=dtype, device=device)
    view, nbytes = buf.view(-1, min(COLS, n)), n * buf.element_size()
    ceiling = timer(lambda: buf.fill_(1.0), repeat)
    rows = [row(n, dtype, "fill_ (ceiling)", ceiling, nbytes, ceiling)]
    peers = cupy_peers(n, dtype)
    for name, (scheme, params, torch_fn) in SCHEMES.items():
        def ours(scheme=scheme, params=params):
            gpuinit.init_(view, scheme, seed=1, backend="triton", **params)

        def theirs(f=torch_fn):
            f(view)

        t = timer(ours, repeat)
        r = row(n, dtype, name, t, nbytes, ceiling)
        r["torch_s"] = timer(theirs, max(1, repeat // 4) if name == "trunc_normal" else repeat)
        r["vs_torch"] = r["torch_s"] / t
        r["peak_extra_bytes"] = peak_extra(ours, device)
        r["torch_peak_extra_bytes"] = peak_extra(theirs, device)
        rows.append(with_cupy_peer(r, peers.get(name), timer, repeat))
    return rows


def orthogonal_rows(device, timer, dtypes, size):
    out = []
    for dtype in dtypes:
        w = torch.empty(size, size, dtype=dtype, device=device)
        t = timer(lambda w=w: gpuinit.init_(w, "orthogonal", seed=1, backend="triton"), 3)
        r = row(size * size, dtype, f"orthogonal {size}x{size}", t, w.numel() * w.element_size(), None)
        try:
            r["torch_s"] = timer(lambda w=w: torch.nn.init.orthogonal_(w), 3)
            r["vs_torch"] = r["torch_s"] / t
        except RuntimeError as e:
            r["note"] = "torch.nn.init.orthogonal_: " + str(e).splitlines()[0][:80]
        out.append(r)
    return out


def row(n, dtype, scheme, seconds, nbytes, ceiling):
    return {"elements": n, "dtype": str(dtype).removeprefix("torch."), "scheme": scheme, "seconds": seconds,
            "gb_s": nbytes / seconds / 1e9, "of_ceiling": None if ceiling is None else ceiling / seconds}


def markdown(rows, device_name):
    def f(x, spec):
        return "" if x is None else format(x, spec)

    header = ("| elements | dtype | scheme | GB/s | of fill ceiling | x torch.nn.init | x cupy.random "
              "| peak extra bytes (gpuinit / torch) | note |")
    lines = [f"# gpuinit on {device_name}", "", header, "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        peak = "" if r.get("peak_extra_bytes") is None else f"{r['peak_extra_bytes']} / {r.get('torch_peak_extra_bytes')}"
        lines.append(f"| 2^{int(math.log2(r['elements']))} | {r['dtype']} | {r['scheme']} | {r['gb_s']:.1f} | "
                     f"{f(r.get('of_ceiling'), '.1%')} | {f(r.get('vs_torch'), '.2f')} | {f(r.get('vs_cupy'), '.2f')} | "
                     f"{peak} | {r.get('note', '')} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", type=int, nargs="+", default=[2**28, 2**30])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--out", default=None, help="directory for gpu-<device>.json and .md; default: print only")
    args = parser.parse_args()
    if args.out is not None:
        try:
            writable_dir(args.out, "--out")
        except UsageError as e:
            parser.error(str(e))
    device = torch.device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.processor() or 'cpu'} (interpreter)"
    rows = run(device, args.sizes, [getattr(torch, d) for d in args.dtypes], args.repeat)
    table = markdown(rows, name)
    print(table)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    if args.out is None:
        print(f"not saved: --out DIR writes DIR/gpu-{slug}.json and .md")
        return
    out = Path(args.out)
    meta = {"device": name, "torch": torch.__version__, "gpuinit": gpuinit.__version__, "repeat": args.repeat,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    (out / f"gpu-{slug}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    (out / f"gpu-{slug}.md").write_text(table)
    print(f"wrote {out / f'gpu-{slug}.json'} and .md")


if __name__ == "__main__":
    main()
