"""torch.distributed support: a DTensor's local shard is the block of its global tensor at an offset,
so filling it with ``full_shape``/``offsets`` gives exactly the values of the unsharded tensor."""
import hashlib
import sys
from typing import Any

from .errors import InitError
from .seeding import as_int64


def is_dtensor(t):
    mod = sys.modules.get("torch.distributed.tensor")
    return mod is not None and isinstance(t, mod.DTensor)


def local_block(t):
    """(local tensor, global shape, global offsets) of DTensor ``t`` (Shard and Replicate placements)."""
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    for p in t.placements:
        if type(p) not in (Shard, Replicate):
            raise InitError(f"gpuinit fills DTensors with Shard and Replicate placements, got {t.placements}")
    local = t.to_local()
    shape, offsets = compute_local_shape_and_global_offset(t.shape, t.device_mesh, t.placements)
    if tuple(shape) != tuple(local.shape):
        raise InitError(f"the local shard's shape {tuple(local.shape)} is not the block {tuple(shape)} the "
                        f"placements {t.placements} give")
    return local, tuple(t.shape), tuple(offsets)


def storage_key(t):
    """What identifies the memory a tensor (a DTensor's local shard) covers, or None for a meta tensor."""
    local = t.to_local() if is_dtensor(t) else t
    if local.is_meta:
        return None
    return (str(local.device), local.untyped_storage().data_ptr(), local.storage_offset(), tuple(local.shape),
            tuple(local.stride()), local.dtype)


def stream_of(name):
    """The stream id of a parameter: 64 bits of SHA-256 of its fully qualified name."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "little")


# ---- fingerprints --------------------------------------------------------------------------------

_K1, _K2, _K3 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def _mix(x):
    """A splitmix64-style finalizer on int64 tensors (arithmetic shifts, wrapping products)."""
    x = x ^ (x >> 30)
    x = x * as_int64(_K2)
    x = x ^ (x >> 27)
    x = x * as_int64(_K3)
    return x ^ (x >> 31)


def block_checksum(t, full_shape, offsets, chunk_rows=4096):
    """Sum over the elements of block ``t`` of mix(global index, value bits): int64 tensor, wrapping."""
    import torch

    from .regions import row_major_strides

    bits_dtype = {1: torch.int8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[t.element_size()]
    g = row_major_strides(full_shape)
    total = torch.zeros((), dtype=torch.int64, device=t.device)
    if t.numel() == 0:
        return total
    t2 = t.detach().reshape(t.shape[0], -1) if t.dim() > 1 else t.detach().reshape(-1, 1)
    inner = torch.zeros(t2.shape[1], dtype=torch.int64, device=t.device)
    if t.dim() > 1:  # global index contribution of the trailing dims, flattened
        idx = torch.zeros((), dtype=torch.int64, device=t.device)
        for d in range(1, t.dim()):
            ar = (torch.arange(t.shape[d], device=t.device, dtype=torch.int64) + offsets[d]) * g[d]
            idx = idx.unsqueeze(-1) + ar
        inner = idx.reshape(-1)
    g0 = g[0] if t.dim() > 0 else 0
    off0 = offsets[0] if t.dim() > 0 else 0
    for r0 in range(0, t2.shape[0], chunk_rows):
        rows = t2[r0:r0 + chunk_rows]
        row_idx = (torch.arange(rows.shape[0], device=t.device, dtype=torch.int64) + r0 + off0) * g0
        index = row_idx[:, None] + inner[None, :]
        bits = rows.contiguous().view(bits_dtype).to(torch.int64)
        total += _mix(index * as_int64(_K1) ^ _mix(bits)).sum()
    return total


def fingerprint(module: Any) -> dict[str, int]:
    """{parameter name: 64-bit checksum of its values}, the same whatever the sharding of each parameter;
    a tensor stored under several names (tied weights) is listed once, under its first name.

    Each element contributes mix(global index, value bits); contributions are summed (mod 2**64), so
    the order and placement of shards do not matter. Sharded parameters are all-reduced over their
    device mesh (replicas count once), so every rank returns the same numbers.
    """

    out, seen = {}, set()
    for name, p in module.named_parameters():  # a tied parameter once, under its first name
        key = storage_key(p)
        if key is not None and key in seen:
            continue
        seen.add(key)
        if is_dtensor(p):
            local, full_shape, offsets = local_block(p)
            s = block_checksum(local, full_shape, offsets)
            out[name] = _reduce_over_mesh(s, p)
        else:
            out[name] = block_checksum(p, tuple(p.shape), (0,) * p.dim())
    return {k: int(v.item()) % (1 << 64) for k, v in out.items()} if out else {}


def _reduce_over_mesh(s, p):
    import torch.distributed as dist
    from torch.distributed.tensor import Replicate

    mesh = p.device_mesh
    coord = mesh.get_coordinate()
    if any(isinstance(pl, Replicate) and coord[d] != 0 for d, pl in enumerate(p.placements)):
        s = s * 0  # a replica: its copy is counted by coordinate 0 of that mesh dim
    s = s.to(p.to_local().device if mesh.device_type != "cpu" else "cpu")
    for d in range(mesh.ndim):
        dist.all_reduce(s, group=mesh.get_group(d))
    return s
