"""Keras-style classes: Keras's layout, attributes, configs, errors and get(), checked against formulas written
again here (tests/test_keras_compat.py checks the same against Keras itself)."""
import math
import operator

import ml_dtypes
import numpy as np
import pytest
import torch
from scipy import stats

import gpuinit
from gpuinit import initializers as I
from gpuinit import seeding

ALL = [I.Zeros, I.Ones, I.Constant, I.RandomNormal, I.RandomUniform, I.TruncatedNormal, I.VarianceScaling,
       I.GlorotUniform, I.GlorotNormal, I.LecunUniform, I.LecunNormal, I.HeUniform, I.HeNormal, I.Orthogonal,
       I.Identity]
RANDOM = [c for c in ALL if c not in (I.Zeros, I.Ones, I.Constant, I.Identity)]
TRUNC_STD = stats.truncnorm(-2, 2).std()  # 0.87962566103423978, the std of N(0, 1) truncated to (-2, 2)


def test_keras_layout_fans():
    """Kernel (kh, kw, in, out): fan_in = in * kh * kw."""
    x = I.HeUniform(seed=1)((3, 3, 16, 32))
    bound = math.sqrt(6 / (16 * 9))
    assert x.shape == (3, 3, 16, 32) and x.dtype == np.float32
    assert x.max() <= bound and x.max() > 0.98 * bound
    y = I.VarianceScaling(scale=1.0, mode="fan_out", distribution="uniform", seed=2)((64, 10))
    assert y.max() <= math.sqrt(3 / 10) and y.max() > 0.95 * math.sqrt(3 / 10)


def test_one_dimensional_and_scalar_shapes_follow_keras():
    x = I.LecunUniform(seed=0)((400,))  # fan_in = fan_out = 400
    assert x.max() <= math.sqrt(3 / 400) and x.max() > 0.95 * math.sqrt(3 / 400)
    assert I.GlorotUniform(seed=0)(()).shape == ()
    assert I.GlorotUniform(seed=0)(7).shape == (7,)


@pytest.mark.parametrize("distribution", ["truncated_normal", "normal", "Normal", "TRUNCATED_NORMAL"])
def test_truncated_variance_scaling_keeps_the_variance(distribution):
    """Keras reads "normal" as "truncated_normal": std sqrt(scale / n) after truncation at 2 / 0.8796 of it."""
    init = I.VarianceScaling(2.0, "fan_avg", distribution, seed=3)
    assert init.distribution == "truncated_normal"
    x = init((300, 500)).astype(np.float64)
    sigma = math.sqrt(2.0 / 400)
    assert abs(x.std() / sigma - 1) < 0.01 and abs(x.mean()) < 0.01 * sigma
    assert np.abs(x).max() <= 2 * sigma / TRUNC_STD * (1 + 1e-6)
    assert np.abs(x).max() > 0.999 * 2 * sigma / TRUNC_STD
    assert stats.kstest(x.ravel()[:20000] / (sigma / TRUNC_STD), stats.truncnorm(-2, 2).cdf).pvalue > 1e-4


def test_untruncated_and_uniform_variance_scaling():
    x = I.VarianceScaling(0.5, "fan_in", "untruncated_normal", seed=4)((200, 600)).astype(np.float64)
    sigma = math.sqrt(0.5 / 200)
    assert abs(x.std() / sigma - 1) < 0.01 and np.abs(x).max() > 3.5 * sigma  # no truncation
    u = I.VarianceScaling(0.5, "fan_out", "uniform", seed=4)((200, 600))
    assert u.max() <= math.sqrt(1.5 / 600) and u.min() >= -math.sqrt(1.5 / 600)


def test_unseeded_instance_repeats_as_in_keras(monkeypatch):
    """Keras 3: an unseeded initializer draws one seed when made; its calls repeat, two instances differ."""
    monkeypatch.setattr(seeding, "_rng", seeding._rng)  # manual_seed below: restored for the other tests
    g = I.GlorotNormal()
    assert np.array_equal(g((20, 30)), g((20, 30)))
    assert not np.array_equal(g((20, 30)), I.GlorotNormal()((20, 30)))
    assert g.get_config()["seed"] is None and isinstance(g.seed, int)
    assert not np.array_equal(g((20, 30)), g.clone()((20, 30)))  # the clone draws its own seed, as in Keras
    gpuinit.manual_seed(11)
    a = I.HeNormal()((8, 8))
    gpuinit.manual_seed(11)
    assert np.array_equal(a, I.HeNormal()((8, 8)))


def test_seed_generator_config_gives_new_values_per_call():
    seed = {"module": "keras.random", "class_name": "SeedGenerator", "config": {"seed": 5, "name": "sg"},
            "registered_name": None}
    a, b = I.RandomNormal(seed=seed), I.RandomNormal(seed=seed)
    first, second = a((16,)), a((16,))
    assert not np.array_equal(first, second)
    assert np.array_equal(first, b((16,))) and np.array_equal(second, b((16,)))
    assert a.get_config()["seed"] == seed


@pytest.mark.parametrize("cls", ALL)
def test_config_round_trip(cls):
    init = cls()
    config = init.get_config()
    again = cls.from_config(config)
    assert type(again) is cls and again.get_config() == config
    assert I.get(I.serialize(init)).get_config() == config
    assert isinstance(I.get(cls.__name__), cls)
    seeded = {**config, **({"seed": 3} if issubclass(cls, I.RandomInitializer) else {})}
    assert np.array_equal(cls.from_config(seeded)((8, 8)), cls.from_config(seeded)((8, 8)))


def test_keras_config_keys():
    axes = {"input_axes": None, "output_axes": None}
    assert I.VarianceScaling().get_config() == {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal",
                                                "seed": None, **axes}
    assert I.HeNormal(seed=2).get_config() == {"seed": 2, **axes}
    assert I.RandomNormal(0.0, 0.1, 1).get_config() == {"mean": 0.0, "stddev": 0.1, "seed": 1}
    assert I.Orthogonal(2.0).get_config() == {"gain": 2.0, "seed": None}
    assert I.Zeros().get_config() == {} and I.Constant(2.0).get_config() == {"value": 2.0}
    assert I.Identity(gain=3.0).get_config() == {"gain": 3.0}
    assert I.serialize(I.Ones()) == {"module": "keras.initializers", "class_name": "Ones", "config": {},
                                     "registered_name": None}


def test_attributes_are_keras_names_and_drive_the_draw():
    v = I.VarianceScaling(3.0, "fan_out", "uniform", seed=1)
    assert (v.scale, v.mode, v.distribution, v.seed) == (3.0, "fan_out", "uniform", 1)
    h = I.HeUniform(seed=1)
    assert (h.scale, h.mode, h.distribution) == (2.0, "fan_in", "uniform")
    assert isinstance(h, I.VarianceScaling) and not isinstance(I.TruncatedNormal(), I.RandomNormal)
    r = I.RandomUniform(-1.0, 1.0, seed=0)
    r.minval, r.maxval = 10.0, 11.0  # Keras reads its attributes at each call
    x = r((100,))
    assert x.min() >= 10.0 and x.max() <= 11.0
    assert r.params == {"minval": 10.0, "maxval": 11.0}


def test_bad_arguments_are_value_errors_in_the_constructor():
    for kwargs in ({"scale": 0.0}, {"scale": -1.0}, {"scale": float("nan")}, {"mode": "fan_geo_avg"},
                   {"mode": "FAN_IN"}, {"distribution": "gamma"}, {"distribution": 3}, {"seed": 1.5},
                   {"seed": -1}, {"input_axes": 0}):
        with pytest.raises(ValueError):
            I.VarianceScaling(**kwargs)
    with pytest.raises(ValueError):
        I.Constant("a")
    for call in (lambda: I.Zeros(seed=1), lambda: I.HeNormal(scale=2.0), lambda: I.RandomNormal(std=1.0),
                 lambda: I.get({"class_name": "GlorotUniform", "config": {"foo": 1}})):
        with pytest.raises(TypeError):
            call()


def test_get_and_deserialize():
    assert isinstance(I.get("he_normal"), I.HeNormal) and isinstance(I.get("uniform"), I.RandomUniform)
    assert isinstance(I.get("zero"), I.Zeros) and isinstance(I.get("OrthogonalInitializer"), I.Orthogonal)
    assert I.get(None) is None and I.deserialize(None) is None
    assert isinstance(I.get(I.Ones), I.Ones)
    def fn(shape, dtype=None):
        return np.zeros(shape, dtype)

    h = I.HeNormal()
    assert I.get(fn) is fn and I.get(h) is h
    v = I.get({"class_name": "VarianceScaling", "config": {"scale": 2.0, "mode": "fan_out"}})
    assert (v.scale, v.mode, v.distribution) == (2.0, "fan_out", "truncated_normal")
    assert isinstance(I.get({"class_name": "he_normal"}), I.HeNormal)
    assert I.deserialize({"class_name": "Mine", "config": {}}, custom_objects={"Mine": I.Ones}).__class__ is I.Ones
    with pytest.raises(gpuinit.InitError, match="HeNormal"):
        I.get("HeNormall")
    for bad in (3, {"config": {}}, {"class_name": "Nope"}, "STFT"):
        with pytest.raises(ValueError):
            I.get(bad)


def _deep(levels):
    config = {"class_name": "Constant", "config": {"value": 1.0}}
    for _ in range(levels):
        config = {"class_name": "Constant", "config": {"value": config}}
    return config


def _looped():
    config = {"class_name": "GlorotUniform", "config": {}}
    config["config"]["seed"] = config
    return config


MALFORMED = [  # (config, what the message says)
    ({"class_name": "GlorotUniform", "config": 0}, "GlorotUniform's config must be a dict of its arguments, got 0"),
    ({"class_name": "HeNormal", "config": [1]}, r"HeNormal's config must be a dict of its arguments, got \[1\]"),
    ({"class_name": "Zeros", "config": "x"}, "Zeros's config must be a dict"),
    ({"class_name": "GlorotUniform", "config": {1: 2}}, r"GlorotUniform's config: keys are argument names .* got 1"),
    ({"class_name": "Zeros", "config": {"seed": 1}}, r"Zeros's config: Zeros takes no arguments, not \['seed'\]"),
    ({"class_name": "HeNormal", "config": {"scale": 2.0}},
     r"HeNormal takes \['seed', 'input_axes', 'output_axes'\], not \['scale'\]"),
    ({"class_name": [1, 2]}, r"unknown initializer \[1, 2\]"),
    ({"class_name": {"class_name": "Zeros"}}, "unknown initializer {'class_name': 'Zeros'}"),
    ({"class_name": "GlorotUniform", "config": {"seed": {"class_name": "SeedGenerator", "config": 5}}},
     "SeedGenerator's config must be a dict of its arguments, got 5"),
    ({"class_name": "GlorotUniform", "config": {"seed": {"class_name": "SeedGenerator", "config": [1]}}},
     "SeedGenerator's config must be a dict"),
    ({"class_name": "GlorotUniform", "config": {"seed": {"class_name": "SeedGenerator", "config": {"sed": 1}}}},
     r"SeedGenerator takes \['seed', 'name', 'backend'\], not \['sed'\]"),
    ({"class_name": "GlorotUniform", "config": {"seed": {"class_name": "SeedGenerator", "config": {"seed": 2**70}}}},
     r"SeedGenerator seed must be an integer in \[0, 2\*\*64\), got 1180591620717411303424"),
    ({"class_name": "Constant", "config": {"value": {"class_name": "__numpy__"}}},
     r"Constant's value, a serialized __numpy__, needs a config dict with 'value' .* got None"),
    ({"class_name": "Constant", "config": {"value": {"class_name": "__tensor__", "config": 0}}},
     "a serialized __tensor__, needs a config dict with 'value'"),
    ({"class_name": "Constant", "config": {"value": {"class_name": "__numpy__", "config": {"dtype": "float32"}}}},
     "needs a config dict with 'value'"),
    ({"class_name": "Constant", "config": {"value": {"class_name": "__numpy__", "config": {"value": [1],
                                                                                        "dtype": [1]}}}},
     r"has dtype \[1\]: a dtype name or None"),
    ({"class_name": "Constant", "config": {"value": {"class_name": "__numpy__", "config": {"value": [[1], [1, 2]],
                                                                                        "dtype": "float32"}}}},
     r"must hold a number or nested lists of numbers, got \[\[1\], \[1, 2\]\]"),
    ({"class_name": "Constant", "config": {"value": [10**400]}}, "Constant's value must be a number"),
    ({"class_name": "Constant", "config": {"value": _deep(10**5)}}, "Constant's value must be a number"),
    (_looped(), "`seed` argument should be an integer"),
]


@pytest.mark.parametrize("config,match", MALFORMED, ids=range(len(MALFORMED)))
def test_malformed_configs_are_init_errors_naming_the_fault(config, match):
    """A config wrong at any level, however deep or looped, is an InitError of a line that names the fault."""
    for load in (I.get, I.deserialize):
        with pytest.raises(gpuinit.InitError, match=match) as e:
            load(config)
        assert len(str(e.value)) < 500


def test_from_config_checks_the_config():
    with pytest.raises(gpuinit.InitError, match="RandomNormal's config must be a dict of its arguments, got 0"):
        I.RandomNormal.from_config(0)
    with pytest.raises(gpuinit.InitError, match=r"Constant takes \['value'\], not \['values'\]"):
        I.Constant.from_config({"values": 1.0})
    assert I.RandomNormal.from_config(None).get_config()["stddev"] == 0.05


def test_a_config_naming_an_argument_not_taken_is_a_type_error_too():
    """Keras raises TypeError there; gpuinit's is both."""
    with pytest.raises(TypeError) as e:
        I.get({"class_name": "GlorotUniform", "config": {"foo": 1}})
    assert isinstance(e.value, gpuinit.InitError)


def test_custom_objects_read_any_config_dict():
    class Mine(I.Initializer):
        scheme = "ones"

        def __init__(self, **kwargs):
            self.kwargs = kwargs

    assert I.deserialize({"class_name": "Mine", "config": {"a": 1}}, custom_objects={"Mine": Mine}).kwargs == {"a": 1}
    with pytest.raises(gpuinit.InitError, match="Mine's config must be a dict"):
        I.deserialize({"class_name": "Mine", "config": 0}, custom_objects={"Mine": Mine})
    with pytest.raises(gpuinit.InitError, match=r"unknown initializer \[1\]"):
        I.deserialize({"class_name": [1]}, custom_objects={"Mine": Mine})


@pytest.mark.parametrize("config", [
    {"class_name": "GlorotUniform", "config": list(range(10**6))},
    {"class_name": "GlorotUniform", "config": {"seed": list(range(10**6))}},
    {"class_name": "VarianceScaling", "config": {"mode": list(range(10**6))}},
    {"class_name": "Constant", "config": {"value": [float("nan")] * 10**6}},
    {"class_name": "x" * 10**6},
    {"x": list(range(10**6))},
    list(range(10**6)),
    tuple(range(10**6)),
    {"class_name": "Zeros", "config": {"x" * 10**6: 1}},
])
def test_messages_quote_huge_values_abbreviated(config):
    with pytest.raises(gpuinit.InitError) as e:
        I.get(config)
    assert len(str(e.value)) < 500


def test_get_of_an_array_returns_its_values():
    values = np.arange(6.0).reshape(2, 3)
    fn = I.get(values)
    out = fn((2, 3))
    assert out.dtype == np.float32 and np.array_equal(out, values) and out is not values
    assert fn([2, 3], "float64").dtype == np.float64
    t = I.get(torch.ones(2, 2))((2, 2), torch.float16)
    assert t.dtype == torch.float16 and bool((t == 1).all())
    with pytest.raises(ValueError, match="Expected `shape`"):
        fn((3, 2))


def test_constant_of_an_array_broadcasts():
    x = I.Constant([1.0, 2.0, 3.0])((4, 3))
    assert np.array_equal(x, np.tile([1.0, 2.0, 3.0], (4, 1))) and x.dtype == np.float32
    t = I.Constant(np.array([[1.0], [2.0]]))((2, 5), "bfloat16", array="torch")
    assert t.dtype == torch.bfloat16 and t[1].tolist() == [2.0] * 5
    c = I.Constant(np.array([0.5, 1.5], np.float32))
    assert c.get_config() == {"value": {"class_name": "__numpy__", "config": {"value": [0.5, 1.5],
                                                                              "dtype": "float32"}}}
    assert np.array_equal(I.Constant.from_config(c.get_config())((3, 2)), c((3, 2)))
    assert I.Constant(np.float32(2.0)).get_config() == {"value": 2.0}
    with pytest.raises(ValueError, match="broadcast"):
        c((2, 3))
    with pytest.raises(ValueError, match="float16"):
        I.Constant([1e6, 0.0])((2,), "float16")
    with pytest.raises(gpuinit.InitError, match="scalar"):
        gpuinit.init_(np.empty((3, 2), np.float32), c)
    assert gpuinit.init_(np.empty((2, 2), np.float32), I.Constant(np.array(4.0)))[0, 0] == 4.0


def test_input_and_output_axes_give_the_fans():
    """Keras's compute_fans with both axes: the product of their sizes alone (no receptive field)."""
    init = I.VarianceScaling(1.0, "fan_in", "uniform", seed=0, input_axes=[0, 1], output_axes=[2])
    x = init((4, 6, 50))  # fan_in = 24
    assert x.max() <= math.sqrt(3 / 24) and x.max() > 0.98 * math.sqrt(3 / 24)
    y = I.GlorotUniform(seed=0, input_axes=[-1], output_axes=[0])((10, 30, 40))  # fan_in 40, fan_out 10
    assert y.max() <= math.sqrt(6 / 50) and y.max() > 0.98 * math.sqrt(6 / 50)
    z = I.GlorotUniform(seed=0, input_axes=[1])((10, 30, 40))  # one of them alone: Keras's default fans
    assert z.max() <= math.sqrt(6 / (10 * 70)) and z.max() > 0.98 * math.sqrt(6 / (10 * 70))
    for shape, ins, outs in (((10, 30), [0], [0]), ((10, 30), [5], [1]), ((10,), [0], [])):
        with pytest.raises(ValueError):
            I.HeNormal(seed=0, input_axes=ins, output_axes=outs)(shape)
    with pytest.raises(gpuinit.InitError, match="in_axis"):
        gpuinit.init_(np.empty((4, 4), np.float32), I.HeNormal(input_axes=[0], output_axes=[1]))


@pytest.mark.parametrize("cls", ALL)
def test_identity_by_hash_and_equality_as_keras(cls):
    """Keras's initializers are plain objects: equal to themselves alone, hashable."""
    a, b = cls(), cls.from_config(cls().get_config())
    assert operator.eq(a, a) and a != b and len({a, b, a}) == 2 and {a: 1}[a] == 1


def test_dtypes_and_backends():
    assert I.Ones()((2, 3)).dtype == np.float32  # dtype=None: Keras's floatx
    assert I.Ones()((2, 3), "float16").dtype == np.float16
    assert I.Ones()((2, 3), np.float64).dtype == np.float64
    t = I.HeNormal(seed=0)((16, 8), "bfloat16", array="torch")
    assert t.dtype == torch.bfloat16
    assert I.Zeros()((2,), torch.float16, array="torch").dtype == torch.float16
    with pytest.raises(gpuinit.InitError, match="floating"):
        I.Ones()((2, 2), "int32")


def test_numpy_bfloat16_is_ml_dtypes():
    """A numpy bfloat16 array is ml_dtypes' (what Keras's backends convert), holding the bits of the torch one."""
    got = I.HeNormal(seed=0)((16, 8), "bfloat16")
    assert got.dtype == ml_dtypes.bfloat16 and isinstance(got, np.ndarray)
    assert np.array_equal(got.view(np.int16), I.HeNormal(seed=0)((16, 8), torch.bfloat16, array="torch").view(
        torch.int16).numpy())
    assert I.get(np.ones((2, 3)))((2, 3), "bfloat16").dtype == ml_dtypes.bfloat16
    assert I.Constant([1.0, 2.5])((2, 2), "bfloat16").tolist() == [[1.0, 2.5]] * 2


def test_array_is_the_library_and_backend_the_filler():
    """``array=`` picks the new array's library, ``backend=`` the backend that fills it (as in init_): the Triton
    kernels (on Triton's interpreter here) write the same bits into a torch tensor as NumPy into an array."""
    want = I.HeNormal(seed=3)((40, 24))
    got = I.HeNormal(seed=3)((40, 24), array="torch", backend="triton")
    assert isinstance(got, torch.Tensor) and np.array_equal(got.numpy(), want)
    assert np.array_equal(I.HeNormal(seed=3)((40, 24), backend="numpy"), want)
    with pytest.raises(gpuinit.InitError, match="array must be 'numpy', 'torch' or 'cupy', got 'jax'"):
        I.Ones()((2, 2), array="jax")
    with pytest.raises(gpuinit.UnknownBackendError):
        I.Ones()((2, 2), backend="bogus")
    with pytest.warns(DeprecationWarning, match="array='torch'"):  # the keyword's earlier meaning
        old = I.HeNormal(seed=3)((40, 24), backend="torch")
    assert isinstance(old, torch.Tensor) and np.array_equal(old.numpy(), want)
    values = I.Constant(np.array([[1.0], [2.0]]))((2, 3), array="torch")  # copied, whatever fills draws
    assert torch.equal(values, torch.tensor([[1.0] * 3, [2.0] * 3]))


def test_orthogonal_and_identity():
    q = I.Orthogonal(gain=2.0, seed=0)((3, 3, 4, 8)).reshape(-1, 8).astype(np.float64)  # Keras's (rows, last)
    assert np.allclose(q.T @ q, 4.0 * np.eye(8), atol=1e-5)
    assert np.array_equal(I.Identity(gain=2.0)((3, 5)), 2.0 * np.eye(3, 5, dtype=np.float32))
    for bad in (lambda: I.Orthogonal()((5,)), lambda: I.Identity()((2, 2, 2))):
        with pytest.raises(ValueError):
            bad()


def test_initializer_object_in_init_():
    x = gpuinit.init_(np.empty((30, 20), np.float32), I.GlorotUniform(seed=4))
    y = gpuinit.init_(np.empty((30, 20), np.float32), "glorot_uniform", seed=4)
    assert np.array_equal(x, y)
    z = gpuinit.init_(np.empty((30, 20), np.float32), I.VarianceScaling(distribution="normal", seed=4))
    assert np.array_equal(z, gpuinit.init_(np.empty((30, 20), np.float32), "lecun_normal", seed=4))
