"""gpuinit/jax/initializers.py against jax.nn.initializers itself: the same names, arguments and defaults; values that
are gpuinit's numpy fill with the key's (seed, stream), the same under jit, vmap and eval_shape; the same law as
JAX's draws (not the same bits); used as Equinox code uses an initializer."""
import inspect

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import gpuinit
from gpuinit.jax import initializers as G
from gpuinit.jax import key_seed

J = jax.nn.initializers
NAMES = ["zeros", "ones", "constant", "uniform", "normal", "truncated_normal", "variance_scaling", "glorot_uniform",
         "glorot_normal", "xavier_uniform", "xavier_normal", "lecun_uniform", "lecun_normal", "he_uniform", "he_normal",
         "kaiming_uniform", "kaiming_normal", "orthogonal", "delta_orthogonal"]
# (name, factory arguments, gpuinit scheme and parameters, its axes), shapes in JAX's (..., in, out) layout.
CASES = [("uniform", (0.5,), "uniform", {"a": 0.0, "b": 0.5}, {}),
         ("normal", (0.3,), "normal", {"mean": 0.0, "std": 0.3}, {}),
         ("truncated_normal", (0.3, None, -1.0, 2.5), "trunc_normal", {"mean": 0.0, "std": 0.3, "a": -0.3, "b": 0.75},
          {}),
         ("variance_scaling", (2.0, "fan_geo_avg", "normal"), "variance_scaling",
          {"scale": 2.0, "mode": "fan_geo_avg", "distribution": "normal"}, {}),
         ("variance_scaling", (1.0, "fan_out", "truncated_normal", 0, (1, 2), 3), "variance_scaling",
          {"scale": 1.0, "mode": "fan_out", "distribution": "truncated_normal"},
          {"in_axis": 0, "out_axis": (1, 2), "batch_axis": 3}),
         *[(n, (), n, {}, {}) for n in ("glorot_uniform", "glorot_normal", "lecun_uniform", "lecun_normal",
                                         "he_uniform", "he_normal")],
         ("orthogonal", (2.0,), "orthogonal", {"gain": 2.0}, {"in_axis": 0, "out_axis": -1}),
         ("orthogonal", (1.0, 0), "orthogonal", {"gain": 1.0}, {"in_axis": 1, "out_axis": 0})]
SHAPE = (3, 4, 5, 6)


def test_names_signatures_and_defaults_are_jax_s():
    assert set(NAMES) <= set(G.__all__) and set(G.__all__) == set(NAMES)
    for name in NAMES:
        ours, theirs = inspect.signature(getattr(G, name)), inspect.signature(getattr(J, name))
        assert [(p.name, p.default) for p in ours.parameters.values()] == \
               [(p.name, p.default) for p in theirs.parameters.values()], name
    init = G.he_normal()
    assert [p.name for p in inspect.signature(init).parameters.values()] == ["key", "shape", "dtype", "out_sharding"]
    assert isinstance(init, J.Initializer) and G.kaiming_normal is G.he_normal and G.xavier_uniform is G.glorot_uniform


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16, jnp.float16])
@pytest.mark.parametrize(("name", "args", "scheme", "params", "axes"), CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_values_are_gpuinit_s_fill_with_the_key_s_seed_and_stream(name, args, scheme, params, axes, dtype):
    key = jax.random.key(11)
    seed, stream = key_seed(key)
    got = getattr(G, name)(*args)(key, SHAPE, dtype)
    want = gpuinit.init_(np.empty(SHAPE, np.dtype(dtype)), scheme, seed=seed, stream=stream,
                         **{"in_axis": -2, "out_axis": -1, **axes}, **params)
    assert got.dtype == dtype and np.array_equal(np.asarray(got).view(np.uint16 if dtype != jnp.float32 else np.uint32),
                                                 want.view(np.uint16 if dtype != jnp.float32 else np.uint32))


def test_constants_and_delta_orthogonal():
    key = jax.random.key(0)
    assert (G.zeros(key, (2, 3)) == 0).all() and G.ones(key, (2, 3), jnp.bfloat16).dtype == jnp.bfloat16
    assert np.array_equal(G.constant(0.1, jnp.bfloat16)(key, (2, 2)),
                          gpuinit.init_(np.empty((2, 2), jnp.bfloat16), "constant", value=0.1))
    assert np.array_equal(G.constant(np.array([1.0, 2.0]))(key, (3, 2)), [[1.0, 2.0]] * 3)
    w = G.delta_orthogonal(1.5)(key, (3, 3, 4, 8))
    seed, stream = key_seed(key)
    assert np.array_equal(w, gpuinit.init_(np.empty((3, 3, 4, 8), np.float32), "delta_orthogonal", seed=seed,
                                           stream=stream, gain=1.5, in_axis=-2, out_axis=-1))
    m = np.asarray(w[1, 1], np.float64)
    assert np.allclose(m @ m.T, 2.25 * np.eye(4), atol=1e-5) and np.count_nonzero(w) == m.size


def test_one_key_one_array_whatever_the_trace():
    """The same key gives the same values eagerly, under jit (a host callback), per key under vmap, and eval_shape
    gives the shape without drawing; distinct keys, typed or raw, give distinct values."""
    init = G.he_normal(dtype=jnp.bfloat16)
    key = jax.random.key(3)
    eager = init(key, (16, 8))
    assert eager.dtype == jnp.bfloat16
    assert np.array_equal(jax.jit(init, static_argnums=1)(key, (16, 8)), eager)
    keys = jax.random.split(key, 3)
    batch = jax.vmap(lambda k: init(k, (16, 8)))(keys)
    assert all(np.array_equal(batch[i], init(keys[i], (16, 8))) for i in range(3))
    assert not np.array_equal(batch[0], batch[1])
    assert jax.eval_shape(lambda k: init(k, (16, 8)), key) == jax.ShapeDtypeStruct((16, 8), jnp.bfloat16)
    assert np.array_equal(init(jax.random.PRNGKey(3), (16, 8)), eager)  # a raw key of the same data
    assert G.glorot_uniform()(key, (4, 5)).dtype == jnp.float32  # JAX's default float
    with pytest.raises(gpuinit.InitError, match="unknown scheme|mode must be one of"):
        jax.jit(G.variance_scaling(1.0, "fan_sum", "normal"), static_argnums=1)(key, (4, 5))


def test_out_sharding_places_the_array():
    dev = jax.local_devices()[0]
    mesh = jax.sharding.Mesh(np.array([dev]), ("x",))
    named = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("x"))
    for sharding in (jax.sharding.SingleDeviceSharding(dev), named):
        w = G.lecun_normal()(jax.random.key(0), (4, 6), out_sharding=sharding)
        assert w.sharding == sharding and np.array_equal(w, G.lecun_normal()(jax.random.key(0), (4, 6)))


@pytest.mark.parametrize("call,match", [
    (lambda: G.variance_scaling(1.0, "fan_in", "untruncated_normal"), "invalid distribution"),
    (lambda: G.he_normal()(jax.random.key(0), (5,)), "Can't compute input and output sizes of a 1-dimensional"),
    (lambda: G.orthogonal()(jax.random.key(0), (5,)), "requires at least a 2D shape"),
    (lambda: G.orthogonal(column_axis=2)(jax.random.key(0), (5, 4)), "column_axis=2 is out of range"),
    (lambda: G.delta_orthogonal(column_axis=-2), "column_axis=-1"),
    (lambda: G.delta_orthogonal()(jax.random.key(0), (3, 3, 8, 4)), "fan_in must be less or equal than fan_out"),
    (lambda: G.truncated_normal("wide"), "stddev must be a real number"),
    (lambda: G.normal(-1.0)(jax.random.key(0), (2, 2)), "std"),
    (lambda: G.constant(1e39)(jax.random.key(0), (2, 2)), "float32"),
    (lambda: G.he_normal()(jax.random.split(jax.random.key(0), 2), (2, 2)), "one JAX PRNG key"),
    (lambda: G.he_normal()(jax.random.key(0), (2, 2), jnp.int8), "floating-point arrays"),
])
def test_bad_input_is_an_init_error(call, match):
    with pytest.raises(gpuinit.InitError, match=match):
        call()


STAT_CASES = [("uniform", (0.5,)), ("normal", (0.3,)), ("truncated_normal", (0.3,)),
              ("truncated_normal", (1.0, None, -0.5, 3.0)), *[(n, ()) for n in NAMES[7:15]],
              ("variance_scaling", (0.5, "fan_geo_avg", "normal")), ("variance_scaling", (3.0, "fan_out", "uniform"))]


@pytest.mark.parametrize(("name", "args"), STAT_CASES, ids=[f"{n}-{a}" for n, a in STAT_CASES])
def test_draws_follow_jax_s_distribution(name, args):
    """Same law as JAX's own initializer: a two-sample KS test and equal std, on a (3, 3, 64, 96) kernel."""
    shape = (3, 3, 64, 96)
    x = np.asarray(getattr(G, name)(*args)(jax.random.key(1), shape), np.float64).ravel()
    y = np.asarray(getattr(J, name)(*args)(jax.random.key(2), shape), np.float64).ravel()
    assert stats.ks_2samp(x, y).pvalue > 1e-4
    assert abs(x.std() / y.std() - 1) < 0.02 and abs(x.mean() - y.mean()) < 5 * y.std() / len(y) ** 0.5


def test_orthogonal_as_jax_s():
    for shape, axis in (((6, 4), -1), ((4, 6), -1), ((3, 5, 4), 0)):
        w = np.asarray(G.orthogonal(2.0, axis)(jax.random.key(0), shape), np.float64)
        cols = np.moveaxis(w, axis, -1).reshape(-1, shape[axis])
        q = cols.T @ cols if cols.shape[0] >= cols.shape[1] else cols @ cols.T
        assert np.allclose(q, 4.0 * np.eye(len(q)), atol=1e-4)


def test_equinox_weights_from_gpuinit():
    """Equinox layers take no initializer: its code replaces a leaf with ``init(key, shape, dtype)``."""
    model = eqx.nn.Linear(16, 8, key=jax.random.key(0))
    key = jax.random.key(5)
    init = G.lecun_normal(in_axis=-1, out_axis=-2)  # Equinox's weight is (out, in)
    model = eqx.tree_at(lambda m: m.weight, model, init(key, model.weight.shape, model.weight.dtype))
    seed, stream = key_seed(key)
    want = gpuinit.init_(np.empty((8, 16), np.float32), "lecun_normal", seed=seed, stream=stream)  # torch's layout
    assert np.array_equal(model.weight, want) and model(jnp.ones(16)).shape == (8,)
