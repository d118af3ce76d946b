"""Bad input raises a clear error before anything is written: the array is left as it was."""
import math

import numpy as np
import pytest
import torch

import gpuinit
from gpuinit import InitError


def sentinel(shape=(6, 5), dtype=np.float32):
    return np.arange(math.prod(shape), dtype=dtype).reshape(shape) + 0.5


CASES = [
    ("normal", {"std": -1.0}, "std must be >= 0"),
    ("normal", {"std": float("nan")}, "finite"),
    ("normal", {"mean": float("inf")}, "finite"),
    ("xavier_uniform", {"gain": float("inf")}, "finite"),
    ("variance_scaling", {"scale": -2.0}, "scale must be > 0"),
    ("variance_scaling", {"scale": 0.0}, "scale must be > 0"),
    ("variance_scaling", {"mode": "fan_mid"}, "mode must be one of"),
    ("variance_scaling", {"distribution": "cauchy"}, "distribution must be one of"),
    ("random_normal", {"stddev": float("nan")}, "finite"),
    ("truncated_normal", {"stddev": 0.0}, "stddev must be > 0"),
    ("uniform", {"a": 1.0, "b": 1.0}, "low < high"),
    ("uniform", {"a": 2.0, "b": 1.0}, "low < high"),
    ("random_uniform", {"minval": 0.1, "maxval": -0.1}, "low < high"),
    ("trunc_normal", {"a": 1.0, "b": -1.0}, "a < b"),
    ("trunc_normal", {"a": float("nan")}, "real number"),
    ("trunc_normal", {"std": -0.1}, "std must be > 0"),
    ("trunc_normal", {"a": 12.0, "b": 13.0}, "more than 9 std"),
    ("sparse", {"sparsity": 1.5}, r"sparsity must lie in \[0, 1\]"),
    ("sparse", {"sparsity": 0.1, "std": -1.0}, "std must be >= 0"),
    ("constant", {"value": float("nan")}, "finite"),
    ("orthogonal", {"gain": float("nan")}, "finite"),
    ("kaiming_uniform", {"mode": "fan_avg"}, "Mode fan_avg not supported"),
    ("he_leaky_normal", {"negative_slope": "x"}, "real number"),
    ("he_normal", {"gain": 2.0}, "takes no parameters"),
    ("normal", {"sigma": 2.0}, r"takes \['mean', 'std'\]"),
    ("he_norml", {}, "did you mean 'he_normal'"),
    ("glorotuniform", {}, "did you mean 'glorot_uniform'"),
    ("normal", {"seed": -1}, "seed must be an integer"),
    ("normal", {"seed": 2**64}, "seed must be an integer"),
    ("normal", {"seed": 1.5}, "seed must be an integer"),
    ("normal", {"stream": -3}, "stream must be an integer"),
    ("normal", {"full_shape": (6, 4)}, "does not fit"),
    ("normal", {"full_shape": (10, 10), "offsets": (5, 6)}, "dimension 0 ends at 11 > 10"),
    ("normal", {"full_shape": (10,)}, "one entry per dimension"),
    ("normal", {"full_shape": (10, 10), "offsets": (-1, 0)}, "non-negative"),
    ("he_normal", {"in_axis": 5}, "out of range"),
    ("he_normal", {"in_axis": 0}, "must not overlap"),
    ("uniform", {"backend": "nosuch"}, "unknown backend"),
]


@pytest.mark.parametrize("scheme,kw,match", CASES, ids=[f"{c[0]}-{c[2][:20]}" for c in CASES])
def test_bad_parameters_leave_array_unchanged(scheme, kw, match):
    x = sentinel()
    with pytest.raises((InitError, gpuinit.BackendUnavailableError), match=match):
        gpuinit.init_(x, scheme, **kw)
    assert np.array_equal(x, sentinel())


@pytest.mark.parametrize("scheme,shape,match", [
    ("eye", (3, 4, 5), "Only tensors with 2 dimensions"),
    ("identity", (5,), "Only tensors with 2 dimensions"),
    ("dirac", (4, 4), "Only tensors with 3, 4, or 5 dimensions"),
    ("xavier_uniform", (7,), "fewer than 2 dimensions"),
    ("kaiming_normal", (), "fewer than 2 dimensions"),
    ("orthogonal", (9,), "2 or more dimensions"),
    ("sparse", (2, 3, 4), "Only tensors with 2 dimensions"),
])
def test_shapes_a_scheme_cannot_take(scheme, shape, match):
    x = sentinel(shape) if shape else np.array(1.5, np.float32)
    before = x.copy()
    with pytest.raises(InitError, match=match):
        gpuinit.init_(x, scheme, **({"sparsity": 0.1} if scheme == "sparse" else {}))
    assert np.array_equal(x, before)


def test_dirac_groups_must_divide():
    x = sentinel((5, 4, 3))
    with pytest.raises(InitError, match="divisible by groups"):
        gpuinit.init_(x, "dirac", groups=2)
    assert np.array_equal(x, sentinel((5, 4, 3)))


def test_zero_fans():
    with pytest.raises(gpuinit.ZeroFanError, match="fan_avg is zero"):
        gpuinit.init_(np.empty((0, 0), np.float32), "xavier_normal")
    with pytest.raises(ZeroDivisionError):  # as torch raises
        gpuinit.init_(np.empty((0, 0, 3), np.float32), "xavier_uniform")


@pytest.mark.parametrize("array", [np.zeros((4, 4), np.int32), np.zeros(3, bool), np.zeros(3, np.clongdouble),
                                   torch.zeros(3, 3, dtype=torch.int64)],
                         ids=["int32", "bool", "clongdouble", "torch-int"])
def test_non_float_dtypes(array):
    with pytest.raises(InitError, match="floating-point"):
        gpuinit.init_(array, "normal", seed=0)
    assert not array.any()


def test_read_only_array():
    x = sentinel()
    x.flags.writeable = False
    with pytest.raises(InitError, match="read-only"):
        gpuinit.init_(x, "normal", seed=0)
    assert np.array_equal(x, sentinel())


def test_overlapping_views():
    base = sentinel((1, 5))
    x = np.lib.stride_tricks.as_strided(base, shape=(4, 5), strides=(0, 4), writeable=True)
    with pytest.raises(InitError, match="overlap"):
        gpuinit.init_(x, "normal", seed=0)
    y = np.lib.stride_tricks.as_strided(sentinel((1, 10)), shape=(4, 5), strides=(8, 4), writeable=True)
    with pytest.raises(InitError, match="overlap"):
        gpuinit.init_(y, "normal", seed=0)
    t = torch.arange(5.0).expand(3, 5)
    with pytest.raises(InitError, match="overlap"):
        gpuinit.init_(t, "normal", seed=0)
    assert torch.equal(t[0], torch.arange(5.0)) and np.array_equal(base, sentinel((1, 5)))


def test_unsupported_array_types():
    with pytest.raises(TypeError, match="gpuinit fills numpy arrays"):
        gpuinit.init_([1.0, 2.0], "normal", seed=0)
    with pytest.raises(InitError, match="strided"):
        gpuinit.init_(torch.zeros(3, 3).to_sparse(), "normal", seed=0)


def _fake_linear():
    from torch._subclasses.fake_tensor import FakeTensorMode

    with FakeTensorMode():
        return torch.nn.Linear(4, 3)


@pytest.mark.filterwarnings("ignore::UserWarning")  # torch's own, about FakeTensor.data_ptr
@pytest.mark.parametrize("call", ["init_", "nn.init", "init_module", "own_init", "fingerprint"])
def test_fake_tensors_are_refused_with_a_message_not_a_crash(call):
    """A FakeTensor (torch.compile's tracing, memory estimates) looks like a CPU tensor but has no memory: its data
    pointer is no address, and writing through it crashed the process."""
    m = _fake_linear()
    run = {"init_": lambda: gpuinit.init_(m.weight, "normal", seed=0),
           "nn.init": lambda: gpuinit.nn.init.kaiming_uniform_(m.weight),
           "init_module": lambda: gpuinit.init_module(m, seed=0),
           "own_init": lambda: gpuinit.own_init(m, seed=0),
           "fingerprint": lambda: gpuinit.fingerprint(m)}[call]
    with pytest.raises(InitError, match="FakeTensor .* has no memory to write"):
        run()


@pytest.mark.parametrize("call", ["init_module", "own_init", "fingerprint"])
@pytest.mark.parametrize("thing", [torch.zeros(3), None, {"w": torch.zeros(3)}, [torch.nn.Linear(2, 2)]])
def test_whole_model_calls_take_a_module_and_say_so(call, thing):
    with pytest.raises(TypeError, match=rf"^{call} takes a torch.nn.Module, got {type(thing).__name__} "):
        getattr(gpuinit, call)(thing)


def test_device_0_is_a_device_not_the_default():
    """``device=0`` is accelerator 0, as torch reads it: not "no device given" (then CPU here)."""
    with torch.device("meta"):
        m = torch.nn.Linear(4, 4)
    if torch.cuda.is_available():
        gpuinit.init_module(m, seed=0, device=0)
        assert m.weight.device == torch.device("cuda", 0)
    else:
        with pytest.raises(RuntimeError):
            gpuinit.init_module(m, seed=0, device=0)
        assert m.weight.is_meta  # nothing materialized


@pytest.mark.parametrize("shape", [(3.5, 4), "34", (True, 4), (np.float64(2.0),), 2.0, (-1, 4), -3])
def test_initializer_shapes_are_integers_not_rounded(shape):
    with pytest.raises(InitError, match="shape must"):
        gpuinit.initializers.HeNormal(seed=0)(shape)
    assert gpuinit.initializers.HeNormal(seed=0)((np.int64(3), 4)).shape == (3, 4)


@pytest.mark.parametrize("shape", [iter([3, 4]), (d for d in (3, 4)), np.array([3, 4]), torch.Size([3, 4]),
                                   [np.int64(3), 4]])
def test_initializer_shapes_of_integers_in_any_iterable_are_read_once(shape):
    assert gpuinit.initializers.HeNormal(seed=0)(shape).shape == (3, 4)


def test_an_integer_scalar_is_a_one_dimensional_shape():
    for shape in (5, np.int32(5), np.array(5), torch.tensor(5)):
        assert gpuinit.initializers.HeNormal(seed=0)(shape).shape == (5,)
