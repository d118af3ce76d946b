"""gpuinit/regions.py: a block's place in its logical tensor (check_region and its errors), row-major strides, and
the pieces a fill walks, each a set of runs of consecutive logical indices: checked against the logical index
sum((offsets[d] + i_d) * stride[d]) computed here element by element."""
import math

import numpy as np
import pytest

from gpuinit import InitError
from gpuinit.regions import check_region, pieces, row_major_strides


@pytest.mark.parametrize("shape", [(), (5,), (3, 4), (2, 3, 4)])
def test_whole_tensor_by_default(shape):
    assert check_region(shape, None, None) == (shape, (0,) * len(shape))
    assert check_region(list(shape), None, None) == (shape, (0,) * len(shape))


def test_full_shape_or_offsets_alone():
    assert check_region((2, 3), (5, 3), None) == ((5, 3), (0, 0))
    assert check_region((2, 3), None, (0, 0)) == ((2, 3), (0, 0))
    with pytest.raises(InitError, match="does not fit"):
        check_region((2, 3), None, (1, 0))  # full_shape defaults to the array's own shape


def test_normalised_to_python_ints():
    full, off = check_region((2, 3), np.array([4, 3]), [np.int64(2), np.uint8(0)])
    assert (full, off) == ((4, 3), (2, 0))
    assert all(type(v) is int for v in full + off)


@pytest.mark.parametrize("shape,full,off", [((2, 3), (2, 3), (0, 0)), ((1, 1), (4, 5), (3, 4)),
                                            ((0, 3), (4, 3), (4, 0)), ((0,), (0,), (0,)), ((), (), ())])
def test_blocks_that_fit(shape, full, off):
    assert check_region(shape, full, off) == (full, off)


@pytest.mark.parametrize("shape,full,off,match", [
    ((2, 3), (2,), None, r"full_shape \(2,\) and offsets \(0, 0\) must have one entry per dimension of the "
                         r"array's shape \(2, 3\)"),
    ((2, 3), None, (0,), "one entry per dimension"),
    ((2, 3), (2, 3, 1), (0, 0, 0), "one entry per dimension"),
    ((2, 3), (4, -3), (0, 0), r"full_shape must hold non-negative integers, got \(4, -3\)"),
    ((2, 3), (4, 3), (0, -1), "offsets must hold non-negative integers"),
    ((2, 3), (4.0, 3), (0, 0), "full_shape must hold non-negative integers"),
    ((2, 3), (4, 3), (True, 0), "offsets must hold non-negative integers"),
    ((2, 3), (4, 3), ("1", 0), "offsets must hold non-negative integers"),
    ((2, 3), (4, 3), (3, 0), r"dimension 0 ends at 5 > 4"),
    ((2, 3), (4, 3), (0, 1), r"dimension 1 ends at 4 > 3"),
    ((2, 3), (1, 3), (0, 0), r"the array \(shape \(2, 3\)\) at offsets \(0, 0\) does not fit in full_shape "
                             r"\(1, 3\): dimension 0 ends at 2 > 1"),
    ((1, 1), (2**31, 2**31 + 1), (0, 0), r"more than 2\*\*62 elements"),
])
def test_blocks_that_do_not_fit(shape, full, off, match):
    with pytest.raises(InitError, match=match):
        check_region(shape, full, off)


def test_largest_full_shape():
    assert check_region((1, 1), (2**31, 2**31), (2**31 - 1, 0)) == ((2**31, 2**31), (2**31 - 1, 0))


@pytest.mark.parametrize("shape", [(), (7,), (3, 4), (2, 1, 5), (4, 3, 2, 6), (0, 3), (3, 0, 2)])
def test_row_major_strides(shape):
    expected = tuple(s // 8 for s in np.empty(shape, np.float64).strides)
    if 0 not in shape:
        assert row_major_strides(shape) == expected
    assert row_major_strides(shape) == tuple(math.prod(shape[d + 1:]) for d in range(len(shape)))


def logical_indices(shape, full_shape, offsets):
    """The logical index of every element of the block, as an array of the block's shape."""
    grid = np.indices(shape, dtype=np.int64) if shape else np.zeros((0,), np.int64)
    stride = row_major_strides(full_shape)
    return sum(((grid[d] + offsets[d]) * stride[d] for d in range(len(shape))), np.zeros(shape, np.int64))


def check_pieces(shape, full_shape, offsets, chunk):
    """Every element covered once by the pieces, each read in row-major order as its runs, none over chunk."""
    want = logical_indices(shape, full_shape, offsets)
    seen = np.zeros(shape, np.int64)
    count = 0
    for index, piece_shape, starts, length in pieces(shape, full_shape, offsets, chunk):
        count += 1
        assert starts.dtype == np.uint64 and starts.ndim == 1
        assert want[index].shape == piece_shape
        assert len(starts) * length == math.prod(piece_shape)
        assert math.prod(piece_shape) <= max(chunk, 1) or not shape
        runs = starts.astype(np.int64)[:, None] + np.arange(length, dtype=np.int64)[None, :]
        assert np.array_equal(want[index].reshape(-1), runs.reshape(-1)), (index, piece_shape)
        seen[index] += 1
    assert np.all(seen == 1)
    return count


@pytest.mark.parametrize("shape,full,off", [
    ((), (), ()), ((1,), (1,), (0,)), ((10,), (10,), (0,)), ((7,), (20,), (5,)),
    ((4, 6), (4, 6), (0, 0)), ((3, 4), (10, 4), (2, 0)), ((3, 4), (10, 9), (2, 5)),
    ((2, 3, 4), (5, 3, 4), (1, 0, 0)), ((2, 3, 4), (5, 6, 4), (3, 2, 0)), ((2, 3, 4), (2, 3, 9), (0, 0, 5)),
    ((3, 1, 5, 2), (4, 2, 5, 7), (1, 1, 0, 3)), ((2, 2, 2, 2, 2), (3, 3, 3, 3, 3), (1, 0, 1, 0, 1)),
])
@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 8, 24, 1000])
def test_pieces_cover_the_block_as_runs(shape, full, off, chunk):
    check_pieces(shape, full, off, chunk)


def test_pieces_of_random_blocks(rng):
    for _ in range(200):
        nd = int(rng.integers(1, 5))
        full = tuple(int(n) for n in rng.integers(1, 7, nd))
        off = tuple(int(rng.integers(0, n)) for n in full)
        shape = tuple(int(rng.integers(1, n - o + 1)) for n, o in zip(full, off, strict=True))
        check_pieces(shape, full, off, int(rng.integers(1, 2 * math.prod(shape) + 2)))


def test_a_whole_tensor_is_one_run_per_piece():
    out = list(pieces((8, 16), (8, 16), (0, 0), 32))
    assert [(p[0], p[1], p[2].tolist(), p[3]) for p in out] == [
        ((slice(0, 2),), (2, 16), [0], 32), ((slice(2, 4),), (2, 16), [32], 32),
        ((slice(4, 6),), (2, 16), [64], 32), ((slice(6, 8),), (2, 16), [96], 32)]
    assert len(list(pieces((8, 16), (8, 16), (0, 0), 1 << 20))) == 1


def test_a_block_of_columns_is_one_run_per_row():
    (index, shape, starts, length), = pieces((3, 2), (5, 10), (1, 4), 100)
    assert index == (slice(0, 3),) and shape == (3, 2) and length == 2
    assert starts.tolist() == [14, 24, 34]


def test_a_zero_dimensional_array_is_one_element():
    (index, shape, starts, length), = pieces((), (), (), 4)
    assert index is Ellipsis and shape == () and starts.tolist() == [0] and length == 1


@pytest.mark.parametrize("shape,full", [((0, 5), (0, 5)), ((5, 0), (5, 0)), ((2, 0, 3), (2, 4, 3))])
def test_empty_blocks_hold_nothing(shape, full):
    assert sum(len(p[2]) * p[3] for p in pieces(shape, full, (0,) * len(shape), 4)) == 0


def test_indices_past_2_to_the_32():
    full, off = (2**20, 2**14), (2**19 + 3, 5)
    (_, _, starts, length), = pieces((2, 3), full, off, 100)
    assert starts.tolist() == [(2**19 + 3) * 2**14 + 5, (2**19 + 4) * 2**14 + 5] and length == 3
    assert starts[0] > 2**32
