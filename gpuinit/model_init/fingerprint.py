"""gpuinit.fingerprint: a model's parameters, under their canonical names, checksummed (gpuinit/distributed.py)."""
from typing import Any

from ..distributed import checksums
from .names import Walk, check_module, refuse_fake


def fingerprint(module: Any) -> dict[str, int]:
    """{parameter name: 64-bit checksum of its values}, the same whatever the sharding of each parameter;
    a tensor stored under several names (tied weights) is listed once, under its first name. Names are canonical
    (a torch.compile, DDP or FSDP wrapper's part left out, as in every stream gpuinit draws)."""
    check_module(module, "fingerprint")
    walk = Walk(module)
    refuse_fake(walk)
    return checksums(walk.members("parameters"))
