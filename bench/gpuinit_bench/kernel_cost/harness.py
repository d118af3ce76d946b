"""The harness of bench/kernel_cost.py: compile every planned variant in a pool of processes, count it, write
the tables, and check the rows against the targets on H100 (THRESHOLDS)."""
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from ..sass import tools
from ..sass.throughput import GPUS
from .cuda_variants import compile_cuda, cuda_plan, cuda_stats, curand_include
from .report import make_row, markdown, source, toolchain
from .triton_variants import triton, triton_stats
from .variants import ARCHS, BACKENDS, DTYPES, NUMEL, PATHS, REFERENCES, RUN_LEN, is_cuda, plan, variant_name

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
    return make_row(v, stats), tools.annotate(sass, name, counts, variant_name(v), note)


def missing(curand=None):
    """{part: why it cannot run here} for the Triton part, the CUDA C part and the curand references."""
    out = {}
    if triton is None:
        out["triton"] = "triton is not installed"
    elif tools.find_tool("ptxas") is None:
        out["triton"] = "ptxas not found"
    if tools.find_tool("nvdisasm") is None or tools.find_tool("cuobjdump") is None:
        out["triton"] = out["cuda"] = out["curand"] = "nvdisasm / cuobjdump not found"
    if tools.nvrtc_version() is None and tools.nvcc_version() is None:
        out["cuda"] = "neither NVRTC nor nvcc found"
    if tools.nvcc_version() is None:
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
            "gpus": GPUS,
            "numel": NUMEL,
            "run_len": RUN_LEN, "target_arch": TARGET_ARCH, "thresholds": THRESHOLDS,
            "skipped": [f"{k}: {why}" for k, why in gone.items()], "errors": errors}
    table = {"meta": meta, "rows": rows, "violations": found}
    (out / "kernel-cost.json").write_text(json.dumps(table, indent=1) + "\n")
    (out / "kernel-cost.md").write_text(markdown(rows, meta, found))
    return rows, errors
