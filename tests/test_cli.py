"""The command line: demo, info, bench, explore; every user mistake is one line on stderr and exit status 2."""
import argparse
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gpuinit import cli, cli_checks

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"


def gpuinit(*args, **env):
    return subprocess.run([sys.executable, "-m", "gpuinit", *args], capture_output=True, text=True, timeout=600,
                          check=False, env={**os.environ, **env})


def fails(capsys, *argv, match):
    """Run the command in this process: exit status 2 and one line on stderr that matches ``match``."""
    code = cli.main(list(argv))
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert re.search(match, err), err
    return err


@pytest.fixture
def no_cuda():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here")


def test_demo_small_model():
    r = gpuinit("demo", "--params", "2e6", "--recipe", "gpt2", "--dtype", "bfloat16")
    assert r.returncode == 0, r.stderr
    for text in ("std expected", "std measured", "output.weight", "meta -> ready model", "torch's default init",
                 "a 1-layer", "nearest to 2M"):
        assert text in r.stdout
    assert re.search(r"torch's default init of the same model on cpu: [0-9.]+ s, gpuinit [0-9.]+x (faster|slower)",
                     r.stdout)
    assert "0.02000" in r.stdout  # gpt2's std, expected and measured rows
    assert "0.00000" not in r.stdout  # ones (the norms): no std columns
    assert re.search(r"attention_norm\.weight .* ones .* - .* - .* 1\.0000 .* 1\.0000", r.stdout)


def test_demo_in_process_restores_environment(capsys, monkeypatch):
    monkeypatch.delenv("GPUINIT_BACKEND", raising=False)
    assert cli.main(["demo", "--params", "1e5", "--backend", "numpy", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "a 1-layer" in out and "GPUINIT_BACKEND" not in os.environ


@pytest.mark.parametrize("text,value", [("20M", 20_000_000), ("1.5B", 1_500_000_000), ("1e9", 10**9),
                                        ("100m", 10**8), ("250k", 250_000), ("2.5K", None), ("1_000_000", 10**6),
                                        (" 3 G ", 3 * 10**9), ("100000", 100_000)])
def test_sizes(text, value):
    if value is None:
        with pytest.raises(argparse.ArgumentTypeError, match="at least 1e5"):
            cli_checks.parse_size(text)
    else:
        assert cli_checks.parse_size(text) == value


@pytest.mark.parametrize("text,match", [("abc", "is not a parameter count"), ("inf", "is not a parameter count"),
                                        ("nan", "is not a parameter count"), ("1.2.3", "is not a parameter count"),
                                        ("", "is not a parameter count"), ("20X", "is not a parameter count"),
                                        ("10", "at least 1e5"), ("-5M", "at least 1e5"),
                                        ("1e30", "largest built-in model has 825B parameters")])
def test_nonsense_sizes(capsys, text, match):
    err = fails(capsys, "demo", f"--params={text}", "--device", "cpu", match=match)
    assert "_size" not in err


def test_size_that_does_not_fit_is_refused_before_allocating(capsys, monkeypatch):
    monkeypatch.setattr(cli_checks, "free_bytes", lambda dev, torch: 2 * 10**9)
    err = fails(capsys, "demo", "--params", "1B", "--device", "cpu", match=r"try --params \d")
    assert "968M-parameter model takes 3.9 GB in float32" in err and "2.0 GB free" in err
    hint = re.search(r"try --params (\S+)", err).group(1)
    assert cli_checks.parse_size(hint) * 4 * cli_checks.PEAK_FACTOR <= 2 * 10**9


def test_largest_model_does_not_fit_here(capsys):
    fails(capsys, "demo", "--params", "1e12", "--device", "cpu", match="an 825B-parameter model takes")


@pytest.mark.parametrize("argv,match", [
    (["demo", "--device", "nosuch"], "'nosuch' is not a device"),
    (["demo", "--device", "meta"], "runs on cpu or cuda"),
    (["demo", "--recipe", "nope"], r"invalid choice: 'nope' \(choose from 'torch', .*'lecun'\)"),
    (["demo", "--recipe", "hf"], "recipe 'hf' needs a Hugging Face model; the built-in model is not one"),
    (["demo", "--dtype", "int8"], "invalid choice: 'int8'"),
    (["demo", "--seed", "x"], r"--seed: must be an integer from 0 to 2\*\*64 - 1, got 'x'"),
    (["demo", "--seed", "-1"], r"--seed: .*got '-1'"),
    (["demo", "--seed", str(2**64)], r"--seed: .*got '18446744073709551616'"),
    (["explore", "--out", ""], "--out: must name a directory, got an empty string"),
    (["explore", "--out", "  "], "--out: must name a directory"),
    (["nosuchcommand"], "invalid choice"),
])
def test_bad_options(capsys, argv, match):
    fails(capsys, *argv, match=match)


def test_cuda_without_a_device(capsys, no_cuda):
    fails(capsys, "demo", "--device", "cuda", match="no CUDA device here.*use --device cpu")
    fails(capsys, "bench", "gpu", match="no CUDA device here.*TRITON_INTERPRET=1")
    fails(capsys, "bench", "model", "--device", "cuda", match="no CUDA device here")


def test_backend_that_cannot_take_the_device(capsys, monkeypatch, no_cuda):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    fails(capsys, "demo", "--params", "1e5", "--backend", "triton", "--device", "cpu", match="backend 'triton'")
    fails(capsys, "demo", "--params", "1e5", "--backend", "cupy", "--device", "cpu", match="backend 'cupy'")
    fails(capsys, "bench", "gpu", "--device", "cpu", match="Triton's interpreter")


@pytest.mark.parametrize("var,value", [("GPUINIT_NUM_THREADS", "abc"), ("GPUINIT_NUM_THREADS", "-3"),
                                       ("GPUINIT_CPU_KERNEL", "maybe"), ("GPUINIT_BACKEND", "xyz")])
def test_bad_environment(capsys, monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    fails(capsys, "demo", "--params", "1e5", "--device", "cpu", match=f"gpuinit demo: .*{var}")


def test_missing_optional_dependency(capsys, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    fails(capsys, "explore", "--out", str(tmp_path / "x"), "--quick", match=r"pip install 'gpuinit\[plot\]'")
    monkeypatch.setitem(sys.modules, "torch", None)
    fails(capsys, "demo", match=r"pip install 'gpuinit\[torch\]'")


@pytest.mark.parametrize("out,match", [("/proc/gpuinit-x", "cannot write there"),
                                       ("{file}/sub", "cannot write there"),
                                       ("{file}", "is a file, not a directory")])
def test_unwritable_out(capsys, tmp_path, out, match):
    pytest.importorskip("matplotlib")
    file = tmp_path / "file"
    file.write_text("")
    out = out.format(file=file)
    fails(capsys, "explore", "--out", out, "--quick", match=match)
    fails(capsys, "bench", "model", "--out", out, match=match)
    fails(capsys, "bench", "cpu", "--out", out + "/", match=match)


def test_permission_denied_is_one_line(capsys, monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(cli_checks.tempfile, "TemporaryFile", refuse)
    fails(capsys, "explore", "--out", str(tmp_path), match="cannot write there \\(Permission denied\\)")
    fails(capsys, "bench", "cpu", "--out", str(tmp_path / "cpu.json"), match="cannot write there")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes everywhere")
def test_permission_denied(capsys, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    fails(capsys, "explore", "--out", str(locked / "out"), match="Permission denied")
    fails(capsys, "bench", "cpu", "--out", str(locked / "cpu.json"), match="Permission denied")


def test_info():
    r = gpuinit("info")
    assert r.returncode == 0 and "backend numpy: available" in r.stdout and "backend triton" in r.stdout


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


@pytest.mark.parametrize("n,word", [(1, "a"), (8, "an"), (11, "an"), (12, "a"), (18, "an"), (80, "an"),
                                    (83, "an"), (100, "a"), (110, "a"), (800, "an"), (11_000, "an"), (1_800, "a"),
                                    (825_000_000_000, "an")])
def test_article(n, word):
    assert cli_checks.article(n) == word


def test_option_mistakes_load_no_torch():
    code = ("import sys, gpuinit.cli; code = gpuinit.cli.main(['demo', '--recipe', 'nope']); "
            "print(code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2 False" and "--recipe" in out.stderr


def test_info_reports_a_bad_environment():
    r = gpuinit("info", GPUINIT_NUM_THREADS="abc")
    assert r.returncode == 0 and "environment: $GPUINIT_NUM_THREADS='abc'" in r.stdout


def test_seed_bounds_are_accepted():
    assert cli_checks.seed("0") == 0 and cli_checks.seed(str(2**64 - 1)) == 2**64 - 1


def test_bad_demo_options_print_nothing_else(capsys):
    """A bad seed or recipe is refused before the model's header line."""
    for argv in (["--seed", "-1"], ["--seed", str(2**64)], ["--recipe", "hf"]):
        fails(capsys, "demo", "--params", "1e5", "--device", "cpu", *argv, match="gpuinit demo: argument --")
        assert capsys.readouterr().out == ""


def one_line(r, match):
    """A subprocess that failed as a user mistake: exit status 2, one line on stderr matching ``match``."""
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert re.search(match, r.stderr), r.stderr


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
])
def test_bench_options_checked_before_the_script(capsys, tmp_path, argv, match):
    fails(capsys, "bench", *[a.format(tmp=tmp_path) for a in argv], match=match)


@pytest.mark.parametrize("argv,match", [
    (["cpu", "--rep", "0", "--size", "64"], r"argument --repeat: must be an integer >= 1, got '0' \(see gpuinit bench cpu"),
    (["cpu", "--sise", "3"], r"unrecognized arguments: --sise 3 \(see gpuinit bench cpu --help\)"),
    (["model", "--repeat", "1", "--nosuch"], "unrecognized arguments: --nosuch"),
])
def test_bench_script_usage_errors_are_one_line(argv, match):
    """Options that only the script knows: its argparse error, without the usage lines."""
    one_line(gpuinit("bench", *argv), f"^gpuinit bench: {match}")


def test_bench_kernels_is_a_choice(capsys):
    if (ROOT / "bench" / "kernels.py").exists():
        fails(capsys, "bench", "kernels", match="the following arguments are required: --out")
    else:
        fails(capsys, "bench", "kernels", match="kernels.py is not here")


def test_bench_kernels_missing_script(capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(cli, "BENCH", tmp_path)
    fails(capsys, "bench", "kernels", "--out", str(tmp_path / "k"), match="kernels.py is not here")


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
