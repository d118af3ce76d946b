"""``gpuinit.save_init``: a meta model's initialized tensors written straight to safetensors files, block by
block, in bounded memory; the model is never materialized.

Every value is a pure function of (seed, tensor name, index), so a block of rows of a tensor is filled alone
(``full_shape``/``offsets``) and written at its place in its file. What each tensor holds is planned as
``init_module`` plans it: by recipe, or for ``"own"``/``"hf"`` by a dry run of the model's own code on meta,
whose last whole fill of each tensor is replayed per block (a tensor whose code does anything else is refused
with its name, unless a rule covers it). Buffers (small) are computed on the CPU as ``init_module`` restores
them; the persistent ones are saved. Tied tensors are stored once, under their first name, as safetensors'
``save_model`` and Hugging Face's ``save_pretrained`` store them; files, shards and the index
(``model.safetensors.index.json``) are laid out as Hugging Face writes them. Under torch.distributed each rank
writes its share of the blocks into files laid out by rank 0: the files are the same whatever the split.
"""
import json
import os
import warnings
from typing import Any, NamedTuple

from .. import jobs, seeding
from ..errors import InitError
from . import direct_io, own_code
from .by_own_code import own_plan
from .by_recipe import recipe_plan
from .intercept import stream_of
from .names import Walk, on_meta
from .recipes import OWN_RECIPES

_DTYPES = {"float32": "F32", "bfloat16": "BF16", "float16": "F16", "float64": "F64", "int64": "I64",
           "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}
INDEX = "model.safetensors.index.json"
_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 2**10, "mib": 2**20,
          "gib": 2**30, "tib": 2**40}


class Entry(NamedTuple):
    """One saved tensor: its name, shape, torch dtype, and either ``fill`` (scheme, params, stream) and ``pad``
    (a row zeroed after the fill: an embedding's padding_idx) or ``values`` (a small CPU tensor)."""

    name: str
    shape: tuple
    dtype: Any
    fill: Any = None
    pad: Any = None
    values: Any = None

    @property
    def nbytes(self):
        n = self.dtype.itemsize
        for d in self.shape:
            n *= d
        return n

    @property
    def row_bytes(self):
        """Bytes of one row (index of the first axis); a 0-d tensor's or an empty one's: all of it."""
        return self.nbytes // self.shape[0] if self.shape and self.shape[0] else self.nbytes


def size_bytes(value, what):
    """Bytes from an int or a string such as "5GB", "512MiB"; InitError for anything else."""
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    if isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        digits = text.rstrip("abcdefghijklmnopqrstuvwxyz")
        unit = text[len(digits):]
        try:
            n = float(digits)
        except ValueError:
            n = -1.0
        if unit in _UNITS and n > 0:
            return int(n * _UNITS[unit])
    raise InitError(f"{what} must be a positive number of bytes or a size such as '5GB' or '512MiB', got {value!r}")


def plan_save(module, recipe="torch", *, seed, rules=None, aliases=False):
    """[Entry] of every persistent tensor of meta ``module`` as ``init_module(module, recipe)`` would leave it,
    nothing written or materialized (``aliases``: a tied tensor under each of its names, as ``state_dict()``
    lists it); InitError names what cannot be saved that way."""
    walk = Walk(module)
    if not on_meta(module, walk):
        raise InitError("save_init writes a model built on the meta device (with torch.device('meta'): ...); this one "
                        "holds tensors elsewhere: save its state_dict instead")
    plan = own_plan(module, rules) if recipe in OWN_RECIPES else recipe_plan(module, recipe, rules)
    code_fills, pads = {}, {}
    if plan.code is not None:
        report = own_code.run(module, plan, seed, dry=True, walk=walk)
        params = [t for t in plan.code.targets if t in plan.params and t not in plan.code.skip]
        code_fills = _code_fills(report, params, recipe)
        pads = {fqn: row for fqn, row in report.pads.items() if fqn in code_fills}
        code_fills.update({fqn: f for fqn, f in report.fills.items() if fqn in plan.buffers and f is not None
                           and fqn not in report.edited and fqn not in plan.code.skip})
    fills = {fqn: (scheme, params, stream_of(fqn)) for fqn, (scheme, params) in plan.fills}
    fills.update(code_fills)
    pads.update({after.args[1]: after.args[0].padding_idx for after in plan.after_fills if hasattr(after, "args")})
    tensors = dict(walk.members("parameters"))
    out, by_name = [], {}
    for fqn, owner in plan.params.items():
        if owner != fqn:
            if aliases:
                out.append(by_name[owner]._replace(name=fqn))
            continue  # tied: stored once, under its first name
        t = tensors[fqn]
        if fqn not in fills:
            raise InitError(f"save_init: nothing fills {fqn} by recipe {recipe!r}; add a rule naming it")
        out.append(by_name.setdefault(fqn, Entry(fqn, tuple(t.shape), t.dtype, fills[fqn], pads.get(fqn))))
    out += _buffers(module, walk, plan, seed, fills)
    for e in out:
        if str(e.dtype).removeprefix("torch.") not in _DTYPES:
            raise InitError(f"save_init: {e.name} is {e.dtype}, which safetensors files here do not hold")
        if e.fill is not None and not e.dtype.is_floating_point:
            raise InitError(f"save_init: {e.name} is {e.dtype}: a draw fills floating-point tensors")
    return out


def _code_fills(report, params, recipe):
    """{fqn: (scheme, params, stream)} of the parameters ``params`` the code fills; InitError naming those it does
    not leave as one whole fill (an edit after the fill, a draw from the code's own generator, nothing)."""
    out, bad = {}, []
    for fqn in params:
        fill = report.fills.get(fqn)
        if fill is None or fqn in report.edited:
            bad.append(fqn)
        else:
            out[fqn] = fill
    if bad:
        raise InitError(f"save_init: the {recipe!r} init code does not leave {', '.join(bad[:8])}"
                        f"{' ...' if len(bad) > 8 else ''} as one whole fill (it writes them otherwise, draws "
                        "them from its own generator, or not at all), so it cannot be replayed block by block; add "
                        "a rule naming them")
    return out


def _buffers(module, walk, plan, seed, fills):
    """Entries of the persistent buffers: their values computed on the CPU as init_module restores them (the
    module's buffers swapped for CPU tensors meanwhile, then put back)."""
    import torch

    persistent = []
    swapped = []
    for prefix, m in walk.modules():
        for name, b in list(m._buffers.items()):
            if b is None:
                continue
            fqn = f"{prefix}.{name}" if prefix else name
            swapped.append((m, name, b))
            m._buffers[name] = torch.zeros(b.shape, dtype=b.dtype, device="cpu")
            if name not in m._non_persistent_buffers_set and plan.buffers.get(fqn, fqn) == fqn:
                persistent.append((fqn, m, name))
    if not persistent:
        for m, name, b in swapped:
            m._buffers[name] = b
        return []
    try:
        with torch.no_grad():
            if plan.code is not None and plan.code.first:  # own_init: the code computes them (parameters stay meta)
                own_code.run(module, plan, seed, dry=False, walk=walk)
            for restore in plan.restores:
                restore(module)
            tensors = {fqn: m._buffers[name] for fqn, m, name in persistent}
            items = [(tensors[fqn], s, p, stream_of(fqn), fqn) for fqn, (s, p) in plan.buffer_fills if fqn in tensors]
            jobs.run(jobs.prepare_all(items, seed=seed))
            out = []
            for fqn, m, name in persistent:
                t = m._buffers[name]
                if fqn in fills:  # the code's whole fill of it (own_init): replayed
                    out.append(Entry(fqn, tuple(t.shape), t.dtype, fills[fqn]))
                else:
                    out.append(Entry(fqn, tuple(t.shape), t.dtype, values=t.clone()))
            return out
    finally:
        for m, name, b in swapped:
            m._buffers[name] = b


def shards(entries, max_shard_size):
    """[(file name, [Entry])], in order, each at most ``max_shard_size`` bytes of data unless one tensor is more,
    named as Hugging Face names them."""
    groups: list = [[]]
    size = 0
    for e in entries:
        if groups[-1] and size + e.nbytes > max_shard_size:
            groups.append([])
            size = 0
        groups[-1].append(e)
        size += e.nbytes
    if len(groups) == 1:
        return [("model.safetensors", groups[0])]
    n = len(groups)
    return [(f"model-{i + 1:05d}-of-{n:05d}.safetensors", g) for i, g in enumerate(groups)]


def header(entries, metadata=None):
    """(header bytes with its 8-byte length prefix, {name: offset of its data in the file})."""
    head: dict = {"__metadata__": {"format": "pt", **(metadata or {})}}
    offset, at = 0, {}
    for e in entries:
        head[e.name] = {"dtype": _DTYPES[str(e.dtype).removeprefix("torch.")], "shape": list(e.shape),
                        "data_offsets": [offset, offset + e.nbytes]}
        at[e.name] = offset
        offset += e.nbytes
    text = json.dumps(head, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    start = 8 + len(text)
    return len(text).to_bytes(8, "little") + text, {k: v + start for k, v in at.items()}


def blocks(entry, budget):
    """(first row, rows) of the blocks ``entry`` is written in: whole rows, at most ``budget`` bytes each."""
    if not entry.shape or entry.fill is None:
        return [(0, entry.shape[0] if entry.shape else 1)]
    rows = entry.shape[0]
    per = max(1, budget // max(1, entry.row_bytes))
    return [(r, min(per, rows - r)) for r in range(0, rows, per)] or [(0, 0)]


def fill_block(entry, first, rows, seed):
    """Rows [first, first + rows) of ``entry``'s values, as a contiguous CPU tensor."""
    import torch

    if entry.fill is None:
        return entry.values.contiguous()
    scheme, params, stream = entry.fill
    data = torch.empty((rows, *entry.shape[1:]) if entry.shape else (), dtype=entry.dtype)
    offsets = (first,) + (0,) * (len(entry.shape) - 1) if entry.shape else ()
    jobs.run([jobs.prepare(data, scheme, params, seed=seed, stream=stream, full_shape=entry.shape, offsets=offsets,
                           name=entry.name)])
    if entry.pad is not None and first <= entry.pad < first + rows:
        data[entry.pad - first].zero_()
    return data


def save_init(module, path, recipe="torch", *, seed=None, rules=None, format="safetensors", max_shard_size="5GB",
              memory="256MiB", workers=1, metadata=None):
    """Write meta ``module``'s initialized tensors to safetensors files in directory ``path``: see the module's
    doc. Returns the paths of the files written (shards, then the index when there are several).
    ``memory``: the most bytes of values a process holds at once (two blocks: one written while the next is
    filled); ``max_shard_size``: a shard's size, as Hugging Face splits them; ``workers``: processes on this
    machine that share the blocks (under torch.distributed, each rank's share). ``format="dcp"``: a
    torch.distributed.checkpoint directory of the model's ``state_dict()`` names (tied ones each), each tensor
    computed whole when DCP's writer asks for it (ranks share the tensors as DCP splits them)."""
    import torch.distributed as dist

    budget, cap = size_bytes(memory, "memory"), size_bytes(max_shard_size, "max_shard_size")
    if not (isinstance(workers, int) and not isinstance(workers, bool) and workers >= 1):
        raise InitError(f"workers must be a positive int, got {workers!r}")
    if format not in ("safetensors", "dcp"):
        raise InitError(f"format must be 'safetensors' or 'dcp', got {format!r}")
    seed = seeding.resolve_seed(seed, module)
    entries = plan_save(module, recipe, seed=seed, rules=rules, aliases=format == "dcp")
    if format == "dcp":
        return _save_dcp(entries, path, seed)
    layout = shards(entries, cap)
    distributed = dist.is_available() and dist.is_initialized()
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    os.makedirs(path, exist_ok=True)
    files, units = [], []
    for name, group in layout:
        head, at = header(group, metadata)
        file = os.path.join(path, name)
        files.append(file)
        if rank == 0:
            with open(file, "wb") as f:
                f.write(head)
                f.truncate(len(head) + sum(e.nbytes for e in group))
        units += [(file, at[e.name], e, first, rows) for e in group for first, rows in blocks(e, budget // 2)]
    if rank == 0:
        config = getattr(module, "config", None)
        if callable(getattr(config, "save_pretrained", None)):  # a Hugging Face model: from_pretrained(path) loads it
            config.save_pretrained(path)
        if len(layout) > 1:
            _write_index(path, layout)
    if len(layout) > 1:
        files.append(os.path.join(path, INDEX))
    if distributed:
        dist.barrier()
    mine = split(units, world)[rank]
    if workers == 1 or len(mine) < 2:
        write_units(mine, seed)
    else:
        _in_processes(mine, seed, workers)
    if distributed:
        dist.barrier()
    return files


def _save_dcp(entries, path, seed):
    import torch
    import torch.distributed as dist
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint import DefaultSavePlanner, FileSystemWriter

    by_name = {e.name: e for e in entries}

    class Planner(DefaultSavePlanner):
        def resolve_data(self, write_item):  # the tensor DCP writes now: computed, whole, when asked for
            e = by_name[write_item.index.fqn]
            return fill_block(e, 0, e.shape[0] if e.shape else 1, seed)

    state = {e.name: torch.empty(e.shape, dtype=e.dtype, device="meta") for e in entries}
    os.makedirs(path, exist_ok=True)
    with warnings.catch_warnings():  # one process without torch.distributed is what no_dist says
        warnings.filterwarnings("ignore", "torch.distributed is disabled", UserWarning)
        dcp.save(state, storage_writer=FileSystemWriter(path, thread_count=1), planner=Planner(),
                 no_dist=not (dist.is_available() and dist.is_initialized()))
    return sorted(os.path.join(path, f) for f in os.listdir(path))


def write_units(units, seed):
    """Fill and write each (file, tensor offset, Entry, first row, rows) block: a thread writes each block (past the
    page cache where it can: direct_io.py) while the next one is filled (two blocks held at most)."""
    from concurrent.futures import ThreadPoolExecutor

    import torch

    writers: dict = {}
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="gpuinit-save") as thread:
            pending = None
            for file, at, entry, first, rows in units:
                if file not in writers:
                    writers[file] = direct_io.Writer(file)
                data = fill_block(entry, first, rows, seed)
                raw = data.reshape(-1).view(torch.uint8).numpy() if data.numel() else b""
                if pending is not None:
                    pending.result()
                pending = thread.submit(writers[file].write, at + first * entry.row_bytes, raw)
            if pending is not None:
                pending.result()
    finally:
        for w in writers.values():
            w.close()


def split(units, n):
    """``units`` in ``n`` consecutive parts of about equal bytes (each process writes runs of consecutive bytes)."""
    sizes = [e.row_bytes * rows for _, _, e, _, rows in units]
    total, out, part, done = sum(sizes), [[] for _ in range(n)], 0, 0
    for u, size in zip(units, sizes, strict=True):
        while part < n - 1 and done >= total * (part + 1) / n:
            part += 1
        out[part].append(u)
        done += size
    return out


def _in_processes(units, seed, workers):
    """The blocks shared in consecutive parts by ``workers`` fresh processes (spawned: they import gpuinit, not the
    model), each with its share of this machine's threads."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from .. import config

    threads = max(1, config.num_threads() // workers)
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=_worker_setup,
                             initargs=(threads,)) as pool:
        for done in [pool.submit(write_units, part, seed) for part in split(units, workers)]:
            done.result()


def _worker_setup(threads):
    os.environ["GPUINIT_NUM_THREADS"] = str(threads)


def _write_index(path, layout):
    index = {"metadata": {"total_size": sum(e.nbytes for _, g in layout for e in g)},
             "weight_map": {e.name: name for name, g in layout for e in g}}
    file = os.path.join(path, INDEX)
    with open(file, "w") as f:
        json.dump(index, f, indent=2, sort_keys=True)
        f.write("\n")
    return file
