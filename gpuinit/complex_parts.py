"""Complex arrays (complex64, complex128), filled as their real view: the array's shape with a last axis of 2
(real and imaginary parts), whose element (..., k) is stream index 2 j + k of complex element j, so a block of a
complex tensor (``full_shape + (2,)``, ``offsets + (0,)``) holds the whole tensor's values.

What each part draws follows the convention of the scheme's name:

- torch's names behave as torch.nn.init and torch's Tensor methods on a complex tensor: ``uniform`` draws each
  part on the interval; ``normal`` each part N(mean, std^2 / 2), so E|z - mean (1 + i)|^2 = std^2 (kaiming,
  xavier and sparse, which call them, likewise; sparse zeros whole elements); ``trunc_normal`` and orthogonal
  draws are refused, as torch refuses them.
- Keras / JAX names (variance scaling, glorot, he, lecun, random_normal, random_uniform, truncated_normal and the
  tutorial's variants): E|z - mean|^2 is the real rule's variance, each part the real draw scaled by 1/sqrt(2)
  about its centre, the centre (mean) on the real part alone. JAX draws complex uniforms on a disc and truncates
  the modulus of a complex normal; here the two parts are drawn independently.
- constant, identity, eye, dirac: the real part; the imaginary part is zero.
"""
import math
import sys

from . import draws
from .draws import Constant, DeltaOrthogonal, Dirac, Draw, Eye, Normal, Orthogonal, Parts, Sparse, TruncNormal, Uniform
from .errors import InitError, UnsupportedDrawError
from .schemes import TORCH_NAMES

REAL = {"complex64": "float32", "complex128": "float64"}  # a complex dtype: the dtype of its parts
HALF = math.sqrt(0.5)  # each part carries half of the variance


def real_view(array):
    """The real view of a complex64 or complex128 numpy array, torch tensor or cupy array (shape + (2,), its
    memory); None for any other array."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        if array.dtype not in (torch.complex64, torch.complex128):
            return None
        if array.is_conj():
            raise InitError("a view with torch's conjugate bit set (z.conj()) reads the conjugate of its memory: "
                            "fill z, or z.conj().resolve_conj()")
        return torch.view_as_real(array.detach())
    if getattr(getattr(array, "dtype", None), "name", None) not in REAL:
        return None
    xp = sys.modules[type(array).__module__.partition(".")[0]]  # numpy or cupy
    real = array.real  # a view of the real parts, whatever the strides
    return xp.lib.stride_tricks.as_strided(real, shape=(*array.shape, 2), strides=(*real.strides, real.itemsize))


def complex_draw(scheme: str, draw: Draw) -> Draw:
    """The draw of a complex array's real view, from ``draw``, what scheme ``scheme`` draws on the complex shape
    (module docstring)."""
    if isinstance(draw, (Constant, Eye, Dirac)):
        return Parts(draw, Constant(0.0))
    if isinstance(draw, (Orthogonal, DeltaOrthogonal)):
        raise UnsupportedDrawError(f"{scheme} of a complex array is not defined (torch.nn.init.orthogonal_ refuses "
                                   "complex tensors): fill a real array")
    if scheme in TORCH_NAMES:
        if isinstance(draw, TruncNormal):
            raise UnsupportedDrawError("trunc_normal of a complex array: torch refuses it (NotImplementedError); use "
                                       "normal, or the Keras name truncated_normal")
        if isinstance(draw, Normal):
            return draws.normal(draw.mean, draw.std * HALF)
        if isinstance(draw, Sparse):
            return draws.sparse(draw.sparsity, draw.std * HALF)
        return draw
    centre = draw.center if isinstance(draw, Uniform) else getattr(draw, "mean", 0.0)
    real, imag = _scaled(draw, centre), _scaled(draw, 0.0)
    return real if real == imag else Parts(real, imag)


def _scaled(draw: Draw, centre: float) -> Draw:
    """``draw`` (uniform, normal or truncated normal) scaled by 1/sqrt(2) about its centre, centred on ``centre``."""
    if isinstance(draw, Uniform):
        return draws.uniform(centre - draw.half_width * HALF, centre + draw.half_width * HALF)
    if isinstance(draw, Normal):
        return draws.normal(centre, draw.std * HALF)
    if isinstance(draw, TruncNormal):
        return draws.trunc_normal(centre, draw.std * HALF, centre + (draw.lo - draw.mean) * HALF,
                                  centre + (draw.hi - draw.mean) * HALF)
    raise ValueError(f"no complex form of {draw.kind}")
