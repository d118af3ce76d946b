"""torch tensors on devices without a gpuinit kernel: the staged backend fills them on the CPU, block by block.

No mps/xpu/hpu device is here, so the backend is checked two ways: forced (backend="staged") on CPU tensors with a
tiny block size, bit for bit against the NumPy backend's whole-tensor fill; and on a PrivateUse1 device written in
Python (torch.utils.backend_registration, torch >= 2.5), whose tensors keep their data in a CPU tensor reachable
only through the aten ops registered below, which record what reaches the device.
"""
import math
import warnings

import numpy as np
import pytest
import torch

import gpuinit
from gpuinit import backends
from gpuinit.backends import staged_backend

pytestmark = pytest.mark.filterwarnings("ignore::gpuinit.backends.staged_backend.StagedFillWarning")
INT = {torch.float16: torch.int16, torch.bfloat16: torch.int16, torch.float32: torch.int32, torch.float64: torch.int64}
DTYPES = list(INT)
ELEMENTWISE = [("uniform", {"a": -0.5, "b": 2.0}), ("normal", {"std": 0.3}), ("trunc_normal", {"std": 2.0}),
               ("he_normal", {}), ("glorot_uniform", {}), ("xavier_logistic_normal", {})]


def bits(t):
    return t.detach().contiguous().view(INT[t.dtype]) if t.dtype in INT else t


def reference(shape, dtype, scheme, params, seed=7, **kw):
    return gpuinit.init_(torch.empty(shape, dtype=dtype), scheme, seed=seed, backend="numpy", **params, **kw)


@pytest.fixture
def tiny(monkeypatch):
    """Blocks of 24 bytes (3 float64, 6 float32, 12 16-bit values); returns the CPU buffers' shapes."""
    monkeypatch.setattr(staged_backend, "CHUNK_BYTES", 24)
    shapes, make = [], staged_backend._buffer

    def record(like):
        shapes.append(tuple(like.shape))
        return make(like)

    monkeypatch.setattr(staged_backend, "_buffer", record)
    return shapes


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme,params", ELEMENTWISE)
@pytest.mark.parametrize("shape", [(), (37,), (5, 7), (3, 4, 5), (2, 3, 1, 5), (1, 13)])
def test_staged_equals_numpy_bit_for_bit(tiny, scheme, params, dtype, shape):
    x = torch.full(shape, float("nan"), dtype=dtype)
    gpuinit.init_(x, scheme, seed=7, backend="staged", **params)
    assert torch.equal(bits(x), bits(reference(shape, dtype, scheme, params)))
    chunk = 24 // x.element_size()
    assert max(math.prod(s) for s in tiny) <= chunk
    assert len(tiny) >= math.prod(shape) / chunk  # it really went block by block


@pytest.mark.parametrize("dtype", DTYPES)
def test_transposed_and_strided_views(tiny, dtype):
    base = torch.zeros(9, 11, 4, dtype=dtype)
    for view in (base.transpose(0, 2), base[1:8:2, ::3].permute(2, 0, 1), base[:, 5]):
        base.zero_()
        gpuinit.init_(view, "he_normal", seed=3, backend="staged")
        assert torch.equal(bits(view), bits(reference(view.shape, dtype, "he_normal", {}, seed=3)))
        outside = torch.ones_like(base, dtype=torch.bool)
        outside.as_strided(view.shape, view.stride(), view.storage_offset()).fill_(False)
        assert not base[outside].any()  # nothing written outside the view


@pytest.mark.parametrize("perm", [(0, 1, 2), (1, 2, 0), (2, 0, 1), (2, 1, 0)])
@pytest.mark.parametrize("chunk", [1, 5, 7, 24, 200])
def test_blocks_tile_and_are_contiguous_in_memory(perm, chunk):
    base = torch.empty(4, 5, 6)
    view = base.permute(perm)  # a dense tensor whose dims are not in memory order
    shape, strides = tuple(view.shape), view.stride()
    seen = np.zeros(shape, int)
    for starts, lengths in staged_backend.blocks(shape, strides, chunk):
        assert 1 <= math.prod(lengths) <= chunk
        seen[tuple(slice(a, a + n) for a, n in zip(starts, lengths, strict=True))] += 1
        at = sum(np.ix_(*[np.arange(a, a + n) * s for a, n, s in zip(starts, lengths, strides, strict=True)])).ravel()
        assert np.array_equal(np.sort(at), np.arange(at.min(), at.min() + at.size))  # one range of memory
        buffer = staged_backend._buffer(staged_backend._narrow(view, starts, lengths))
        assert buffer.permute(np.argsort(perm).tolist()).is_contiguous()  # laid out as the device block
    assert (seen == 1).all()
    assert list(staged_backend.blocks((), (), 1)) == [((), ())]
    assert [n for _, n in staged_backend.blocks((10,), (1,), 4)] == [(4,), (4,), (2,)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme,params", ELEMENTWISE[:3] + [("sparse", {"sparsity": 0.4}), ("eye", {})])
def test_shards(tiny, scheme, params, dtype):
    full = reference((9, 11), dtype, scheme, params)
    for offsets, shape in (((2, 3), (4, 5)), ((0, 0), (9, 2)), ((8, 10), (1, 1))):
        x = torch.empty(shape, dtype=dtype)
        gpuinit.init_(x, scheme, seed=7, backend="staged", full_shape=(9, 11), offsets=offsets, **params)
        block = full[offsets[0]:offsets[0] + shape[0], offsets[1]:offsets[1] + shape[1]]
        assert torch.equal(bits(x), bits(block))
    if scheme == "sparse":  # a block holds whole columns, with keys for all 9 rows of the full tensor
        assert all(s[1] * 9 <= max(24 // x.element_size(), 9) for s in tiny)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme,shape,params", [
    ("constant", (5, 7), {"value": 0.37}), ("zeros", (4, 3), {}), ("ones", (2, 9), {}), ("eye", (5, 8), {}),
    ("eye", (9, 4), {}), ("dirac", (6, 3, 5, 3), {"groups": 2}), ("dirac", (4, 4, 3), {}),
    ("sparse", (11, 6), {"sparsity": 0.3}), ("orthogonal", (4, 6), {}), ("orthogonal", (3, 5, 2), {"gain": 2.0})])
def test_structured_draws(tiny, scheme, shape, params, dtype):
    x = torch.full(shape, float("nan"), dtype=dtype).transpose(0, -1).contiguous().transpose(0, -1)  # strided too
    gpuinit.init_(x, scheme, seed=11, backend="staged", **params)
    assert torch.equal(bits(x), bits(reference(shape, dtype, scheme, params, seed=11)))
    chunk = 24 // x.element_size()
    if scheme == "orthogonal":  # not chunked: the whole tensor at once
        assert tiny == [shape]
    elif scheme == "sparse":  # whole columns: one column of 11 rows is the least a block can be
        assert max(math.prod(s) for s in tiny) <= max(chunk, shape[0]) and all(s[0] == shape[0] for s in tiny)
    else:
        assert max(math.prod(s) for s in tiny) <= chunk


def test_default_blocks_are_64_mib():
    sizes = {dtype: staged_backend.chunk_elements(torch.empty(0, dtype=dtype)) for dtype in DTYPES}
    assert sizes == {torch.float16: 1 << 25, torch.bfloat16: 1 << 25, torch.float32: 1 << 24, torch.float64: 1 << 23}
    shape = (1 << 24, 3)  # 384 MiB of float64, planned (not allocated): whole rows, 64 MiB at most per block
    parts = list(staged_backend.blocks(shape, (3, 1), sizes[torch.float64]))
    assert len(parts) == 7 and all(n[1] == 3 and n[0] * 3 <= 1 << 23 for _, n in parts)
    assert sum(n[0] for _, n in parts) == 1 << 24


def test_dispatch_of_other_device_types():
    for device in ("xpu", "mps", "hpu", "privateuseone", "npu", "xla"):
        assert backends.default_name(f"torch-{device}") == "staged"
    assert backends.default_name("torch-cpu") == backends.default_name("torch-meta") == "numpy"
    assert backends.default_name("torch-cuda") == "triton" and backends.default_name("numpy") == "numpy"
    assert backends.default_name("jax") is None
    assert "staged" in gpuinit.available_backends()
    assert backends.select(torch.empty(3), "staged").NAME == "staged"
    assert backends.select(torch.empty(3)).NAME == "numpy"
    w = torch.nn.Parameter(torch.empty(4, 3))
    gpuinit.init_(w, "normal", seed=0, backend="staged")  # a leaf that requires grad: filled through a detached view
    assert w.requires_grad and w._version > 0 and w.grad_fn is None
    with pytest.raises(gpuinit.BackendUnavailableError, match="'staged' cannot fill a numpy array"):
        gpuinit.init_(np.empty(3, np.float32), "normal", seed=0, backend="staged")


def test_init_module_through_the_staged_backend(tiny, monkeypatch):
    """init_module's grouped fills (jobs.run -> fill_group) with every torch CPU tensor sent to the staged backend
    as if its device had no kernel."""
    def build():
        with torch.device("meta"):
            return torch.nn.Sequential(torch.nn.Linear(5, 3), torch.nn.LayerNorm(3), torch.nn.Conv2d(2, 4, 3),
                                       torch.nn.BatchNorm1d(5)).to(torch.bfloat16)

    expect = gpuinit.init_module(build(), seed=3, device="cpu").state_dict()
    default_name = backends.default_name
    monkeypatch.setattr(backends, "default_name", lambda kind: "staged" if kind == "torch-cpu" else default_name(kind))
    gpuinit.jobs.forget()  # calls checked before the patch chose another backend
    assert backends.select(torch.empty(1)).NAME == "staged"
    got = gpuinit.init_module(build(), seed=3, device="cpu").state_dict()
    assert got.keys() == expect.keys() and len(tiny) > 10
    for name in got:
        assert torch.equal(bits(got[name]), bits(expect[name])), name


def test_warn_once_per_device_type(monkeypatch):
    monkeypatch.setattr(staged_backend, "_warned", set())
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for device in ("xpu", "xpu", "mps", "xpu", "mps"):
            staged_backend.warn_once(device)
    assert [str(w.message).split("'")[1] for w in caught] == ["xpu", "mps"]
    assert all(w.category is staged_backend.StagedFillWarning for w in caught)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gpuinit.init_(torch.empty(3), "normal", seed=0, backend="staged")  # asked for: no warning
    assert caught == [] and "cpu" not in staged_backend._warned


# ---- a device written in Python ----------------------------------------------------------------------------

_DEVICE = {}


class DevTensor(torch.Tensor):
    """A tensor on the Python PrivateUse1 device: ``raw`` is the CPU view holding its data."""

    @staticmethod
    def __new__(cls, raw):
        t = torch.Tensor._make_wrapper_subclass(cls, raw.shape, strides=raw.stride(),
                                                storage_offset=raw.storage_offset(), dtype=raw.dtype,
                                                device=torch.device("privateuseone", 0))
        t.raw = raw
        return t

    @classmethod
    def __torch_dispatch__(cls, func, types, args=(), kwargs=None):
        with torch._C._DisableTorchDispatch():  # on to the PrivateUse1 kernels registered below
            return func(*args, **(kwargs or {}))


def _device():
    """Register the Python device once per process; the list of ops that reached it."""
    if "ops" in _DEVICE:
        return _DEVICE["ops"]
    try:
        from torch.utils.backend_registration import _setup_privateuseone_for_python_backend

        _setup_privateuseone_for_python_backend()
    except (ImportError, AttributeError, RuntimeError) as e:
        pytest.skip(f"torch {torch.__version__} has no Python PrivateUse1 backend: {e}")
    ops, lib = [], torch.library.Library("aten", "IMPL")
    aten = torch.ops.aten

    def reg(name, fn):
        lib.impl(name, lambda *a, **k: (ops.append(name), fn(*a, **k))[1], "PrivateUse1")

    def copy_from(src, dst, non_blocking=False):
        ops.append("_copy_from " + ("read" if isinstance(src, DevTensor) else "write"))
        (dst.raw if isinstance(dst, DevTensor) else dst).copy_(src.raw if isinstance(src, DevTensor) else src)
        return dst

    lib.impl("_copy_from", copy_from, "PrivateUse1")
    reg("empty.memory_format", lambda size, dtype=None, **k: DevTensor(torch.empty(size, dtype=dtype)))
    reg("empty_strided",
        lambda size, stride, dtype=None, **k: DevTensor(torch.empty_strided(size, stride, dtype=dtype)))
    for name, op in (("detach", aten.detach), ("alias", aten.alias), ("slice.Tensor", aten.slice.Tensor),
                     ("select.int", aten.select.int), ("transpose.int", aten.transpose.int), ("t", aten.t),
                     ("as_strided", aten.as_strided), ("view", aten.view), ("permute", aten.permute)):
        reg(name, lambda self, *a, op=op, **k: DevTensor(op(self.raw, *a, **k)))
    _DEVICE.update(ops=ops, lib=lib)
    return ops


def on_device(shape, dtype):
    _device()
    return torch.full(shape, float("nan"), dtype=dtype).to("privateuseone")


@pytest.mark.parametrize("dtype", DTYPES)
def test_python_device_is_staged_and_only_written(tiny, monkeypatch, dtype):
    ops = _device()
    monkeypatch.setattr(staged_backend, "_warned", set())
    x = on_device((4, 5, 6), dtype)
    assert backends.array_kind(x) == "torch-privateuseone"
    del ops[:]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gpuinit.init_(x, "kaiming_uniform", seed=5, a=5 ** 0.5)
        gpuinit.init_(x.transpose(0, 2)[1:5], "trunc_normal", seed=6, std=0.5)
    assert [w.category for w in caught] == [staged_backend.StagedFillWarning]  # one, for both calls
    assert caught[0].filename == __file__  # it names the caller, not gpuinit
    assert "privateuseone" in str(caught[0].message)
    expect = reference((4, 5, 6), dtype, "kaiming_uniform", {"a": 5 ** 0.5}, seed=5)
    expect.transpose(0, 2)[1:5] = reference((4, 5, 4), dtype, "trunc_normal", {"std": 0.5}, seed=6)
    assert torch.equal(bits(x.raw), bits(expect))
    assert "_copy_from read" not in ops and ops.count("_copy_from write") == len(tiny) > 2
    assert set(ops) <= {"detach", "slice.Tensor", "transpose.int", "_copy_from write"}


def test_python_device_checks_before_writing():
    ops = _device()
    x, ints = on_device((3, 4), torch.float32), torch.zeros(3, dtype=torch.int32).to("privateuseone")
    before = bits(x.raw).clone()
    del ops[:]
    with pytest.raises(gpuinit.InitError):
        gpuinit.init_(x, "uniform", seed=0, a=1.0, b=0.0)  # low > high
    with pytest.raises(gpuinit.InitError):
        gpuinit.init_(x, "normal", seed=0, full_shape=(3, 3))  # the block does not fit
    with pytest.raises(gpuinit.InitError, match="floating-point"):
        gpuinit.init_(ints, "normal", seed=0)
    assert ops == [] and torch.equal(bits(x.raw), before)


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
@pytest.mark.parametrize("scheme,params", [*ELEMENTWISE, ("eye", {}), ("orthogonal", {}),
                                           ("sparse", {"sparsity": 0.4})])
def test_a_negative_view_reads_what_numpy_writes(tiny, scheme, params, dtype):
    """z.conj().imag (torch's negative bit set): block.copy_ writes the negation of each block into its memory, so the
    view reads the NumPy backend's values for a plain tensor; the real parts are untouched."""
    complex_type = {torch.float16: torch.complex32, torch.float32: torch.complex64, torch.float64: torch.complex128}
    pairs = torch.full((7, 5, 2), 2.0, dtype=dtype)
    view = torch.view_as_complex(pairs).conj().imag
    assert view.is_neg() and torch.view_as_complex(pairs).dtype == complex_type[dtype]
    assert gpuinit.init_(view, scheme, seed=7, backend="staged", **params) is view
    assert torch.equal(bits(view.resolve_neg()), bits(reference((7, 5), dtype, scheme, params)))
    assert (pairs[..., 0] == 2.0).all()
