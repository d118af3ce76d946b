"""The stream against independent references: Random123 vectors, a pure-Python Philox, the
conversion formulas written again with Python integers, scipy's normal quantile."""
import math

import numpy as np
import pytest
from gpuinit.kernels import numpy_stream as ks
from scipy.special import ndtri

import gpuinit
from gpuinit import draws

KAT = [  # Random123 kat_vectors: counter, key -> output
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    ((0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344), (0xA4093822, 0x299F31D0),
     (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1)),
]


def philox_py(c, k, rounds=10):
    """Philox4x32 written again from Salmon et al. (2011), with Python integers."""
    c, (k0, k1) = list(c), k
    for _ in range(rounds):
        p0, p1 = 0xD2511F53 * c[0], 0xCD9E8D57 * c[2]
        c = [(p1 >> 32) ^ c[1] ^ k0, p1 & 0xFFFFFFFF, (p0 >> 32) ^ c[3] ^ k1, p0 & 0xFFFFFFFF]
        k0, k1 = (k0 + 0x9E3779B9) & 0xFFFFFFFF, (k1 + 0xBB67AE85) & 0xFFFFFFFF
    return c


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_known_answers(counter, key, expected):
    got = gpuinit.philox4x32(np.array(counter, np.uint32), np.array(key, np.uint32))
    assert got.dtype == np.uint32 and tuple(int(x) for x in got) == expected
    assert tuple(philox_py(counter, key)) == expected


def test_philox_broadcasts_and_checks():
    c = np.arange(40, dtype=np.uint32).reshape(10, 4)
    got = gpuinit.philox4x32(c, np.array([1, 2], np.uint32))
    assert got.shape == (10, 4)
    assert [int(x) for x in got[3]] == philox_py([int(x) for x in c[3]], (1, 2))
    with pytest.raises(ValueError, match="shape"):
        gpuinit.philox4x32(np.zeros(3, np.uint32), np.zeros(2, np.uint32))


def test_block_words_layout(rng):
    """counter = (block lo, block hi, stream lo, stream hi), key = (seed lo, seed hi)."""
    seed, stream = (int(x) for x in rng.integers(0, 2**64, 2, dtype=np.uint64))
    blocks = np.concatenate([rng.integers(0, 2**62, 20, dtype=np.uint64), [0, 2**32 - 1, 2**32, 2**62 - 1]])
    got = ks.block_words(blocks.astype(np.uint64), seed, stream)
    for b, w in zip(blocks, got, strict=True):
        b = int(b)
        ref = philox_py([b & 0xFFFFFFFF, b >> 32, stream & 0xFFFFFFFF, stream >> 32], (seed & 0xFFFFFFFF, seed >> 32))
        assert [int(x) for x in w] == ref


def test_element_words_are_lane_of_block(rng):
    seed = int(rng.integers(0, 2**63))
    start = int(rng.integers(0, 2**40))
    words = ks.element_words([start], 37, seed, 5)[0]
    for t, w in enumerate(words):
        i = start + t
        key = (seed & 0xFFFFFFFF, seed >> 32)
        assert int(w) == philox_py([(i // 4) & 0xFFFFFFFF, (i // 4) >> 32, 5, 0], key)[i % 4]


def test_uniform_conversions_exact(rng):
    w = np.concatenate([rng.integers(0, 2**32, 10000, dtype=np.uint64), [0, 1, 255, 256, 2**31, 2**32 - 1]])
    w = w.astype(np.uint32)
    v, u = ks.signed_uniform(w), ks.open_uniform(w)
    for x, vv, uu in zip(w[:2000].tolist() + w[-6:].tolist(), np.r_[v[:2000], v[-6:]], np.r_[u[:2000], u[-6:]],
                         strict=True):
        k = x >> 9
        assert float(vv) == (2 * k + 1 - 2**23) / 2**23
        assert float(uu) == (2 * k + 1) / 2**24
    assert v.dtype == u.dtype == np.float32
    assert -1 < v.min() and v.max() < 1 and 0 < u.min() and u.max() < 1
    assert float(ks.signed_uniform(np.uint32(0))) == -float(ks.signed_uniform(np.uint32(2**32 - 1)))


def test_normal_quantile_accuracy():
    u = np.concatenate([np.logspace(np.log10(2.0**-72), np.log10(0.49), 4000), np.linspace(0.01, 0.99, 2001)])
    u = np.concatenate([u, 1 - u]).astype(np.float32)
    u = u[(u >= ks.U_MIN) & (u <= ks.U_MAX)]
    got, ref = ks.normal_quantile(u).astype(np.float64), ndtri(u.astype(np.float64))
    assert np.all(np.abs(got - ref) <= 1e-6 * np.maximum(1, np.abs(ref)))


def test_box_muller_formula():
    """lane 0: sqrt(-2 ln u(w0)) cos(pi v(w1)); lane 1: the same with sin; lanes 2, 3 likewise."""
    w = np.random.default_rng(1).integers(0, 2**32, (500, 4), dtype=np.uint64).astype(np.uint32)
    got = ks.normal_from_words(w)
    u = ((w >> 9).astype(np.float64) * 2 + 1) / 2**24
    v = ((w >> 9).astype(np.float64) * 2 + 1 - 2**23) / 2**23
    r = np.sqrt(-2 * np.log(u[:, 0::2]))
    ref = np.empty_like(got, dtype=np.float64)
    ref[:, 0::2], ref[:, 1::2] = r * np.cos(np.pi * v[:, 1::2]), r * np.sin(np.pi * v[:, 1::2])
    assert np.allclose(got, ref, rtol=0, atol=1e-5)
    assert np.abs(got).max() <= math.sqrt(48 * math.log(2)) + 1e-5


def test_element_value_is_pure_function_of_index(rng):
    """An element drawn alone equals the same element drawn in bulk, whatever the lane and block."""
    seed = int(rng.integers(0, 2**63))
    for draw in [draws.Uniform(center=0.5, half_width=0.5, lo=0.0, hi=1.0), draws.Normal(mean=0.0, std=1.0)]:
        bulk = ks.draw_values(draw, [0], 1001, seed, 9)[0]
        for i in rng.integers(0, 1001, 40):
            alone = ks.draw_values(draw, [i], 1, seed, 9)[0, 0]
            assert alone == bulk[i]
        runs = ks.draw_values(draw, [3, 500, 17], 50, seed, 9)
        assert np.array_equal(runs, np.stack([bulk[3:53], bulk[500:550], bulk[17:67]]))
