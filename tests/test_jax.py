"""gpuinit/jax/arrays.py: gpuinit.jax.init makes a new jax.Array holding exactly what gpuinit.init_ writes into a
numpy array of its shape and dtype (JAX's axes), on the device or sharding asked for, every block of a sharded array
computed as a block of the whole tensor; key_seed maps JAX keys to (seed, stream)."""
import contextlib
import os
import subprocess
import sys
import types

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

import gpuinit
import gpuinit.jax as gj
from gpuinit.jax import arrays

SCHEMES = [("glorot_uniform", {}), ("he_normal", {}), ("normal", {"std": 0.5}), ("trunc_normal", {"a": -1.0}),
           ("variance_scaling", {"scale": 2.0, "mode": "fan_geo_avg", "distribution": "normal"}),
           ("constant", {"value": 0.1}), ("orthogonal", {"gain": 2.0}), ("identity", {}),
           ("sparse", {"sparsity": 0.5})]
DTYPES = [jnp.float32, jnp.bfloat16, jnp.float16]


def host(shape, dtype, scheme, params, **kw):
    """gpuinit's numpy fill, JAX's axes: the values every array made here must hold."""
    kw = {"in_axis": -2, "out_axis": -1, **kw}
    return gpuinit.init_(np.empty(shape, np.dtype(dtype)), scheme, **kw, **params)


def bits(x):
    x = np.asarray(x)
    return x.view(f"u{x.dtype.itemsize}")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scheme,params", SCHEMES)
def test_values_are_gpuinit_s_in_the_dtype_on_the_default_device(scheme, params, dtype):
    w = gj.init((40, 24), scheme, seed=3, stream=2, dtype=dtype, **params)
    assert isinstance(w, jax.Array) and w.dtype == dtype and w.shape == (40, 24)
    assert w.devices() == {jax.local_devices()[0]} and w.committed
    assert np.array_equal(bits(w), bits(host((40, 24), dtype, scheme, params, seed=3, stream=2)))


def test_like_a_jax_array_or_a_shape_dtype_struct():
    base = jnp.zeros((6, 5, 4), jnp.bfloat16)
    want = host((6, 5, 4), jnp.bfloat16, "he_uniform", {}, seed=1)
    for like in (base, jax.ShapeDtypeStruct((6, 5, 4), jnp.bfloat16)):
        w = gj.init(like, "he_uniform", seed=1)
        assert w.dtype == jnp.bfloat16 and np.array_equal(bits(w), bits(want))
    assert gj.init(base, "he_uniform", seed=1, dtype=jnp.float32).dtype == jnp.float32
    assert np.array_equal(gj.init(7, "uniform", seed=2), host((7,), np.float32, "uniform", {}, seed=2))
    x = gj.init((8, 3, 5), "lecun_normal", seed=4, in_axis=1, out_axis=2, batch_axis=0)
    assert np.array_equal(x, host((8, 3, 5), np.float32, "lecun_normal", {}, seed=4, in_axis=1, out_axis=2,
                                  batch_axis=0))
    z = gj.init((4, 3), "he_normal", seed=5, dtype=jnp.complex64)
    assert z.dtype == jnp.complex64 and np.array_equal(z, host((4, 3), np.complex64, "he_normal", {}, seed=5))


def test_device_sharding_and_float64_as_jax_holds_it():
    dev = jax.local_devices()[0]
    for device in (dev, jax.sharding.SingleDeviceSharding(dev)):
        assert gj.init((3, 4), "normal", seed=0, device=device).devices() == {dev}
    with jax.default_device(dev):
        assert gj.init((3, 4), "normal", seed=0).devices() == {dev}
    assert gj.init((3, 4), "normal", seed=0, dtype=np.float64).dtype == jnp.float32  # x64 off: JAX holds float32
    empty = gj.init((0, 4), "he_normal", seed=0)
    assert empty.shape == (0, 4)


def test_seeds_follow_gpuinit_s_rule():
    gpuinit.manual_seed(5)
    a = gj.init((4, 4), "normal")
    gpuinit.manual_seed(5)
    assert np.array_equal(a, gj.init((4, 4), "normal"))
    gpuinit.manual_seed(None)
    assert not np.array_equal(gj.init((4, 4), "normal"), gj.init((4, 4), "normal"))  # fresh entropy
    assert not np.array_equal(gj.init((4, 4), "normal", seed=0), gj.init((4, 4), "normal", seed=0, stream=1))


@pytest.mark.parametrize("call,match", [
    (lambda: gj.init((3, 4), "nosuch", seed=0), "unknown scheme 'nosuch'"),
    (lambda: gj.init((3, 4), "normal", seed=-1), "seed"),
    (lambda: gj.init((3, 4), "normal", seed=0, dtype=jnp.int32), "floating-point arrays .* got int32"),
    (lambda: gj.init((3, 4), "normal", seed=0, dtype="nosuch"), "cannot interpret 'nosuch' as a dtype"),
    (lambda: gj.init((3, 4), "normal", seed=0, device="cpu"), "device must be a jax Device or a jax.sharding"),
    (lambda: gj.init("ab", "normal", seed=0), "shape must be an int or a sequence of ints"),
    (lambda: gj.init((3,), gpuinit.initializers.HeNormal(seed=0)), "scheme must be a gpuinit scheme name"),
    (lambda: gj.init((3, 4), "normal", seed=0, mean="x"), "mean"),
    (lambda: jax.jit(lambda x: gj.init(x, "normal", seed=0))(jnp.ones(3)), "not a traced one"),
])
def test_bad_input_is_an_init_error(call, match):
    with pytest.raises(gpuinit.InitError, match=match):
        call()


def test_init_of_a_jax_array_names_the_functional_form():
    w = jnp.zeros((3, 4))
    with pytest.raises(gpuinit.InitError, match=r"immutable.*gpuinit\.jax\.init\(array, scheme, seed=\.\.\.\)"):
        gpuinit.init_(w, "he_normal", seed=0)


# ---- a GPU's blocks: CuPy fills device memory that JAX takes over through DLPack ----------------------------------

class FakeCupy(types.SimpleNamespace):
    """CuPy's calls that the GPU path makes, on numpy arrays (DLPack takes those too), recorded."""

    def __init__(self):
        super().__init__(made=[], devices=[])
        self.cuda = types.SimpleNamespace(Device=self.device)

    def device(self, index):
        self.devices.append(index)
        return contextlib.nullcontext()

    def empty(self, shape, dtype):
        self.made.append(np.dtype(dtype))
        return np.empty(shape, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_the_gpu_path_fills_cupy_blocks_and_hands_them_over_by_dlpack(dtype, monkeypatch):
    """On a GPU, each block is a CuPy array, bfloat16 as its bits (uint16, bits="bfloat16") reinterpreted by JAX on
    the device; the values are those of the host path."""
    fake = FakeCupy()
    monkeypatch.setattr(arrays, "_cupy_for", lambda device: fake)
    seen = []
    monkeypatch.setattr(jax.dlpack, "from_dlpack", lambda x, _f=jax.dlpack.from_dlpack: seen.append(x) or _f(x))
    for scheme, params in (("he_normal", {}), ("orthogonal", {})):
        w = gj.init((33, 17), scheme, seed=9, dtype=dtype, **params)
        assert w.dtype == dtype and np.array_equal(bits(w), bits(host((33, 17), dtype, scheme, params, seed=9)))
    assert fake.made == [np.dtype(np.uint16 if dtype == jnp.bfloat16 else dtype)] * 2 and len(seen) == 2
    assert fake.devices == [jax.local_devices()[0].local_hardware_id] * 4  # allocation and fill on the device


def test_cupy_serves_gpus_only_where_its_backend_runs():
    assert arrays._cupy_for(jax.local_devices()[0]) is None  # a CPU device
    gpu = types.SimpleNamespace(platform="gpu")
    assert arrays._cupy_for(gpu) is None  # no CUDA device here: the CuPy backend is unavailable, host path


# ---- sharded arrays: every block is the block of the whole tensor -------------------------------------------------

SHARDED = """
import jax, numpy as np, gpuinit, gpuinit.jax as gj
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
assert len(jax.devices()) == 4
mesh = Mesh(np.array(jax.devices()).reshape(2, 2), ("a", "b"))
for spec in (P("a", "b"), P(None, "b"), P("a"), P()):
    for scheme in ("he_normal", "orthogonal", "sparse"):
        kw = {"sparsity": 0.5} if scheme == "sparse" else {}
        w = gj.init((8, 6), scheme, seed=3, device=NamedSharding(mesh, spec), dtype="bfloat16", **kw)
        want = gj.init((8, 6), scheme, seed=3, dtype="bfloat16", **kw)
        assert w.sharding == NamedSharding(mesh, spec) and len(w.addressable_shards) == 4
        assert (np.asarray(w).view(np.uint16) == np.asarray(want).view(np.uint16)).all(), (spec, scheme)
        for shard in w.addressable_shards:
            assert (np.asarray(shard.data).view(np.uint16) == np.asarray(want)[shard.index].view(np.uint16)).all()
again = gj.init(w, "he_normal", seed=3)  # like=: its sharding
assert again.sharding == w.sharding
print("ok")
"""


def test_a_sharded_array_holds_the_values_of_the_whole_one(tmp_path):
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", SHARDED], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                       env={**os.environ, **env}, check=False)
    assert r.returncode == 0 and r.stdout.split()[-1] == "ok", r.stderr[-3000:]


# ---- keys ---------------------------------------------------------------------------------------------------------

def test_key_seed_of_typed_raw_and_rbg_keys():
    assert gj.key_seed(jax.random.key(42)) == (42, 0) == gj.key_seed(jax.random.PRNGKey(42))
    assert gj.key_seed(jnp.array([1, 2], jnp.uint32)) == (1 << 32 | 2, 0)
    words = np.asarray(jax.random.key_data(jax.random.key(7, impl="rbg")))
    assert gj.key_seed(jax.random.key(7, impl="rbg")) == (int(words[0]) << 32 | int(words[1]),
                                                          int(words[2]) << 32 | int(words[3]))
    a, b = jax.random.split(jax.random.key(0))
    assert gj.key_seed(a) != gj.key_seed(b)
    with pytest.raises(gpuinit.InitError, match="one JAX PRNG key, got key data of shape \\(3, 2\\)"):
        gj.key_seed(jax.random.split(jax.random.key(0), 3))
    with pytest.raises(gpuinit.InitError, match="key must be a JAX PRNG key"):
        gj.key_seed("seed")


def test_ml_dtypes_and_gpuinit_jax_are_what_they_seem():
    assert np.dtype(jnp.bfloat16) == np.dtype(ml_dtypes.bfloat16)
    assert gj.initializers.__name__ == "gpuinit.jax.initializers" and gpuinit.jax is gj
