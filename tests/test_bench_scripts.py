"""The benchmark scripts run end to end (tiny sizes; the GPU one on Triton's interpreter)."""
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers import bench_package

ROOT = Path(__file__).resolve().parent.parent


def run(args, tmp_path, **env):
    r = subprocess.run([sys.executable, *args, "--out", str(tmp_path / "out")], capture_output=True, text=True,
                       env={**os.environ, **env}, timeout=600, check=False, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout


def test_cpu_bench(tmp_path):
    out = run(["bench/cpu.py", "--size", "256", "--repeat", "1"], tmp_path)
    rows = json.loads((tmp_path / "out" / "cpu.json").read_text())["rows"]
    assert {r["scheme"] for r in rows} >= {"uniform", "normal", "trunc_normal", "kaiming_uniform", "orthogonal"}
    assert "x torch" in out


def test_host_bench(tmp_path):
    out = run(["bench/host.py", "--layers", "2", "--width", "8", "--llama", "5M", "--repeat", "1", "--calls", "5"],
              tmp_path)
    data = json.loads((tmp_path / "out" / "host-cpu.json").read_text())
    assert data["small_model"]["tensors"] == 24 and "torch.nn.init.normal_(tensor)" in data["per_call_s"]
    assert set(data["small_model"]["seconds"]) >= {"gpuinit.own_init in place", "torch reset_parameters in place",
                                                   "gpuinit.fingerprint", "meta -> gpuinit.init_module(device=...)"}
    assert all(s > 0 for s in [*data["per_call_s"].values(), *data["small_model"]["seconds"].values()])
    assert "x reset_parameters" in out and "x meta + reset_parameters" in out  # what each ratio is against
    assert "its own" in out  # the ratios, Hugging Face's configs included
    triton = data["triton_launch_stubbed"]  # the Triton backend's host side, its launches stubbed
    group, each, module = triton["seconds"]
    assert "fill_group" in group and "fill(job)" in each and "init_module" in module
    assert triton["tensors"] == 24 and triton["jobs"] == {"elementwise": 16, "other": 8}  # 8 LayerNorm constants
    assert triton["launches"] == {group: 1, each: 16, module: 1}  # one grouped launch; one per elementwise tensor
    reset = data["small_model"]["seconds"]["torch reset_parameters in place"] / 24
    for name, s in triton["seconds"].items():
        assert s > 0 and triton["us_per_tensor"][name] == pytest.approx(s / 24 * 1e6)
        assert triton["x_reset_parameters"][name] == pytest.approx(s / 24 / reset)
    assert "triton fill_group(jobs), launch stubbed" in out and "1 Triton launch " in out
    llama = data["llama_launch_stubbed"]  # a Llama of about 5M parameters, meta -> ready, its launches stubbed
    assert 2.5e6 < llama["params"] < 1e7 and llama["tensors"] > 4 and llama["launches"] >= 1
    assert set(llama["seconds"]) == {"meta -> init_module(device=..., backend='triton'), launches stubbed",
                                     "meta -> to_empty(device=...) alone"}
    assert all(s > 0 for s in llama["seconds"].values()) and "ms more than to_empty" in out


KINDS = {"uniform", "normal", "trunc_normal", "kaiming_uniform"}
LAYOUTS = {"block at a random offset", "t.T view", "column block", "grouped launch"}
ROW_KEYS = {"case", "kind", "dtype", "size", "impl", "elements_per_s", "pct_store_ceiling", "pct_hbm", "ms",
            "peak_extra_bytes", "ok", "note", "value"}


def test_gpu_bench_on_the_interpreter(tmp_path):
    """Every case runs; the on-device check passes bit for bit; the GPU-only parts are skipped, not failed."""
    pytest.importorskip("triton")
    out = run(["bench/gpu.py", "--device", "cpu", "--sizes", "2048", "--dtypes", "bfloat16", "--repeat", "1"],
              tmp_path, TRITON_INTERPRET="1")
    (result,) = (tmp_path / "out").glob("gpu-*.json")
    assert result.with_suffix(".md").read_text().startswith("# gpuinit on ")
    data = json.loads(result.read_text())
    rows = data["rows"]
    assert data["meta"]["complete"] and "## correctness" in out
    assert all(set(r) == ROW_KEYS for r in rows)
    assert [r for r in rows if r["ok"] is False] == []
    assert {r["case"] for r in rows} == {"cold_start", "correctness", "sweep", "transposed", "column shard",
                                         "small tensors", "orthogonal", "model"}
    checks = [r for r in rows if r["case"] == "correctness"]
    assert {(r["kind"], r["impl"]) for r in checks} == {(k, lay) for k in KINDS for lay in LAYOUTS}
    assert all(r["ok"] is True and r["value"] == 0 and r["size"] > 0 for r in checks)
    sweep = [r for r in rows if r["case"] == "sweep" and r["ok"]]
    assert {r["impl"] for r in sweep} >= {"torch fill_(1.0)", "triton store kernel", "gpuinit", "triton tl.rand4x",
                                          "triton tl.randn4x", "torch.nn.init.trunc_normal_", "tensor.normal_()"}
    assert {r["kind"] for r in sweep if r["impl"] == "gpuinit"} == KINDS
    assert all(r["elements_per_s"] > 0 and r["pct_store_ceiling"] > 0 and r["size"] == 2048 for r in sweep)
    assert all(r["value"] == 0 for r in sweep if r["impl"] == "gpuinit")  # sampled bits vs the reference
    skipped = {r["case"]: r["note"] for r in rows if r["ok"] is None}
    assert skipped["model"] == "skipped: no CUDA"
    assert len([r for r in rows if r["case"] == "small tensors" and r["ok"]]) == 6


def test_gpu_bench_records_a_failure_and_goes_on():
    pytest.importorskip("triton")
    torch = pytest.importorskip("torch")
    cases = bench_package("gpu.cases")
    b = cases.Bench(torch.device("cpu"), [torch.float32], [64], 1, cases.SCALES["cpu"], 3.35e12, 0,
                    np.random.default_rng(0))

    def boom():
        raise RuntimeError("out of memory\ndetails")

    bad = b.measure("sweep", "x", boom, kind="uniform", dtype=torch.float32, size=64)
    assert bad["ok"] is False and bad["note"] == "RuntimeError: out of memory" and bad["ms"] is None
    good = b.measure("sweep", "y", lambda: None, kind="store", size=64, nbytes=256)
    assert good["ok"] is True and good["ms"] > 0 and good["pct_hbm"] > 0
    assert cases.apply_ceiling([bad, good])[1]["pct_store_ceiling"] == 100
    device = bench_package("gpu.device")
    assert device.nominal_hbm("NVIDIA H100 80GB HBM3") == 3.35e12 and device.nominal_hbm("NVIDIA H200") == 4.8e12
    assert device.nominal_hbm("NVIDIA A10G") is None


COMPILE = """
import sys
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
sys.path.insert(0, "bench")
from gpuinit_bench.gpu import cases
scalars = {k: "fp32" for k in ("scale", "shift", "p_lo", "p_span", "lo", "hi")}
for dtype in ("*fp32", "*bf16"):
    for kind in (0, 1, 2):
        sig = {"out_ptr": dtype, "n": "i32", "seed": "i32", **scalars, "KIND": "constexpr", "BLOCK": "constexpr"}
        src = ASTSource(fn=cases.philox_kernel, signature=sig, constexprs={"KIND": kind, "BLOCK": 1024})
        assert triton.compile(src, target=GPUTarget("cuda", 90, 32)).asm["cubin"]
    sig = {"out_ptr": dtype, "n": "i32", "BLOCK": "constexpr"}
    src = ASTSource(fn=cases.store_kernel, signature=sig, constexprs={"BLOCK": 4096})
    assert triton.compile(src, target=GPUTarget("cuda", 90, 32)).asm["cubin"]
print("ok")
"""


def test_gpu_bench_peer_kernels_compile_for_sm90():
    """The bench's own Triton kernels (the erfinv one cannot run on the interpreter) compile for a GPU."""
    pytest.importorskip("triton")
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", COMPILE], capture_output=True, text=True, env=env, timeout=600,
                       check=False, cwd=ROOT)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-3000:]


def usage_error(args, match, **env):
    """A script run directly: argparse's usage, one error line that matches ``match``, exit status 2."""
    r = subprocess.run([sys.executable, *args], capture_output=True, text=True, env={**os.environ, **env},
                       timeout=600, check=False, cwd=ROOT)
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr and r.stderr.startswith("usage:"), r.stderr
    assert re.search(match, r.stderr.strip().splitlines()[-1]), r.stderr


@pytest.mark.parametrize("args,match", [
    (["--repeat", "0", "--size", "64"], "argument --repeat: must be an integer >= 1, got '0'"),
    (["--size", "-1"], "argument --size: must be an integer >= 1, got '-1'"),
    (["--threads", "0", "--size", "64", "--repeat", "1"], "argument --threads: must be an integer from 1 to 1024"),
    (["--out", ""], "argument --out: must name a directory, got an empty string"),
    (["--size", "200000", "--repeat", "1"], r"--size 200000: about \d+ buffers .* GB free: try --size \d+ or less"),
])
def test_cpu_bench_arguments(args, match):
    usage_error(["bench/cpu.py", *args], match)


@pytest.mark.parametrize("args,match", [
    (["--params", "1e5", "--repeat", "0"], "argument --repeat: must be an integer >= 1, got '0'"),
    (["--params", "20X"], "argument --params: '20X' is not a parameter count"),
    (["--params", "20M", "1e13"], "--params 10T: the largest built-in model has 825B parameters"),
    (["--dtype", "int8"], "argument --dtype: invalid choice: 'int8'"),
    (["--device", "nosuch"], "--device 'nosuch' is not a device"),
    (["--out", ""], "argument --out: must name a directory, got an empty string"),
])
def test_model_bench_arguments(args, match):
    usage_error(["bench/model.py", *args], match)


def test_model_bench_takes_sizes_like_the_demo(tmp_path):
    out = run(["bench/model.py", "--params", "0.2M", "--repeat", "1"], tmp_path)
    rows = json.loads((tmp_path / "out" / "model-cpu.json").read_text())["rows"]
    assert {r["way"] for r in rows} == {"gpuinit", "torch default", "meta + to_empty + reset_parameters"}
    assert "gpuinit" in out


def test_cpu_bench_out_is_a_json_file_or_a_directory(tmp_path):
    (tmp_path / "old.json").write_text("{}")
    run(["bench/cpu.py", "--size", "8", "--repeat", "1"], tmp_path)  # --out tmp_path/out: a new directory
    assert json.loads((tmp_path / "out" / "cpu.json").read_text())["meta"]["size"] == 8
    r = subprocess.run([sys.executable, "bench/cpu.py", "--size", "8", "--repeat", "1", "--out",
                        str(tmp_path / "old.json")], capture_output=True, text=True, timeout=600, check=False, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "old.json").read_text())["meta"]["size"] == 8


@pytest.mark.parametrize("args, message", [(["--sizes", "0"], "--sizes"), (["--repeat", "0"], "--repeat"),
                                           (["--model-params", "-1"], "--model-params"),
                                           (["--seed", "-1"], "--seed"), (["--device", "bogus:x"], "--device")])
def test_gpu_bench_refuses_bad_arguments(args, message):
    r = subprocess.run([sys.executable, "bench/gpu.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 2 and message in r.stderr, r.stderr[-2000:]


def test_fingerprint_bench(tmp_path):
    """bench/fingerprint.py: every case's fingerprint equal to the torch reference's, the markdown with its command."""
    (tmp_path / "out").mkdir()
    r = subprocess.run([sys.executable, "bench/fingerprint.py", "--elements", "2e5", "--tensors", "2", "--width", "64",
                        "--layers", "2", "--repeat", "1", "--out", str(tmp_path / "out" / "fp.md")],
                       capture_output=True, text=True, timeout=600, check=False, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-3000:]
    text = (tmp_path / "out" / "fp.md").read_text()
    rows = json.loads(text.split("```json\n")[1].split("```")[0])["rows"]
    assert len(rows) == 4 and all(row["equal"] for row in rows)
    assert "python bench/fingerprint.py --elements 2e5" in text


class _Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize("tty", [True, False])
def test_tables_line_up_at_any_width(monkeypatch, tty):
    """On an 80-column terminal a wide table's cells wrap within their columns (no line longer, nothing cut);
    piped, each row is one line at the table's own width."""
    console = bench_package("console")
    note = "torch: 'geqrf_cpu' not implemented for 'BFloat16' " * 3
    rows = [("bfloat16", "orthogonal", "7", "0.004", note), ("float32", "a scheme with a long name", "1234", None, "")]
    out = _Terminal() if tty else io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setenv("COLUMNS", "80")
    console.print_table(("dtype", "scheme", "gpuinit Me/s", "of fill", "note"), rows, title="t", right=("of fill",))
    lines = re.sub(r"\x1b\[[0-9;]*m", "", out.getvalue()).splitlines()
    words = " ".join(lines).split()
    assert all(w in words for row in rows for cell in row if cell for w in str(cell).split() if len(w) < 10)
    assert "-" in words and "1234" in words  # None as '-', numbers whole
    if tty:
        assert all(len(line) <= 80 for line in lines) and len(lines) > 8
    else:
        body = [line for line in lines if "orthogonal" in line or "float32" in line]
        assert len(body) == 2 and note.strip() in body[0] and lines[0] == "t"
