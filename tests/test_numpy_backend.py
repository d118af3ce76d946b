"""gpuinit/backends/numpy_backend.py: what it fills (numpy arrays, torch CPU and meta tensors), fills into strided,
reversed, transposed and foreign-byte-order views written exactly where the view is, the same bits for any number
of threads, any piece size and with or without the compiled host kernel, pieces run on its own thread pool, and
grouped fills."""
import signal
import threading
import time

import ml_dtypes
import numpy as np
import pytest
import torch

import gpuinit
from gpuinit import jobs
from gpuinit.backends import cpu_kernel, numpy_backend

SCHEMES = [("uniform", {"a": -1.0, "b": 3.0}), ("normal", {"std": 0.5}), ("trunc_normal", {"a": -1.0, "b": 1.5}),
           ("he_uniform", {})]
DTYPES = ["float16", "float32", "float64", "bfloat16"]


def new(shape, dtype, fill=np.nan):
    if dtype == "bfloat16":
        return torch.full(shape, fill, dtype=torch.bfloat16)
    return np.full(shape, fill, dtype)


def as_bits(x):
    """The stored bits: bfloat16 as int16, others as numpy arrays (NaN-safe equality)."""
    if isinstance(x, torch.Tensor):
        x = x.detach().contiguous()
        return (x.view(torch.int16) if x.dtype == torch.bfloat16 else x).numpy().copy()
    return np.ascontiguousarray(x).view(f"u{x.dtype.itemsize}").astype(np.uint64)


def fill(x, scheme, params, seed=5, **kw):
    job = jobs.prepare(x, scheme, params, seed=seed, backend="numpy", **kw)
    assert numpy_backend.fill(job) is x
    return x


@pytest.fixture
def kernel(request, monkeypatch):
    """The compiled host kernel on (1) or off (0), from the test's parameter."""
    monkeypatch.setenv("GPUINIT_CPU_KERNEL", request.param)
    cpu_kernel.reset()
    yield request.param
    monkeypatch.undo()
    cpu_kernel.reset()


def test_available_and_accepts():
    assert numpy_backend.available() is None and numpy_backend.NAME == "numpy"
    assert numpy_backend.accepts(np.empty(3)) and numpy_backend.accepts(np.empty((2, 3), np.int8))
    assert numpy_backend.accepts(torch.empty(3)) and numpy_backend.accepts(torch.empty(3, device="meta"))
    assert not numpy_backend.accepts([1.0]) and not numpy_backend.accepts(np.float32(1.0))
    assert not numpy_backend.accepts(memoryview(b"abcd"))


def test_num_threads_follows_the_environment(monkeypatch):
    monkeypatch.setenv("GPUINIT_NUM_THREADS", "3")
    assert numpy_backend.num_threads() == 3
    monkeypatch.delenv("GPUINIT_NUM_THREADS")
    assert numpy_backend.num_threads() >= 1


VIEWS = [lambda a: a[::2, 1::3], lambda a: a.T, lambda a: a[3:5, :], lambda a: a[:, 1::4].T, lambda a: a[1:, 2:][::3]]
REVERSED = [lambda a: a[::-1, ::-2], lambda a: a[::-2].T]  # numpy only: torch has no negative strides


@pytest.mark.parametrize("kernel", ["1", "0"], indirect=True)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme,params", SCHEMES)
def test_strided_views_get_the_values_of_their_shape(kernel, dtype, scheme, params, monkeypatch):
    """A view, however laid out, holds the values a contiguous array of its shape gets, in its own row-major
    order; memory outside it is not touched. Small pieces make every view several pieces."""
    monkeypatch.setattr(numpy_backend, "CHUNK", 7)
    nan = as_bits(new((1,), dtype))[0]
    for view_of in VIEWS + (REVERSED if dtype != "bfloat16" else []):
        base = new((9, 12), dtype)
        view = fill(view_of(base), scheme, params)
        want = fill(new(tuple(view.shape), dtype), scheme, params)
        assert np.array_equal(as_bits(view), as_bits(want)), (scheme, dtype)
        inside = np.zeros((9, 12), bool)
        view_of(inside)[...] = True
        assert np.all(as_bits(base)[~inside] == nan) and not np.any(as_bits(base)[inside] == nan)


@pytest.mark.parametrize("kernel", ["1", "0"], indirect=True)
@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_foreign_byte_order(kernel, dtype):
    native = fill(np.empty((5, 33), dtype), "normal", {})
    foreign = fill(np.empty((5, 33), np.dtype(dtype).newbyteorder()), "normal", {})
    assert np.array_equal(foreign.astype(dtype), native)
    assert np.array_equal(fill(np.empty((33, 5), np.dtype(dtype).newbyteorder()).T, "normal", {}).astype(dtype),
                          native)


@pytest.mark.parametrize("kernel", ["1", "0"], indirect=True)
@pytest.mark.parametrize("byteorder", ["<", ">"])
def test_bfloat16_bits(kernel, byteorder):
    t = fill(torch.empty(6, 11, dtype=torch.bfloat16), "trunc_normal", {"std": 0.7})
    want = t.view(torch.int16).numpy().view(np.uint16)
    bits = np.zeros((6, 22), np.dtype(np.uint16).newbyteorder(byteorder))[:, ::2]
    numpy_backend.fill(jobs.prepare(bits, "trunc_normal", {"std": 0.7}, seed=5, bits="bfloat16"))
    assert np.array_equal(bits.astype(np.uint16), want)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_same_bits_with_or_without_the_host_kernel(dtype, monkeypatch):
    out = []
    for flag in ("1", "0"):
        monkeypatch.setenv("GPUINIT_CPU_KERNEL", flag)
        cpu_kernel.reset()
        out.append(as_bits(fill(new((7, 301), dtype), "normal", {"std": 2.0})))
        assert (cpu_kernel.load() is None) == (flag == "0")
    monkeypatch.undo()
    cpu_kernel.reset()
    assert np.array_equal(*out)


@pytest.mark.parametrize("chunk", [1, 5, 64, 1000, 1 << 18])
def test_piece_size_changes_no_bits(chunk, monkeypatch):
    want = fill(np.empty((13, 29), np.float32), "uniform", {}, full_shape=(20, 40), offsets=(3, 7))
    monkeypatch.setattr(numpy_backend, "CHUNK", chunk)
    got = fill(np.empty((13, 29), np.float32), "uniform", {}, full_shape=(20, 40), offsets=(3, 7))
    assert np.array_equal(got, want)


@pytest.fixture
def threads_seen(monkeypatch):
    """The names of the threads that computed each piece (the kernel calls and the NumPy fallback all)."""
    names, lock = [], threading.Lock()

    def spy(real):
        def call(*args, **kwargs):
            with lock:
                names.append(threading.current_thread().name)
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(cpu_kernel, "draw_values", spy(cpu_kernel.draw_values))
    monkeypatch.setattr(cpu_kernel, "fill_run", spy(cpu_kernel.fill_run))
    monkeypatch.setattr(cpu_kernel, "fill_items", spy(cpu_kernel.fill_items))
    monkeypatch.setattr(numpy_backend, "draw_values", spy(numpy_backend.draw_values))
    return names


@pytest.mark.parametrize("n", [1, 2, 3])
def test_threads(n, threads_seen, monkeypatch):
    """The same bits for any thread count; with more than one, pieces run on the backend's pool (at most n threads),
    with one, all in the calling thread."""
    want = fill(np.empty((40, 50), np.float32), "he_normal", {})
    monkeypatch.setattr(numpy_backend, "CHUNK", 64)
    monkeypatch.setattr(numpy_backend, "SERIAL_ELEMENTS", 0)  # as a fill too large for the calling thread alone
    monkeypatch.setenv("GPUINIT_NUM_THREADS", str(n))
    threads_seen.clear()
    got = fill(np.empty((40, 50), np.float32), "he_normal", {})
    assert np.array_equal(got, want)
    assert len(threads_seen) >= min(n, 2)  # the kernel's item runs: about 4 per thread, each one call
    if n == 1:
        assert set(threads_seen) == {threading.current_thread().name}
    else:
        assert set(threads_seen) <= {f"gpuinit_{i}" for i in range(n)}


def test_a_small_fill_stays_on_the_calling_thread(threads_seen, monkeypatch):
    """Fewer than SERIAL_ELEMENTS elements in all (many small tensors of a model): no pool handoff; more: the pool
    takes them in about one batch of equal elements per thread and a few more, not one handoff per piece."""
    monkeypatch.setenv("GPUINIT_NUM_THREADS", "2")
    monkeypatch.setattr(numpy_backend, "CHUNK", 64)
    threads_seen.clear()
    fill(np.empty((40, 50), np.float32), "he_normal", {})
    assert threads_seen and set(threads_seen) == {threading.current_thread().name}
    threads_seen.clear()
    fill(np.empty((40, 50), np.float32)[:, :49], "he_normal", {})  # not contiguous: piece by piece, as many
    assert len(threads_seen) >= 1960 // 64 and set(threads_seen) == {threading.current_thread().name}
    monkeypatch.setattr(numpy_backend, "SERIAL_ELEMENTS", 1000)
    batches = []
    real = numpy_backend._executor

    class Counting:
        def submit(self, fn, batch):
            batches.append(len(batch))
            return real().submit(fn, batch)

    monkeypatch.setattr(numpy_backend, "_executor", Counting)
    threads_seen.clear()
    fill(np.empty((40, 50), np.float32), "he_normal", {})
    assert sum(batches) == len(threads_seen) and 2 <= len(batches) <= 4 * 2 + 1
    assert set(threads_seen) <= {"gpuinit_0", "gpuinit_1"}


def interrupt(call, after):
    """Run ``call`` on the main thread, sent SIGINT (Ctrl-C) ``after`` seconds in; whether KeyboardInterrupt left it."""
    assert threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(after, signal.pthread_kill, (threading.get_ident(), signal.SIGINT))
    try:
        timer.start()
        call()
    except KeyboardInterrupt:
        return True
    finally:
        timer.cancel()
        timer.join()
        signal.signal(signal.SIGINT, previous)
    return False


@pytest.mark.parametrize("grouped", [False, True])
def test_an_interrupted_fill_stops_writing_before_it_raises(grouped, monkeypatch):
    """Ctrl-C while the pool fills: the pieces not started are dropped and the running ones finish before
    KeyboardInterrupt leaves the call, so nothing writes the arrays once it has. Slowed pieces (a strided array
    piece by piece; whole arrays as the kernel's item runs) make the fill last about a second."""
    monkeypatch.setenv("GPUINIT_NUM_THREADS", "2")
    monkeypatch.setattr(numpy_backend, "CHUNK", 4096)
    slow = "fill_items" if grouped else "draw_values"
    real = getattr(cpu_kernel, slow)
    pause = 0.08 if grouped else 0.008  # 8 item runs, or 256 pieces in 8 batches

    def slowed(*args, **kw):
        time.sleep(pause)
        return real(*args, **kw)

    monkeypatch.setattr(cpu_kernel, slow, slowed)
    arrays = [torch.full((256, 64), float("nan")) for _ in range(64)] if grouped else \
        [torch.full((1024, 2048), float("nan"))[:, ::2]]
    group = [jobs.prepare(x, "normal", {}, seed=0, backend="numpy") for x in arrays]
    assert interrupt(lambda: numpy_backend.fill_group(group) if grouped else numpy_backend.fill(group[0]), 0.1)
    then = [x.clone() for x in arrays]
    time.sleep(3 * pause * (1 if grouped else 32))  # a batch of pieces, or an item run, twice over
    assert all(torch.equal(x.view(torch.int32), y.view(torch.int32)) for x, y in zip(arrays, then, strict=True))
    assert any(x.isnan().any() for x in then) and not all(x.isnan().all() for x in then)  # stopped half way


def test_a_failing_piece_stops_the_others_before_it_raises(monkeypatch):
    """A piece that raises on the pool: the others stop as on Ctrl-C before its exception leaves the call."""
    monkeypatch.setenv("GPUINIT_NUM_THREADS", "2")
    monkeypatch.setattr(numpy_backend, "CHUNK", 4096)
    real, calls = cpu_kernel.draw_values, []

    def failing(*args, **kw):
        calls.append(None)
        if len(calls) == 20:
            raise MemoryError
        time.sleep(0.008)
        return real(*args, **kw)

    monkeypatch.setattr(cpu_kernel, "draw_values", failing)
    x = torch.full((1024, 2048), float("nan"))[:, ::2]
    with pytest.raises(MemoryError):
        numpy_backend.fill(jobs.prepare(x, "normal", {}, seed=0, backend="numpy"))
    then = x.clone()
    time.sleep(0.6)
    assert torch.equal(x.view(torch.int32), then.view(torch.int32)) and then.isnan().any()


def test_the_pool_is_kept_until_the_thread_count_changes(monkeypatch):
    monkeypatch.setenv("GPUINIT_NUM_THREADS", "2")
    pool = numpy_backend._executor()
    assert numpy_backend._executor() is pool and pool._max_workers == 2
    monkeypatch.setenv("GPUINIT_NUM_THREADS", "3")
    assert numpy_backend._executor() is not pool and numpy_backend._executor()._max_workers == 3


def test_fills_from_many_threads_at_once():
    want = fill(np.empty((64, 64), np.float32), "normal", {})
    out = [np.empty((64, 64), np.float32) for _ in range(6)]
    workers = [threading.Thread(target=fill, args=(x, "normal", {})) for x in out]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert all(np.array_equal(x, want) for x in out)


def test_fill_group():
    arrays = [np.empty((8, 9), np.float32), torch.empty(5, 6, dtype=torch.bfloat16), np.empty((0, 4), np.float32),
              np.empty((6, 6), np.float64)[::2], np.empty((4, 4), np.float16), torch.empty(7, 3)]
    schemes = [("normal", {}), ("uniform", {}), ("normal", {}), ("orthogonal", {}), ("eye", {}), ("he_normal", {})]
    group = [jobs.prepare(x, s, p, seed=10 + i, backend="numpy") for i, (x, (s, p)) in enumerate(zip(arrays, schemes,
                                                                                                       strict=True))]
    assert numpy_backend.fill_group(group) == 5  # the empty array has nothing to write
    for i, (x, (s, p)) in enumerate(zip(arrays, schemes, strict=True)):
        alone = x.clone() if isinstance(x, torch.Tensor) else np.empty_like(x)
        fill(alone, s, p, seed=10 + i)
        assert np.array_equal(as_bits(x), as_bits(alone)), s
    assert np.array_equal(arrays[4], np.eye(4))


def test_whole_arrays_as_kernel_items_equal_the_numpy_stream(monkeypatch):
    """A group of whole contiguous arrays goes to the host kernel as one item list (arrays longer than CHUNK cut
    into several items, the items run on the pool): every bit equals NumPy's own computation of the stream
    (GPUINIT_CPU_KERNEL=0), for every store (float32, float16, bfloat16) and a 0-d tensor."""
    rng = np.random.default_rng()
    shapes = [(int(rng.integers(1, 40)), int(rng.integers(1, 40))) for _ in range(12)] + [(3, 1000), ()]
    makers = [lambda s: np.empty(s, np.float32), lambda s: np.empty(s, np.float16),
              lambda s: torch.empty(s, dtype=torch.bfloat16), lambda s: torch.empty(s, dtype=torch.float16),
              lambda s: torch.empty(s)]
    arrays = [makers[i % len(makers)](shape) for i, shape in enumerate(shapes)]
    schemes = [SCHEMES[i % len(SCHEMES)] for i in range(len(arrays))]
    seeds = [int(x) for x in rng.integers(0, 2**64, len(arrays), dtype=np.uint64)]
    monkeypatch.setenv("GPUINIT_CPU_KERNEL", "0")
    cpu_kernel.reset()
    want = [as_bits(fill(x.clone() if isinstance(x, torch.Tensor) else x.copy(), s, p, seed=seed))
            for x, (s, p), seed in zip(arrays, schemes, seeds, strict=True)]
    monkeypatch.setenv("GPUINIT_CPU_KERNEL", "1")
    monkeypatch.setenv("GPUINIT_NUM_THREADS", "2")
    monkeypatch.setattr(numpy_backend, "CHUNK", 256)
    monkeypatch.setattr(numpy_backend, "SERIAL_ELEMENTS", 0)
    cpu_kernel.reset()
    assert cpu_kernel.load() is not None
    calls = []
    real = cpu_kernel.fill_items
    monkeypatch.setattr(cpu_kernel, "fill_items", lambda lib, items, keep=None: calls.append(len(items))
                        or real(lib, items, keep))
    group = [jobs.prepare(x, s, p, seed=seed) for x, (s, p), seed in zip(arrays, schemes, seeds, strict=True)]
    assert numpy_backend.fill_group(group) == len(arrays)
    assert 2 <= len(calls) <= 4 * 2 + 1 and sum(calls) >= len(arrays) + 3000 // 256  # the long one cut up
    for x, w, (scheme, _) in zip(arrays, want, schemes, strict=True):
        assert np.array_equal(as_bits(x), w), (scheme, x.dtype, x.shape)
    cpu_kernel.reset()


@pytest.mark.parametrize("value", [1.0, 0.0, -0.0, 0.5, -3.25, 0.1, 1e-30, 65000.0, 1 / 3])
def test_grouped_constants_are_what_an_assignment_writes(value):
    """Constants in a group go to the host kernel's item list when their value is a float32 (else NumPy writes
    them): either way each array holds what assigning the value gives (bfloat16: the float32 value rounded to
    nearest even), sign of zero included, and a block's neighbours in its buffer are untouched."""
    big = np.full(20, np.nan, np.float32)
    arrays = [np.full((5, 7), np.nan, np.float32), np.full((3, 3), np.nan, np.float16), big[5:15],
              torch.full((4, 9), float("nan"), dtype=torch.bfloat16),
              torch.full((6,), float("nan"), dtype=torch.float16), torch.full((2, 2), float("nan")),
              np.full((3,), np.nan, np.float64)]
    group = [jobs.prepare(x, "constant", {"value": value}, seed=0, backend="numpy") for x in arrays]
    assert numpy_backend.fill_group(group) == len(arrays)
    for x in arrays:
        if isinstance(x, torch.Tensor):
            source = torch.tensor(np.float32(value)) if x.dtype == torch.bfloat16 else torch.tensor(value)
            want = source.to(x.dtype).expand(x.shape)
            assert torch.equal(x.view(torch.int16) if x.dtype != torch.float32 else x.view(torch.int32),
                               want.contiguous().view(torch.int16) if x.dtype != torch.float32 else
                               want.contiguous().view(torch.int32)), (x.dtype, value)
        else:
            want = np.full(x.shape, value, x.dtype)
            assert np.array_equal(x.view(f"u{x.itemsize}"), want.view(f"u{x.itemsize}")), (x.dtype, value)
    assert np.isnan(big[:5]).all() and np.isnan(big[15:]).all()


def test_torch_version_counter_is_bumped():
    t = torch.empty(4, 4)
    before = t._version
    fill(t, "normal", {})
    assert t._version > before
    u, w = torch.empty(3), torch.empty(2, 2)
    versions = u._version, w._version
    numpy_backend.fill_group([jobs.prepare(u, "normal", {}, seed=0), jobs.prepare(w, "eye", {}, seed=0)])
    assert u._version > versions[0] and w._version > versions[1]


def test_torch_cpu_tensor_equals_numpy_array():
    for dtype in ("float16", "float32", "float64"):
        x = fill(np.empty((11, 13), dtype), "trunc_normal", {})
        t = fill(torch.empty(11, 13, dtype=getattr(torch, dtype)), "trunc_normal", {})
        assert np.array_equal(t.numpy(), x)


def test_a_leaf_that_requires_grad():
    w = torch.nn.Parameter(torch.empty(6, 4))
    with torch.no_grad():
        gpuinit.init_(w, "normal", seed=3, backend="numpy")
    assert np.array_equal(w.detach().numpy(), fill(np.empty((6, 4), np.float32), "normal", {}, seed=3))


def negative_views(shape, dtype):
    """Views with torch's negative bit over NaN, each with its memory: the imaginary part of a conjugate
    (``z.conj().imag``; for bfloat16, which has no complex type, the same view made by torch._neg_view), whose real
    parts hold 2.0, and a contiguous one (the host kernel's whole-array path)."""
    pairs = torch.full((*shape, 2), float("nan"), dtype=dtype)
    pairs[..., 0] = 2.0
    imag = torch._neg_view(pairs[..., 1]) if dtype == torch.bfloat16 else torch.view_as_complex(pairs).conj().imag
    whole = torch.full(shape, float("nan"), dtype=dtype)
    return [(imag, pairs), (torch._neg_view(whole), whole)]


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("scheme,params", SCHEMES + [("constant", {"value": 0.0}), ("constant", {"value": -1.5}),
                                                     ("eye", {}), ("orthogonal", {}), ("sparse", {"sparsity": 0.5})])
def test_a_negative_view_reads_the_values_of_a_plain_tensor(scheme, params, dtype):
    """A view with torch's negative bit holds the negation of what it reads (torch's uniform_ writes it so): it reads
    the values a plain tensor of its shape gets, signed zeros included, alone, in a group and on the pool; the memory
    around it is untouched."""
    for shape in [(6, 5), (40, 30) if scheme in ("orthogonal", "sparse") else (300, 300)]:  # (300, 300): the pool
        want = as_bits(fill(torch.empty(shape, dtype=dtype), scheme, params))
        for grouped in (False, True):
            views = negative_views(shape, dtype)
            if grouped:
                plain = torch.empty(shape, dtype=dtype)
                group = [jobs.prepare(x, scheme, params, seed=5, backend="numpy") for x in (views[0][0], plain,
                                                                                             views[1][0])]
                assert numpy_backend.fill_group(group) == 3
                assert np.array_equal(as_bits(plain), want)
            else:
                for view, _ in views:
                    fill(view, scheme, params)
            for view, memory in views:
                assert view.is_neg() and np.array_equal(as_bits(view.resolve_neg()), want), (shape, grouped)
                if memory.dim() > len(shape):
                    assert (memory[..., 0] == 2.0).all()


# ---- ml_dtypes.bfloat16 numpy arrays (JAX's and Keras's bfloat16 on the host) ----------------------------------

ML_SCHEMES = SCHEMES + [("variance_scaling", {"scale": 2.0, "mode": "fan_avg", "distribution": "truncated_normal"}),
                        ("glorot_normal", {}), ("kaiming_uniform", {"a": 5 ** 0.5}), ("constant", {"value": 0.1}),
                        ("ones", {}), ("eye", {}), ("identity", {"gain": 3.0}), ("sparse", {"sparsity": 0.4})]
ML_BLOCKS = [((37, 300), None, None), ((20, 150), (37, 300), (10, 77)),  # a whole array (on the pool), a block
             ((9, 12), (9, 12), (0, 0))]


def ml_bf16(shape, fill=np.nan):
    return np.full(shape, fill, ml_dtypes.bfloat16)


@pytest.mark.parametrize("kernel", ["1", "0"], indirect=True)
@pytest.mark.parametrize("scheme,params", ML_SCHEMES)
def test_ml_dtypes_bfloat16_holds_the_bits_of_a_torch_bfloat16_tensor(kernel, scheme, params):
    """An ml_dtypes bfloat16 array is filled in place with the bits gpuinit writes into a torch bfloat16 tensor (the
    float32 value rounded to nearest even): whole, as a block of a larger tensor, as a strided view, with a stream."""
    for shape, full_shape, offsets in ML_BLOCKS:
        kw = {"full_shape": full_shape, "offsets": offsets, "stream": 3}
        want = as_bits(fill(torch.empty(shape, dtype=torch.bfloat16), scheme, params, seed=11, **kw))
        x = ml_bf16(shape)
        assert fill(x, scheme, params, seed=11, **kw) is x and x.dtype == ml_dtypes.bfloat16
        assert np.array_equal(x.view(np.int16), want), (scheme, shape)
        assert np.array_equal(gpuinit.init_(ml_bf16(shape), scheme, seed=11, **kw, **params).view(np.int16), want)
    if scheme == "sparse":
        return
    for view_of in VIEWS:
        base = ml_bf16((9, 12))
        view = fill(view_of(base), scheme, params)
        want = as_bits(fill(torch.empty(tuple(view.shape), dtype=torch.bfloat16), scheme, params))
        assert np.array_equal(view.view(np.int16), want), scheme
        inside = np.zeros((9, 12), bool)
        view_of(inside)[...] = True
        assert np.isnan(base[~inside].astype(np.float32)).all()


@pytest.mark.parametrize("scheme,shape,axes", [("orthogonal", (40, 24), {}), ("orthogonal", (5, 6, 7), {}),
                                               ("delta_orthogonal", (3, 3, 8, 16), {"in_axis": -2, "out_axis": -1})])
def test_ml_dtypes_bfloat16_structured_draws_are_those_of_numpy(scheme, shape, axes):
    """orthogonal's QR runs in the array's library (NumPy here, torch for torch tensors, whose LAPACK may differ in a
    last float32 bit): the bits are those of bits="bfloat16" and of float32 NumPy rounded to nearest even."""
    x = gpuinit.init_(ml_bf16(shape), scheme, seed=4, **axes)
    bits = gpuinit.init_(np.empty(shape, np.uint16), scheme, seed=4, bits="bfloat16", **axes)
    f32 = gpuinit.init_(np.empty(shape, np.float32), scheme, seed=4, **axes)
    rounded = torch.from_numpy(f32).to(torch.bfloat16).view(torch.int16).numpy()
    assert np.array_equal(x.view(np.uint16), bits) and np.array_equal(x.view(np.int16), rounded)


def test_ml_dtypes_bfloat16_of_either_byte_order_and_in_a_group():
    want = as_bits(fill(torch.empty(6, 11, dtype=torch.bfloat16), "he_normal", {}))
    foreign = fill(np.empty((6, 11), np.dtype(ml_dtypes.bfloat16).newbyteorder()), "he_normal", {})
    assert np.array_equal(foreign.astype(ml_dtypes.bfloat16).view(np.int16), want)
    arrays = [ml_bf16((6, 11)), ml_bf16((12, 22))[::2, ::2], ml_bf16((300, 300))]
    group = [jobs.prepare(x, "he_normal", {}, seed=5, backend="numpy", full_shape=(6, 11) if i < 2 else None,
                          offsets=(0, 0) if i < 2 else None) for i, x in enumerate(arrays)]
    assert numpy_backend.fill_group(group) == 3
    assert all(np.array_equal(x.view(np.int16), want) for x in arrays[:2])
    assert np.array_equal(arrays[2].view(np.int16), as_bits(fill(torch.empty(300, 300, dtype=torch.bfloat16),
                                                                  "he_normal", {})))


@pytest.mark.parametrize("dtype", [ml_dtypes.float8_e4m3fn, ml_dtypes.int4, ml_dtypes.float8_e5m2])
def test_other_ml_dtypes_are_refused_before_a_write(dtype):
    x = np.zeros((3, 4), dtype)
    with pytest.raises(gpuinit.InitError, match="floating-point arrays .* got float8|got int4"):
        gpuinit.init_(x, "normal", seed=0)
    assert not x.astype(np.float32).any()
