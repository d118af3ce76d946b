"""gpuinit/backends/checks.py: what every backend checks before writing (a floating-point dtype, a writable array,
elements that do not overlap; bits="bfloat16" on 16-bit integers), which arrays hold values, and the value type.
The overlap check is compared with a brute-force reading of every element's bytes."""
import itertools

import numpy as np
import pytest
import torch

from gpuinit.backends.checks import check, check_no_overlap, holds_values, value_dtype
from gpuinit.errors import InitError


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_numpy_float_dtypes_pass(dtype):
    x = np.zeros((3, 4), dtype)
    assert check(x) is None
    check(x.T)
    check(x[::2, ::-1])
    check(x.astype(np.dtype(dtype).newbyteorder(">")))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_torch_float_dtypes_pass(dtype):
    t = torch.zeros(3, 4, dtype=dtype)
    check(t)
    check(t.T)
    check(t[:, 1:3])
    check(torch.empty(3, 4, dtype=dtype, device="meta"))


@pytest.mark.parametrize("array,name", [(np.zeros(3, np.int32), "int32"), (np.zeros(3, bool), "bool"),
                                        (np.zeros(3, np.complex64), "complex64"), (np.zeros(3, np.uint16), "uint16"),
                                        (np.zeros(3, np.longdouble), np.dtype(np.longdouble).name),
                                        (torch.zeros(3, dtype=torch.int64), "int64"),
                                        (torch.zeros(3, dtype=torch.complex64), "complex64"),
                                        (torch.zeros(3, dtype=torch.float8_e4m3fn), "float8_e4m3fn")])
def test_other_dtypes_are_refused(array, name):
    with pytest.raises(InitError, match=rf"gpuinit fills floating-point arrays \(float16, bfloat16, float32, "
                                        rf"float64; complex64 and complex128 through their real parts\), got {name}$"):
        check(array)


def test_read_only_numpy_array():
    x = np.zeros((2, 2), np.float32)
    x.flags.writeable = False
    with pytest.raises(InitError, match="the array is read-only"):
        check(x)
    with pytest.raises(InitError, match="read-only"):
        check(np.broadcast_to(np.zeros(3, np.float32), (3,)))  # a broadcast view is read-only


def test_sparse_tensor_is_refused():
    with pytest.raises(InitError, match="gpuinit fills strided \\(dense\\) tensors, got layout torch.sparse_coo"):
        check(torch.zeros(3, 3).to_sparse())


def test_overlapping_views_are_refused():
    base = np.zeros(10, np.float32)
    for shape, strides in [((4, 5), (0, 4)), ((4, 5), (8, 4)), ((3,), (0,))]:
        view = np.lib.stride_tricks.as_strided(base, shape, strides, writeable=True)
        with pytest.raises(InitError, match=r"the array's elements overlap \(shape .*, strides .*\)"):
            check(view)
    with pytest.raises(InitError, match="overlap"):
        check(torch.zeros(5).expand(3, 5))
    with pytest.raises(InitError, match="overlap"):
        check(torch.zeros(6).as_strided((3, 3), (1, 1)))


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.dtype(">u2")])
def test_bits_take_16_bit_integers(dtype):
    check(np.zeros((2, 3), dtype), bits="bfloat16")
    check(np.zeros((4, 6), dtype)[::2, 1::2], bits="bfloat16")


def test_bits_refusals():
    with pytest.raises(InitError, match=r"bits must be one of \('bfloat16',\), got 'float16'"):
        check(np.zeros(3, np.uint16), bits="float16")
    with pytest.raises(InitError, match="bits='bfloat16' needs a uint16 or int16 array to hold the bits, got float32"):
        check(np.zeros(3, np.float32), bits="bfloat16")
    with pytest.raises(InitError, match="got int32"):
        check(np.zeros(3, np.int32), bits="bfloat16")
    with pytest.raises(InitError, match="bits= is for numpy and cupy arrays: torch tensors have a bfloat16 dtype"):
        check(torch.zeros(3, dtype=torch.int16), bits="bfloat16")
    with pytest.raises(InitError, match="overlap"):
        check(np.lib.stride_tricks.as_strided(np.zeros(4, np.uint16), (3, 2), (2, 2)), bits="bfloat16")


def overlaps(shape, strides, itemsize):
    """Brute force: whether two elements share a byte."""
    taken = set()
    for index in itertools.product(*map(range, shape)):
        start = sum(i * s for i, s in zip(index, strides, strict=True))
        span = set(range(start, start + itemsize))
        if taken & span:
            return True
        taken |= span
    return False


def test_check_no_overlap_never_passes_an_overlap(rng):
    passed = 0
    for _ in range(3000):
        nd = int(rng.integers(1, 4))
        shape = tuple(int(n) for n in rng.integers(1, 5, nd))
        itemsize = int(rng.choice([1, 2, 4]))
        strides = tuple(int(s) for s in rng.integers(-12, 13, nd))
        try:
            check_no_overlap(shape, strides, itemsize)
        except InitError:
            continue
        passed += 1
        assert not overlaps(shape, strides, itemsize), (shape, strides, itemsize)
    assert passed > 300


@pytest.mark.parametrize("shape", [(5,), (3, 4), (2, 3, 4), (2, 1, 3, 2)])
def test_check_no_overlap_passes_every_slice_and_transpose(shape, rng):
    base = np.zeros(shape, np.float32)
    for _ in range(30):
        view = base[tuple(slice(None, None, int(rng.choice([1, 2, -1, -3]))) for _ in shape)]
        view = view.transpose(rng.permutation(len(shape)))
        check_no_overlap(view.shape, view.strides, view.itemsize)
        check(view)


def test_check_no_overlap_ignores_empty_and_single_extents():
    check_no_overlap((0, 5), (0, 0), 4)  # nothing to write
    check_no_overlap((1, 5), (0, 4), 4)  # a dimension of one is never stepped
    check_no_overlap((1,), (0,), 8)
    with pytest.raises(InitError):
        check_no_overlap((2,), (3,), 4)  # 4-byte items 3 bytes apart


def test_holds_values():
    assert holds_values(np.zeros((2, 3))) and holds_values(np.zeros(())) and holds_values(torch.zeros(1))
    assert not holds_values(np.zeros((2, 0)))
    assert not holds_values(torch.zeros(0, 3))
    assert not holds_values(torch.empty(4, 4, device="meta"))


def test_value_dtype():
    assert value_dtype(np.zeros(2, np.float16)) == "float16"
    assert value_dtype(np.zeros(2, ">f8")) == "float64"
    assert value_dtype(torch.zeros(2, dtype=torch.bfloat16)) == "bfloat16"
    assert value_dtype(torch.zeros(2, dtype=torch.float32)) == "float32"
    assert value_dtype(np.zeros(2, np.uint16), bits="bfloat16") == "bfloat16"


def test_inference_tensors_are_written_only_in_inference_mode():
    """torch refuses in-place updates of an inference tensor (made under torch.inference_mode()) outside inference
    mode, before it looks at the data: meta, empty and views alike. Inside, it writes inference and normal tensors."""
    with torch.inference_mode():
        made = [torch.empty(3, 4), torch.empty(3, 4, device="meta"), torch.empty(0, 4), torch.empty(5, 4)[1:].T]
        for t in made:
            check(t)
    normal = torch.empty(3, 4)
    with torch.inference_mode():
        check(normal)
    check(normal)
    for t in made:
        assert t.is_inference()
        with pytest.raises(InitError, match=r"^an inference tensor \(made under torch.inference_mode\(\)\) is written "
                                            r"only inside inference mode"):
            check(t)


def test_negative_views_only_for_backends_that_write_through_them():
    """A view with torch's negative bit set holds the negation of what it reads: a backend that writes memory as it is
    (Triton) refuses it; the NumPy and staged backends write through it (negative=True)."""
    z = torch.zeros(3, 4, dtype=torch.complex64)
    for view in (z.conj().imag, torch._neg_view(torch.zeros(3, 4, dtype=torch.bfloat16)),
                 torch._neg_view(torch.zeros(3, 4, device="meta"))):
        with pytest.raises(InitError, match=r"^a view with torch's negative bit set \(such as z.conj\(\).imag\) "
                                            r"holds the negation of what it reads"):
            check(view)
        check(view, negative=True)
    check(z.conj().real)  # no negative bit
    with pytest.raises(InitError, match="got complex64"):
        check(z.conj(), negative=True)  # complex dtypes are not filled, conjugate or not
