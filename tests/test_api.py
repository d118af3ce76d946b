"""gpuinit/api.py, ``init_``: it returns the array it filled, hands every argument to the fill job, reads an
initializer's scheme, parameters and seed, checks everything before it takes a seed, and takes none for a fill
without randomness."""
import math

import numpy as np
import pytest
import torch

import gpuinit
from gpuinit import InitError, jobs
from gpuinit import initializers as I


def sentinel(shape=(6, 5), dtype=np.float32):
    return np.arange(math.prod(shape), dtype=dtype).reshape(shape) + 0.5


def first_seeds(seed, n=2):
    """The seeds gpuinit.manual_seed(seed)'s stream gives, in order."""
    return [int(s) for s in np.random.default_rng(seed).integers(0, 2**64, n, dtype=np.uint64)]


def test_returns_the_array_it_filled():
    x = np.empty((4, 3), np.float32)
    assert gpuinit.init_(x, "normal", seed=0) is x
    t = torch.empty(4, 3)
    assert gpuinit.init_(t, "normal", seed=0) is t
    m = torch.empty(4, 3, device="meta")
    assert gpuinit.init_(m, "normal", seed=0) is m
    e = np.empty((0, 3), np.float32)
    assert gpuinit.init_(e, "normal", seed=0) is e


@pytest.mark.parametrize("kw", [{}, {"stream": 5}, {"in_axis": 0, "out_axis": 1}, {"in_axis": (1, 2), "out_axis": 0},
                                {"batch_axis": 2, "in_axis": 1, "out_axis": 0},
                                {"full_shape": (9, 4, 3), "offsets": (2, 0, 0)},
                                {"backend": "numpy"}, {"backend": "staged"}])
def test_equals_the_job_it_prepares(kw):
    """init_ writes what jobs.prepare + jobs.run write for the same arguments and seed."""
    x = torch.full((6, 4, 3), float("nan"))
    gpuinit.init_(x, "he_uniform", seed=123, **kw)
    y = torch.full((6, 4, 3), float("nan"))
    jobs.run([jobs.prepare(y, "he_uniform", {}, seed=123, **kw)])
    assert torch.equal(x, y) and not x.isnan().any()


@pytest.mark.parametrize("shape,kw,fan", [((64, 48), {}, 48), ((64, 48), {"in_axis": 0, "out_axis": 1}, 64),
                                          ((32, 16, 3, 3), {}, 16 * 9), ((8, 32, 16), {"batch_axis": 0,
                                                                                       "in_axis": 2,
                                                                                       "out_axis": 1}, 16)])
def test_fan_axes_reach_the_scheme(shape, kw, fan):
    """kaiming_normal's std is sqrt(2) / sqrt(fan_in), fan_in from the axes init_ was given."""
    x = gpuinit.init_(np.empty(shape, np.float32), "kaiming_normal", seed=9, **kw)
    y = gpuinit.init_(np.empty(shape, np.float32), "normal", seed=9, std=math.sqrt(2.0) / math.sqrt(fan))
    np.testing.assert_allclose(x, y, rtol=1e-6)


def test_params_reach_the_scheme():
    x = gpuinit.init_(np.empty(1000, np.float32), "uniform", seed=1, a=2.0, b=3.0)
    assert 2.0 <= x.min() and x.max() <= 3.0 and x.std() > 0.2
    assert np.all(gpuinit.init_(np.empty(7, np.float64), "constant", value=-1.25) == -1.25)


def test_bits_reach_the_backend():
    bits = gpuinit.init_(np.empty((5, 7), np.uint16), "normal", seed=4, bits="bfloat16")
    t = gpuinit.init_(torch.empty(5, 7, dtype=torch.bfloat16), "normal", seed=4)
    assert np.array_equal(bits, t.view(torch.int16).numpy().view(np.uint16))


def test_an_initializer_gives_scheme_params_and_seed():
    def fill(scheme, **kw):
        return gpuinit.init_(np.empty((12, 10), np.float32), scheme, **kw)

    assert np.array_equal(fill(I.HeNormal(seed=5)), fill("he_normal", seed=5))
    assert np.array_equal(fill(I.GlorotUniform(seed=2)), fill("glorot_uniform", seed=2))  # init_'s own axes
    assert np.array_equal(fill(I.HeNormal(seed=5), seed=6), fill("he_normal", seed=6))  # seed= wins
    rn = I.RandomNormal(mean=1.0, stddev=2.0, seed=3)
    assert np.array_equal(fill(rn), fill("random_normal", seed=3, mean=1.0, stddev=2.0))
    assert np.array_equal(fill(rn, mean=0.0), fill("random_normal", seed=3, mean=0.0, stddev=2.0))  # call wins
    assert np.all(fill(I.Constant(0.75)) == 0.75)


@pytest.mark.parametrize("scheme", [3, None, object(), np.float32(1.0), ("normal",)])
def test_a_scheme_that_is_no_name_or_initializer(scheme):
    x = sentinel()
    with pytest.raises(TypeError, match=rf"scheme must be a name or a gpuinit initializer, got "
                                        rf"{type(scheme).__name__}"):
        gpuinit.init_(x, scheme, seed=0)
    assert np.array_equal(x, sentinel())


@pytest.mark.parametrize("bad", [
    {"seed": -1}, {"seed": 1.5}, {"generator": 3}, {"std": -1.0}, {"stream": -1}, {"backend": "nope"},
    {"full_shape": (3, 3)}, {"bits": "bfloat16"}, {"in_axis": 7}])
def test_every_check_before_a_seed_is_taken(bad):
    """A refused call leaves the array as it was and gpuinit.manual_seed's stream where it was."""
    gpuinit.manual_seed(77)
    x = sentinel()
    with pytest.raises((InitError, gpuinit.BackendUnavailableError)):
        gpuinit.init_(x, "normal", **bad)
    assert np.array_equal(x, sentinel())
    first, second = first_seeds(77)
    assert np.array_equal(gpuinit.init_(np.empty(9, np.float32), "normal"),
                          gpuinit.init_(np.empty(9, np.float32), "normal", seed=first))
    assert np.array_equal(gpuinit.init_(np.empty(9, np.float32), "normal"),
                          gpuinit.init_(np.empty(9, np.float32), "normal", seed=second))


@pytest.mark.parametrize("scheme,shape,params", [("constant", (4, 4), {"value": 2.0}), ("zeros", (4, 4), {}),
                                                 ("ones", (3,), {}), ("eye", (4, 5), {}), ("dirac", (4, 2, 3), {}),
                                                 ("normal", (0, 4), {}), ("he_normal", (4, 0), {})])
def test_a_fill_without_randomness_takes_no_seed(scheme, shape, params):
    gpuinit.manual_seed(5)
    gpuinit.init_(np.empty(shape, np.float32), scheme, **params)
    gpuinit.init_(torch.empty(4, 4, device="meta"), "normal")
    first = first_seeds(5, 1)[0]
    assert np.array_equal(gpuinit.init_(np.empty(9, np.float32), "uniform"),
                          gpuinit.init_(np.empty(9, np.float32), "uniform", seed=first))


def test_a_fill_without_randomness_ignores_the_seed():
    a = gpuinit.init_(np.empty((3, 3), np.float32), "eye", seed=1)
    b = gpuinit.init_(np.empty((3, 3), np.float32), "eye", seed=2)
    assert np.array_equal(a, b) and np.array_equal(a, np.eye(3))


def test_seed_forms():
    def fill(**kw):
        return gpuinit.init_(np.empty(16, np.float32), "normal", **kw)

    seq = np.random.SeedSequence(8)
    assert np.array_equal(fill(seed=seq), fill(seed=int(seq.generate_state(1, np.uint64)[0])))
    rng_seed = int(np.random.default_rng(3).integers(0, 2**64, dtype=np.uint64))
    assert np.array_equal(fill(seed=np.random.default_rng(3)), fill(seed=rng_seed))
    assert np.array_equal(fill(generator=torch.Generator().manual_seed(4)),
                          fill(generator=torch.Generator().manual_seed(4)))
    assert not np.array_equal(fill(generator=torch.Generator().manual_seed(4)),
                              fill(generator=torch.Generator().manual_seed(5)))
    assert np.array_equal(fill(seed=np.uint64(2**64 - 1)), fill(seed=2**64 - 1))


@pytest.mark.parametrize("backend", [None, "staged"])
def test_an_inference_tensor_is_filled_inside_inference_mode_only(backend):
    """As torch's in-place ops: an inference tensor is filled inside torch.inference_mode(), and refused outside
    before anything is written."""
    with torch.inference_mode():
        t = torch.full((6, 5), 0.5)
        assert gpuinit.init_(t, "normal", seed=3, backend=backend) is t
    assert torch.equal(t, gpuinit.init_(torch.empty(6, 5), "normal", seed=3))
    with pytest.raises(RuntimeError, match="Inplace update to inference tensor outside InferenceMode"):
        t.normal_()
    before = t.clone()
    for scheme in ("uniform", "eye", "orthogonal"):
        with pytest.raises(InitError, match="an inference tensor"):
            gpuinit.init_(t, scheme, seed=4, backend=backend)
    assert torch.equal(t, before)


@pytest.mark.parametrize("backend", [None, "numpy", "staged"])
def test_a_negative_view_reads_the_values_init_gives_a_plain_tensor(backend):
    """z.conj().imag has torch's negative bit set: its memory holds the negation of what it reads (as torch's
    uniform_ writes it). It reads the values of a plain tensor of its shape; the real parts are untouched."""
    for scheme in ("uniform", "he_normal", "eye", "orthogonal", "constant"):
        z = torch.full((6, 5), complex(2, 0), dtype=torch.complex64)
        view = z.conj().imag
        assert gpuinit.init_(view, scheme, seed=3, backend=backend, **({"value": 0.5} if scheme == "constant" else {}))\
            is view
        want = gpuinit.init_(torch.empty(6, 5), scheme, seed=3, **({"value": 0.5} if scheme == "constant" else {}))
        assert torch.equal(view, want) and torch.equal(z.imag, -want) and (z.real == 2).all()


def test_a_negative_view_is_refused_by_a_backend_that_writes_memory_as_it_is():
    """The Triton backend (its interpreter here) writes memory through the tensor's address: it refuses a view with the
    negative bit before writing, and names the backends that fill it."""
    z = torch.full((6, 5), complex(2, 1), dtype=torch.complex64)
    with pytest.raises(InitError, match="backend='staged'"):
        gpuinit.init_(z.conj().imag, "normal", seed=0, backend="triton")
    assert (z == complex(2, 1)).all()
