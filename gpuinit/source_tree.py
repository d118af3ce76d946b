"""Where gpuinit.kernels comes from. The kernels live in the checkout's top-level kernels/ folder, which has no
__init__.py so that it never takes the import name ``kernels`` (Hugging Face's package) from a script or test run
in the checkout's root. A wheel holds them as gpuinit/kernels; a source tree (an editable install, or a checkout
on sys.path) gets gpuinit.kernels pointed at that folder here, before any module imports from it."""
import sys
from importlib.machinery import ModuleSpec
from importlib.util import module_from_spec
from pathlib import Path

PACKAGE = Path(__file__).parent
KERNELS = PACKAGE.parent / "kernels"


def _point_at_checkout() -> None:
    name = f"{__package__}.kernels"
    if name in sys.modules or (PACKAGE / "kernels").is_dir() or not (KERNELS / "numpy_stream.py").is_file():
        return
    spec = ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(KERNELS)]
    sys.modules[name] = module = module_from_spec(spec)
    vars(sys.modules[__package__])["kernels"] = module  # as the import system binds a subpackage it loads


_point_at_checkout()
