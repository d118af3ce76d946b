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
    (["demo", "--recipe", "nope"], r"invalid choice: 'nope' \(choose from .*'hf'"),
    (["demo", "--dtype", "int8"], "invalid choice: 'int8'"),
    (["demo", "--seed", "x"], "invalid int value"),
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
    committed = {p: p.read_bytes() for p in RESULTS.glob("*")}
    r = subprocess.run([sys.executable, "-m", "gpuinit", "bench", "cpu", "--size", "128", "--repeat", "1"],
                       capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "not saved" in r.stdout and list(tmp_path.iterdir()) == []
    assert {p: p.read_bytes() for p in RESULTS.glob("*")} == committed
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
