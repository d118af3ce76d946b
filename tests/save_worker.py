"""Work of one rank in tests/test_model_init_save.py (a real process, gloo backend, CPU): save_init under
torch.distributed into safetensors and DCP, then the DCP checkpoint loaded into an FSDP2 model."""
import os

import torch
import torch.distributed as dist
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.state_dict import get_model_state_dict, set_model_state_dict
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

import gpuinit
from gpuinit.models import Llama, LlamaConfig

CONFIG = LlamaConfig(dim=64, n_layers=2, n_heads=4, vocab_size=101, max_seq_len=16)


def meta_model():
    with torch.device("meta"):
        return Llama(CONFIG)


def run(rank, world, port, out_dir):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        gpuinit.save_init(meta_model(), os.path.join(out_dir, "st"), "torch", seed=4, memory=4096,
                          max_shard_size=100_000)
        gpuinit.save_init(meta_model(), os.path.join(out_dir, "dcp"), "torch", seed=4, format="dcp")
        m = meta_model()
        mesh = init_device_mesh("cpu", (world,))
        for block in m.layers:
            fully_shard(block, mesh=mesh)
        fully_shard(m, mesh=mesh)
        m.to_empty(device="cpu")
        state = get_model_state_dict(m)
        dcp.load(state, checkpoint_id=os.path.join(out_dir, "dcp"))
        set_model_state_dict(m, state)
        fp = gpuinit.fingerprint(m)
        if rank == 0:
            torch.save(fp, os.path.join(out_dir, "fp.pt"))
    finally:
        dist.destroy_process_group()
