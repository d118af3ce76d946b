"""Hypothesis: any shape, dtype, block and scheme keeps the invariants."""
import numpy as np
from helpers import DTYPES, as_f64, empty
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpuinit
from gpuinit import draws

shapes = st.lists(st.integers(1, 12), min_size=2, max_size=4).map(tuple)
schemes = st.sampled_from([("uniform", {"a": -0.25, "b": 0.75}), ("normal", {"std": 0.5}),
                           ("trunc_normal", {"a": -1.0, "b": 0.5}), ("he_uniform", {}), ("glorot_normal", {})])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes, dtype=st.sampled_from(DTYPES), scheme=schemes, seed=st.integers(0, 2**64 - 1),
       stream=st.integers(0, 2**64 - 1), data=st.data())
def test_block_of_any_tensor(shape, dtype, scheme, seed, stream, data):
    name, kw = scheme
    whole = as_f64(gpuinit.init_(empty(shape, dtype), name, seed=seed, stream=stream, **kw))
    assert np.isfinite(whole).all()
    if name in ("uniform", "trunc_normal"):
        lo, hi = (kw["a"], kw["b"])
        assert whole.min() >= lo and whole.max() <= hi
    offsets = tuple(data.draw(st.integers(0, n - 1)) for n in shape)
    sub = tuple(data.draw(st.integers(1, n - o)) for n, o in zip(shape, offsets, strict=True))
    block = as_f64(gpuinit.init_(empty(sub, dtype), name, seed=seed, stream=stream, full_shape=shape,
                                 offsets=offsets, **kw))
    assert np.array_equal(block, whole[tuple(slice(o, o + n) for o, n in zip(offsets, sub, strict=True))])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 3000), start=st.integers(0, 2**60), seed=st.integers(0, 2**64 - 1))
def test_runs_equal_elementwise_words(n, start, seed):
    from gpuinit.kernels import numpy_stream as ks

    words = ks.element_words([start], n, seed, 0)[0]
    u = ks.draw_values(draws.Uniform(center=0.0, half_width=1.0, lo=-1.0, hi=1.0), [start], n, seed, 0)[0]
    assert np.array_equal(u, ks.signed_uniform(words))
