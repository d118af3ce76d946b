"""Static cost of the GPU kernels: instructions per element, per class, and a throughput model, without a GPU.

Compiles every kernel variant the backends launch, for sm_90 (H100) and sm_80 (A100), as the launchers do:
the Triton kernels through Triton's own argument specialization (the launcher's arguments and constexprs,
``enable_fp_fusion=False``), the CUDA C kernels through NVRTC with the CuPy backend's options (nvcc with
the same options where NVRTC is absent). Disassembles them, walks the path one thread takes
(bench/gpuinit_bench/sass/) and writes DIR/kernel-cost.json, DIR/kernel-cost.md and DIR/sass/<variant>.sass.
The variants, the harness and the targets are in bench/gpuinit_bench/kernel_cost/; docs/performance.md explains
the counts, the model and its limits.

    python bench/kernel_cost.py --out bench/results/kernels
    python bench/kernel_cost.py --out /tmp/k --archs sm_90 --kinds normal --dtypes float32 --paths contiguous
"""
import argparse
import os
import sys

if __name__ == "__main__":
    os.environ.pop("TRITON_INTERPRET", None)  # compile for GPUs, not for Triton's interpreter
from gpuinit_bench.kernel_cost.harness import TARGET_ARCH, run, violations
from gpuinit_bench.kernel_cost.variants import ARCHS, BACKENDS, DTYPES, PATHS, REFERENCES


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
