"""What each optional part of gpuinit needs installed, as pip takes it: the same requirements as the extras of
pyproject.toml (tests/test_extras.py keeps them equal). Hints name the packages themselves, which a plain
``pip install`` finds whatever way gpuinit itself was installed (a wheel, a checkout)."""
import shlex

EXTRAS = {
    "torch": ["torch>=2.3"],
    "cuda13": ["cupy-cuda13x[ctk]>=14"],
    "cuda12": ["cupy-cuda12x[ctk]>=14"],
    "cupy": ["cupy-cuda13x>=14", "cuda-toolkit[cudart,nvrtc]==13.*"],
    "hf": ["transformers>=4.45"],
    "plot": ["matplotlib>=3.7"],
    "jax": ["jax>=0.5"],
}
CPU_TORCH = "pip install torch --index-url https://download.pytorch.org/whl/cpu"  # torch's CPU build: no CUDA


def pip(extra):
    """The pip command that installs what ``extra`` needs (for torch on a machine without a GPU: CPU_TORCH)."""
    return "pip install " + " ".join(shlex.quote(r) for r in EXTRAS[extra])
