"""Sharded init on torch.distributed, in real processes (gloo, CPU): every layout gives, gathered, the
bits of single-process init, and the same fingerprints. And fingerprint's host kernel: the torch reference's bits."""
import socket

import dist_worker
import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

import gpuinit
from gpuinit import distributed
from gpuinit.backends import cpu_kernel
from gpuinit.models import Llama

pytestmark = pytest.mark.skipif(not torch.distributed.is_available(), reason="torch.distributed is not built")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module", params=[1, 2, 4])
def world(request, tmp_path_factory):
    out = tmp_path_factory.mktemp(f"world{request.param}")
    mp.start_processes(dist_worker.run, args=(request.param, free_port(), str(out)), nprocs=request.param, join=True,
                       start_method="spawn")
    fps = [torch.load(out / f"fp{r}.pt") for r in range(request.param)]
    return request.param, torch.load(out / "rank0.pt"), fps


def test_dtensor_blocks_equal_single_process(world):
    n, results, _ = world
    for i, (_, _, placements) in enumerate(dist_worker.placements(n)):
        for scheme, dtype in [("normal", torch.float32), ("trunc_normal", torch.bfloat16),
                              ("orthogonal", torch.float32), ("kaiming_uniform", torch.float16)]:
            ref = gpuinit.init_(torch.empty(dist_worker.SHAPE, dtype=dtype), scheme, seed=11, stream=i)
            got = results[f"tensor/{i}/{scheme}"]
            if scheme == "orthogonal":
                assert torch.allclose(got, ref, atol=1e-6), (placements, scheme)
            else:
                assert torch.equal(got, ref), (placements, scheme)


@pytest.mark.parametrize("layout", ["fsdp", "tp"])
def test_models_equal_single_process(world, layout):
    _, results, fps = world
    with torch.device("meta"):
        ref = Llama(dist_worker.CONFIG)
    gpuinit.init_module(ref, seed=3, device="cpu")
    for name, p in ref.named_parameters():
        assert torch.equal(results[f"{layout}/params"][name], p.detach()), name
    expected = gpuinit.fingerprint(ref)
    for fp in fps:  # every rank computed the same, sharding-independent fingerprint
        assert fp[f"{layout}/fingerprint"] == expected


# ---- the host kernel of fingerprint (kernels/cpu/gpuinit_checksum.c) against the torch reference --------------

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64, torch.int8, torch.uint8, torch.int16,
          torch.int32, torch.int64, torch.bool, torch.complex64, torch.float8_e4m3fn]
SHAPES = [(), (0,), (1,), (7,), (3, 5), (2, 3, 4), (5, 0, 3), (17, 1, 33), (4, 3, 5, 7)]
BITS = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


def random_tensor(shape, dtype, rng):
    """Random raw bits (negative integers, NaNs and all), so every sign-extension and shift is exercised."""
    if dtype == torch.bool:
        return torch.from_numpy(rng.integers(0, 2, shape).astype(bool))
    bits = torch.from_numpy(rng.integers(-2**63, 2**63, shape, dtype=np.int64, endpoint=False))
    return bits.to(BITS[torch.empty((), dtype=dtype).element_size()]).view(dtype)


def reference(t, full_shape=None, offsets=None):
    full_shape = tuple(t.shape) if full_shape is None else full_shape
    offsets = (0,) * t.dim() if offsets is None else offsets
    return int(distributed.block_checksum_reference(t, full_shape, offsets).item()) % (1 << 64)


def reference_fingerprint(module):
    out, seen = {}, set()
    for name, p in module.named_parameters():
        key = distributed.storage_key(p)
        if key not in seen:
            seen.add(key)
            out[name] = reference(p)
    return out


@pytest.fixture(params=["default", "tiny segments"])
def segments(request, monkeypatch):
    """The host kernel in use; "tiny segments": tensors split into segments and pieces of 64 elements, on threads."""
    monkeypatch.delenv("GPUINIT_CPU_KERNEL", raising=False)
    cpu_kernel.reset()
    if cpu_kernel.load() is None:
        pytest.skip(f"no host kernel: {cpu_kernel.why_not()}")
    if request.param == "tiny segments":
        monkeypatch.setattr(distributed, "_SEGMENT", 64)
        monkeypatch.setattr(distributed, "_SERIAL_ELEMENTS", 0)
    yield request.param
    cpu_kernel.reset()


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_host_checksum_equals_reference(dtype, segments, rng):
    for shape in SHAPES:
        t = random_tensor(shape, dtype, rng)
        assert distributed.block_checksums([(t, None, None)]) == [reference(t)], shape
        assert distributed.block_checksum(t, t.shape, (0,) * t.dim()).item() == reference(t) - (
            (1 << 64) if reference(t) >= 1 << 63 else 0), shape


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.int8, torch.float64], ids=str)
def test_host_checksum_of_views(dtype, segments, rng):
    """Non-contiguous views (copied a piece at a time) and contiguous ones at a storage offset."""
    t = random_tensor((13, 24, 10), dtype, rng)
    views = [t.transpose(0, 2), t[:, ::3], t[2:, 5:, 1:], t.permute(1, 2, 0), t[4], t[4, 3:], t[:, 7],
             t.reshape(-1)[5:200], t.reshape(-1)[::7], t[0, 0, 0], t[:, :0], t.expand(2, *t.shape), t[None, :, None]]
    for i, v in enumerate(views):
        assert distributed.block_checksums([(v, None, None)]) == [reference(v)], i
    assert distributed.block_checksums([(v, None, None) for v in views]) == [reference(v) for v in views]


def random_block(rng, dims):
    full = tuple(int(n) for n in rng.integers(1, 12, dims))
    offsets = tuple(int(rng.integers(0, n)) for n in full)
    low = 0 if rng.random() < 0.1 else 1  # now and then an empty block
    shape = tuple(int(rng.integers(low, n - o + 1)) for n, o in zip(full, offsets, strict=True))
    return shape, full, offsets


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float32, torch.uint8], ids=str)
def test_host_checksum_of_blocks(dtype, segments, rng):
    """Blocks at offsets in a full tensor (DTensor shards), contiguous and not; their sums add up to the whole."""
    for dims in range(4):
        for _ in range(12):
            shape, full, offsets = random_block(rng, dims)
            t = random_tensor(shape, dtype, rng)
            want = reference(t, full, offsets)
            assert distributed.block_checksums([(t, full, offsets)]) == [want], (shape, full, offsets)
            if dims >= 2:  # the same block, held transposed
                v = t.transpose(0, 1).contiguous().transpose(0, 1)
                assert not v.is_contiguous() or 1 in shape or 0 in shape
                assert distributed.block_checksums([(v, full, offsets)]) == [want], (shape, full, offsets)
    whole = random_tensor((9, 10, 11), dtype, rng)
    blocks = [(whole[a:b, c:d], whole.shape, (a, c, 0)) for a, b in [(0, 4), (4, 9)] for c, d in [(0, 3), (3, 10)]]
    assert sum(distributed.block_checksums(blocks)) % (1 << 64) == reference(whole)


def test_host_checksum_of_a_tensor_of_several_segments(segments, rng):
    t = random_tensor(((1 << 20) * 2 + 5,), torch.bfloat16, rng)
    block = random_tensor((700, 1600), torch.float16, rng)  # 1.1 M elements: two pieces of runs
    got = distributed.block_checksums([(t, None, None), (block, (900, 2000), (150, 300))])
    assert got == [reference(t), reference(block, (900, 2000), (150, 300))]


class Mixed(nn.Module):
    def __init__(self, rng):
        super().__init__()
        self.emb = nn.Embedding(50, 12, dtype=torch.bfloat16)
        self.lin = nn.Linear(12, 7)
        self.head = nn.Linear(12, 50, bias=False, dtype=torch.bfloat16)
        self.head.weight = self.emb.weight  # tied: listed once
        self.scalar = nn.Parameter(torch.tensor(0.25, dtype=torch.float64))
        self.empty = nn.Parameter(torch.empty(0, 3))
        self.view = nn.Parameter(random_tensor((8, 6), torch.float16, rng).T)  # non-contiguous
        self.ints = nn.Parameter(random_tensor((5, 5), torch.int32, rng), requires_grad=False)
        self.elements = nn.Parameter(random_tensor((3, 40), torch.float32, rng)[:, ::2])  # a stride-2 view
        with torch.no_grad():
            for p in (self.emb.weight, self.lin.weight, self.lin.bias):
                p.copy_(random_tensor(p.shape, p.dtype, rng))


@pytest.mark.parametrize("kernel", ["1", "0"])
@pytest.mark.parametrize("threads", ["1", "2"])
def test_fingerprint_equals_reference(kernel, threads, monkeypatch, rng):
    """With the host kernel and without it (GPUINIT_CPU_KERNEL=0: the torch reference), on one thread or more."""
    monkeypatch.setenv("GPUINIT_CPU_KERNEL", kernel)
    monkeypatch.setenv("GPUINIT_NUM_THREADS", threads)
    cpu_kernel.reset()
    try:
        if kernel == "1" and cpu_kernel.load() is None:
            pytest.skip(f"no host kernel: {cpu_kernel.why_not()}")
        assert (cpu_kernel.load() is None) == (kernel == "0")
        m = Mixed(rng)
        fp, want = gpuinit.fingerprint(m), reference_fingerprint(m)
        assert fp == want and list(fp) == list(want)  # the parameters' order
        assert sorted(fp) == ["elements", "emb.weight", "empty", "ints", "lin.bias", "lin.weight", "scalar", "view"]
        assert fp["empty"] == 0
        big = nn.ParameterList([nn.Parameter(random_tensor((1 << 19,), torch.bfloat16, rng)) for _ in range(5)])
        assert gpuinit.fingerprint(big) == reference_fingerprint(big)
    finally:
        cpu_kernel.reset()


def test_fingerprint_of_many_small_tensors(segments, rng):
    m = nn.ParameterList([nn.Parameter(random_tensor(tuple(int(n) for n in rng.integers(0, 9, rng.integers(0, 4))),
                                                     torch.float32, rng)) for _ in range(300)])
    assert gpuinit.fingerprint(m) == reference_fingerprint(m)


def test_fingerprint_of_meta_parameters_still_raises(monkeypatch):
    """As the reference does; and a model without CPU tensors does not build the host kernel."""
    loads = []
    monkeypatch.setattr(cpu_kernel, "load", lambda: loads.append(1))
    with torch.device("meta"):
        m = nn.Linear(3, 3)
    with pytest.raises(Exception):  # noqa: B017, PT011 - what the reference raises, unchanged
        gpuinit.fingerprint(m)
    assert loads == []
