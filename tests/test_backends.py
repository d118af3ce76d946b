"""Dispatch and imports: nothing heavy is imported until an array of its library arrives."""
import subprocess
import sys

import numpy as np
import pytest

import gpuinit
from gpuinit import backends, config
from gpuinit.errors import ConfigError, UnknownBackendError


def test_import_does_not_load_torch_triton_cupy():
    code = ("import sys, numpy as np, gpuinit, gpuinit.initializers; "
            "gpuinit.init_(np.empty((4, 4), np.float32), 'he_normal', seed=0); "
            "gpuinit.initializers.HeNormal(seed=0)((3, 3)); "
            "print(sorted(m for m in ('torch', 'triton', 'cupy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_selection_and_overrides(monkeypatch):
    import torch

    assert backends.select(np.empty(3)).NAME == "numpy"
    assert backends.select(torch.empty(3)).NAME == "numpy"
    assert "numpy" in gpuinit.available_backends()
    monkeypatch.setenv("GPUINIT_BACKEND", "cupy")
    with pytest.raises(gpuinit.BackendUnavailableError, match="cupy"):
        gpuinit.init_(np.empty(3), "normal", seed=0)
    monkeypatch.delenv("GPUINIT_BACKEND")
    with pytest.raises(UnknownBackendError, match="unknown backend 'nosuch'"):
        gpuinit.init_(np.empty(3), "normal", seed=0, backend="nosuch")


def test_cuda_tensors_go_to_triton():
    assert backends.default_name("torch-cuda") == "triton" and backends.default_name("cupy") == "cupy"
    assert backends.default_name("torch-cpu") == "numpy"


def sentinel():
    return np.arange(12, dtype=np.float32).reshape(3, 4) + 0.5


@pytest.mark.parametrize("name", ["opencl", "", "num py", 3])
def test_unknown_backend_argument_is_a_value_error(name):
    x = sentinel()
    with pytest.raises(ValueError, match=r"unknown backend .*\['cupy', 'numpy', 'triton'\]") as e:
        gpuinit.init_(x, "normal", seed=0, backend=name)
    assert isinstance(e.value, UnknownBackendError) and not isinstance(e.value, gpuinit.BackendUnavailableError)
    assert np.array_equal(x, sentinel())


def test_known_backend_that_cannot_run_is_unavailable(monkeypatch):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    with pytest.raises(gpuinit.BackendUnavailableError):
        gpuinit.init_(np.empty(3), "normal", seed=0, backend="cupy")


@pytest.mark.parametrize("var,value,match", [
    ("GPUINIT_BACKEND", "xyz", r"GPUINIT_BACKEND.*one of \['cupy', 'numpy', 'triton'\]"),
    ("GPUINIT_BACKEND", "opencl", "unknown backend 'opencl' in \\$GPUINIT_BACKEND"),
    ("GPUINIT_NUM_THREADS", "abc", r"GPUINIT_NUM_THREADS='abc'.*positive integer"),
    ("GPUINIT_NUM_THREADS", "-3", r"GPUINIT_NUM_THREADS='-3'.*positive integer"),
    ("GPUINIT_NUM_THREADS", "1.5", r"GPUINIT_NUM_THREADS.*0 or unset"),
    ("GPUINIT_CPU_KERNEL", "maybe", r"GPUINIT_CPU_KERNEL='maybe'.*1 or 0"),
    ("GPUINIT_CPU_KERNEL", "2", r"GPUINIT_CPU_KERNEL.*true/false"),
])
def test_bad_environment_variables_raise_before_writing(monkeypatch, var, value, match):
    import torch

    monkeypatch.setenv(var, value)
    for backend in (None, "numpy"):
        x = sentinel()
        with pytest.raises(ConfigError if var != "GPUINIT_BACKEND" else UnknownBackendError, match=match):
            gpuinit.init_(x, "he_normal", seed=0, backend=backend)
        assert np.array_equal(x, sentinel())
    layer = torch.nn.Linear(4, 3)
    before = layer.weight.detach().clone()
    with pytest.raises(ValueError, match=var):
        gpuinit.init_module(layer, seed=0)
    assert torch.equal(layer.weight, before)


@pytest.mark.parametrize("var,value", [("GPUINIT_BACKEND", "NumPy"), ("GPUINIT_BACKEND", ""),
                                       ("GPUINIT_NUM_THREADS", "2"), ("GPUINIT_NUM_THREADS", " 0 "),
                                       ("GPUINIT_CPU_KERNEL", "off"), ("GPUINIT_CPU_KERNEL", "TRUE")])
def test_good_environment_variables(monkeypatch, var, value):
    monkeypatch.setenv(var, value)
    x = gpuinit.init_(np.empty((64, 32), np.float32), "he_normal", seed=0)
    monkeypatch.delenv(var)
    assert np.array_equal(x, gpuinit.init_(np.empty((64, 32), np.float32), "he_normal", seed=0))


def test_config_values(monkeypatch):
    monkeypatch.delenv("GPUINIT_CPU_KERNEL", raising=False)
    assert config.flag("GPUINIT_CPU_KERNEL", default=True) is True
    monkeypatch.setenv("GPUINIT_CPU_KERNEL", "No")
    assert config.flag("GPUINIT_CPU_KERNEL", default=True) is False
    monkeypatch.setenv("GPUINIT_NUM_THREADS", "3")
    assert config.num_threads() == 3 and backends.load("numpy").num_threads() == 3
    monkeypatch.setenv("GPUINIT_NUM_THREADS", "0")
    assert config.num_threads() >= 1


def test_every_backend_meets_the_contract():
    import importlib

    from gpuinit.backends import _ALL
    from gpuinit.backends.contract import Backend, validate

    for name, path in _ALL.items():
        module = importlib.import_module(path)
        assert validate(module, name) is module
        assert isinstance(module, Backend), name


def test_a_module_that_breaks_the_contract_is_refused():
    import types

    from gpuinit.backends.contract import validate

    broken = types.ModuleType("broken")
    broken.NAME, broken.INSTALL = "broken", "nothing"
    broken.available = broken.accepts = broken.check = broken.fill = lambda *a: None
    with pytest.raises(TypeError, match="fill_group"):
        validate(broken, "broken")
    broken.fill_group = lambda items: None
    with pytest.raises(TypeError, match="registry name"):
        validate(broken, "other")


def test_init_module_backend_applies_to_every_fill(monkeypatch):
    import torch

    from gpuinit import jobs

    seen, real = [], jobs.run
    def run(work, *a, **k):
        seen.extend(j.backend.NAME for j in work)
        return real(work, *a, **k)

    monkeypatch.setattr(jobs, "run", run)
    with torch.device("meta"):
        m = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8))
    gpuinit.init_module(m, seed=0, device="cpu", backend="staged")
    assert len(seen) >= 2 and set(seen) == {"staged"}
    ref = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.BatchNorm1d(8))
    gpuinit.init_module(ref, seed=0)
    assert gpuinit.fingerprint(ref) == gpuinit.fingerprint(m)
    with pytest.raises(gpuinit.UnknownBackendError):
        gpuinit.init_module(torch.nn.Linear(2, 2), seed=0, backend="nope")
