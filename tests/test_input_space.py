"""Hypothesis over init_'s whole input space: any layout, byte order, dtype, block and finite parameters.

Each call either raises InitError and leaves the array exactly as it was, or writes exactly the values of the
pure-NumPy reference stream (kernels/numpy_stream.py), element by element at its logical index."""
import math

import numpy as np
import torch
from gpuinit.kernels import numpy_stream as ks
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import gpuinit
from gpuinit import InitError, draws, schemes
from gpuinit.regions import row_major_strides

NUMPY_CODES = ["f2", "f4", "f8", "u2", "i4"]  # u2 holds bfloat16 bits; i4 must be refused
TORCH_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32,
                "float64": torch.float64}

reals = st.one_of(st.floats(-4.0, 4.0), st.floats(allow_nan=False, allow_infinity=False),
                  st.sampled_from([0.0, -0.0, 1e-45, 1e-38, 65504.0, 65520.0, 3.4e38, 3.5e38, 1e300, -1e300]))
positive = st.one_of(st.floats(1e-3, 10.0), st.floats(min_value=0.0, allow_nan=False, allow_infinity=False),
                     st.sampled_from([0.0, 1e-30, 1e4, 2e4, 1e38, 1e39]))
bound = st.one_of(reals, st.sampled_from([-math.inf, math.inf]))
params = st.one_of(
    st.tuples(st.just("uniform"), st.fixed_dictionaries({"a": reals, "b": reals})),
    st.tuples(st.just("normal"), st.fixed_dictionaries({"mean": reals, "std": positive})),
    st.tuples(st.just("trunc_normal"), st.fixed_dictionaries({"mean": reals, "std": positive, "a": bound, "b": bound})),
    st.tuples(st.just("constant"), st.fixed_dictionaries({"value": reals})),
)


@st.composite
def arrays(draw):
    """(array to fill, its value dtype, bits): a view of a fresh buffer, transposed, strided, reversed."""
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=0, max_size=3)))
    nd = len(shape)
    perm = draw(st.permutations(range(nd)))
    if draw(st.booleans()):
        code = draw(st.sampled_from(NUMPY_CODES))
        order = draw(st.sampled_from("<>="))
        steps = [draw(st.sampled_from([1, -1, 2, -2])) for _ in range(nd)]
        base = np.empty([n * abs(s) for n, s in zip(shape, steps, strict=True)], order + code)
        base.reshape(-1).view(np.uint8)[...] = draw(st.integers(0, 255))
        view = base[(*(slice(None, None, s) for s in steps), ...)].transpose(perm)
        bits = "bfloat16" if code == "u2" else None
        return view, bits or np.dtype(code).name, bits
    name = draw(st.sampled_from(sorted(TORCH_DTYPES)))
    steps = [draw(st.sampled_from([1, 2])) for _ in range(nd)]
    base = torch.full([n * s for n, s in zip(shape, steps, strict=True)], 7.0, dtype=TORCH_DTYPES[name])
    return base[tuple(slice(None, None, s) for s in steps)].permute(tuple(perm)), name, None


def raw_bits(array):
    """The stored bits of every element, as native unsigned integers."""
    if isinstance(array, torch.Tensor):
        signed = array.view({2: torch.int16, 4: torch.int32, 8: torch.int64}[array.element_size()]).numpy()
        return signed.view(f"u{array.element_size()}").copy()
    native = array.astype(array.dtype.newbyteorder("="))
    return native.view(f"u{native.itemsize}")


def reference_bits(shape, dtype, draw, full_shape, offsets, seed, stream):
    gstride = row_major_strides(full_shape)
    index = np.zeros(shape, np.uint64)
    for d, n in enumerate(shape):
        ar = (np.arange(n, dtype=np.uint64) + np.uint64(offsets[d])) * np.uint64(gstride[d])
        index = index + ar.reshape((-1,) + (1,) * (len(shape) - d - 1))
    if draw.kind == "constant" or 0 in shape:
        values = np.full(shape, draw.value if draw.kind == "constant" else 0.0, np.float64)
    else:
        values = ks.draw_values(draw, index.reshape(-1), 1, seed, stream).reshape(shape)
    if dtype == "bfloat16":
        return ks.bfloat16_bits(values.astype(np.float32)).view(np.uint16).reshape(shape)
    out = values.astype(dtype)
    return out.view(f"u{out.itemsize}")


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=arrays(), scheme=params, seed=st.integers(0, 2**64 - 1), stream=st.integers(0, 2**64 - 1),
       data=st.data())
def test_each_call_raises_untouched_or_writes_the_reference(target, scheme, seed, stream, data):
    array, dtype, bits = target
    name, kw = scheme
    shape = tuple(array.shape)
    region = {}
    if data.draw(st.booleans()):
        extra = [data.draw(st.integers(0, 4)) for _ in shape]
        region = {"full_shape": tuple(n + e for n, e in zip(shape, extra, strict=True)),
                  "offsets": tuple(data.draw(st.integers(0, e)) for e in extra)}
    before = raw_bits(array)
    try:
        gpuinit.init_(array, name, seed=seed, stream=stream, bits=bits, **region, **kw)
    except InitError:
        assert np.array_equal(raw_bits(array), before)
        event("refused")
        return
    event("written")
    assert dtype in ("float16", "bfloat16", "float32", "float64")
    full_shape, offsets = region.get("full_shape", shape), region.get("offsets", (0,) * len(shape))
    fitted = draws.fit(schemes.plan(name, schemes.Layout.of(full_shape), kw), dtype)
    assert np.array_equal(raw_bits(array), reference_bits(shape, dtype, fitted, full_shape, offsets, seed, stream))
    if name in ("uniform", "trunc_normal") and math.prod(shape):
        values = array.double().numpy() if isinstance(array, torch.Tensor) else _as_float(array, bits)
        assert kw["a"] <= values.min() and values.max() <= kw["b"]


def _as_float(array, bits):
    if bits:
        return (np.asarray(array).astype(np.uint32) << 16).view(np.float32).astype(np.float64)
    return array.astype(np.float64)
