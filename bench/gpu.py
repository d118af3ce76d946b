"""GPU benchmark: everything about gpuinit on one GPU, in one run (bench/gpuinit_bench/gpu/ holds the cases).

- cold_start: the first call of each Triton kernel variant (compile included: the run starts on an empty
  Triton cache) against a warm call; compiled variants after 50 fresh seeds; a new process's first init_
- correctness: bits written on the device against the NumPy reference stream, every kind and dtype: a 1M
  block at a random offset of a 2**40-element tensor, a transposed view, a column block, a grouped launch
- sweep: uniform, normal, trunc_normal (2 sigma) and kaiming_uniform on each --sizes x --dtypes buffer:
  gpuinit against the store ceiling (``fill_(1.0)``, a Triton store-only kernel), Triton's ``tl.rand4x`` /
  ``tl.randn4x``, torch.nn.init, ``tensor.uniform_/normal_`` and cupy.random
- views: a transposed view and a column shard against contiguous twins
- small_tensors: ~2000 tensors of a transformer, grouped fill against Python loops of per-tensor calls
- orthogonal: gpuinit against torch.nn.init.orthogonal_
- model: a 1B-parameter bfloat16 Llama three ways, each in a fresh process (bench/model.py)

Each row: case, kind, dtype, size, impl, elements_per_s, pct_store_ceiling, pct_hbm (of the nominal HBM
bandwidth), ms, peak_extra_bytes (torch.cuda.max_memory_allocated delta), ok, note, value. Times are medians
of CUDA-event timings after a warm-up. A failing case is a row with ok=false; the run goes on. Prints a
markdown report; ``--out DIR`` also writes DIR/gpu-<device>.json and .md, after every case.

    python bench/gpu.py --out bench/results                # everything, 2**28 and 2**30 elements
    python bench/gpu.py --quick                            # small sizes, a 100M model
    TRITON_INTERPRET=1 python bench/gpu.py --device cpu --sizes 65536 --repeat 2   # the code paths on the CPU
"""
import argparse
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from gpuinit_bench.console import print_markdown, progress
from gpuinit_bench.gpu.device import device_meta, device_name, nominal_hbm, versions
from gpuinit_bench.gpu.report import markdown, save

from gpuinit.cli_checks import UsageError, writable_dir


def parse_args(cases):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="elements per sweep buffer (default 2**28 2**30; --quick 2**26, past the L2 cache)")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per measurement (default 20; --quick 5)")
    parser.add_argument("--quick", action="store_true", help="small sizes and a 100M model: a sanity run")
    parser.add_argument("--model-params", type=float, default=None,
                        help="parameters of the whole-model case (default 1e9; --quick 1e8; 0: skip)")
    parser.add_argument("--cases", nargs="+", choices=cases, default=list(cases), help="cases to run, in run order")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random offsets, seeds and streams tried")
    parser.add_argument("--keep-triton-cache", action="store_true",
                        help="use the usual Triton cache (default: an empty one, so first calls include compiles)")
    parser.add_argument("--out", default=None, help="directory for gpu-<device>.json and .md; default: print only")
    args = parser.parse_args()
    if args.out is not None:
        try:
            writable_dir(args.out, "--out")
        except UsageError as e:
            parser.error(str(e))
    if args.sizes is not None and not all(n > 0 for n in args.sizes):
        parser.error(f"--sizes: element counts above 0, got {args.sizes}")
    if args.repeat is not None and args.repeat < 1:
        parser.error(f"--repeat: at least 1 timed run, got {args.repeat}")
    if args.model_params is not None and not (math.isfinite(args.model_params) and args.model_params >= 0):
        parser.error(f"--model-params: a parameter count (0 skips the case), got {args.model_params}")
    if not 0 <= args.seed < 2**64:
        parser.error(f"--seed: an integer in [0, 2**64), got {args.seed}")
    try:
        torch.device(args.device)
    except (RuntimeError, ValueError) as e:
        parser.error(f"--device: {e}")
    if args.sizes is None:
        args.sizes = [2**26] if args.quick else [2**28, 2**30]
    if args.repeat is None:
        args.repeat = 5 if args.quick else 20
    if args.model_params is None:
        args.model_params = 1e8 if args.quick else 1e9
    try:
        args.dtypes = [getattr(torch, d) for d in args.dtypes]
        if not all(isinstance(d, torch.dtype) and d.is_floating_point for d in args.dtypes):
            raise AttributeError
    except AttributeError:
        parser.error(f"--dtypes: floating-point torch dtypes (float32, bfloat16, ...), got {args.dtypes}")
    return args


def main():
    from gpuinit_bench.gpu import cases as gpu_cases

    args = parse_args(list(gpu_cases.CASES))
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device: run on a GPU, or on the CPU with TRITON_INTERPRET=1 --device cpu")
    name = device_name(device)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    scale = gpu_cases.SCALES["cpu" if device.type != "cuda" else "quick" if args.quick else "full"]
    bench = gpu_cases.Bench(device, args.dtypes, args.sizes, args.repeat, scale, nominal_hbm(name), args.model_params,
                            np.random.default_rng(args.seed))
    meta = {"device": name, "device_arg": args.device, "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "versions": versions(), **device_meta(device), "nominal_hbm_bytes_s": bench.hbm, "repeat": args.repeat,
            "sizes": args.sizes, "dtypes": [gpu_cases.dtype_name(d) for d in args.dtypes], "quick": args.quick,
            "cases": args.cases, "seed": args.seed, "clocks": bench.clocks, "complete": False,
            "triton_interpret": os.environ.get("TRITON_INTERPRET") == "1", "argv": sys.argv[1:]}
    out = None if args.out is None else Path(args.out)
    with tempfile.TemporaryDirectory(prefix="gpuinit-bench-triton-") as cache:
        if not args.keep_triton_cache:
            os.environ["TRITON_CACHE_DIR"] = cache
        meta["triton_cache"] = "kept" if args.keep_triton_cache else "empty at start"
        rows = run_cases(bench, args.cases, gpu_cases, meta, out, slug)
    meta["complete"] = True
    print_markdown(markdown(meta, rows))
    failed = [r for r in rows if r["ok"] is False]
    for r in failed:
        print(f"FAILED: {r['case']} / {r['impl']} / {r['kind']} / {r['dtype']}: {r['note']}", file=sys.stderr)
    if out is None:
        print(f"not saved: --out DIR writes DIR/gpu-{slug}.json and .md")
        return
    save(out, slug, meta, rows)
    print(f"wrote {out / f'gpu-{slug}.json'} and .md")


def run_cases(bench, names, gpu_cases, meta, out, slug):
    """Every case in turn; results saved after each (a run cut short keeps what it measured)."""
    rows, t0 = [], time.perf_counter()
    bench.sample_clock("start")
    with progress(len(names), "gpu bench") as step:
        for case in names:
            started = time.perf_counter()
            step(case)
            try:
                rows += gpu_cases.CASES[case](bench)
            except Exception as e:  # noqa: BLE001 - recorded, the run goes on
                rows.append(bench.row(case, "-", ok=False, note=gpu_cases.error_note(e)))
                bench.free()
            meta.setdefault("case_seconds", {})[case] = round(time.perf_counter() - started, 2)
            if out is not None:
                save(out, slug, meta, rows)
    bench.sample_clock("end")
    meta["seconds"] = round(time.perf_counter() - t0, 1)
    return rows


if __name__ == "__main__":
    main()
