"""gpuinit.initializers against Keras 3 itself (torch backend): configs both ways, attributes, names, errors, and
the distributions of the draws (same law, not the same bits: Keras draws from torch's generator)."""
import operator
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from scipy import stats

from gpuinit import initializers as I

if sys.version_info < (3, 11):  # Keras 3.15 needs Python 3.11; the test extra installs it from there on
    pytest.skip("Keras 3.15 needs Python >= 3.11", allow_module_level=True)
os.environ["KERAS_BACKEND"] = "torch"  # before keras is imported; CI has torch, no TensorFlow or JAX
import keras
from keras import initializers as K
from keras.src.initializers import ALL_OBJECTS_DICT
from keras.src.initializers.random_initializers import compute_fans

NAMES = ["Zeros", "Ones", "Constant", "Identity", "RandomNormal", "RandomUniform", "TruncatedNormal",
         "VarianceScaling", "GlorotUniform", "GlorotNormal", "LecunUniform", "LecunNormal", "HeUniform", "HeNormal",
         "Orthogonal"]
# Constructor arguments for each class (Keras's defaults first), seeds included.
CASES = [("Zeros", {}), ("Ones", {}), ("Constant", {}), ("Constant", {"value": 2.5}),
         ("Constant", {"value": [1.0, 2.0]}), ("Identity", {}), ("Identity", {"gain": 3.0}),
         ("RandomNormal", {}), ("RandomNormal", {"mean": 1.0, "stddev": 0.5, "seed": 7}),
         ("RandomUniform", {}), ("RandomUniform", {"minval": -2.0, "maxval": 3.0, "seed": 1}),
         ("TruncatedNormal", {}), ("TruncatedNormal", {"mean": -1.0, "stddev": 2.0, "seed": 3}),
         ("VarianceScaling", {}), ("VarianceScaling", {"scale": 2.0, "mode": "fan_out", "distribution": "uniform"}),
         ("VarianceScaling", {"scale": 0.5, "mode": "fan_avg", "distribution": "untruncated_normal", "seed": 2}),
         ("VarianceScaling", {"distribution": "normal", "seed": 4}),
         ("VarianceScaling", {"mode": "fan_avg", "input_axes": [0], "output_axes": [1, 2], "seed": 5}),
         ("Orthogonal", {}), ("Orthogonal", {"gain": 2.0, "seed": 9})]
CASES += [(n, kw) for n in NAMES[8:14] for kw in ({}, {"seed": 6}, {"input_axes": [0, 1], "output_axes": [2]})]
ATTRIBUTES = ["mean", "stddev", "minval", "maxval", "scale", "mode", "distribution", "gain", "value", "input_axes",
              "output_axes"]


def pair(name, kwargs):
    return getattr(I, name)(**kwargs), getattr(K, name)(**kwargs)


def test_same_classes_and_names():
    ours = set(I.ALL_OBJECTS_DICT)
    theirs = {k for k, v in ALL_OBJECTS_DICT.items() if v not in (K.STFT, K.Initializer)}
    assert ours == theirs
    for name in theirs:
        if name in ("Constant", "constant"):  # Keras 3.15's Constant.from_config needs "value": a KeyError there
            with pytest.raises(KeyError):
                K.get(name)
            assert I.get(name).value == K.Constant().value
            continue
        assert type(I.get(name)).__name__ == type(K.get(name)).__name__, name
    for name in NAMES:
        assert [c.__name__ for c in getattr(I, name).__mro__[:-1] if c.__name__ in NAMES] == \
               [c.__name__ for c in getattr(K, name).__mro__[:-1] if c.__name__ in NAMES]


@pytest.mark.parametrize(("name", "kwargs"), CASES, ids=[f"{n}-{kw}" for n, kw in CASES])
def test_configs_and_attributes_match_keras(name, kwargs):
    ours, theirs = pair(name, kwargs)
    expected = theirs.get_config()
    if name == "Identity":  # Keras 3.15's Identity writes {} (no get_config); gpuinit keeps gain, which it takes
        assert expected == {} and K.Identity.from_config(ours.get_config()).gain == ours.gain
        expected = {"gain": theirs.gain}
    assert ours.get_config() == expected
    assert I.serialize(ours) == {**K.serialize(theirs), "config": expected}
    for attr in ATTRIBUTES:
        assert getattr(ours, attr, "absent") == getattr(theirs, attr, "absent"), attr
    if "seed" in kwargs:
        assert ours.seed == theirs.seed == kwargs["seed"]
    # Each loads the other's serialized form.
    back = K.deserialize(I.serialize(ours))
    assert type(back) is type(theirs) and K.serialize(back) == K.serialize(theirs)
    if name == "Identity":  # Keras's form has lost gain: it loads as Keras loads it, with the default
        ours = I.Identity()
    mine = I.deserialize(K.serialize(theirs))
    assert type(mine) is type(ours) and mine.get_config() == ours.get_config()
    assert I.get(K.serialize(theirs)).get_config() == ours.get_config()
    assert I.get({"class_name": name, "config": theirs.get_config()}).get_config() == ours.get_config()


@pytest.mark.parametrize("value", [np.array([0.5, 1.5], np.float32), np.float32(2.0), np.array(3.0), (1.0, 2.0), 4])
def test_constant_values_serialize_as_keras(value):
    ours, theirs = I.Constant(value), K.Constant(value)
    assert ours.get_config() == theirs.get_config()
    shape = (3, 2)
    assert np.array_equal(ours(shape), np.asarray(theirs(shape)))
    again = I.Constant.from_config(K.Constant.from_config(theirs.get_config()).get_config())
    assert np.array_equal(again(shape), ours(shape))


def test_layer_configs_written_by_keras_load():
    layers = [keras.layers.Dense(3), keras.layers.Conv2D(4, 3), keras.layers.LSTM(4), keras.layers.Embedding(10, 4),
              keras.layers.BatchNormalization(), keras.layers.Dense(3, kernel_initializer="he_normal"),
              keras.layers.Dense(3, kernel_initializer=K.VarianceScaling(2.0, distribution="normal", seed=1))]
    seen = set()
    for layer in layers:
        for key, config in layer.get_config().items():
            if key.endswith("_initializer"):
                init = I.get(config)
                assert I.serialize(init) == config, (layer, key)
                seen.add(config["class_name"])
    assert seen == {"GlorotUniform", "Zeros", "Orthogonal", "RandomUniform", "Ones", "HeNormal", "VarianceScaling"}


def test_errors_are_keras_exception_types():
    bad = [("VarianceScaling", {"scale": 0.0}), ("VarianceScaling", {"scale": -2.0}),
           ("VarianceScaling", {"mode": "fan_geo_avg"}), ("VarianceScaling", {"distribution": "gamma"}),
           ("VarianceScaling", {"foo": 1}), ("Zeros", {"seed": 1}), ("HeNormal", {"scale": 1.0}),
           ("RandomNormal", {"seed": 1.5}), ("Orthogonal", {"gain": 1.0, "stdev": 1.0})]
    for name, kwargs in bad:
        with pytest.raises(Exception) as keras_error:
            getattr(K, name)(**kwargs)
        with pytest.raises(keras_error.type):
            getattr(I, name)(**kwargs)
    for identifier in ("nosuch", 3, {"class_name": "Nope", "config": {}}, {"config": {}}):
        with pytest.raises(ValueError):
            K.get(identifier)
        with pytest.raises(ValueError):
            I.get(identifier)
    for name, shape in (("Orthogonal", (5,)), ("Identity", (2, 2, 2))):
        with pytest.raises(ValueError):
            getattr(K, name)()(shape)
        with pytest.raises(ValueError):
            getattr(I, name)()(shape)


def test_get_of_classes_callables_and_arrays_as_keras():
    assert type(I.get(I.HeNormal)) is I.HeNormal and type(K.get(K.HeNormal)) is K.HeNormal
    def fn(shape, dtype=None):
        return np.ones(shape)

    assert I.get(fn) is fn is K.get(fn)
    values = np.arange(6.0).reshape(3, 2)
    ours, theirs = I.get(values), K.get(values)
    assert not isinstance(ours, I.Initializer) and callable(ours) and callable(theirs)  # a function, as Keras
    out = ours((3, 2))
    assert np.array_equal(out, np.asarray(theirs((3, 2)))) and str(out.dtype) == "float32"
    for f in (ours, theirs):
        with pytest.raises(ValueError):
            f((2, 3))


def test_unseeded_and_equality_behave_as_keras():
    for cls in (I.GlorotNormal, K.GlorotNormal, I.RandomUniform, K.RandomUniform):
        g = cls()
        a, b = np.asarray(g((16, 8))), np.asarray(g((16, 8)))
        assert np.array_equal(a, b), cls  # one seed per instance, drawn when made
        assert not np.array_equal(a, np.asarray(cls()((16, 8))))
        assert g.get_config()["seed"] is None
        other = cls()
        assert operator.eq(g, g) and g != other and len({g, other}) == 2  # plain objects: identity
    assert K.GlorotNormal() != K.GlorotNormal() and I.GlorotNormal() != I.GlorotNormal()


def test_default_dtype_is_floatx():
    for name in ("Zeros", "HeNormal", "Identity", "Orthogonal"):
        ours, theirs = getattr(I, name)(), getattr(K, name)()
        assert str(ours((4, 4)).dtype) == keras.backend.floatx() == keras.backend.standardize_dtype(
            theirs((4, 4)).dtype)


def test_deterministic_values_equal_keras():
    assert np.array_equal(I.Identity(2.0)((3, 5)), np.asarray(K.Identity(2.0)((3, 5))))
    assert np.array_equal(I.Constant(1.5)((2, 3), "float64"), np.asarray(K.Constant(1.5)((2, 3), "float64")))
    q, r = I.Orthogonal(1.5, seed=0)((2, 6, 4)), np.asarray(K.Orthogonal(1.5, seed=0)((2, 6, 4)))
    for m in (q.reshape(12, 4).astype(np.float64), r.reshape(12, 4).astype(np.float64)):
        assert np.allclose(m.T @ m, 2.25 * np.eye(4), atol=1e-4)  # Keras's (rows, last) semi-orthogonality
    q, r = I.Orthogonal(seed=1)((3, 7)).astype(np.float64), np.asarray(K.Orthogonal(seed=1)((3, 7)), np.float64)
    assert np.allclose(q @ q.T, np.eye(3), atol=1e-5) and np.allclose(r @ r.T, np.eye(3), atol=1e-5)


RANDOM_NAMES = NAMES[4:8] + NAMES[8:14]
STAT_CASES = [(n, kw, shape) for n, kw in CASES if n in RANDOM_NAMES
              for shape in ([(16, 8, 48)] if "input_axes" in kw else [(3, 3, 32, 64), (256, 128)])]
STAT_CASES += [("VarianceScaling", {"distribution": d, "mode": m, "input_axes": [0], "output_axes": [1, 2]},
                (64, 8, 48)) for d in ("uniform", "truncated_normal") for m in ("fan_in", "fan_out", "fan_avg")]


@pytest.mark.parametrize(("name", "kwargs", "shape"), STAT_CASES, ids=[f"{n}-{kw}-{s}" for n, kw, s in STAT_CASES])
def test_draws_follow_keras_distribution(name, kwargs, shape):
    """Same law as Keras: a two-sample KS test, mean and std against Keras's draws and against the formula
    written again here from Keras's compute_fans; bounds from the formula."""
    kwargs = {**kwargs, "seed": 12345}
    ours, theirs = pair(name, kwargs)
    x = ours(shape).astype(np.float64).ravel()
    y = np.asarray(theirs(shape), dtype=np.float64).ravel()
    if isinstance(theirs, K.VarianceScaling):
        fan_in, fan_out = compute_fans(shape, theirs.input_axes, theirs.output_axes)
        n = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2}[theirs.mode]
        sigma, mean = (theirs.scale / max(1.0, n)) ** 0.5, 0.0
        low, high = {"uniform": (-3**0.5 * sigma, 3**0.5 * sigma),
                     "truncated_normal": (-2 * sigma / 0.87962566103423978, 2 * sigma / 0.87962566103423978),
                     "untruncated_normal": (-np.inf, np.inf)}[theirs.distribution]
    elif name == "RandomUniform":
        low, high = theirs.minval, theirs.maxval
        mean, sigma = (low + high) / 2, (high - low) / 12**0.5
    else:
        mean, sigma = theirs.mean, theirs.stddev * (0.87962566103423978 if name == "TruncatedNormal" else 1.0)
        low, high = (mean - 2 * theirs.stddev, mean + 2 * theirs.stddev) if name == "TruncatedNormal" else (-np.inf,
                                                                                                              np.inf)
    assert stats.ks_2samp(x, y).pvalue > 1e-4
    tol = 5 * sigma / len(x) ** 0.5
    for z in (x, y):
        assert abs(z.mean() - mean) < tol and abs(z.std() / sigma - 1) < 0.02
    assert x.min() >= low * (1 + 1e-6) - 1e-7 and x.max() <= high * (1 + 1e-6) + 1e-7
    if np.isfinite(high):
        assert x.max() > high - 0.01 * (high - low)


# ---- Keras layers with gpuinit's initializers: bfloat16, mixed precision, save / load, the JAX backend -----------
# One script, run here (torch backend) and in a subprocess with KERAS_BACKEND=jax (Keras picks its backend once).
LAYERS = textwrap.dedent("""
    import os, tempfile
    import ml_dtypes, numpy as np, keras, gpuinit
    from gpuinit import initializers as I

    def bits(x):  # the stored bits of a variable, as Keras hands it to numpy (bfloat16: ml_dtypes)
        x = np.asarray(keras.ops.convert_to_numpy(x))
        return x.view(f"u{x.dtype.itemsize}")

    def want(shape, dtype, scheme, **kw):  # gpuinit's own fill, in Keras's (..., in, out) layout
        dtype = ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype
        return bits(gpuinit.init_(np.empty(shape, dtype), scheme, in_axis=-2, out_axis=-1, **kw))

    for dtype in ("bfloat16", "float16", "float32"):
        dense = keras.layers.Dense(8, dtype=dtype, kernel_initializer=I.GlorotUniform(seed=0))
        conv = keras.layers.Conv2D(6, 3, dtype=dtype, kernel_initializer=I.HeNormal(seed=2),
                                   bias_initializer=I.Constant(0.1))
        dense.build((None, 4))
        conv.build((None, 5, 5, 3))
        assert dense.kernel.dtype == conv.kernel.dtype == dtype, (dense.kernel.dtype, dtype)
        assert np.array_equal(bits(dense.kernel), want((4, 8), dtype, "glorot_uniform", seed=0)), dtype
        assert np.array_equal(bits(conv.kernel), want((3, 3, 3, 6), dtype, "he_normal", seed=2)), dtype
        assert np.array_equal(bits(conv.bias), want((6,), dtype, "constant", value=0.1)), dtype
        assert keras.ops.convert_to_numpy(dense(np.ones((2, 4), dtype))).shape == (2, 8)

    keras.mixed_precision.set_dtype_policy("mixed_bfloat16")  # float32 variables, bfloat16 computations
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, kernel_initializer=I.HeUniform(seed=1)),
                              keras.layers.Dense(2, kernel_initializer=I.Orthogonal(seed=3))])
    kernel = model.layers[0].kernel
    assert kernel.dtype == "float32" and model.layers[0].compute_dtype == "bfloat16"
    assert np.array_equal(bits(kernel), want((4, 8), "float32", "he_uniform", seed=1))
    assert keras.backend.standardize_dtype(model(np.ones((3, 4), "float32")).dtype) == "bfloat16"

    path = os.path.join(tempfile.mkdtemp(), "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(model.weights, loaded.weights, strict=True):
        assert np.array_equal(bits(a), bits(b)), a.path
    print("ok", keras.backend.backend())
""")


def test_keras_layers_hold_gpuinit_values_bfloat16_mixed_precision_and_save_load(tmp_path):
    """Dense / Conv2D in bfloat16, float16 and float32 hold the bits gpuinit writes (bfloat16 comes to Keras as an
    ml_dtypes array); under "mixed_bfloat16" the float32 variables hold gpuinit's values; save and load keep them."""
    previous = keras.mixed_precision.global_policy()
    try:
        exec(compile(LAYERS, "layers", "exec"), {})
    finally:
        keras.mixed_precision.set_dtype_policy(previous)


def test_the_same_on_keras_jax_backend(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", LAYERS], capture_output=True, text=True, cwd=tmp_path, env=env,
                       timeout=600, check=False)
    assert r.returncode == 0 and r.stdout.split()[-2:] == ["ok", "jax"], r.stderr[-3000:]
