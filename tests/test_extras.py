"""gpuinit/extras.py: the hints name the requirements of pyproject.toml's extras, as pip takes them."""
import shlex
from pathlib import Path

import pytest

from gpuinit import extras

tomllib = pytest.importorskip("tomllib")  # Python 3.11+

PYPROJECT = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())


@pytest.mark.parametrize("extra", sorted(extras.EXTRAS))
def test_each_hint_installs_the_extra_s_requirements(extra):
    assert extras.EXTRAS[extra] == PYPROJECT["project"]["optional-dependencies"][extra]
    words = shlex.split(extras.pip(extra))
    assert words[:2] == ["pip", "install"] and words[2:] == extras.EXTRAS[extra]
    assert "gpuinit[" not in extras.pip(extra)  # no package of that name on an index: the packages themselves


def test_the_torch_extra_brings_no_triton():
    assert not any(r.startswith("triton") for r in PYPROJECT["project"]["optional-dependencies"]["torch"])


def test_no_hint_names_an_unpublished_package():
    root = Path(__file__).resolve().parent.parent / "gpuinit"
    offenders = [str(p) for p in root.rglob("*.py") if "gpuinit[" in p.read_text()]
    assert not offenders
