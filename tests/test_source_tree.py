"""The checkout takes no import name that belongs to another package (gpuinit/source_tree.py): the folders it puts
first on sys.path (its root for `python -m ...`, tests/ under pytest, bench/ for a bench script) hold no module
or regular package named like an installed distribution's or the standard library's; the kernels come as
gpuinit.kernels whether gpuinit is installed or only on sys.path."""
import importlib.metadata
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIRST_ON_PATH = (ROOT, ROOT / "tests", ROOT / "bench")


def _names(folder):
    """The top-level names a folder on sys.path provides ahead of site-packages: its modules and regular
    packages (a folder without __init__.py is a namespace portion, which any installed package outranks)."""
    names = {p.stem for p in folder.glob("*.py")}
    names |= {p.parent.name for p in folder.glob("*/__init__.py")}
    return names


def test_the_checkout_shadows_no_installed_or_standard_name():
    taken = set(importlib.metadata.packages_distributions()) | set(sys.stdlib_module_names)
    taken.discard("gpuinit")
    assert "numpy" in taken and "kernels" in taken  # the check sees what is installed (Hugging Face's kernels too)
    clashes = {f"{folder.relative_to(ROOT) or '.'}/{name}": name for folder in FIRST_ON_PATH
               for name in _names(folder) & taken}
    assert not clashes, f"these names shadow an installed or standard package: {sorted(clashes)}"


def test_a_folder_without_init_is_outranked():
    """The rule the check relies on: an installed regular package wins over a namespace portion found first."""
    r = subprocess.run([sys.executable, "-c", "import kernels, sys; print(kernels.__file__)"], cwd=ROOT,
                       capture_output=True, text=True, check=True)
    installed = Path(r.stdout.strip())
    assert installed.is_file() and ROOT not in installed.parents, installed


def test_import_gpuinit_from_a_plain_checkout(tmp_path):
    """Without any install (no site-packages hook, only the checkout and NumPy on sys.path), gpuinit imports and
    its kernels come from the checkout's kernels/ folder."""
    import numpy

    code = ("import sys; sys.path[:0] = [sys.argv[1], sys.argv[2]]\n"
            "import numpy as np, gpuinit, gpuinit.kernels.numpy_stream as ks\n"
            "print(ks.__file__)\n"
            "print(float(gpuinit.init_(np.empty((8, 8), np.float32), 'he_normal', seed=0).std()))\n")
    r = subprocess.run([sys.executable, "-S", "-P", "-c", code, str(ROOT), str(Path(numpy.__file__).parents[1])],
                       cwd=tmp_path, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    where, std = r.stdout.split()
    assert Path(where) == ROOT / "kernels" / "numpy_stream.py"
    assert 0.3 < float(std) < 0.7

