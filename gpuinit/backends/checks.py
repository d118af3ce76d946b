"""Checks every backend makes before it writes: a floating-point, writable, non-overlapping array (an inference
tensor only inside inference mode)."""
import sys

from ..errors import InitError

_NUMPY_DTYPES = {"float16", "float32", "float64"}
ML_BFLOAT16 = "bfloat16"  # the name of ml_dtypes.bfloat16 (JAX's and Keras's bfloat16 on the host), 2 bytes
_TORCH_DTYPES = {"float16", "bfloat16", "float32", "float64"}


BITS = ("bfloat16",)
INFERENCE_OUTSIDE = ("an inference tensor (made under torch.inference_mode()) is written only inside inference mode, "
                     "as torch refuses in-place updates of it outside: fill it under torch.inference_mode(), or fill "
                     "a clone")


def check(array, bits=None, negative=False):
    """Raise unless ``array`` is a writable floating-point array (numpy's bfloat16: ml_dtypes') whose elements do not
    overlap (an inference tensor: inside inference mode, as torch writes it); with ``bits="bfloat16"``, a 16-bit
    integer numpy or cupy array that receives bfloat16 bit patterns. ``negative``: the backend writes a torch view
    with the negative bit set (whose memory holds the negation of what it reads) through it; other backends write
    memory as it is, and refuse one."""
    torch = sys.modules.get("torch")
    if bits is not None:
        if bits not in BITS:
            raise InitError(f"bits must be one of {BITS}, got {bits!r}")
        if torch is not None and isinstance(array, torch.Tensor):
            raise InitError("bits= is for numpy and cupy arrays: torch tensors have a bfloat16 dtype")
        if array.dtype.name not in ("uint16", "int16"):
            raise InitError(f"bits='bfloat16' needs a uint16 or int16 array to hold the bits, got {array.dtype.name}")
        return check_no_overlap(tuple(array.shape), array.strides, array.itemsize)
    if torch is not None and isinstance(array, torch.Tensor):
        if array.is_inference() and not torch.is_inference_mode_enabled():
            raise InitError(INFERENCE_OUTSIDE)
        if type(array) not in (torch.Tensor, torch.nn.Parameter) and is_fake(array):
            raise InitError(FAKE)
        name = str(array.dtype).removeprefix("torch.")
        if array.layout != torch.strided:
            raise InitError(f"gpuinit fills strided (dense) tensors, got layout {array.layout}")
        if not negative and array.is_neg():
            raise InitError("a view with torch's negative bit set (such as z.conj().imag) holds the negation of what "
                            "it reads, and this backend writes memory as it is: fill it with backend='staged' (any "
                            "device) or backend='numpy' (CPU)")
        ok = name in _TORCH_DTYPES
        strides, itemsize = array.stride(), 1
    else:  # numpy and cupy arrays
        name = array.dtype.name
        ok = name in _NUMPY_DTYPES or is_ml_bfloat16(array.dtype)
        if ok and not getattr(array.flags, "writeable", True):
            raise InitError("the array is read-only")
        strides, itemsize = array.strides, array.itemsize
    if not ok:
        raise InitError(f"gpuinit fills floating-point arrays (float16, bfloat16, float32, float64; complex64 and "
                        f"complex128 through their real parts), got {name}")
    check_no_overlap(tuple(array.shape), strides, itemsize)


FAKE = ("a FakeTensor (made under torch's FakeTensorMode, as torch.compile traces) has no memory to write: fill the "
        "real tensors, or build the model on the meta device and give init_module a device to materialize it on")


def is_fake(array):
    """Whether ``array`` is one of torch's FakeTensors, which carry shapes and devices but no memory (their data
    pointer is no address): told without importing torch's fake-tensor module where nothing has."""
    fake = sys.modules.get("torch._subclasses.fake_tensor")
    return fake is not None and isinstance(array, fake.FakeTensor)


def is_ml_bfloat16(dtype):
    """Whether a numpy dtype is ml_dtypes' bfloat16, told by its name and size, so that nothing imports ml_dtypes."""
    return dtype.name == ML_BFLOAT16 and dtype.itemsize == 2


def check_no_overlap(shape, strides, itemsize):
    """Sorted by |stride|, each dimension must step past the whole extent of the smaller ones."""
    if 0 in shape:
        return
    extent = itemsize
    for n, s in sorted(((n, abs(s)) for n, s in zip(shape, strides, strict=True) if n > 1), key=lambda t: t[1]):
        if s < extent:
            raise InitError(f"the array's elements overlap (shape {shape}, strides {strides}): "
                            "gpuinit writes each element once, so it needs distinct memory per element")
        extent = s * (n - 1) + extent


def holds_values(array):
    """False for empty arrays and meta tensors, which have nothing to write."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        return not array.is_meta and 0 not in array.shape
    return 0 not in tuple(array.shape)


def value_dtype(array, bits=None):
    """The floating-point type the array's elements hold: float16, bfloat16, float32 or float64."""
    if bits is not None:
        return bits
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        return str(array.dtype).removeprefix("torch.")
    return array.dtype.name
