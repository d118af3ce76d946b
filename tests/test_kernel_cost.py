"""bench/kernel_cost.py, the static cost harness: it compiles the GPU kernels for sm_90 without a GPU, counts the
instructions on the path a thread takes, and checks them against the targets."""
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers import bench_package

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ("alu", "fp32", "imad", "mufu", "conv", "memory", "control", "uniform", "other")
FIELDS = {"backend", "kernel", "kind", "dtype", "path", "branches", "arch", "variant", "instructions_per_element",
          "instructions_per_element_launched", "per_class", "elements_per_thread", "registers", "shared_memory",
          "binding_resource", "modeled_elements_per_s", "modeled_hbm_fraction", "sass", "wasted_lane_fraction",
          "bytes_per_element", "method", "compiler", "fp_fusion", "per_class_launched"}


parse, sass_walk = bench_package("sass.parse"), bench_package("sass.walk")


def sass(body, name="k"):
    """A disassembly in nvdisasm's layout from (label or (guard, op, operands)) lines."""
    lines, addr = [f"//--------------------- .text.{name}        --------------------------", f"{name}:"], 0
    for item in body:
        if isinstance(item, str):
            lines.append(f"{item}:")
            continue
        guard, op, operands = item
        lines.append(f"        /*{addr:04x}*/ {('@' + guard) if guard else '':>8} {op} {operands} ;")
        addr += 16
    return "\n".join(lines) + "\n"


def synthetic(ept, prologue=7, per_element=(("FMUL", "R1, R1, R2"), ("IADD3", "R3, R3, 0x1, RZ"),
                                             ("MUFU.RSQ", "R4, R4"), ("STG.E", "desc[UR4][R2.64], R1"))):
    body = [(None, "S2R", "R0, SR_TID.X")] * prologue
    body += [(None, op, args) for _ in range(ept) for op, args in per_element]
    return sass(body + [(None, "EXIT", "")])


def test_difference_quotient_is_exact_on_a_synthetic_kernel():
    counts = {}
    for ept in (4, 8):
        sec = parse.parse_sass(synthetic(ept))["k"]
        walk = sass_walk.walk(sec, "k")
        counts[ept] = sass_walk.class_counts(sec, walk.path)
    per = sass_walk.difference_quotient(counts[4], 4, counts[8], 8)
    assert per == {**dict.fromkeys(CLASSES, 0.0), "fp32": 1.0, "alu": 1.0, "mufu": 1.0, "memory": 1.0}
    total = sum(counts[8].values())
    assert total - 8 * sum(per.values()) == 7 + 1  # the fixed prologue and EXIT, exactly


def test_walk_resolves_arguments_slow_paths_and_loops():
    text = sass([
        (None, "LDC", "R0, c[0x0][0x228]"),
        (None, "ISETP.NE.AND", "P0, PT, R0, 0x1, PT"),  # kind == 1 (normal) goes to .L_normal
        ("!P0", "BRA", "`(.L_normal)"),
        (None, "FADD", "R1, R1, R1"),
        (None, "BRA", "`(.L_join)"),
        ".L_normal",
        (None, "ISETP.GT.U32.AND", "P1, PT, R2, 0x727fffff, PT"),
        ("!P1", "BRA", "`(.L_fast)"),  # the sqrt slow path is a call
        (None, "MOV", "R8, 0x1"),
        (None, "CALL.REL.NOINC", "`($slow)"),
        (None, "BRA", "`(.L_join)"),
        ".L_fast",
        (None, "FMUL.FTZ", "R3, R2, R4"),
        (None, "FFMA", "R3, R3, R3, R2"),
        ".L_join",
        (None, "IADD3", "R5, R5, 0x1, RZ"),
        (None, "ISETP.LT.AND", "P2, PT, R5, R6, PT"),
        ("P2", "BRA", "`(.L_join)"),  # a loop: one iteration counted
        (None, "EXIT", ""),
        "$slow",
        (None, "MUFU.RSQ", "R3, R2"),
        (None, "RET.REL.NODEC", "R8 `(k)"),
    ])
    sec = parse.parse_sass(text)["k"]
    params = {0x228 + i: b for i, b in enumerate((1).to_bytes(4, "little"))}
    walk = sass_walk.walk(sec, "k", params)
    ops = [sec.ins[j].op for j in walk.path]
    assert "FADD" not in ops and "CALL.REL.NOINC" not in ops and "FFMA" in ops
    assert walk.decisions["constant"] == 1 and walk.decisions["slow_path"] == 1 and walk.decisions["loop"] == 1
    start, end = walk.loop
    assert [sec.ins[j].op for j in walk.path[start:end]] == ["IADD3", "ISETP.LT.AND", "BRA"]
    other = sass_walk.walk(sec, "k", {0x228 + i: b for i, b in enumerate((0).to_bytes(4, "little"))})
    assert "FADD" in [sec.ins[j].op for j in other.path]


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    """The harness on what the targets need: sm_90; uniform, normal, trunc_normal with one erfinv branch;
    float32 and bfloat16; every path; the store-only reference. Run once for all pytest-xdist workers."""
    from filelock import FileLock

    cost = bench_package("kernel_cost.harness")
    gone = cost.missing()
    if "triton" in gone and "cuda" in gone:
        pytest.skip(f"no kernel can be compiled here: {gone}")
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, shared by its workers
    out = root / "kernel-cost"
    with FileLock(str(root / "kernel-cost.lock")):
        if not (out / "kernel-cost.json").exists():
            args = ["--archs", "sm_90", "--kinds", "uniform,normal,trunc_normal", "--branches", "1",
                    "--dtypes", "float32,bfloat16", "--backends", "triton,cuda,reference", "--references", "store"]
            env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
            r = subprocess.run([sys.executable, "bench/kernel_cost.py", "--out", str(out), *args], cwd=ROOT,
                               capture_output=True, text=True, timeout=900, check=False, env=env)
            assert r.returncode == 0, r.stderr[-3000:]
    table = json.loads((out / "kernel-cost.json").read_text())
    return SimpleNamespace(cost=cost, gone=gone, out=out, table=table)


def test_rows_schema_and_plausible_counts(harness):
    rows, gone = harness.table["rows"], harness.gone
    assert rows and harness.table["meta"]["toolchain"] and not harness.table["meta"]["errors"]
    for r in rows:
        assert FIELDS <= set(r), FIELDS - set(r)
        assert r["arch"] == "sm_90" and r["backend"] in ("triton", "cuda", "reference")
        assert (r["branches"] is None) == (r["kind"] != "trunc_normal")
        assert set(r["per_class"]) == set(CLASSES)
        assert abs(sum(r["per_class"].values()) - r["instructions_per_element"]) < 0.1
        assert 0 < r["instructions_per_element"] < 2000 and 0 < r["instructions_per_element_launched"] < 2000
        assert r["registers"] > 0 and r["elements_per_thread"] >= 4
        assert r["binding_resource"] in ("issue", "fp32", "int", "mufu", "memory")
        assert 0 < r["modeled_hbm_fraction"] <= 1.0001 and r["modeled_elements_per_s"] > 0
        assert (harness.out / "sass" / r["sass"]).stat().st_size > 0
    by = {(r["backend"], r["kind"], r["dtype"], r["path"]): r for r in rows}
    if "triton" not in gone:
        for dtype in ("float32", "bfloat16"):
            store = by["reference", "store", dtype, "contiguous"]
            assert store["binding_resource"] == "memory" and store["modeled_hbm_fraction"] == 1
            assert store["instructions_per_element"] < 8
            normal = by["triton", "normal", dtype, "contiguous"]
            launched = normal["per_class_launched"]
            assert launched["mufu"] > 0 and launched["imad"] >= 4  # sqrt.rn; Philox: 20 multiplies per 4 values
            assert normal["fp_fusion"] is False
            assert store["instructions_per_element"] < by["triton", "uniform", dtype, "contiguous"][
                "instructions_per_element"] < normal["instructions_per_element"]


def test_cuda_rows(harness):
    if "cuda" in harness.gone:
        pytest.skip(f"CUDA C part: {harness.gone['cuda']}")
    rows = [r for r in harness.table["rows"] if r["backend"] == "cuda"]
    assert {r["path"] for r in rows} == {"contiguous", "strided", "column"}
    for r in rows:
        assert r["branch_decisions"].get("loop") == 1  # one grid-stride loop, walked twice
        assert r["fp_fusion"] is False and r["elements_per_thread"] == 4
    by = {(r["kind"], r["dtype"], r["path"]): r["instructions_per_element"] for r in rows}
    assert by["uniform", "float32", "contiguous"] < by["normal", "float32", "contiguous"] < by[
        "trunc_normal", "float32", "contiguous"] < by["trunc_normal", "float32", "strided"]


def test_kernels_meet_targets(harness):
    assert harness.cost.violations(harness.table["rows"]) == []
