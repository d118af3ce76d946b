"""Whole-model benchmark: the time and peak memory to get a ready model, three ways, in one run.

- gpuinit: build on the meta device, then ``gpuinit.init_module`` (materialize and fill)
- torch default: build on the device (each layer's ``reset_parameters`` as it is constructed)
- meta + to_empty + reset_parameters: torch's own deferred init

Each way runs in a fresh process (peak memory is the process's own: RSS on the CPU,
torch.cuda.max_memory_allocated on a GPU); times are medians of --repeat runs. On a GPU the whole-model
fill is also compared with the write ceiling: a ``fill_`` of one buffer of the parameters' size.
Prints a table; ``--out DIR`` also writes DIR/model-<device>.json (``--out bench/results`` regenerates the
committed results). Sizes are parameter counts like 20M, 1.5B or 1e9; a model that does not fit in free
memory is refused before any is built.

    python bench/model.py                                    # CPU, ~100M parameters
    python bench/model.py --device cuda --params 1e9 7e9 --dtype bfloat16
"""
import argparse
import json
import platform
import time
from pathlib import Path

from gpuinit_bench.console import print_table, progress
from gpuinit_bench.whole_model import WAYS, run_way

from gpuinit import cli_checks as checks
from gpuinit.cli_checks import UsageError


def table_rows(results, dtype):
    """The rows of one model size: one per way, with gpuinit's speed-up over it."""
    rows = []
    for way, r in results.items():
        row = {"params": r["n_params"], "dtype": dtype, "way": way, "seconds": r["seconds"],
               "peak_bytes": r["peak_bytes"], "param_bytes": r["param_bytes"],
               "speedup_of_gpuinit": r["seconds"] / results["gpuinit"]["seconds"]}
        if "ceiling_seconds" in r:
            row["of_ceiling"] = r["ceiling_seconds"] / r["seconds"]
        rows.append(row)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--params", type=checks.parse_size, nargs="+", default=[10**8],
                        help="model sizes, e.g. 20M 1.5B 1e9 (default 100M)")
    parser.add_argument("--dtype", choices=checks.FLOAT_DTYPES, default="float32")
    parser.add_argument("--repeat", type=checks.positive_int, default=5, help="timed runs per way")
    parser.add_argument("--out", type=checks.out_path, default=None,
                        help="directory for model-<device>.json; default: print only")
    args = parser.parse_args()
    try:
        import torch

        dev = checks.device(args.device, torch)
        checks.check_models(args.params, args.dtype, dev, torch)
        if args.out is not None:
            checks.writable_dir(args.out, "--out")
    except UsageError as e:
        parser.error(str(e))
    rows = []
    with progress(len(args.params) * len(WAYS), "model bench") as step:
        for n in args.params:
            results = {}
            for way in WAYS:
                step(f"{checks.count(n)} parameters, {way}")
                results[way] = run_way(way, n, args.device, args.dtype, args.repeat)
            rows += table_rows(results, args.dtype)
    print_table(("params", "way", "seconds", "gpuinit x", "peak GiB", "params GiB", "of ceiling"),
                [(f"{r['params'] / 1e6:.0f}M", r["way"], f"{r['seconds']:.3f}", f"{r['speedup_of_gpuinit']:.2f}",
                  f"{r['peak_bytes'] / 2**30:.2f}", f"{r['param_bytes'] / 2**30:.2f}",
                  f"{r['of_ceiling']:.1%}" if "of_ceiling" in r else "") for r in rows],
                right=("params", "seconds", "gpuinit x", "peak GiB", "params GiB", "of ceiling"))
    device = args.device if args.device == "cpu" else args.device.split(":")[0]
    if args.out is None:
        print(f"not saved: --out DIR writes DIR/model-{device}.json")
        return
    out = Path(args.out) / f"model-{device}.json"
    meta = {"machine": platform.processor() or platform.machine(), "device": args.device, "repeat": args.repeat,
            "date": time.strftime("%Y-%m-%d %H:%M:%S")}
    out.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
