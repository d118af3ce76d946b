"""gpuinit.fingerprint on the host: the C kernel (kernels/cpu/gpuinit_checksum.c) against the torch reference
(gpuinit.distributed.block_checksum_reference, the path before it and still the one for CUDA), in one process.

- ``--elements`` bfloat16 elements as ``--tensors`` equal tensors; the reference on the first
  ``--reference-elements`` of them (all by default; fewer: its time is scaled up linearly, and says so);
- a built-in ``gpuinit.models.Llama`` and an ``nn.Sequential`` of ``--width`` x ``--width`` Linears (4096), each of
  about ``--elements`` bfloat16 parameters (built on meta, filled by ``gpuinit.init_module``);
- the small-tensor model of bench/host.py (``--layers`` blocks of 12 float32 tensors, width 64): per tensor.

Every fingerprint is checked equal to the reference's. Times: best of ``--repeat`` (the reference: one run); peak
extra RSS: the process's high-water mark above its RSS before the call (reset through /proc/self/clear_refs).

    python bench/fingerprint.py [--elements 1e9] [--tensors 16] [--reference-elements N] [--width 4096]
                                [--layers 167] [--repeat 3] [--out F.md]
"""
import argparse
import json
import os
import platform
import re
import sys
import time

import torch
from gpuinit_bench.small_tensors import small_model
from torch import nn

import gpuinit
from gpuinit import distributed
from gpuinit.backends import cpu_kernel, numpy_backend
from gpuinit.models import Llama, LlamaConfig

HEADER = ("| case | elements | tensors | fingerprint (C kernel) | peak extra RSS | torch reference "
          "| its peak extra RSS | speed-up | equal |\n|---|---|---|---|---|---|---|---|---|")


def reference(module):
    """fingerprint by the torch reference alone (what fingerprint computed before the host kernel)."""
    return {name: int(distributed.block_checksum_reference(p, tuple(p.shape), (0,) * p.dim()).item()) % (1 << 64)
            for name, p in dict(module.named_parameters()).items()}


def _status(key):
    with open("/proc/self/status") as f:
        return int(re.search(rf"{key}:\s+(\d+)", f.read()).group(1)) * 1024


def measure(fn, repeat):
    """(best seconds, peak RSS above the RSS before, in bytes, the result)."""
    best, peak = float("inf"), 0
    for _ in range(repeat):
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # resets VmHWM to the current RSS
        except OSError:
            pass
        before = _status("VmRSS")
        t = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - t)
        peak = max(peak, _status("VmHWM") - before)
    return best, peak, result


def on_cpu(build):
    with torch.device("meta"):
        m = build()
    return gpuinit.init_module(m, seed=0, device="cpu")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--elements", type=float, default=1e9, help="bfloat16 elements of each big case (default 1e9)")
    p.add_argument("--tensors", type=int, default=16, help="tensors of the first case (default 16)")
    p.add_argument("--reference-elements", type=float, default=None, help="the reference's share (default: all)")
    p.add_argument("--width", type=int, default=4096, help="the Sequential's Linear width (default 4096)")
    p.add_argument("--layers", type=int, default=167, help="blocks of the small-tensor model (12 tensors each)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs of the kernel, best taken (default 3)")
    p.add_argument("--out", default=None, help="write the markdown (and a JSON block) there")
    args = p.parse_args(argv)
    n = int(args.elements)
    lines, rows = [], []

    def row(case, elements, tensors, kernel, ref, scaled):
        (t, rss, fp), (rt, rrss, rfp) = kernel, ref
        ok = fp == rfp if not scaled else all(fp[k] == v for k, v in rfp.items())
        rt_full = rt * (elements / scaled if scaled else 1)
        rows.append(dict(case=case, elements=elements, tensors=tensors, kernel_s=t, kernel_peak_extra_bytes=rss,
                         reference_s=rt_full, reference_scaled_from=scaled, reference_peak_extra_bytes=rrss,
                         equal=ok))
        lines.append(f"| {case} | {elements:.3g} | {tensors} | {t:.3g} s ({t / tensors * 1e6:.3g} us/tensor) | "
                     f"{rss / 2**20:.0f} MiB | {rt_full:.3g} s{f' (scaled from {scaled:.3g})' if scaled else ''} | "
                     f"{rrss / 2**20:.0f} MiB | {rt_full / t:.0f}x | {ok} |")
        print(lines[-1], flush=True)

    if cpu_kernel.load() is None:
        sys.exit(f"the host kernel is not in use: {cpu_kernel.why_not()}")
    gpuinit.fingerprint(nn.ParameterList([torch.zeros(1 << 20), torch.zeros(())]))  # warm-up: library, threads
    reference(nn.Linear(2, 2))
    print(HEADER, flush=True)

    big = nn.ParameterList(torch.empty(n // args.tensors, dtype=torch.bfloat16).view(torch.int16).random_()
                           .view(torch.bfloat16) for _ in range(args.tensors))
    kernel = measure(lambda: gpuinit.fingerprint(big), args.repeat)
    share = args.tensors if args.reference_elements is None else max(1, int(args.reference_elements
                                                                            // (n // args.tensors)))
    part = nn.ParameterList(list(big)[:share])
    scaled = share * (n // args.tensors) if share < args.tensors else None
    row(f"{args.tensors} bfloat16 tensors", n // args.tensors * args.tensors, args.tensors, kernel,
        measure(lambda: reference(part), 1), scaled)
    big = part = None  # freed before the next case

    for case, build in [("Llama (gpuinit.models), bfloat16", lambda: Llama(LlamaConfig.with_params(n),
                                                                             dtype=torch.bfloat16)),
                        (f"nn.Sequential of Linear({args.width}, {args.width}), bfloat16", lambda: nn.Sequential(
                            *(nn.Linear(args.width, args.width, dtype=torch.bfloat16)
                              for _ in range(max(1, n // args.width**2)))))]:
        model = on_cpu(build)
        count = sum(q.numel() for q in model.parameters())
        tensors = sum(1 for _ in model.parameters())
        kernel = measure(lambda model=model: gpuinit.fingerprint(model), args.repeat)
        if args.reference_elements is None:
            row(case, count, tensors, kernel, measure(lambda model=model: reference(model), 1), None)
        else:  # the reference only on the first tensors, up to its share of elements
            names, acc = [], 0
            for name, q in model.named_parameters():
                if acc < args.reference_elements:
                    names.append(name)
                    acc += q.numel()
            params = dict(model.named_parameters())
            sub = nn.ParameterList(params[k] for k in names)
            (rt, rrss, rfp) = measure(lambda sub=sub: reference(sub), 1)
            row(case, count, tensors, kernel, (rt, rrss, {k: rfp[str(i)] for i, k in enumerate(names)}), acc)
        model = None

    small = small_model(64, args.layers)
    tensors = sum(1 for _ in small.parameters())
    row(f"small tensors (bench/host.py's model, width 64, {args.layers} blocks), float32",
        sum(q.numel() for q in small.parameters()), tensors, measure(lambda: gpuinit.fingerprint(small),
                                                                       max(5, args.repeat)),
        measure(lambda: reference(small), 3), None)

    meta = dict(command="python bench/fingerprint.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                threads=numpy_backend.num_threads(), cpus=os.cpu_count(), machine=platform.machine(),
                processor=platform.processor(), torch=torch.__version__, python=platform.python_version())
    if args.out:
        with open(args.out, "w") as f:
            f.write(f"# gpuinit.fingerprint on the host\n\n    {meta['command']}\n\n")
            f.write(f"{meta['threads']} threads, {meta['cpus']} CPUs, torch {meta['torch']}.\n\n{HEADER}\n")
            f.write("\n".join(lines) + "\n\n```json\n" + json.dumps(dict(meta=meta, rows=rows), indent=1) + "\n```\n")
    if not all(r["equal"] for r in rows):
        sys.exit("a fingerprint differs from the reference's")


if __name__ == "__main__":
    main()
