"""The command as a wheel installs it: every command that ``gpuinit --help`` lists runs outside the checkout.

The wheel's Python files are what setup.py's build_py writes (the package, its kernels' sources, the benchmark
scripts under gpuinit/bench); the test builds that tree (no compiler: the host kernel computes with NumPy alone)
and runs ``python -m gpuinit`` from another folder with it alone on the path."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    site = tmp_path_factory.mktemp("site")
    r = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "-d", str(site)], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    return site


def commands(help_text):
    """The commands that ``gpuinit --help`` lists."""
    return set(re.search(r"\{([a-z,]+)\}", help_text)[1].split(","))


def gpuinit(site, *args):
    env = {**os.environ, "PYTHONPATH": str(site), "GPUINIT_CPU_KERNEL": "0"}
    return subprocess.run([sys.executable, "-m", "gpuinit", *args], capture_output=True, text=True, timeout=600,
                          check=False, cwd=site.parent, env=env)


def test_the_tree_is_the_wheels(site):
    code = "import gpuinit, gpuinit.kernels; print(gpuinit.__file__); print(gpuinit.kernels.__path__[0])"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=site.parent, check=True,
                       env={**os.environ, "PYTHONPATH": str(site)})
    assert r.stdout.split() == [str(site / "gpuinit" / "__init__.py"), str(site / "gpuinit" / "kernels")]
    assert {p.name for p in (site / "gpuinit" / "bench").glob("*.py")} == {
        "cpu.py", "gpu.py", "model.py", "host.py", "kernel_cost.py", "explore.py"}


def test_every_listed_command_runs(site, tmp_path):
    pytest.importorskip("torch")
    pytest.importorskip("matplotlib")
    listed = gpuinit(site, "--help")
    assert listed.returncode == 0 and commands(listed.stdout) >= {"demo", "info", "explore", "bench"}
    assert gpuinit(site, "info").returncode == 0
    r = gpuinit(site, "demo", "--params", "1e5", "--repeat", "1")
    assert r.returncode == 0 and "meta -> ready model" in r.stdout, r.stderr[-3000:]
    r = gpuinit(site, "bench", "cpu", "--size", "8", "--repeat", "1", "--out", str(tmp_path / "b"))
    assert r.returncode == 0 and "x torch" in r.stdout and (tmp_path / "b" / "cpu.json").is_file(), r.stderr[-3000:]
    r = gpuinit(site, "explore", "--quick", "--out", str(tmp_path / "e"))
    assert r.returncode == 0 and (tmp_path / "e" / "report.md").is_file(), r.stderr[-3000:]


def test_without_the_benchmarks_bench_is_not_listed(site, tmp_path):
    bare = tmp_path / "site"
    shutil.copytree(site / "gpuinit", bare / "gpuinit", ignore=shutil.ignore_patterns("bench"))
    listed = gpuinit(bare, "--help")
    assert listed.returncode == 0 and commands(listed.stdout) == commands(gpuinit(site, "--help").stdout) - {"bench"}
    assert not [line for line in listed.stdout.splitlines() if line.split()[:1] == ["bench"]]
    r = gpuinit(bare, "bench", "cpu")
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "holds no benchmarks: they come with gpuinit's source tree (bench/)" in r.stderr
