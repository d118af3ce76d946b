"""torch.distributed support: a DTensor's local shard is the block of its global tensor at an offset,
so filling it with ``full_shape``/``offsets`` gives exactly the values of the unsharded tensor."""
import hashlib
import sys
import threading
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


def block_checksum_reference(t, full_shape, offsets, chunk_rows=4096):
    """Sum over the elements of block ``t`` of mix(global index, value bits): int64 tensor, wrapping.

    The definition, in torch on ``t``'s device (CUDA and others, and the host without the C kernel);
    ``block_checksums`` computes the same bits on the host with kernels/cpu/gpuinit_checksum.c."""
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


def block_checksum(t, full_shape, offsets):
    """``block_checksum_reference``'s int64 tensor (on ``t``'s device), by the host kernel where it applies."""
    import torch

    from .backends import cpu_kernel

    if not _on_host(t) or cpu_kernel.load() is None:
        return block_checksum_reference(t, full_shape, offsets)
    (value,) = block_checksums([(t, full_shape, offsets)])
    return torch.tensor(as_int64(value), dtype=torch.int64)


# The host kernel: every element of a block on the CPU, summed by the C library in segments of at most _SEGMENT
# elements (the unit of work of a thread), on GPUINIT_NUM_THREADS threads.
_SEGMENT = 1 << 20
_SERIAL_ELEMENTS = 1 << 16  # fewer elements in all: on the calling thread
_MASK = (1 << 64) - 1
_HOST_DTYPES = ("bool", "uint8", "int8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16",
                "bfloat16", "float32", "float64", "complex32", "complex64", "float8_e4m3fn", "float8_e4m3fnuz",
                "float8_e5m2", "float8_e5m2fnuz", "float8_e8m0fnu")
_host: dict = {}


def _on_host(t):
    """Whether the host kernel (when there is one) reads ``t``: a plain CPU tensor (no subclass, no conjugate or
    negative bit) of a dtype of 1, 2, 4 or 8 bytes (others: the reference, which raises where it does)."""
    if not _host:
        import torch

        _host.update(types=(torch.Tensor, torch.nn.Parameter), strided=torch.strided,
                     dtypes=frozenset(getattr(torch, n) for n in _HOST_DTYPES if hasattr(torch, n)))
    return (type(t) in _host["types"] and t.is_cpu and t.layout == _host["strided"] and t.dtype in _host["dtypes"]
            and not t.is_conj() and not t.is_neg())


def block_checksums(blocks):
    """The checksums of blocks ``[(tensor, full_shape, offsets)]`` (``None, None``: the whole tensor), as ints
    in [0, 2**64): ``block_checksum_reference``'s bits. CPU tensors are read in place by the host kernel
    (a non-contiguous block is copied a piece at a time); the rest, or all without the kernel, by the reference."""
    from . import regions
    from .backends import cpu_kernel

    host = [i for i, (t, _, _) in enumerate(blocks) if _on_host(t)]
    lib = cpu_kernel.load() if host else None  # no CPU tensor: no build of the host kernel
    host = host if lib is not None else []
    sums = dict(zip(host, _host_sums(lib, [blocks[i] for i in host]), strict=True))
    for i, (t, full_shape, offsets) in enumerate(blocks):
        if i not in sums:
            full_shape, offsets = regions.check_region(t.shape, full_shape, offsets)
            sums[i] = int(block_checksum_reference(t, full_shape, offsets).item()) & _MASK
    return [sums[i] for i in range(len(blocks))]


def _host_sums(lib, blocks):
    """``block_checksums`` of blocks that ``_on_host`` accepts."""
    import numpy as np

    from . import regions

    sums = [0] * len(blocks)
    segments, firsts, owners = [], [], []  # contiguous whole tensors: 4 numbers a segment; each owner's first
    pieces = []  # (elements, block, tensor, index, starts, length) of the others
    for i, (t, full_shape, offsets) in enumerate(blocks):
        n = t.numel()
        if n == 0:
            continue
        whole = full_shape is None and offsets is None
        if not whole:
            full_shape, offsets = regions.check_region(t.shape, full_shape, offsets)
            whole = full_shape == tuple(t.shape) and not any(offsets)
        if whole and t.is_contiguous():
            firsts.append(len(segments) >> 2)
            owners.append(i)
            address, size = t.data_ptr(), t.element_size()
            if n <= _SEGMENT:
                segments += (address, size, 0, n)
            else:
                for c in range(0, n, _SEGMENT):
                    segments += (address + c * size, size, c, min(_SEGMENT, n - c))
        else:
            full_shape, offsets = regions.check_region(t.shape, full_shape, offsets)  # None, None: the tensor
            t = t.detach()
            for index, _, starts, length in regions.pieces(tuple(t.shape), full_shape, offsets, _SEGMENT):
                pieces.append((len(starts) * length, i, t, index, starts, length))

    seg = np.array(segments, np.uint64).reshape(-1, 4)
    out = np.zeros(len(seg), np.uint64)
    found = []  # (block, sum) of the pieces, appended by the threads

    def run_segments(a, b):
        lib.gi_cpu_checksums(seg[a:].ctypes.data, b - a, out[a:].ctypes.data)

    def run_piece(i, t, index, starts, length):
        block = t[index]
        if not block.is_contiguous():
            block = block.contiguous()  # one piece at a time: at most _SEGMENT elements
        found.append((i, lib.gi_cpu_checksum_runs(block.data_ptr(), block.element_size(), starts.ctypes.data,
                                                  len(starts), length)))

    _run_tasks(seg[:, 3], run_segments, pieces, run_piece)
    if owners:
        for i, v in zip(owners, np.add.reduceat(out, firsts).tolist(), strict=True):  # uint64: wraps
            sums[i] = v
    for i, v in found:
        sums[i] = (sums[i] + v) & _MASK
    return sums


def _run_tasks(lengths, run_segments, pieces, run_piece):
    """Segments (``lengths`` elements each) in ranges of about equal elements, and ``pieces``: on the calling
    thread when they are few elements, else on ``_executor``'s threads (ctypes releases the GIL)."""
    import numpy as np

    from .config import num_threads

    threads = num_threads()
    total = int(lengths.sum()) + sum(p[0] for p in pieces)
    bounds = [0, len(lengths)] if len(lengths) else []
    if threads > 1 and total > _SERIAL_ELEMENTS and len(lengths) > 1:
        # about 4 tasks a thread: cut the segments where their running total crosses a multiple of the share
        share = max(_SERIAL_ELEMENTS, total // (4 * threads))
        ends = np.cumsum(lengths, dtype=np.int64)
        cuts = np.searchsorted(ends, np.arange(share, int(ends[-1]), share), side="right")
        bounds = [0, *sorted({int(c) for c in cuts if 0 < c < len(lengths)}), len(lengths)]
    tasks = [lambda a=a, b=b: run_segments(a, b) for a, b in zip(bounds, bounds[1:], strict=False)]
    tasks += [lambda args=p[1:]: run_piece(*args) for p in pieces]
    if threads == 1 or total <= _SERIAL_ELEMENTS or len(tasks) == 1:
        for task in tasks:
            task()
        return
    for _ in _executor(threads).map(lambda task: task(), tasks):
        pass


_pool, _pool_size = None, 0
_pool_lock = threading.Lock()


def _executor(threads):
    """A pool of ``threads`` threads (GPUINIT_NUM_THREADS, as the NumPy backend's; numpy_backend keeps its own
    private), made again when that changes."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != threads:
            from concurrent.futures import ThreadPoolExecutor

            _pool, _pool_size = ThreadPoolExecutor(threads, thread_name_prefix="gpuinit-checksum"), threads
        return _pool


def checksums(members: Any) -> dict[str, int]:
    """{name: 64-bit checksum of its values} of (name, tensor) pairs, the same whatever the sharding of each
    tensor; a tensor met again under another name (tied weights) is listed once, under its first name.
    gpuinit.fingerprint hands it a model's parameters under their canonical names.

    Each element contributes mix(global index, value bits); contributions are summed (mod 2**64), so
    the order and placement of shards do not matter. Sharded parameters are all-reduced over their
    device mesh (replicas count once), so every rank returns the same numbers.
    """
    from .backends import cpu_kernel

    lib, loaded = None, False  # loaded at the first CPU tensor: a model without one never builds the host kernel
    out: dict = {}
    seen, host = set(), []
    for name, p in members:
        if not loaded and p.is_cpu:
            lib, loaded = cpu_kernel.load(), True
        if lib is not None and _on_host(p):  # storage_key(p) of a CPU tensor, without its checks
            key = ("cpu", p.untyped_storage().data_ptr(), p.storage_offset(), tuple(p.shape), tuple(p.stride()),
                   p.dtype)
            if key not in seen:
                seen.add(key)
                out[name] = None  # below, all in one go (the dict keeps the parameters' order)
                host.append((name, (p, None, None)))
            continue
        key = storage_key(p)
        if key is not None and key in seen:
            continue
        seen.add(key)
        if is_dtensor(p):
            local, full_shape, offsets = local_block(p)
            s = block_checksum(local, full_shape, offsets)
            out[name] = _reduce_over_mesh(s, p)
        else:  # read back below, once every device's work is queued
            out[name] = block_checksum_reference(p, tuple(p.shape), (0,) * p.dim())
    for (name, _), value in zip(host, _host_sums(lib, [block for _, block in host]), strict=True):
        out[name] = value
    return {k: v if isinstance(v, int) else int(v.item()) & _MASK for k, v in out.items()}


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
