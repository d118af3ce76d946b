"""gpuinit/backends/__init__.py, the registry: its names, load, using() and select (backend=, else using(), else
$GPUINIT_BACKEND, else the array's type); nothing heavy is imported until an array of its library arrives."""
import subprocess
import sys

import numpy as np
import pytest

import gpuinit
from gpuinit import backends
from gpuinit.errors import ConfigError, UnknownBackendError


def test_import_does_not_load_torch_triton_cupy_jax_keras_ml_dtypes():
    code = ("import sys, numpy as np, gpuinit, gpuinit.initializers; "
            "gpuinit.init_(np.empty((4, 4), np.float32), 'he_normal', seed=0); "
            "gpuinit.initializers.HeNormal(seed=0)((3, 3)); "
            "print(sorted(m for m in ('torch', 'triton', 'cupy', 'jax', 'keras', 'ml_dtypes') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_jax_array_is_refused_with_the_functional_form_named():
    """jax.Arrays are immutable: refused before any backend is chosen (a CUDA one would pass as DLPack), the
    message naming gpuinit.jax.init."""
    import jax.numpy as jnp

    for backend in (None, "numpy", "cupy"):
        with pytest.raises(gpuinit.InitError, match=r"jax\.Array is immutable.*gpuinit\.jax\.init\(array, scheme"):
            backends.select(jnp.zeros((2, 3)), backend)


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


def test_names_are_the_backends_a_user_names():
    assert backends.names() == ["numpy", "triton", "cupy"]
    assert "staged" not in backends.names()  # a fallback: backend= may name it, $GPUINIT_BACKEND may not
    assert backends.load("staged").NAME == "staged"


def test_load():
    numpy_backend = backends.load("numpy")
    assert numpy_backend.NAME == "numpy" and numpy_backend is backends.load("numpy")
    for name in ("NumPy", " numpy", None, 1, "cpu"):
        with pytest.raises(UnknownBackendError, match=r"unknown backend .*\['cupy', 'numpy', 'triton'\], and "
                                                      r"\['staged'\] for torch tensors"):
            backends.load(name)


def test_load_says_what_to_install(monkeypatch):
    cupy_backend = pytest.importorskip("gpuinit.backends.cupy_backend")
    monkeypatch.setattr(cupy_backend, "available", lambda: "no CUDA device")
    with pytest.raises(gpuinit.BackendUnavailableError, match=r"backend 'cupy' is unavailable: no CUDA device; "
                                                              r"install CuPy"):
        backends.load("cupy")
    assert "cupy" not in gpuinit.available_backends()
    assert "numpy" in gpuinit.available_backends() and "staged" in gpuinit.available_backends()


@pytest.mark.parametrize("make,kind", [(lambda t: np.empty(2), "numpy"), (lambda t: t.empty(2), "torch-cpu"),
                                       (lambda t: t.empty(2, device="meta"), "torch-meta"),
                                       (lambda t: np.float32(1.0), None), (lambda t: [1.0], None)])
def test_array_kind(make, kind):
    import torch

    x = make(torch)
    if kind is None:
        with pytest.raises(TypeError, match="gpuinit fills numpy arrays, torch tensors and cupy arrays, got"):
            backends.array_kind(x)
    else:
        assert backends.array_kind(x) == kind


def test_array_kind_of_a_dlpack_cuda_array():
    class Foreign:
        def __init__(self, device_type):
            self.device_type = device_type

        def __dlpack_device__(self):
            return (self.device_type, 0)

    assert backends.array_kind(Foreign(2)) == "dlpack-cuda"  # kDLCUDA
    with pytest.raises(TypeError, match="Foreign"):
        backends.array_kind(Foreign(1))  # kDLCPU: not a library gpuinit knows


@pytest.mark.parametrize("kind,name", [("numpy", "numpy"), ("torch-cpu", "numpy"), ("torch-meta", "numpy"),
                                       ("torch-cuda", "triton"), ("cupy", "cupy"), ("dlpack-cuda", "cupy"),
                                       ("torch-mps", "staged"), ("torch-xpu", "staged"), ("torch-hpu", "staged"),
                                       ("torch-privateuseone", "staged"), ("jax", None)])
def test_default_name(kind, name):
    assert backends.default_name(kind) == name


def test_using_sets_the_backend_of_fills_without_their_own(monkeypatch):
    import torch

    x = torch.empty(3)
    assert backends.select(x).NAME == "numpy"
    with backends.using("staged"):
        assert backends.select(x).NAME == "staged"
        assert backends.select(x, "numpy").NAME == "numpy"  # backend= wins
        monkeypatch.setenv("GPUINIT_BACKEND", "numpy")
        assert backends.select(x).NAME == "staged"  # using() wins over the environment
        assert backends.select(torch.empty(3, device="meta")).NAME == "numpy"  # meta: only checked
        with backends.using(None):
            assert backends.select(x).NAME == "staged"  # None changes nothing
        with backends.using("numpy"):
            assert backends.select(x).NAME == "numpy"
        assert backends.select(x).NAME == "staged"
    monkeypatch.delenv("GPUINIT_BACKEND")
    assert backends.select(x).NAME == "numpy"


def test_using_checks_the_name_on_entry():
    with pytest.raises(UnknownBackendError):
        with backends.using("nope"):
            pytest.fail("entered")
    with backends.using(" NumPy "):
        pass


def test_using_is_per_thread():
    import threading

    import torch

    seen = []
    with backends.using("staged"):
        t = threading.Thread(target=lambda: seen.append(backends.select(torch.empty(1)).NAME))
        t.start()
        t.join()
        assert backends.select(torch.empty(1)).NAME == "staged"
    assert seen == ["numpy"]


def test_select_refuses_what_the_backend_cannot_fill():
    import torch

    with pytest.raises(gpuinit.BackendUnavailableError, match=r"backend 'staged' cannot fill a numpy array"):
        backends.select(np.empty(3), "staged")
    assert backends.select(torch.empty(3), " Staged ").NAME == "staged"  # backend= read as the variable is
