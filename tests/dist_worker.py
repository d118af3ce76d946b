"""Work of one rank in tests/test_distributed.py (a real process, gloo backend, CPU)."""
import os

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Replicate, Shard
from torch.distributed.tensor import empty as dt_empty

import gpuinit
from gpuinit.models import Llama, LlamaConfig

SHAPE = (37, 53)  # uneven over 2 and 4 ranks
CONFIG = LlamaConfig(dim=64, n_layers=2, n_heads=4, vocab_size=101, max_seq_len=16)


def placements(world):
    one_d = [("1d", (world,), (Shard(0),)), ("1d", (world,), (Shard(1),)), ("1d", (world,), (Replicate(),))]
    two_d = [("2d", (2, world // 2), pl) for pl in [(Shard(0), Shard(1)), (Replicate(), Shard(0)), (Shard(1), Shard(1)),
                                                    (Shard(0), Replicate())]] if world == 4 else []
    return one_d + two_d


def run(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    results = {}
    for i, (_, mesh_shape, pl) in enumerate(placements(world)):
        mesh = init_device_mesh("cpu", mesh_shape)
        for scheme, dtype in [("normal", torch.float32), ("trunc_normal", torch.bfloat16),
                              ("orthogonal", torch.float32), ("kaiming_uniform", torch.float16)]:
            t = dt_empty(SHAPE, dtype=dtype, device_mesh=mesh, placements=pl)
            gpuinit.init_(t, scheme, seed=11, stream=i)
            results[f"tensor/{i}/{scheme}"] = t.full_tensor()
    # FSDP2 on a meta model, then tensor parallelism, each initialized by init_module
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    mesh = init_device_mesh("cpu", (world,))
    with torch.device("meta"):
        model = Llama(CONFIG)
    for block in model.layers:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)
    gpuinit.init_module(model, seed=3, device="cpu")
    results["fsdp/fingerprint"] = gpuinit.fingerprint(model)
    results["fsdp/params"] = {n: p.full_tensor() for n, p in model.named_parameters()}
    with torch.device("meta"):
        model = Llama(CONFIG)
    plan = {}
    for k in range(CONFIG.n_layers):
        plan.update({f"layers.{k}.attention.wq": ColwiseParallel(), f"layers.{k}.attention.wo": RowwiseParallel(),
                     f"layers.{k}.feed_forward.w1": ColwiseParallel(),
                     f"layers.{k}.feed_forward.w2": RowwiseParallel()})
    parallelize_module(model, mesh, plan)
    gpuinit.init_module(model, seed=3, device="cpu")
    results["tp/fingerprint"] = gpuinit.fingerprint(model)
    results["tp/params"] = {n: (p.full_tensor() if hasattr(p, "full_tensor") else p.detach())
                            for n, p in model.named_parameters()}
    if rank == 0:
        torch.save(results, os.path.join(out_dir, "rank0.pt"))
    torch.save({k: v for k, v in results.items() if k.endswith("fingerprint")}, os.path.join(out_dir, f"fp{rank}.pt"))
    dist.destroy_process_group()
