"""gpuinit/initializers_config.py: what the Keras-style classes read and write: dtypes, shapes, the array library
and the fill backend, seeds and SeedGenerator streams, Keras's fan axes and VarianceScaling's arguments, Constant's
values (serialized as Keras writes them) and names."""
import sys
import warnings

import numpy as np
import pytest
import torch

import gpuinit
from gpuinit import initializers_config as cfg
from gpuinit.errors import InitError


@pytest.mark.parametrize("dtype,name", [(None, "float32"), ("float16", "float16"), ("bfloat16", "bfloat16"),
                                        (np.float64, "float64"), (np.dtype("float16"), "float16"),
                                        (torch.bfloat16, "bfloat16"), (torch.float64, "float64"),
                                        (float, "float64"), ("int8", "int8")])
def test_dtype_name(dtype, name):
    assert cfg.dtype_name(dtype) == name


@pytest.mark.parametrize("dtype", [object(), [1, 2]])
def test_dtype_name_refuses(dtype):
    with pytest.raises(InitError, match="cannot interpret .* as a dtype"):
        cfg.dtype_name(dtype)


@pytest.mark.parametrize("shape,out", [(3, (3,)), (np.int64(4), (4,)), ((2, 3), (2, 3)), ([2, np.int32(3)], (2, 3)),
                                       ((), ()), (torch.Size([5, 1]), (5, 1)), (np.array([7, 2]), (7, 2))])
def test_as_shape(shape, out):
    assert cfg.as_shape(shape) == out
    assert all(type(n) is int for n in cfg.as_shape(shape))


@pytest.mark.parametrize("shape", [True, "ab", None, 2.5, [1, "x"], {"a": 1}.items()])
def test_as_shape_refuses(shape):
    with pytest.raises(InitError, match="shape must be an int or a sequence of ints, got"):
        cfg.as_shape(shape)


def test_array_and_backend():
    assert cfg.array_and_backend(None, None) == ("numpy", None)
    assert cfg.array_and_backend("torch", None) == ("torch", None)
    assert cfg.array_and_backend("torch", "triton") == ("torch", "triton")
    assert cfg.array_and_backend(None, "numpy") == ("numpy", "numpy")
    assert cfg.array_and_backend("cupy", "cupy") == ("cupy", "cupy")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cfg.array_and_backend("torch", "torch")  # array= given: backend= is the fill backend, no warning


@pytest.mark.parametrize("library", ["torch", "cupy"])
def test_backend_naming_the_array_library_is_deprecated(library):
    with pytest.warns(DeprecationWarning, match=f"for a {library} array pass array='{library}'"):
        assert cfg.array_and_backend(None, library) == (library, None)


@pytest.mark.parametrize("array", ["jax", "np", "Torch", 3])
def test_array_library_refused(array):
    with pytest.raises(InitError, match=r"array must be 'numpy', 'torch' or 'cupy', got"):
        cfg.array_and_backend(array, None)


def test_empty():
    x = cfg.empty((2, 3), "float16", "numpy")
    assert isinstance(x, np.ndarray) and x.shape == (2, 3) and x.dtype == np.float16
    t = cfg.empty((4,), "bfloat16", "torch")
    assert isinstance(t, torch.Tensor) and t.dtype == torch.bfloat16 and t.shape == (4,)
    b = cfg.empty((2,), "bfloat16", "numpy")  # ml_dtypes' (JAX's and Keras's), imported only for it
    assert isinstance(b, np.ndarray) and b.dtype.name == "bfloat16" and type(b.dtype).__module__ == "ml_dtypes"


def test_numpy_bfloat16_without_ml_dtypes(monkeypatch):
    monkeypatch.setitem(sys.modules, "ml_dtypes", None)  # not installed
    assert cfg.numpy_dtype("float16") == np.float16
    for call in (lambda: cfg.empty((2,), "bfloat16", "numpy"), lambda: cfg.numpy_dtype("bfloat16")):
        with pytest.raises(InitError, match=r"numpy's bfloat16 comes from ml_dtypes \(pip install ml_dtypes.*"
                                            "array='torch'"):
            call()


def test_live_seed():
    assert cfg.live_seed(5) == 5 and cfg.live_seed(np.uint64(2**64 - 1)) == 2**64 - 1
    gpuinit.manual_seed(3)
    assert cfg.live_seed(None) == int(np.random.default_rng(3).integers(0, 2**64, dtype=np.uint64))
    for bad in (1.5, "1", True, [1], {"class_name": "Other"}):
        with pytest.raises(InitError, match="`seed` argument should be an integer in"):
            cfg.live_seed(bad)
    with pytest.raises(InitError, match="seed must be an integer"):
        cfg.live_seed(-1)


def test_seed_generator_stream():
    """A serialized keras.random.SeedGenerator: seed k of the stream is default_rng([initial, k])'s first draw."""
    stream = cfg.live_seed({"class_name": "SeedGenerator", "config": {"seed": 1337}})
    assert isinstance(stream, cfg.SeedStream) and stream.initial == 1337 and stream.config == {"seed": 1337}
    want = [int(np.random.default_rng([1337, k]).integers(0, 2**64, dtype=np.uint64)) for k in range(4)]
    assert [stream.next() for _ in range(4)] == want and stream.calls == 4
    gpuinit.manual_seed(9)
    unseeded = cfg.live_seed({"class_name": "SeedGenerator", "config": None})
    assert unseeded.initial == int(np.random.default_rng(9).integers(0, 2**64, dtype=np.uint64))
    with pytest.raises(InitError, match="SeedGenerator seed must be an integer"):
        cfg.SeedStream({"seed": -5})
    with pytest.raises(InitError, match=r"SeedGenerator seed must be an integer in \[0, 2\*\*64\), got <int of"):
        cfg.SeedStream({"seed": 10**5000})
    for config, match in ((3, "SeedGenerator's config must be a dict of its arguments, got 3"),
                          ({"seed": 1, "salt": 2}, r"takes \['seed', 'name', 'backend'\], not \['salt'\]"),
                          ({"seed": [1]}, r"SeedGenerator seed must be an integer .* got \[1\]")):
        with pytest.raises(InitError, match=match):
            cfg.live_seed({"class_name": "SeedGenerator", "config": config})
    assert cfg.live_seed({"class_name": "SeedGenerator", "config": {"seed": 4, "name": "g"}}).initial == 4


def test_arguments():
    config = {"seed": 1}
    assert cfg.arguments(config, "X", ("seed",)) == config and cfg.arguments(config, "X", ("seed",)) is not config
    assert cfg.arguments(None, "X", ("seed",)) == {} and cfg.arguments({"any": 1}, "X") == {"any": 1}
    for config, match in ((0, "X's config must be a dict of its arguments, got 0"),
                          ([("seed", 1)], r"X's config must be a dict of its arguments, got \[\('seed', 1\)\]"),
                          ({("seed",): 1}, r"X's config: keys are argument names \(strings\), got \('seed',\)"),
                          ({"seed": 1, "b": 2, "a": 3}, r"X's config: X takes \['seed'\], not \['a', 'b'\]")):
        with pytest.raises(InitError, match=match):
            cfg.arguments(config, "X", ("seed",))
    with pytest.raises(TypeError, match=r"X takes no arguments, not \['seed'\]"):
        cfg.arguments({"seed": 1}, "X", ())


@pytest.mark.parametrize("shape,ins,outs,axes", [
    ((3, 4), None, None, (-2, -1, ())), ((3, 4), [0], None, (-2, -1, ())),
    ((3, 4, 5), [0], [2], ((0,), (2,), (1,))), ((2, 3, 4, 5), [-3], [-1], ((-3,), (-1,), (0, 2))),
    ((6, 4), [0], [1], ((0,), (1,), ())), ((3, 4, 5), [0, 1], [2], ((0, 1), (2,), ())),
    ((3, 4), [], [1], ((), (1,), (0,))),
])
def test_fan_axes(shape, ins, outs, axes):
    assert cfg.fan_axes(shape, ins, outs) == axes


@pytest.mark.parametrize("shape,ins,outs,match", [
    ((3, 4), [2], [1], "2 is no axis of shape"), ((3, 4), [0], [-3], "-3 is no axis"),
    ((3, 4), [True], [1], "True is no axis"), ((3, 4), [0], [0], "must not overlap"),
    ((4,), [0], [], r"cannot give Keras's fans \(4, 1\) \(1-D shapes have fan_in = fan_out\)"),
])
def test_fan_axes_refuses(shape, ins, outs, match):
    with pytest.raises(InitError, match=match):
        cfg.fan_axes(shape, ins, outs)


def test_fan_axes_give_keras_fans():
    """Keras multiplies the sizes of the named axes alone; the layout init_ gets must give the same fans."""
    from gpuinit.schemes import Layout

    shape = (3, 4, 5, 6)
    ins, outs, batch = cfg.fan_axes(shape, [1], [3])
    assert Layout.of(shape, ins, outs, batch).fans == (4, 6)


@pytest.mark.parametrize("distribution,name", [("truncated_normal", "truncated_normal"),
                                               ("normal", "truncated_normal"), ("Normal", "truncated_normal"),
                                               ("UNIFORM", "uniform"), ("untruncated_normal", "untruncated_normal")])
def test_check_variance_scaling(distribution, name):
    assert cfg.check_variance_scaling(2.0, "fan_avg", distribution, None, None) == name
    assert cfg.check_variance_scaling(1, "fan_in", distribution, [0], (1,)) == name
    assert cfg.check_variance_scaling(np.asarray(2.0, np.float32), "fan_in", distribution, None, None) == name


@pytest.mark.parametrize("args,match", [
    ((0.0, "fan_in", "uniform", None, None), "Argument `scale` must be positive float. Received: scale=0.0"),
    ((-1, "fan_in", "uniform", None, None), "scale=-1"),
    ((True, "fan_in", "uniform", None, None), "scale=True"),
    ((float("nan"), "fan_in", "uniform", None, None), "scale=nan"),
    ((np.asarray(True), "fan_in", "uniform", None, None), "scale=array(True)"),
    ((np.asarray(1j), "fan_in", "uniform", None, None), "scale=array(0.+1.j)"),
    ((1.0, "fan_mid", "uniform", None, None), "Invalid `mode` argument: 'fan_mid'"),
    ((1.0, "fan_in", "cauchy", None, None), "Invalid `distribution` argument: 'cauchy'"),
    ((1.0, "fan_in", 3, None, None), "Invalid `distribution` argument: 3"),
    ((1.0, "fan_in", "uniform", "0", None), "`input_axes` must be None or a list of ints, got '0'"),
    ((1.0, "fan_in", "uniform", None, 1), "`output_axes` must be None or a list of ints, got 1"),
])
def test_check_variance_scaling_refuses(args, match):
    with pytest.raises(InitError, match=match.replace("(", r"\(").replace(")", r"\)")):
        cfg.check_variance_scaling(*args)


def test_to_numpy():
    for value in (1.5, [1, 2], np.float32(2.0), np.arange(3), torch.tensor([1.0, 2.0], dtype=torch.bfloat16)):
        out = cfg.to_numpy(value)
        assert out.dtype == np.float64 and np.array_equal(out, np.asarray(value, np.float64) if not
                                                          isinstance(value, torch.Tensor) else value.double().numpy())
    for bad in ("x", [1, "a"], float("inf"), [1.0, float("nan")], None):
        with pytest.raises(InitError, match="Constant's value must be"):
            cfg.to_numpy(bad)


def test_serialized_values_round_trip():
    values = [2.5, np.float32(1.5), np.array(3.0), np.arange(6, dtype=np.float32).reshape(2, 3),
              torch.tensor([[1.0, 2.0]]), [1.0, 2.0]]
    written = [cfg.serialize_value(v) for v in values]
    assert written[0] == 2.5 and written[1] == 1.5 and type(written[1]) is float and written[2] == 3.0
    assert written[3] == {"class_name": "__numpy__", "config": {"value": [[0, 1, 2], [3, 4, 5]], "dtype": "float32"}}
    assert written[4] == {"class_name": "__tensor__", "config": {"value": [[1.0, 2.0]], "dtype": "float32"}}
    assert written[5] == [1.0, 2.0]
    back = cfg.deserialize_value(written[3])
    assert back.dtype == np.float32 and np.array_equal(back, values[3])
    assert np.array_equal(cfg.deserialize_value(written[4]), [[1.0, 2.0]])
    assert cfg.deserialize_value(2.5) == 2.5
    odd = cfg.deserialize_value({"class_name": "__tensor__", "config": {"value": [1, 2], "dtype": "bfloat16"}})
    assert np.array_equal(odd, [1, 2])  # a dtype numpy lacks: numpy's own choice


@pytest.mark.parametrize("value,match", [
    ({"class_name": "__numpy__"}, "Constant's value, a serialized __numpy__, needs a config dict with 'value'"),
    ({"class_name": "__tensor__", "config": 0}, r"__tensor__, needs a config dict with 'value' \(and 'dtype'\), got 0"),
    ({"class_name": "__numpy__", "config": {}}, "needs a config dict with 'value'"),
    ({"class_name": "__numpy__", "config": {"value": [1], "dtype": 3}}, "has dtype 3: a dtype name or None"),
    ({"class_name": "__numpy__", "config": {"value": [1], "dtype": [1]}}, r"has dtype \[1\]"),
    ({"class_name": "__numpy__", "config": {"value": "abc", "dtype": "float32"}},
     "must hold a number or nested lists of numbers, got 'abc'"),
    ({"class_name": "__numpy__", "config": {"value": [[1], [2, 3]]}}, "must hold a number or nested lists"),
    ({"class_name": "__numpy__", "config": {"value": [10**400], "dtype": "float64"}}, "must hold a number"),
])
def test_deserialize_value_refuses(value, match):
    with pytest.raises(InitError, match=match):
        cfg.deserialize_value(value)


def test_messages_quote_values_abbreviated():
    huge = list(range(10**6))
    for call in (lambda: cfg.as_shape(["x"] * 10**6), lambda: cfg.dtype_name(huge), lambda: cfg.live_seed(huge),
                 lambda: cfg.to_numpy(["x"] * 10**6), lambda: cfg.to_numpy([10**400] * 10**5),
                 lambda: cfg.array_and_backend("x" * 10**6, None), lambda: cfg.lookup("x" * 10**6, {}),
                 lambda: cfg.check_variance_scaling(huge, "fan_in", "uniform", None, None),
                 lambda: cfg.check_variance_scaling(1.0, "fan_in", "uniform", "x" * 10**6, None),
                 lambda: cfg.fan_axes((3, 4), [0] * 10**6 + [9], [1]), lambda: cfg.fixed_values(np.zeros(2))(huge)):
        with pytest.raises(InitError) as e:
            call()
        assert len(str(e.value)) < 500


def test_fill_from():
    x = np.empty((2, 2), np.float16)
    assert cfg.fill_from(x, np.array([[1.0, 2.0], [3.0, 65504.0]])) is x and x[1, 1] == 65504
    t = torch.empty(2, dtype=torch.bfloat16)
    assert torch.equal(cfg.fill_from(t, np.array([1.0, -2.0])), torch.tensor([1.0, -2.0], dtype=torch.bfloat16))
    with pytest.raises(InitError, match="Constant's value 70000 does not fit float16"):
        cfg.fill_from(x, np.full((2, 2), -7e4))
    with pytest.raises(InitError, match="gpuinit fills floating-point arrays .* got int32"):
        cfg.fill_from(np.empty(2, np.int32), np.zeros(2))
    cfg.fill_from(np.empty(0, np.float16), np.zeros(0))  # nothing to check


def test_is_array():
    assert cfg.is_array(np.zeros(2)) and cfg.is_array(np.float32(1)) and cfg.is_array(torch.zeros(2))
    assert not any(cfg.is_array(x) for x in (1.0, [1.0], "x", None, {"shape": 1}))


def test_fixed_values():
    values = np.arange(6, dtype=np.float64).reshape(2, 3)
    fn = cfg.fixed_values(values)
    out = fn((2, 3), dtype="float16")
    assert out.dtype == np.float16 and np.array_equal(out, values) and out is not values
    out[0, 0] = 9
    assert values[0, 0] == 0  # a copy
    assert fn([2, 3]).dtype == np.float32  # Keras's floatx
    with pytest.raises(InitError, match=r"Expected `shape` to be \(2, 3\) for direct tensor as initializer"):
        fn((3, 2))
    t = cfg.fixed_values(torch.ones(2, 2))((2, 2), dtype=torch.bfloat16)
    assert t.dtype == torch.bfloat16 and torch.equal(t, torch.ones(2, 2, dtype=torch.bfloat16))


def test_lookup():
    table = {"HeNormal": int, "he_normal": int, "GlorotUniform": float}
    assert cfg.lookup("HeNormal", table) is int
    assert cfg.lookup("HeNormal", table, custom_objects={"HeNormal": str}) is str  # custom objects first
    assert cfg.lookup("Mine", table, custom_objects={"Mine": bytes}) is bytes
    with pytest.raises(InitError, match=r"^Could not interpret initializer identifier: unknown initializer "
                                        r"'HeNormall'; did you mean HeNormal or he_normal\?$"):
        cfg.lookup("HeNormall", table)
    with pytest.raises(InitError, match=r"unknown initializer 'zzz'$"):
        cfg.lookup("zzz", table)
    with pytest.raises(InitError, match="unknown initializer 3"):
        cfg.lookup(3, table)
    with pytest.raises(InitError, match=r"unknown initializer \['HeNormal'\]"):  # unhashable: no custom object
        cfg.lookup(["HeNormal"], table, custom_objects={"Mine": bytes})
    for name in ("STFT", "stft", "STFTInitializer"):
        with pytest.raises(InitError, match="Keras's STFT initializer .* has no gpuinit counterpart"):
            cfg.lookup(name, table)
