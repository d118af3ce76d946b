"""gpuinit bench: each script's options checked before it starts (one line on stderr, exit status 2), results
written only where asked, free memory as the checks count it."""
import json
import os
import re
import subprocess
import sys

import pytest
from cli_helpers import RESULTS, ROOT, fails, gpuinit, one_line

from gpuinit import cli, cli_checks


def test_bench_cpu_writes_only_where_asked(tmp_path):
    committed = {p: p.read_bytes() for p in RESULTS.glob("*") if p.is_file()}
    r = subprocess.run([sys.executable, "-m", "gpuinit", "bench", "cpu", "--size", "128", "--repeat", "1"],
                       capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "not saved" in r.stdout and list(tmp_path.iterdir()) == []
    assert {p: p.read_bytes() for p in RESULTS.glob("*") if p.is_file()} == committed
    r = gpuinit("bench", "cpu", "--size", "128", "--repeat", "1", "--out", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "cpu.json").read_text())["meta"]["size"] == 128


@pytest.mark.parametrize("argv,match", [
    (["cpu", "--repeat", "0", "--size", "64"], "--repeat: must be an integer >= 1, got '0'"),
    (["cpu", "--size", "-1"], "--size: must be an integer >= 1, got '-1'"),
    (["cpu", "--size", "x"], "--size: must be an integer"),
    (["cpu", "--threads", "0", "--size", "64", "--repeat", "1"], "--threads: must be an integer from 1 to 1024"),
    (["model", "--params", "1e5", "--repeat", "0"], "--repeat: must be an integer >= 1"),
    (["model", "--params", "10"], "--params: the model must have at least 1e5 parameters"),
    (["model", "--params", "1e5", "--dtype", "int8"], "--dtype int8: use float32, bfloat16, float16 or float64"),
    (["kernels", "--out", "{tmp}", "--jobs", "0"], "--jobs: must be an integer >= 1"),
    (["cpu", "--out", ""], "--out: must name a directory, got an empty string"),
    (["cpu", "--out="], "--out: must name a directory, got an empty string"),
    (["model", "--out", ""], "--out: must name a directory, got an empty string"),
    (["kernels", "--out", ""], "--out: must name a directory, got an empty string"),
    (["explore", "--repeat", "0"], "--repeat: must be an integer >= 1"),
    (["explore", "--busy", "65"], "--busy: must be an integer from 0 to 64"),
    (["explore", "--out", ""], "--out: must name a directory, got an empty string"),
])
def test_bench_options_checked_before_the_script(capsys, tmp_path, argv, match):
    fails(capsys, "bench", *[a.format(tmp=tmp_path) for a in argv], match=match)


@pytest.mark.parametrize("argv,match", [
    (["cpu", "--rep", "0", "--size", "64"],
     r"argument --repeat: must be an integer >= 1, got '0' \(see gpuinit bench cpu"),
    (["cpu", "--sise", "3"], r"unrecognized arguments: --sise 3 \(see gpuinit bench cpu --help\)"),
    (["model", "--repeat", "1", "--nosuch"], "unrecognized arguments: --nosuch"),
])
def test_bench_script_usage_errors_are_one_line(argv, match):
    """Options that only the script knows: its argparse error, without the usage lines."""
    one_line(gpuinit("bench", *argv), f"^gpuinit bench: {match}")


def test_bench_kernels_is_a_choice(capsys):
    assert (ROOT / "bench" / "kernel_cost.py").exists()
    fails(capsys, "bench", "kernels", match="the following arguments are required: --out")


def test_bench_kernels_missing_script(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "BENCH", tmp_path)
    fails(capsys, "bench", "kernels", "--out", str(tmp_path / "k"), match="kernel_cost.py is not here")


def test_bench_model_takes_the_demo_sizes(capsys, monkeypatch):
    monkeypatch.setattr(cli_checks, "free_bytes", lambda dev, torch: 10**9)
    fails(capsys, "bench", "model", "--params", "20M", "1.5B", match=r"a 1\.\d+B-parameter model takes")
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "model.py"), "--params", "20X"], capture_output=True,
                       text=True, check=False)
    assert r.returncode == 2 and "--params: '20X' is not a parameter count" in r.stderr


def test_bench_model_script_parses_sizes():
    """bench/model.py reads --params as the demo does (20M, 1.5B, 1e9) and refuses a model beyond free memory
    before building any."""
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "model.py"), "--params", "20M", "1e13"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.strip().splitlines()[-1].endswith("--params 10T: the largest built-in model has 825B parameters")
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "model.py"), "--params", "20M", "--repeat", "0"],
                       capture_output=True, text=True, check=False)
    assert r.returncode == 2 and "--repeat: must be an integer >= 1" in r.stderr


def test_bench_cpu_size_beyond_free_memory():
    r = gpuinit("bench", "cpu", "--size", "200000", "--repeat", "1")
    one_line(r, r"--size 200000: about \d+ buffers of 200000x200000 float32 values need [\d,.]+ GB, and this "
                r"machine has [\d,.]+ GB free: try --size \d+ or less")
    hint = int(re.search(r"try --size (\d+)", r.stderr).group(1))
    assert 1000 < hint < 200000


@pytest.mark.skipif(os.name != "posix", reason="ulimit -v")
def test_address_space_limit_counts_as_free_memory():
    code = ("import resource, torch; from gpuinit import cli_checks as c; "
            "resource.setrlimit(resource.RLIMIT_AS, (8 << 30, resource.RLIM_INFINITY)); "
            "print(c.free_bytes(torch.device('cpu'), torch))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert 0 < int(r.stdout) < 8 << 30


@pytest.fixture
def interpreter(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.mark.parametrize("argv,match", [
    (["--sizes", "-5"], "--sizes: must be an integer >= 1, got '-5'"),
    (["--sizes", "65536", "0"], "--sizes: must be an integer >= 1, got '0'"),
    (["--repeat", "0"], "--repeat: must be an integer >= 1"),
    (["--seed", "-1"], "--seed: must be an integer from 0"),
    (["--model-params", "20M"], "--model-params: 0 .* got '20M'"),
    (["--dtypes", "float32", "int8"], "--dtypes int8: use float32"),
    (["--sizes", "10000000000000"], (r"--sizes 10000000000000: 3 buffers of 10,000,000,000,000 elements of 4 bytes "
                                     r"need 120,000\.0 GB, and this machine has [\d,.]+ GB free: try --sizes \d+")),
    (["--sizes", "10000000000000", "--dtypes", "float64"], "elements of 8 bytes need 240,000.0 GB"),
    (["--out", ""], "--out: must name a directory, got an empty string"),
])
def test_bench_gpu_options_checked_before_the_script(capsys, interpreter, argv, match):
    fails(capsys, "bench", "gpu", "--device", "cpu", *argv, match=match)


def test_bench_gpu_hint_fits(capsys, interpreter, monkeypatch):
    monkeypatch.setattr(cli_checks, "free_bytes", lambda dev, torch: 10**9)
    err = fails(capsys, "bench", "gpu", "--device", "cpu", "--sizes", str(2**27), match=r"try --sizes \d+")
    hint = int(re.search(r"try --sizes (\d+)", err).group(1))
    assert hint == 2**26 and 3 * 4 * hint <= 10**9


@pytest.mark.parametrize("name,kind", [("cpu.json", "file"), ("{file}.json", "file"), ("results", "dir"),
                                       ("{dir}", "dir"), ("{dir}.json", "dir")])
def test_bench_cpu_results_file(tmp_path, name, kind):
    """bench cpu --out: a path ending in .json is the file (an existing one is replaced); anything else is a
    directory, DIR/cpu.json."""
    (tmp_path / "old.json").write_text("{}")
    (tmp_path / "d.json").mkdir()
    (tmp_path / "d").mkdir()
    name = name.format(file=tmp_path / "old", dir=tmp_path / "d")
    out = cli_checks.results_file(str(tmp_path / name), "cpu.json")
    assert out == (tmp_path / name if kind == "file" else tmp_path / name / "cpu.json")
    assert out.parent.is_dir()


@pytest.mark.parametrize("existing", ["notes.txt", "data"])
def test_out_refuses_an_existing_file(capsys, tmp_path, existing):
    pytest.importorskip("matplotlib")
    file = tmp_path / existing
    file.write_text("keep me")
    fails(capsys, "bench", "cpu", "--out", str(file), match="is a file, not a directory .*must end in .json")
    fails(capsys, "bench", "model", "--out", str(file), match="is a file, not a directory")
    fails(capsys, "explore", "--out", str(file), "--quick", match="is a file, not a directory")
    assert file.read_text() == "keep me"


def test_bench_cpu_script_refuses_an_existing_file(tmp_path):
    file = tmp_path / "notes.txt"
    file.write_text("keep me")
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "cpu.py"), "--size", "8", "--repeat", "1", "--out",
                        str(file)], capture_output=True, text=True, check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "must end in .json" in r.stderr
    assert file.read_text() == "keep me"


class _FakeCuda:
    def __init__(self, initialized):
        self.initialized = initialized

    def is_initialized(self):
        return self.initialized

    def mem_get_info(self, dev):
        return 777, 1000


def test_cuda_free_memory_asked_elsewhere(monkeypatch):
    """A process without a CUDA context asks a short-lived one (and so holds none while the script runs)."""
    torch = pytest.importorskip("torch")
    calls = []

    def run(argv, **kwargs):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0, stdout="123456789\n", stderr="")

    monkeypatch.setattr(cli_checks.subprocess, "run", run)
    fake = type("FakeTorch", (), {"cuda": _FakeCuda(False)})
    assert cli_checks.free_bytes(torch.device("cuda:1"), fake) == 123456789
    assert calls and calls[0][-1] == "cuda:1"
    fake.cuda = _FakeCuda(True)
    assert cli_checks.free_bytes(torch.device("cuda:1"), fake) == 777 and len(calls) == 1
