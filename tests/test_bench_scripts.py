"""The benchmark scripts run end to end (tiny sizes; the GPU one on Triton's interpreter)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def run(args, tmp_path, **env):
    r = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "out")], capture_output=True, text=True,
                       env={**os.environ, **env}, timeout=600, check=False, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_cpu_bench(tmp_path):
    out = run(["bench/cpu.py", "--size", "256", "--repeat", "1"], tmp_path)
    rows = json.loads((tmp_path / "out").read_text())["rows"]
    assert {r["scheme"] for r in rows} >= {"uniform", "normal", "trunc_normal", "kaiming_uniform", "orthogonal"}
    assert "x torch" in out


def test_gpu_bench_on_the_interpreter(tmp_path):
    pytest.importorskip("triton")
    run(["bench/gpu.py", "--device", "cpu", "--sizes", "2048", "--dtypes", "bfloat16", "--repeat", "1"], tmp_path,
        TRITON_INTERPRET="1")
    (result,) = (tmp_path / "out").glob("gpu-*.json")
    rows = json.loads(result.read_text())["rows"]
    assert {r["scheme"] for r in rows} >= {"fill_ (ceiling)", "uniform", "normal", "trunc_normal", "xavier_normal"}
    assert all(r["gb_s"] > 0 for r in rows)
