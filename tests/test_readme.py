"""README's examples run as written (the model example on the CPU, smaller, when there is no GPU)."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
BLOCKS = re.findall(r"```python\n(.*?)```", README, re.DOTALL)


def run(code, tmp_path, **env):
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                       check=False, env={**os.environ, **env})
    assert r.returncode == 0, r.stderr[-3000:]


def test_api_examples(tmp_path):
    run(BLOCKS[0], tmp_path)


def test_model_example(tmp_path):
    code = next(b for b in BLOCKS if "LlamaConfig" in b)
    if not torch.cuda.is_available():
        code = code.replace('device="cuda"', 'device="cpu"').replace("with_params(1e9)", "with_params(2e7)")
    run(code, tmp_path)


def test_own_model_example(tmp_path):
    code = next(b for b in BLOCKS if "own_init(" in b)
    run(code, tmp_path)


def test_save_example(tmp_path):
    code = next(b for b in BLOCKS if "save_init(" in b)
    run(code, tmp_path)


@pytest.mark.parametrize("backend", ["torch", "jax"])
def test_keras_example(tmp_path, backend):
    run(next(b for b in BLOCKS if "keras.Sequential" in b), tmp_path, KERAS_BACKEND=backend)


def test_jax_example(tmp_path):
    run(next(b for b in BLOCKS if "gpuinit.jax" in b), tmp_path)
