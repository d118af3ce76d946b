"""Static cost of the GPU kernels: instructions per element, per class, and a throughput model, without a GPU.

Compiles every kernel variant the backends launch, for sm_90 (H100) and sm_80 (A100), as the launchers do:
the Triton kernels through Triton's own argument specialization (the launcher's arguments and constexprs,
``enable_fp_fusion=False``), the CUDA C kernels through NVRTC with the CuPy backend's options (nvcc with
the same options where NVRTC is absent). Disassembles them, walks the path one thread takes
(bench/sass_cost.py) and writes DIR/kernel-cost.json, DIR/kernel-cost.md and DIR/sass/<variant>.sass.
docs/performance.md explains the counts, the model and its limits.

    python bench/kernel_cost.py --out bench/results/kernels
    python bench/kernel_cost.py --out /tmp/k --archs sm_90 --kinds normal --dtypes float32 --paths contiguous
"""
import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
if __name__ == "__main__":
    os.environ.pop("TRITON_INTERPRET", None)  # compile for GPUs, not for Triton's interpreter
import sass_cost as sc
from kernels_cuda import compile_cuda, cuda_plan, cuda_stats, curand_include
from kernels_report import make_row, markdown, source, toolchain
from kernels_triton import triton, triton_stats
from kernels_variants import ARCHS, BACKENDS, DTYPES, NUMEL, PATHS, REFERENCES, RUN_LEN, is_cuda, plan, variant_name

# Targets on H100 (sm_90). Each selects rows (of backends triton and cuda unless it names one) and bounds a
# metric: absolutely ("max"), against the twin row ("max_ratio"; the row with the same kind, dtype, branches and
# arch and with "twin" changed), or by the model's binding resource ("bound").
THRESHOLDS = [
    {"name": "uniform float32 is memory-bound", "backend": "triton", "kind": "uniform", "dtype": "float32",
     "path": "contiguous", "bound": "memory"},
    {"name": "uniform bfloat16", "backend": "triton", "kind": "uniform", "dtype": "bfloat16", "path": "contiguous",
     "metric": "instructions_per_element", "max": 30},
    {"name": "normal float32", "backend": "triton", "kind": "normal", "dtype": "float32", "path": "contiguous",
     "metric": "instructions_per_element", "max": 62},
    {"name": "normal bfloat16", "backend": "triton", "kind": "normal", "dtype": "bfloat16", "path": "contiguous",
     "metric": "instructions_per_element", "max": 65},
    {"name": "trunc_normal, 1 erfinv branch, float32", "backend": "triton", "kind": "trunc_normal", "branches": 1,
     "dtype": "float32", "path": "contiguous", "metric": "instructions_per_element", "max": 95},
    {"name": "trunc_normal, 1 erfinv branch, bfloat16", "backend": "triton", "kind": "trunc_normal", "branches": 1,
     "dtype": "bfloat16", "path": "contiguous", "metric": "instructions_per_element", "max": 98},
    {"name": "strided within 2x its contiguous twin", "path": "strided", "twin": {"path": "contiguous"},
     "metric": "instructions_per_element", "max_ratio": 2.0},
    {"name": "grouped within 1.15x the single-tensor kernel", "path": "grouped", "twin": {"path": "contiguous"},
     "metric": "instructions_per_element_launched", "max_ratio": 1.15},
    {"name": f"column shard of run length {RUN_LEN} wastes <= 10% of lanes", "path": "column",
     "metric": "wasted_lane_fraction", "max": 0.10},
    {"name": "CUDA within 10% of its Triton twin", "backend": "cuda", "twin": {"backend": "triton"},
     "metric": "instructions_per_element", "max_ratio": 1.10},
]
TARGET_ARCH = "sm_90"
_KEYS = ("backend", "kind", "dtype", "path", "branches")


def violations(rows):
    """The targets (THRESHOLDS, on TARGET_ARCH) that ``rows`` miss, a line each; checks whose rows or twins
    are absent are skipped."""
    out = []
    for t in THRESHOLDS:
        sel = {k: t[k] for k in _KEYS if k in t}
        for r in rows:
            if r["arch"] != TARGET_ARCH or any(r[k] != v for k, v in sel.items()) or (
                    "backend" not in sel and r["backend"] not in ("triton", "cuda")):
                continue
            label = f"{t['name']}: {r['variant']}"
            if "bound" in t:
                if r["binding_resource"] != t["bound"]:
                    out.append(f"{label} is {r['binding_resource']}-bound, not {t['bound']}-bound")
            elif "max" in t:
                if r[t["metric"]] > t["max"]:
                    out.append(f"{label}: {t['metric']} {r[t['metric']]:.3g} > {t['max']}")
            else:
                want = {**{k: r[k] for k in (*_KEYS, "arch")}, **t["twin"]}
                twin = next((x for x in rows if all(x[k] == v for k, v in want.items())), None)
                if twin is not None and r[t["metric"]] > t["max_ratio"] * twin[t["metric"]]:
                    ratio = r[t["metric"]] / twin[t["metric"]]
                    out.append(f"{label}: {t['metric']} {ratio:.3f}x {twin['variant']} > {t['max_ratio']}x")
    return out


def _task(v, module=None):
    stats = cuda_stats(v, module) if module is not None else triton_stats(v)
    sass, name, counts = stats.pop("_sass")
    note = stats.pop("sass_note", "column 1: executions on the counted path (one thread)")
    return make_row(v, stats), sc.annotate(sass, name, counts, variant_name(v), note)


def missing(curand=None):
    """{part: why it cannot run here} for the Triton part, the CUDA C part and the curand references."""
    out = {}
    if triton is None:
        out["triton"] = "triton is not installed"
    elif sc.find_tool("ptxas") is None:
        out["triton"] = "ptxas not found"
    if sc.find_tool("nvdisasm") is None or sc.find_tool("cuobjdump") is None:
        out["triton"] = out["cuda"] = out["curand"] = "nvdisasm / cuobjdump not found"
    if sc.nvrtc_version() is None and sc.nvcc_version() is None:
        out["cuda"] = "neither NVRTC nor nvcc found"
    if sc.nvcc_version() is None:
        out.setdefault("curand", "nvcc not found")
    elif curand is None:
        out.setdefault("curand", "curand_kernel.h not found (--curand-include DIR)")
    return out


def run(out, archs=tuple(ARCHS), kinds=("uniform", "normal", "trunc_normal"), dtypes=tuple(DTYPES),
        paths=tuple(PATHS), backends=BACKENDS, branches=(1, 2, 3), references=REFERENCES, jobs=None, curand=None,
        sass=True, label=None, log=print):
    """Count every planned variant that this machine can compile; write the tables; return the rows and the
    variants that failed."""
    out, t0 = Path(out), time.time()
    (out / "sass" if sass else out).mkdir(parents=True, exist_ok=True)
    curand = curand_include(curand)
    gone = missing(curand)
    def part(v):
        return ("curand" if v["kernel"].startswith("curand") else "cuda") if is_cuda(v) else "triton"
    variants = [v for v in plan(archs, kinds, dtypes, paths, backends, branches, references) if part(v) not in gone]
    rows = []
    with ProcessPoolExecutor(jobs or os.cpu_count()) as pool:
        modules, names = {}, {}
        for v in variants:
            if v["kernel"] == "gi_fill":
                names.setdefault(ARCHS[v["arch"]], set()).add(cuda_plan(v)["name"])
        for v in variants:
            if is_cuda(v):
                key = ("gi_fill" if v["kernel"] == "gi_fill" else "curand", ARCHS[v["arch"]])
                if key not in modules:
                    modules[key] = pool.submit(compile_cuda, key[0], key[1], sorted(names.get(key[1], ())), curand)
        tasks, errors, written = [(v, pool.submit(_task, v)) for v in variants if not is_cuda(v)], [], {}
        for key, module in modules.items():
            try:
                m = module.result()
            except Exception as e:  # noqa: BLE001 - reported with the results
                errors.append(f"{key[0]} for sm_{key[1]}: {type(e).__name__}: {str(e)[:1000]}")
                continue
            tasks += [(v, pool.submit(_task, v, m)) for v in variants if is_cuda(v) and ARCHS[v["arch"]] == key[1]
                      and (v["kernel"] == "gi_fill") == (key[0] == "gi_fill")]
        for v, job in tasks:
            try:
                row, text = job.result()
            except Exception as e:  # noqa: BLE001 - reported with the results
                errors.append(f"{variant_name(v)}: {type(e).__name__}: {str(e)[:1000]}")
                log(errors[-1])
                continue
            if sass:  # variants with the same code and path (CUDA trunc_normal draws) share a file
                body = text.split("\n", 1)[1]
                row["sass"] = written.setdefault(body, row["sass"])
                if row["sass"] == f"{row['variant']}.sass":
                    (out / "sass" / row["sass"]).write_text(text)
            else:
                row["sass"] = None
            rows.append(row)
            log(f"{row['variant']:<64} {row['instructions_per_element']:7.1f} /element steady, "
                f"{row['instructions_per_element_launched']:7.1f} launched, {row['registers']:3d} registers, "
                f"{row['binding_resource']}-bound")
    found = violations(rows)
    meta = {"seconds": round(time.time() - t0, 1), "toolchain": toolchain(), "source": source(), "label": label,
            "gpus": sc.GPUS,
            "numel": NUMEL,
            "run_len": RUN_LEN, "target_arch": TARGET_ARCH, "thresholds": THRESHOLDS,
            "skipped": [f"{k}: {why}" for k, why in gone.items()], "errors": errors}
    table = {"meta": meta, "rows": rows, "violations": found}
    (out / "kernel-cost.json").write_text(json.dumps(table, indent=1) + "\n")
    (out / "kernel-cost.md").write_text(markdown(rows, meta, found))
    return rows, errors


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
