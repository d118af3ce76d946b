"""Dispatch and imports: nothing heavy is imported until an array of its library arrives."""
import subprocess
import sys

import numpy as np
import pytest

import gpuinit
from gpuinit import backends


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
    with pytest.raises(gpuinit.BackendUnavailableError, match="unknown backend 'nosuch'"):
        gpuinit.init_(np.empty(3), "normal", seed=0, backend="nosuch")


def test_cuda_tensors_go_to_triton():
    assert backends.default_name("torch-cuda") == "triton" and backends.default_name("cupy") == "cupy"
    assert backends.default_name("torch-cpu") == "numpy"
