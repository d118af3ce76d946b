"""The command line: demo, info, bench; exit codes and messages."""
import subprocess
import sys


def gpuinit(*args):
    return subprocess.run([sys.executable, "-m", "gpuinit", *args], capture_output=True, text=True, timeout=600,
                          check=False)


def test_demo_small_model():
    r = gpuinit("demo", "--params", "2e6", "--recipe", "gpt2", "--dtype", "bfloat16")
    assert r.returncode == 0, r.stderr
    for text in ("std expected", "std measured", "output.weight", "meta -> ready model", "torch default"):
        assert text in r.stdout
    assert "0.02000" in r.stdout  # gpt2's std, expected and measured rows


def test_demo_bad_options():
    assert gpuinit("demo", "--recipe", "nope").returncode != 0
    r = gpuinit("demo", "--params", "10")
    assert r.returncode != 0 and "at least" in r.stderr
    r = gpuinit("demo", "--params", "1e6", "--backend", "cupy")
    assert r.returncode == 2 and "cupy" in r.stderr


def test_info():
    r = gpuinit("info")
    assert r.returncode == 0 and "backend numpy: available" in r.stdout and "backend triton" in r.stdout


def test_bench_cpu(tmp_path):
    r = gpuinit("bench", "cpu", "--size", "128", "--repeat", "1", "--out", str(tmp_path / "cpu.json"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "cpu.json").exists()
