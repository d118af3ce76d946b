"""Keras-style classes: Keras's layout, configs and get()."""
import math

import numpy as np
import pytest
import torch

import gpuinit
from gpuinit import initializers as I


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


def test_seeded_initializer_repeats_unseeded_does_not():
    assert np.array_equal(I.GlorotNormal(seed=5)((20, 30)), I.GlorotNormal(seed=5)((20, 30)))
    g = I.GlorotNormal()
    assert not np.array_equal(g((20, 30)), g((20, 30)))


@pytest.mark.parametrize("cls", [I.Zeros, I.Ones, I.Constant, I.RandomNormal, I.RandomUniform, I.TruncatedNormal,
                                 I.VarianceScaling, I.GlorotUniform, I.GlorotNormal, I.LecunUniform, I.LecunNormal,
                                 I.HeUniform, I.HeNormal, I.Orthogonal, I.Identity])
def test_config_round_trip(cls):
    init = cls()
    config = init.get_config()
    again = cls.from_config(config)
    assert again == init and again.get_config() == config
    assert I.get(I.serialize(init)) == init
    assert isinstance(I.get(cls.__name__), cls)
    shape = (8, 8)
    a = cls.from_config({**config, **({"seed": 3} if init.seeded else {})})(shape)
    b = cls.from_config({**config, **({"seed": 3} if init.seeded else {})})(shape)
    assert np.array_equal(a, b)


def test_keras_config_keys():
    assert I.VarianceScaling().get_config() == {"scale": 1.0, "mode": "fan_in", "distribution": "truncated_normal",
                                                "seed": None}
    assert I.RandomNormal(0.0, 0.1, seed=1).get_config() == {"mean": 0.0, "stddev": 0.1, "seed": 1}
    assert I.Zeros().get_config() == {} and I.Constant(2.0).get_config() == {"value": 2.0}
    assert I.Identity(gain=3.0).get_config() == {"gain": 3.0}


def test_get_names_and_errors():
    assert isinstance(I.get("he_normal"), I.HeNormal) and isinstance(I.get("uniform"), I.RandomUniform)
    assert I.get(None) is None
    with pytest.raises(gpuinit.InitError, match="HeNormal"):
        I.get("HeNormall")
    with pytest.raises(TypeError):
        I.Zeros(seed=1)


def test_dtypes_and_backends():
    assert I.Ones()((2, 3), "float16").dtype == np.float16
    t = I.HeNormal(seed=0)((16, 8), "bfloat16", backend="torch")
    assert t.dtype == torch.bfloat16
    with pytest.raises(gpuinit.InitError, match="bfloat16"):
        I.Ones()((2, 2), "bfloat16")


def test_initializer_object_in_init_():
    x = gpuinit.init_(np.empty((30, 20), np.float32), I.GlorotUniform(seed=4))
    y = gpuinit.init_(np.empty((30, 20), np.float32), "glorot_uniform", seed=4)
    assert np.array_equal(x, y)
