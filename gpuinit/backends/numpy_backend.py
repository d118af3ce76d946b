"""The NumPy backend: numpy arrays (ml_dtypes bfloat16 ones included) and torch CPU tensors, in place, chunk by
chunk, on all cores.

Memory stays bounded: each worker holds one chunk of ``CHUNK`` elements (a few MiB of words and
floats), never a full-size temporary, except orthogonal (QR needs the whole matrix) and sparse
(a column's rank needs its keys).
"""
import ctypes
import math
import sys
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import numpy as np

from .. import regions, structured
from ..draws import ELEMENTWISE
from ..kernels import numpy_stream as ks
from . import checks, cpu_kernel
from .checks import holds_values

NAME = "numpy"
INSTALL = "numpy"
CHUNK = 1 << 18  # elements per piece: fastest of 2**15..2**20 on 2 cores (bench/cpu.py)
SERIAL_ELEMENTS = 1 << 16  # a fill of fewer elements in all runs on the calling thread
_pool, _pool_size = None, 0
_pool_lock = threading.Lock()


def available():
    return None


def accepts(array):
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        return array.device.type in ("cpu", "meta")
    return isinstance(array, np.ndarray)


def check(array, bits=None):
    checks.check(array, bits, negative=True)  # a torch view with the negative bit: written through it (fill)


def num_threads():
    from ..config import num_threads

    return num_threads()


def _executor():
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size != num_threads():
            _pool_size = num_threads()
            _pool = ThreadPoolExecutor(_pool_size, thread_name_prefix="gpuinit")
        return _pool


# ---- writing ----------------------------------------------------------------------------------------

def _numpy_view(array, bits=None):
    """(writable numpy view sharing the memory, True when it holds bfloat16 bits as int16): ``bits="bfloat16"``
    16-bit integer arrays, ml_dtypes bfloat16 arrays and torch bfloat16 tensors."""
    if bits == "bfloat16" or type(array) is np.ndarray and checks.is_ml_bfloat16(array.dtype):
        # the array's own byte order: assignments swap bytes where it is not native
        return array.view(np.dtype(np.int16).newbyteorder(array.dtype.byteorder)), True
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        t = array.detach()
        if t.dtype == torch.bfloat16:
            return t.view(torch.int16).numpy(), True
        return t.numpy(), False
    return array, False


def fill(job):
    """Fill ``job.array`` (the block at ``job.offsets`` of a ``job.full_shape`` tensor) with ``job.draw``;
    ``job.bits="bfloat16"``: a 16-bit integer array receives bfloat16 bit patterns; a torch view with the negative bit
    set reads them (its memory holds their negation). Returns the array."""
    kind = job.draw.kind
    if kind in ELEMENTWISE:
        whole = _whole(job)
        if whole is not None:
            lib, pointer, n, store = whole
            if n <= SERIAL_ELEMENTS:  # on the calling thread, one kernel call
                cpu_kernel.fill_run(lib, job.draw, n, job.seed, job.stream, pointer, store)
            else:
                _run_all(_item_tasks([(job, *whole)]))
            _bump_version(job.array)
            return job.array
    if _negative(job.array):  # its memory filled as a plain tensor, then negated in place
        memory = sys.modules["torch"]._neg_view(job.array.detach())
        fill(job._replace(array=memory))
        _negate(memory)
        return job.array
    view, bf16 = _numpy_view(job.array, job.bits)
    if kind in ELEMENTWISE:
        _run_all(_piece_work(view, bf16, job))
    elif kind == "constant":  # what structured.fill would write, without building its Target
        view[...] = ks.bfloat16_bits(np.asarray(job.draw.value, np.float32)) if bf16 else job.draw.value
    else:
        structured.fill(_target(job, view, bf16), job.draw)
    _bump_version(job.array)
    return job.array


def _negative(array):
    """Whether ``array`` is a torch view with the negative bit set (``z.conj().imag``): its memory holds the negation
    of the values it reads."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(array, torch.Tensor) and array.is_neg()


def _negate(tensor):
    """Flip the sign bit of every element of a torch CPU tensor in place, as torch negates a float."""
    view = _numpy_view(tensor)[0]
    bits = view.view(f"u{view.itemsize}")
    bits ^= np.array(1 << 8 * view.itemsize - 1, bits.dtype)


def direct(array, full_shape, offsets, bits):
    """(elements, store) when the host kernel can write ``array`` in place as one run: a C-contiguous CPU array
    holding values that is its whole logical tensor (``full_shape``, ``offsets``), of a dtype the kernel stores
    (float32, bfloat16, float16) in the machine's byte order; None otherwise (then it is written piece by piece
    through a NumPy view). A function of what a checked call's key holds (jobs.checked): a job carries it."""
    if type(array) is np.ndarray:
        if bits is not None or not array.flags.c_contiguous:
            return None
        store = _STORES.get(array.dtype)  # native byte order only: '>f4' is not a key here
        if store is None and checks.is_ml_bfloat16(array.dtype) and array.dtype.isnative:
            store = "bfloat16"
    else:
        torch = sys.modules.get("torch")
        if torch is None or not isinstance(array, torch.Tensor) or not array.is_cpu or not array.is_contiguous() \
                or array.is_neg():
            return None
        if not _TORCH_STORES:
            _TORCH_STORES.update({torch.float32: "float32", torch.float16: "float16", torch.bfloat16: "bfloat16"})
        store = _TORCH_STORES.get(array.dtype)
    shape = tuple(array.shape)
    if store is None or tuple(full_shape) != shape or any(offsets):
        return None
    n = math.prod(shape)
    return (n, store) if n else None


def _whole(job):
    """(the host kernel, address, elements, store) when the kernel can write ``job.array`` in place as one run
    (``direct``), else None."""
    found = job.direct if job.direct is not None else direct(job.array, job.full_shape, job.offsets, job.bits)
    if found is None:
        return None
    lib = cpu_kernel.load()
    if lib is None:
        return None
    array = job.array
    return lib, (array.ctypes.data if type(array) is np.ndarray else array.data_ptr()), *found


def _item_tasks(wholes):
    """(elements, callable) tasks writing whole arrays ((job, kernel, address, elements, store) each) through the host
    kernel's item list: arrays are cut into items of at most CHUNK elements, and the items into about
    4 x threads runs of equal elements, each one kernel call (not one call, nor one task, per small tensor)."""
    rows, keep, lib, chunk = [], {}, wholes[0][1], CHUNK
    codes = cpu_kernel.STORES
    for job, _, pointer, n, store in wholes:
        at = keep.get(id(job.draw))
        if at is None:  # the draws are held by the jobs for the call: their ids stay theirs
            ref = cpu_kernel.params_ref(job.draw)
            at = keep[id(job.draw)] = ctypes.addressof(ref._obj)
            keep[at] = ref
        if n <= chunk:
            rows.append((at, pointer, 0, n, job.seed, job.stream, codes[store]))
            continue
        size = 4 if store == "float32" else 2
        for s in range(0, n, chunk):
            rows.append((at, pointer + s * size, s, min(chunk, n - s), job.seed, job.stream, codes[store]))
    items = np.array(rows, np.uint64)
    sizes = items[:, 3]
    total = int(sizes.sum())
    share = max(1, total // (4 * num_threads()))
    ends = np.searchsorted(np.cumsum(sizes), np.arange(share, total, share), side="left") + 1
    bounds = [0, *sorted(set(ends.tolist()) - {0, len(items)}), len(items)]
    tasks = []
    for a, b in zip(bounds, bounds[1:], strict=False):
        part = items[a:b]
        tasks.append((int(part[:, 3].sum()), lambda part=part: cpu_kernel.fill_items(lib, part, keep)))
    return tasks


_STORES = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16"}  # the kernel's stores (float64: NumPy)
_TORCH_STORES: dict = {}


def _bump_version(array):
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor):
        torch.autograd.graph.increment_version(array)


def draw_values(draw, starts, length, seed, stream):
    """float32 values of runs: the compiled host kernel when it is available, else NumPy (same bits)."""
    lib = cpu_kernel.load()
    if lib is not None:
        return cpu_kernel.draw_values(lib, draw, starts, length, seed, stream)
    return ks.draw_values(draw, starts, length, seed, stream)


def _piece_work(view, bf16, job):
    """One callable per piece of an elementwise fill of ``view`` (``job.array`` as numpy); pieces are independent
    (any thread, any order)."""
    lib = cpu_kernel.load()
    draw, seed, stream = job.draw, job.seed, job.stream
    store = "bfloat16" if bf16 else view.dtype.name

    def work(piece):
        index, _, starts, length = piece
        dst = view[index]
        if lib is not None and dst.flags.c_contiguous and dst.dtype.isnative and store != "float64":  # in place
            out = dst.reshape(len(starts), length)
            cpu_kernel.draw_values(lib, draw, starts, length, seed, stream, out=out, store=store)
        else:
            values = draw_values(draw, starts, length, seed, stream).reshape(dst.shape)
            dst[...] = ks.bfloat16_bits(values) if bf16 else values

    return [(len(piece[2]) * piece[3], lambda piece=piece: work(piece))
            for piece in regions.pieces(view.shape, job.full_shape, job.offsets, CHUNK)]


def _run_all(tasks):
    """Run (elements, callable) tasks: on the calling thread when they are one or few elements, else in batches
    of about equal elements, one batch per thread (a pool handoff per tiny tensor would cost more than its fill).
    An exception (a task's, or Ctrl-C while the calling thread waits) leaves only once no task runs: the batches
    not started are dropped and the running ones end after their current task."""
    threads = num_threads()
    total = sum(size for size, _ in tasks)
    if len(tasks) <= 1 or threads == 1 or total <= SERIAL_ELEMENTS:
        for _, task in tasks:
            task()
        return
    batches, share, done = [[]], total / (4 * threads), 0
    for size, task in tasks:
        if done >= share * len(batches):
            batches.append([])
        batches[-1].append(task)
        done += size
    stop = []  # the caller's wait raised: each batch ends before its next task

    def run(batch):
        for task in batch:
            if stop:
                return
            task()

    pool, futures = _executor(), []
    try:
        for batch in batches:
            futures.append(pool.submit(run, batch))
        for future in futures:
            future.result()
    except BaseException:  # KeyboardInterrupt too: nothing may write the arrays once the call has raised
        stop.append(True)
        for future in futures:
            future.cancel()
        _join(futures)
        raise


def _join(futures):
    """Wait until every future is done, through further interrupts (the first one is the caller's to raise)."""
    while True:
        try:
            wait(futures)
            return
        except BaseException:  # noqa: BLE001 - a second Ctrl-C while the running pieces finish
            continue


def fill_group(jobs):
    """Fill the arrays of many jobs. The elementwise fills (and constants of float32 values) of whole contiguous
    arrays go to the host kernel as one item list, in a few calls; the pieces of the others share the thread pool
    with them (no barrier between arrays); returns the number of arrays written."""
    tasks, wholes, lib, written = [], [], cpu_kernel.load(), []
    for job in jobs:
        found = job.direct
        if found is None:
            if not holds_values(job.array):
                continue
            found = direct(job.array, job.full_shape, job.offsets, job.bits)
        written.append(job)
        draw = job.draw
        kind = draw.kind
        if kind in ELEMENTWISE or (kind == "constant" and cpu_kernel.exact_constant(draw)):
            if found is not None and lib is not None:
                array = job.array
                wholes.append((job, lib, array.ctypes.data if type(array) is np.ndarray else array.data_ptr(),
                               *found))
            elif kind == "constant" or _negative(job.array):
                fill(job)
            else:
                tasks += _piece_work(*_numpy_view(job.array, job.bits), job)
        else:
            fill(job)
    if wholes:
        tasks += _item_tasks(wholes)
    _run_all(tasks)
    torch = sys.modules.get("torch")
    if torch is not None:  # one call for all of them
        torch.autograd.graph.increment_version([job.array for job in written if isinstance(job.array, torch.Tensor)])
    return len(written)


def _target(job, view, bf16):
    """The structured draws' Target for ``view`` (``job.array`` as numpy), written through the view. The
    namespace follows the array's library, so results never depend on what else a process has imported: torch
    for torch tensors (its LAPACK is 3x faster than NumPy's on float32 QR, which computes in float64), NumPy
    for numpy arrays (bits="bfloat16" ones included)."""
    torch = sys.modules.get("torch")
    on_torch = torch is not None and isinstance(job.array, torch.Tensor)

    def host(x):  # the numpy view of a torch CPU tensor
        return x.numpy() if on_torch and isinstance(x, torch.Tensor) else x

    def put(index, values):
        index = tuple(map(host, index)) if isinstance(index, tuple) else host(index)
        values = host(values)
        view[index] = ks.bfloat16_bits(np.asarray(values, np.float32)) if bf16 else values

    def draw(elementwise, shape, block_full_shape, block_offsets, base_index):
        out = _block(elementwise, shape, block_full_shape, block_offsets, job.seed, job.stream, base_index)
        return torch.from_numpy(out) if on_torch else out

    def draw_into(elementwise):
        _run_all(_piece_work(view, bf16, job._replace(draw=elementwise)))

    return structured.Target(structured.Namespace(torch if on_torch else np), view.shape, job.full_shape, job.offsets,
                             view.dtype.kind == "f" and view.dtype.itemsize == 8, put, draw_into, draw)


def _block(draw, shape, full_shape, offsets, seed, stream, base_index=0):
    """A new array of a block's values, gathered piece by piece: float32 of an elementwise draw, or int64 of
    the raw words of the logical indices from ``base_index`` on for ``draws.WORDS``."""
    words = draw.kind == "words"
    out = np.empty(shape, np.int64 if words else np.float32)
    for index, _, starts, length in regions.pieces(shape, full_shape, offsets, CHUNK):
        starts = starts + np.uint64(base_index)
        values = ks.element_words(starts, length, seed, stream) if words else \
            draw_values(draw, starts, length, seed, stream)
        out[index] = values.reshape(out[index].shape)
    return out
