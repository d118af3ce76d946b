"""The Triton kernels compute the reference stream: every scheme x dtype, odd shapes, strided views,
shards (offsets past 2**32 included), bit for bit against the NumPy backend. Without a GPU they run
in Triton's interpreter on CPU tensors; with one, on the device."""

import numpy as np
import pytest
import torch

pytest.importorskip("triton")

from conftest import fresh_seed
from gpuinit.kernels import numpy_stream as ks

import gpuinit
from gpuinit import draws, regions
from gpuinit.backends import numpy_backend, triton_backend
from gpuinit.jobs import Job

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
DTYPES = [torch.float32, torch.bfloat16, torch.float16, torch.float64]
SCHEMES = [("uniform", {"a": -0.7, "b": 0.2}), ("normal", {"mean": 0.1, "std": 2.0}),
           ("trunc_normal", {"std": 1.0, "a": -0.5, "b": 2.5}), ("trunc_normal", {"std": 1.0, "a": 5.5, "b": 9.0}),
           ("kaiming_uniform", {}), ("xavier_normal", {}), ("he_normal", {}), ("glorot_uniform", {}),
           ("lecun_normal", {}), ("constant", {"value": 0.3}), ("zeros", {}), ("ones", {}), ("eye", {}),
           ("orthogonal", {"gain": 1.5}), ("sparse", {"sparsity": 0.3, "std": 0.1}),
           ("delta_orthogonal", {"gain": 1.5})]


def both(shape, dtype, scheme, seed, make=None, **kw):
    """(triton result, numpy-backend result) for the same call, as CPU tensors."""
    make = make or (lambda device: torch.empty(shape, dtype=dtype, device=device))
    ours = gpuinit.init_(make(DEVICE), scheme, seed=seed, backend="triton", **kw)
    ref = gpuinit.init_(make("cpu"), scheme, seed=seed, backend="numpy", **kw)
    return ours.cpu(), ref


def assert_bits(a, b, scheme):
    if "orthogonal" in scheme:  # QR by different LAPACKs: equal to float32 rounding, not to the bit
        tol = {torch.float64: 1e-12, torch.float32: 2e-6}.get(a.dtype, 1e-2)
        assert torch.allclose(a.double(), b.double(), atol=tol, rtol=0)
    else:
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("scheme,kw", SCHEMES, ids=[f"{s}{i}" for i, (s, _) in enumerate(SCHEMES)])
def test_matches_numpy_backend(scheme, kw, dtype, rng):
    for shape in [(37, 53), (5, 3, 7), (1, 1029)]:
        if scheme in ("eye", "sparse") and len(shape) != 2 or scheme == "delta_orthogonal" and len(shape) != 3:
            continue
        a, b = both(shape, dtype, scheme, fresh_seed(rng), **kw)
        assert_bits(a, b, scheme)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_strided_views(dtype, rng):
    seed = fresh_seed(rng)
    for make in [lambda d: torch.zeros(53, 37, dtype=dtype, device=d).T,
                 lambda d: torch.zeros(40, 60, dtype=dtype, device=d)[3:37:2, 5:58:3],
                 lambda d: torch.zeros(4, 5, 6, 7, 8, 9, 3, dtype=dtype, device=d)[..., 1]]:
        for scheme, kw in [("normal", {}), ("trunc_normal", {"a": -1.0, "b": 1.0}), ("uniform", {})]:
            a, b = both(None, dtype, scheme, seed, make=make, **kw)
            assert torch.equal(a, b)


def test_views_are_written_where_they_live():
    base = torch.zeros(20, 30, device=DEVICE)
    gpuinit.init_(base[:, ::3], "normal", seed=1, backend="triton")
    assert (base[:, 1::3] == 0).all() and (base[:, 2::3] == 0).all() and (base[:, ::3] != 0).all()


@pytest.mark.parametrize("scheme,kw", [("normal", {}), ("uniform", {}), ("trunc_normal", {}), ("orthogonal", {}),
                                       ("sparse", {"sparsity": 0.2}), ("eye", {}), ("he_uniform", {})])
def test_shards(scheme, kw, rng):
    seed, full = fresh_seed(rng), (23, 41)
    whole = gpuinit.init_(torch.empty(full, device=DEVICE), scheme, seed=seed, backend="triton", **kw).cpu()
    for _ in range(5):
        off = (int(rng.integers(0, 23)), int(rng.integers(0, 41)))
        shape = (int(rng.integers(1, 24 - off[0])), int(rng.integers(1, 42 - off[1])))
        part = gpuinit.init_(torch.empty(shape, device=DEVICE), scheme, seed=seed, backend="triton", full_shape=full,
                             offsets=off, **kw).cpu()
        assert_bits(part, whole[off[0]:off[0] + shape[0], off[1]:off[1] + shape[1]], scheme)


@pytest.mark.parametrize("full,off,shape,runs", [
    ((64, 512), (0, 128), (64, 128), 8),  # a tensor-parallel column shard: runs start on Philox blocks
    ((33, 500), (1, 3), (31, 101), 8),  # runs starting anywhere in a block
    ((6, 8, 64), (1, 2, 32), (5, 4, 32), 32),  # three dims
    ((40, 12), (3, 2), (37, 8), 64),  # very short runs
    ((16, 4096), (0, 1024), (16, 1000), 1),  # runs of a tile or more
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_short_runs_packed_per_program(full, off, shape, runs, dtype, rng):
    from gpuinit import launch_layout

    strided = torch.empty(shape[::-1], dtype=dtype).T if len(shape) == 2 else None
    geo = launch_layout.launch_geometry(shape, torch.empty(shape).stride(), full, off)
    assert triton_backend.fill_options(draws.Normal(mean=0.0, std=1.0), geo, 0)["RUNS"] == runs
    for scheme, kw in [("normal", {}), ("trunc_normal", {"a": -1.0, "b": 0.5}), ("uniform", {})]:
        seed = fresh_seed(rng)
        a, b = both(shape, dtype, scheme, seed, full_shape=full, offsets=off, **kw)
        assert torch.equal(a, b)
        if strided is not None:  # the same block through a transposed view
            c, _ = both(shape, dtype, scheme, seed, make=lambda d: strided.to(d), full_shape=full, offsets=off, **kw)
            assert torch.equal(c, b)


def test_offsets_past_two_to_the_32(rng):
    seed, full = fresh_seed(rng), (2**21 + 5, 2**12 + 1)  # 2**33 + ... logical elements
    for off in [(2**20 + 17, 3), (2**21, 0), (0, 0)]:
        for dtype in (torch.float32, torch.bfloat16):
            a, b = both((4, 101), dtype, "normal", seed, full_shape=full, offsets=off)
            assert torch.equal(a, b)


def test_raw_words_bit_for_bit(rng):
    seed, stream = fresh_seed(rng), fresh_seed(rng)
    for start in [0, 3, 2**32 - 2, 2**40 + 1]:
        got = triton_backend.words(DEVICE, (1, 999), (1, 2**62), (0, 0), seed, stream, base_index=start).cpu()
        assert np.array_equal(got.numpy()[0].astype(np.uint32), ks.element_words([start], 999, seed, stream)[0])


def test_dirac_and_errors():
    a, b = both((8, 6, 3, 3), torch.float32, "dirac", 0, groups=2)
    assert torch.equal(a, b)
    t = torch.arange(6.0, device=DEVICE).reshape(2, 3)
    with pytest.raises(gpuinit.InitError):
        gpuinit.init_(t, "uniform", seed=0, a=1.0, b=0.0, backend="triton")
    assert torch.equal(t.cpu(), torch.arange(6.0).reshape(2, 3))
    with pytest.raises(gpuinit.BackendUnavailableError, match="cannot fill"):
        gpuinit.init_(np.empty(3, np.float32), "normal", seed=0, backend="triton")


def test_grouped_launch_equals_single_fills(rng):
    """One launch per (dtype, kind) for contiguous tensors; the values are those of one init_ each."""
    specs = [((17, 33), torch.float32, draws.normal(0.0, 0.02)), ((5,), torch.float32, draws.normal(1.0, 0.5)),
             ((64, 7), torch.float32, draws.normal(0.0, 1.0)), ((9, 9), torch.bfloat16, draws.uniform(-0.1, 0.1)),
             ((301,), torch.bfloat16, draws.uniform(0.0, 1.0)),
             ((11, 13), torch.float32, draws.trunc_normal(0, 1, -1, 2)),
             ((40, 40), torch.float32, draws.trunc_normal(0.0, 1.0, 3.0, 9.0))]
    def job(t, d, seed, stream, full_shape=None, offsets=None):
        return Job(t, d, *regions.check_region(tuple(t.shape), full_shape, offsets), seed, stream, triton_backend)

    items = [job(torch.empty(shape, dtype=dt, device=DEVICE), d, fresh_seed(rng), fresh_seed(rng))
             for shape, dt, d in specs]
    items.append(job(torch.empty(12, 10, device=DEVICE).T, draws.normal(0.0, 1.0), 5, 6))  # strided: its own launch
    items.append(job(torch.empty(3, 10, device=DEVICE), draws.normal(0.0, 1.0), 5, 6, (9, 10), (5, 0)))  # a row shard
    items.append(job(torch.empty(9, 3, device=DEVICE), draws.normal(0.0, 1.0), 5, 6, (9, 10), (0, 5)))  # a column one
    # (f32, normal), (bf16, uniform), (f32, trunc, 1 erfinv branch), (f32, trunc, 3 branches), the row shard
    # (it starts inside a Philox block: the unaligned (f32, normal) group), then the strided tensor and the column
    # shard, one launch each
    assert triton_backend.fill_group(items) == 5 + 2
    for j in items:
        ref = numpy_backend.fill(j._replace(array=torch.empty(j.array.shape, dtype=j.array.dtype)))
        assert torch.equal(j.array.cpu(), ref)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_grouped_constants_join_the_uniform_launch(dtype):
    """Constants of float32 values (a LayerNorm's ones and zeros) are written by their dtype's uniform group launch,
    with the bits an assignment of the value gives; -0.0 and a value that is not a float32 are written apart."""
    values = [1.0, 0.0, 0.5, -3.25, 1e-3, -0.0, 0.1]
    items = [Job(torch.full((7, 5), float("nan"), dtype=dtype, device=DEVICE), draws.fit(draws.constant(v), str(
        dtype).removeprefix("torch.")), (7, 5), (0, 0), 1, 2, triton_backend) for v in values]
    items.append(Job(torch.empty(6, 4, dtype=dtype, device=DEVICE), draws.fit(draws.uniform(-1.0, 1.0), str(
        dtype).removeprefix("torch.")), (6, 4), (0, 0), 3, 4, triton_backend))
    exact = sum(1 for v in values if v == float(np.float32(v)) and str(v) != "-0.0")
    assert triton_backend.fill_group(items) == 1 + (len(values) - exact)
    for j, v in zip(items, values, strict=False):
        want = torch.full((7, 5), float(np.float32(v)) if dtype == torch.bfloat16 else v, dtype=dtype)
        got = j.array.cpu()
        assert torch.equal(got.view(torch.int16 if dtype != torch.float32 else torch.int32),
                           want.view(torch.int16 if dtype != torch.float32 else torch.int32)), (v, dtype)
    ref = numpy_backend.fill(items[-1]._replace(array=torch.empty(6, 4, dtype=dtype)))
    assert torch.equal(items[-1].array.cpu(), ref)


def test_the_group_launch_s_programs_name_each_row_s_tiles_in_order(rng):
    """_owners: program p of a group launch fills tile t of row i, as (i << 32) | t, rows after one another."""
    for tiles in ([1], [3, 1, 2], [0, 2, 0, 1], rng.integers(0, 50, 40).tolist()):
        want = [(i << 32) | t for i, n in enumerate(tiles) for t in range(n)]
        got = triton_backend._owners(tiles, torch.device("cpu"))
        assert got.dtype == torch.int64 and got.tolist() == want
