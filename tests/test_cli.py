"""The command line: demo, info, explore, and the checks every command shares; every user mistake is one line
on stderr and exit status 2 (the bench command: test_cli_bench.py; the checks themselves, one by one:
test_cli_checks.py)."""
import os
import re
import subprocess
import sys

import pytest
from cli_helpers import fails, gpuinit

from gpuinit import cli, cli_checks


@pytest.fixture
def no_cuda():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is here")


def test_demo_small_model():
    r = gpuinit("demo", "--params", "2e6", "--recipe", "gpt2", "--dtype", "bfloat16")
    assert r.returncode == 0, r.stderr
    for text in ("std expected", "std measured", "output.weight", "meta -> ready model", "torch's default init",
                 "a 1-layer", "nearest to 2M", "host C kernel"):
        assert text in r.stdout
    assert re.search(r"meta -> ready model in [0-9.]+ s \(best of 3; median [0-9.]+ s\), [0-9.]+ GB/s; first call "
                     r"[0-9.]+ s", r.stdout)  # --repeat's default
    assert re.search(r"torch's default init of the same model on cpu: [0-9.]+ s \(best of 3; median [0-9.]+ s\); "
                     r"first call [0-9.]+ s; gpuinit [0-9.]+x (faster|slower)", r.stdout)
    assert "0.02000" in r.stdout  # gpt2's std, expected and measured rows
    assert "0.00000" not in r.stdout  # ones (the norms): no std columns
    assert re.search(r"attention_norm\.weight .* ones .* - .* - .* 1\.0000 .* 1\.0000", r.stdout)


def test_demo_in_process_leaves_no_global_state(capsys, monkeypatch):
    """--backend and --dtype go to init_module and the model, not to the environment or torch's defaults."""
    torch = pytest.importorskip("torch")
    monkeypatch.delenv("GPUINIT_BACKEND", raising=False)

    def ours():
        return {k: v for k, v in os.environ.items() if k.startswith(("GPUINIT_", "TRITON_"))}

    environ, default_dtype = ours(), torch.get_default_dtype()
    assert cli.main(["demo", "--params", "1e5", "--backend", "numpy", "--device", "cpu", "--dtype", "bfloat16"]) == 0
    out = capsys.readouterr().out
    assert "a 1-layer" in out and "bfloat16" in out
    assert ours() == environ and torch.get_default_dtype() == default_dtype


NUMBER = r"([0-9]+\.?[0-9]*(?:e[-+][0-9]+)?)"


def test_demo_times_a_first_call_then_repeats(capsys, monkeypatch):
    """A first run of gpuinit and of torch each, timed apart, then --repeat timed runs; the report's numbers are
    those runs' times: best <= median, GB/s the model's bytes over the best, all within the command's time."""
    pytest.importorskip("torch")
    import time

    import gpuinit
    from gpuinit import models

    runs = {"gpuinit": 0, "torch": 0}

    def spy(real, key, count=lambda *a, **k: True):
        def call(*args, **kwargs):
            runs[key] += count(*args, **kwargs)
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(gpuinit, "init_module", spy(gpuinit.init_module, "gpuinit"))
    monkeypatch.setattr(models, "Llama", spy(models.Llama, "torch", lambda *a, device=None, **k: device != "meta"))
    t0 = time.perf_counter()
    assert cli.main(["demo", "--params", "1e5", "--device", "cpu", "--repeat", "4"]) == 0
    elapsed = time.perf_counter() - t0
    out = " ".join(capsys.readouterr().out.split())
    assert runs == {"gpuinit": 5, "torch": 5}
    ours = re.search(rf"meta -> ready model in {NUMBER} s \(best of 4; median {NUMBER} s\), {NUMBER} GB/s; "
                     rf"first call {NUMBER} s", out)
    theirs = re.search(rf"on cpu: {NUMBER} s \(best of 4; median {NUMBER} s\); first call {NUMBER} s; "
                       rf"gpuinit {NUMBER}x (faster|slower)", out)
    kernel = re.search(rf"host C kernel (ready in {NUMBER} s|not in use)", out)
    assert ours and theirs and kernel, out
    best, median, gbs, first = map(float, ours.groups())
    t_best, t_median, t_first, ratio = map(float, theirs.groups()[:4])
    assert 0 < best <= median and 0 < t_best <= t_median and first > 0 and t_first > 0
    assert first + 4 * best + t_first + 4 * t_best < elapsed
    cfg = cli_checks.model_config(10**5, models.LlamaConfig)
    assert gbs == pytest.approx(cfg.n_params * 4 / 1e9 / best, rel=0.015)
    faster = theirs.group(5) == "faster"
    exact = t_best / best if faster else best / t_best  # of the times as printed (3 digits: 0.5% each)
    assert abs(ratio - exact) <= 0.05 + 0.011 * exact + 1e-9  # the ratio as printed: to 0.1


def test_demo_backend_reaches_every_fill(capsys, monkeypatch):
    """--backend goes to init_module and to the table's refills as backend=."""
    pytest.importorskip("torch")
    import gpuinit
    from gpuinit import api

    seen = []

    def spy(real):
        def call(*args, **kwargs):
            seen.append(kwargs.get("backend"))
            return real(*args, **kwargs)

        return call

    monkeypatch.setattr(gpuinit, "init_module", spy(gpuinit.init_module))
    monkeypatch.setattr(api, "init_", spy(api.init_))
    assert cli.main(["demo", "--params", "1e5", "--device", "cpu", "--backend", "numpy"]) == 0
    assert len(seen) > 2 and set(seen) == {"numpy"}


def test_version():
    from gpuinit import __version__

    r = gpuinit("--version")
    assert r.returncode == 0 and r.stdout.strip() == f"gpuinit {__version__}"


def test_demo_recipes_come_from_the_registry():
    from gpuinit.model_init import OWN_RECIPES, RECIPES

    assert set(cli._demo_recipes()) == (set(RECIPES) | set(OWN_RECIPES)) - set(cli.NOT_FOR_DEMO)
    assert set(cli.NOT_FOR_DEMO) <= set(RECIPES) | set(OWN_RECIPES)


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
    (["demo", "--repeat", "0"], r"--repeat: must be an integer >= 1, got '0'"),
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
    fails(capsys, "explore", "--out", str(tmp_path / "x"), "--quick", match=r"pip install 'matplotlib>=3\.7'")
    monkeypatch.setitem(sys.modules, "torch", None)
    fails(capsys, "demo", match=r"pip install 'torch>=2\.3'")


@pytest.mark.parametrize("out,match", [("/proc/gpuinit-x", "cannot write there"),
                                       ("{file}/sub", "cannot write there"),
                                       ("{file}", "is a file, not a directory"),
                                       ("{file}" + "x" * 300, r"cannot write there \(File name too long\)"),
                                       ("{file}" + "x" * 300 + "/sub", r"cannot write there \(File name too long\)")])
def test_unwritable_out(capsys, tmp_path, out, match):
    pytest.importorskip("matplotlib")
    file = tmp_path / "file"
    file.write_text("")
    out = out.format(file=file)
    fails(capsys, "explore", "--out", out, "--quick", match=match)
    fails(capsys, "bench", "model", "--out", out, match=match)
    fails(capsys, "bench", "cpu", "--out", out + "/", match=match)


def test_results_file_name_too_long(capsys, tmp_path):
    fails(capsys, "bench", "cpu", "--out", str(tmp_path / ("x" * 300 + ".json")), match="File name too long")


def test_output_that_fails_midway_is_one_line(capsys, monkeypatch, tmp_path):
    """A disk that fills while explore writes: one line naming the file, not a traceback."""
    pytest.importorskip("matplotlib")
    import gpuinit.explore

    def full(out, **kwargs):
        raise OSError(28, "No space left on device", str(tmp_path / "report.md"))

    monkeypatch.setattr(gpuinit.explore, "run", full)
    fails(capsys, "explore", "--out", str(tmp_path), match=rf"^gpuinit explore: No space left on device: {tmp_path}")


PRINTING = [["info"], ["--help"], ["--version"], ["bench", "kernels", "--help"],
            ["demo", "--params", "1e5", "--repeat", "1", "--device", "cpu"]]


@pytest.mark.parametrize("argv", PRINTING, ids=" ".join)
def test_a_closed_pipe_ends_quietly(argv):
    """gpuinit ... | head: no reader left; the command stops without a traceback, with SIGPIPE's status."""
    proc = subprocess.Popen([sys.executable, "-m", "gpuinit", *argv], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    proc.stdout.close()  # before the command writes anything
    err = proc.stderr.read()
    assert proc.wait(timeout=600) == 141 and err == ""


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full here")
@pytest.mark.parametrize("argv", PRINTING, ids=" ".join)
def test_a_full_device_is_one_line(argv):
    with open("/dev/full", "w") as full:
        r = subprocess.run([sys.executable, "-m", "gpuinit", *argv], stdout=full, stderr=subprocess.PIPE, text=True,
                           timeout=600, check=False)
    assert r.returncode == 2, r.stderr
    assert re.fullmatch(r"gpuinit( \w+)?: cannot write the output \(No space left on device\)\n", r.stderr), r.stderr


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


def test_option_mistakes_load_no_torch():
    code = ("import sys, gpuinit.cli; code = gpuinit.cli.main(['demo', '--recipe', 'nope']); "
            "print(code, 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "2 False" and "--recipe" in out.stderr


def test_info_reports_a_bad_environment():
    r = gpuinit("info", GPUINIT_NUM_THREADS="abc")
    assert r.returncode == 0 and "environment: $GPUINIT_NUM_THREADS='abc'" in r.stdout


def test_bad_demo_options_print_nothing_else(capsys):
    """A bad seed or recipe is refused before the model's header line."""
    for argv in (["--seed", "-1"], ["--seed", str(2**64)], ["--recipe", "hf"]):
        fails(capsys, "demo", "--params", "1e5", "--device", "cpu", *argv, match="gpuinit demo: argument --")
        assert capsys.readouterr().out == ""
