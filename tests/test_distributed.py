"""Sharded init on torch.distributed, in real processes (gloo, CPU): every layout gives, gathered, the
bits of single-process init, and the same fingerprints."""
import socket

import dist_worker
import pytest
import torch
import torch.multiprocessing as mp

import gpuinit
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
