"""CPU benchmark: gpuinit's NumPy backend against torch.nn.init and NumPy's Generator, in one run.

Same 4096 x 4096 buffers, same thread count for everyone; median of repeated runs after a warm-up.
Prints a table; ``--out`` also writes the results as JSON: to FILE.json, or to DIR/cpu.json for any other
path (a directory, created if needed; an existing file that does not end in .json is refused). A size whose
buffers do not fit in free memory is refused before anything is allocated.

    python bench/cpu.py [--size 4096] [--repeat 7] [--threads N] [--out FILE.json or DIR]
    python bench/cpu.py --out bench/results          # regenerate the committed bench/results/cpu.json
"""
import argparse
import json
import math
import os
import platform
import statistics
import sys
import time
import tracemalloc

import numpy as np
import torch
from gpuinit_bench.console import print_table, progress

import gpuinit
from gpuinit import cli_checks as checks
from gpuinit.backends import cpu_kernel, numpy_backend
from gpuinit.cli_checks import UsageError

PEAK_BUFFERS = 14  # float32 size x size buffers alive at the peak (orthogonal's QRs; measured: 12.4)

SCHEMES = {  # gpuinit scheme and params, the torch.nn.init call, the numpy Generator call (float32 only)
    "uniform": (("uniform", {}), lambda t: torch.nn.init.uniform_(t),
                lambda g, a: g.random(out=a, dtype=np.float32)),
    "normal": (("normal", {}), lambda t: torch.nn.init.normal_(t),
               lambda g, a: g.standard_normal(out=a, dtype=np.float32)),
    "trunc_normal": (("trunc_normal", {}), lambda t: torch.nn.init.trunc_normal_(t), None),
    "kaiming_uniform": (("kaiming_uniform", {"a": math.sqrt(5)}),
                        lambda t: torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5)), None),
    "orthogonal": (("orthogonal", {}), lambda t: torch.nn.init.orthogonal_(t),
                   lambda g, a: a.__setitem__(..., np.linalg.qr(g.standard_normal(a.shape, dtype=np.float32))[0])),
}


def median_time(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def peak_extra_bytes(fn):
    """Peak bytes NumPy and Python allocate during ``fn`` (the filled buffer itself excluded)."""
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def run(size, repeat, threads, step):
    """The rows of the table; ``step(name)`` is called as each measurement starts."""
    torch.set_num_threads(threads)
    os.environ["GPUINIT_NUM_THREADS"] = str(threads)
    n = size * size
    rows = []
    for dtype in ("float32", "bfloat16"):
        tdtype = getattr(torch, dtype)
        target = torch.empty(size, size, dtype=tdtype)
        step(f"{dtype} fill_ (ceiling)")
        ceiling = median_time(lambda t=target: t.fill_(1.0), repeat)
        rows.append({"dtype": dtype, "scheme": "fill_ (ceiling)", "melem_s": n / ceiling / 1e6})
        for name, ((scheme, params), torch_fn, numpy_fn) in SCHEMES.items():
            step(f"{dtype} {name}")
            reps = 2 if name == "orthogonal" else repeat

            def ours_fn(t=target, scheme=scheme, params=params):
                gpuinit.init_(t, scheme, seed=1, **params)

            def torch_call(fn=torch_fn, dt=tdtype):
                fn(torch.empty(size, size, dtype=dt))

            ours, peak = median_time(ours_fn, reps), peak_extra_bytes(ours_fn)
            try:
                theirs = median_time(torch_call, reps)
            except RuntimeError as e:  # torch has no bfloat16 QR on the CPU
                theirs, note = None, f"torch: {str(e).splitlines()[0][:60]}"
            else:
                note = ""
            numpy_t = None
            if numpy_fn is not None and dtype == "float32":
                gen, buf = np.random.default_rng(1), np.empty((size, size), np.float32)
                numpy_t = median_time(lambda f=numpy_fn, g=gen, b=buf: f(g, b), reps)
            rows.append({
                "dtype": dtype, "scheme": name, "melem_s": n / ours / 1e6,
                "torch_melem_s": None if theirs is None else n / theirs / 1e6,
                "vs_torch": None if theirs is None else theirs / ours,
                "numpy_melem_s": None if numpy_t is None else n / numpy_t / 1e6,
                "vs_numpy": None if numpy_t is None else numpy_t / ours,
                "vs_ceiling": ceiling / ours, "peak_extra_mib": peak / 2**20,
                "buffer_mib": n * target.element_size() / 2**20, "note": note,
            })
    return rows


def fmt(x, spec):
    return None if x is None else format(x, spec)


def check_memory(size):
    """Refuse a --size whose buffers, at the peak, need more than the free memory."""

    def hint(free):
        fits = math.isqrt(free // (PEAK_BUFFERS * 4))
        return f"try --size {fits} or less" if fits else None

    checks.check_free(PEAK_BUFFERS * 4 * size * size, f"--size {size}: about {PEAK_BUFFERS} buffers of {size}x{size} "
                      "float32 values", torch.device("cpu"), torch, hint)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=checks.positive_int, default=4096, help="rows and columns of the buffers")
    parser.add_argument("--repeat", type=checks.positive_int, default=7, help="timed runs per measurement")
    parser.add_argument("--threads", type=checks.int_range(1, 1024), default=os.cpu_count())
    parser.add_argument("--out", type=checks.out_path, default=None,
                        help="write the results as JSON to FILE.json, or to DIR/cpu.json; default: print only")
    args = parser.parse_args()
    out = None
    try:
        check_memory(args.size)
        if args.out is not None:
            out = checks.results_file(args.out, "cpu.json")
    except UsageError as e:
        parser.error(str(e))
    with progress(2 * (1 + len(SCHEMES)), "cpu bench") as step:
        rows = run(args.size, args.repeat, args.threads, step)
    columns = ("dtype", "scheme", "gpuinit Me/s", "torch Me/s", "x torch", "numpy Me/s", "x numpy", "of fill",
               "peak MiB", "note")
    print_table(columns, [(r["dtype"], r["scheme"], fmt(r["melem_s"], ".0f"), fmt(r.get("torch_melem_s"), ".0f"),
                           fmt(r.get("vs_torch"), ".2f"), fmt(r.get("numpy_melem_s"), ".0f"),
                           fmt(r.get("vs_numpy"), ".2f"), fmt(r.get("vs_ceiling"), ".3f"),
                           fmt(r.get("peak_extra_mib"), ".2f"), r.get("note", "")) for r in rows],
                title=f"{args.size}x{args.size}, {args.threads} threads, host C kernel: "
                      f"{'yes' if cpu_kernel.why_not() is None else cpu_kernel.why_not()}, chunk {numpy_backend.CHUNK}",
                right=columns[2:-1])
    meta = {"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count(), "threads": args.threads,
            "python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__,
            "gpuinit": gpuinit.__version__, "host_kernel": cpu_kernel.why_not() is None, "size": args.size,
            "repeat": args.repeat, "date": time.strftime("%Y-%m-%d %H:%M:%S"), "command": " ".join(sys.argv)}
    if out is None:
        print("not saved: --out DIR writes DIR/cpu.json")
        return
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
