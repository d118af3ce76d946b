"""A block of a tensor (full_shape + offsets) gets exactly the values of the full tensor's block."""
import numpy as np
import pytest
import torch
from conftest import fresh_seed
from helpers import DTYPES, as_f64, empty

import gpuinit

SCHEMES = [("uniform", {}), ("normal", {}), ("trunc_normal", {"a": -0.5, "b": 1.5}), ("glorot_normal", {}),
           ("kaiming_uniform", {}), ("constant", {"value": 3.0})]


def random_block(rng, full):
    offsets = tuple(int(rng.integers(0, n)) for n in full)
    shape = tuple(int(rng.integers(1, n - o + 1)) for n, o in zip(full, offsets, strict=True))
    return shape, offsets


def fill_block(shape, offsets, full, dtype, scheme, seed, **kw):
    return as_f64(gpuinit.init_(empty(shape, dtype), scheme, seed=seed, full_shape=full, offsets=offsets, **kw))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme,kw", SCHEMES, ids=[s for s, _ in SCHEMES])
def test_random_blocks(scheme, kw, dtype, rng):
    seed = fresh_seed(rng)
    for nd in (1, 2, 3, 4):
        full = tuple(int(n) for n in rng.integers(2, 40 if nd < 3 else 9, nd))
        if nd == 1:
            full = (int(rng.integers(1, 3000)),)
        if scheme in ("glorot_normal", "kaiming_uniform") and nd == 1:
            continue
        whole = as_f64(gpuinit.init_(empty(full, dtype), scheme, seed=seed, **kw))
        for _ in range(6):
            shape, offsets = random_block(rng, full)
            block = fill_block(shape, offsets, full, dtype, scheme, seed, **kw)
            sl = tuple(slice(o, o + n) for o, n in zip(offsets, shape, strict=True))
            assert np.array_equal(block, whole[sl]), (full, shape, offsets)


@pytest.mark.parametrize("world", [2, 3, 4, 7])
def test_row_and_column_shards_tile_the_tensor(world, rng):
    """Every rank of a Shard(0) or Shard(1) layout, uneven shards included, reassembles the tensor."""
    seed, full = fresh_seed(rng), (37, 53)
    whole = gpuinit.init_(np.empty(full, np.float32), "he_normal", seed=seed)
    for dim in (0, 1):
        bounds = np.linspace(0, full[dim], world + 1).astype(int)
        parts = []
        for r in range(world):
            shape = list(full)
            shape[dim] = bounds[r + 1] - bounds[r]
            offsets = [0, 0]
            offsets[dim] = bounds[r]
            parts.append(gpuinit.init_(np.empty(shape, np.float32), "he_normal", seed=seed, full_shape=full,
                                       offsets=offsets))
        assert np.array_equal(np.concatenate(parts, axis=dim), whole)


@pytest.mark.parametrize("scheme,kw,full", [("orthogonal", {}, (24, 40)), ("orthogonal", {"gain": 2.0}, (6, 4, 3)),
                                            ("sparse", {"sparsity": 0.3}, (50, 20)), ("eye", {}, (13, 9)),
                                            ("dirac", {"groups": 2}, (6, 4, 3, 3))])
def test_structured_blocks(scheme, kw, full, rng):
    seed = fresh_seed(rng)
    whole = gpuinit.init_(np.empty(full, np.float64), scheme, seed=seed, **kw)
    for _ in range(10):
        shape, offsets = random_block(rng, full)
        block = gpuinit.init_(np.empty(shape, np.float64), scheme, seed=seed, full_shape=full, offsets=offsets, **kw)
        assert np.array_equal(block, whole[tuple(slice(o, o + n) for o, n in zip(offsets, shape, strict=True))])


def test_offsets_past_two_to_the_32(rng):
    """Logical indices above 2**32 (block words in the counter's high word) stay consistent."""
    seed = fresh_seed(rng)
    full = (2**20, 2**13 + 3)  # 2**33 + ... elements, never allocated
    row = gpuinit.init_(np.empty((3, 2**13 + 3), np.float32), "normal", seed=seed, full_shape=full,
                        offsets=(2**19 + 11, 0))
    part = gpuinit.init_(np.empty((2, 100), np.float32), "normal", seed=seed, full_shape=full,
                         offsets=(2**19 + 12, 7))
    assert np.array_equal(row[1:, 7:107], part)
    first = gpuinit.init_(np.empty((1, 8), np.float32), "normal", seed=seed, full_shape=full, offsets=(0, 0))
    assert not np.array_equal(first[0], row[0, :8])


def test_noncontiguous_views_and_torch(rng):
    seed = fresh_seed(rng)
    ref = gpuinit.init_(np.empty((20, 30), np.float32), "normal", seed=seed)
    base = np.zeros((30, 20 * 2), np.float32)
    view = base.T[::2]  # (20, 30), strided
    gpuinit.init_(view, "normal", seed=seed)
    assert np.array_equal(view, ref)
    t = torch.zeros(40, 30)[::2]
    gpuinit.init_(t, "normal", seed=seed)
    assert np.array_equal(t.numpy(), ref)


def test_reversed_and_offset_views(rng):
    seed = fresh_seed(rng)
    ref = gpuinit.init_(np.empty((20, 30), np.float32), "trunc_normal", seed=seed)
    base = np.zeros((25, 40), np.float32)
    view = base[24:4:-1, 35:5:-1]  # negative strides
    gpuinit.init_(view, "trunc_normal", seed=seed)
    assert np.array_equal(view, ref)
    assert (base[:5] == 0).all() and (base[:, :6] == 0).all()
