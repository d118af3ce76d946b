"""``gpuinit.jax.init``: a new jax.Array holding gpuinit's values (jax.Arrays are immutable: nothing is filled in
place), and ``key_seed``, the (seed, stream) a JAX PRNG key stands for.

Each device's block of the array is computed where it lives, as the block of the whole tensor at its offsets, so a
sharded array holds exactly the values of the unsharded one: on a CUDA GPU where CuPy runs, by the CuPy backend into
device memory that JAX takes over through DLPack (bfloat16 as its bits in uint16, reinterpreted on the device), with
no host round trip; elsewhere (CPU, TPU, a GPU without CuPy) by the NumPy backend on the host, then copied to the
device (``jax.device_put``: the one copy a host-computed array needs).
"""
import jax
import jax.numpy as jnp
import numpy as np

from .. import api, backends, jobs, seeding
from ..errors import BackendUnavailableError, InitError, short_repr
from ..initializers_config import as_shape


def init(like, scheme, *, seed=None, stream=0, dtype=None, device=None, in_axis=-2, out_axis=-1, batch_axis=(),
         backend=None, **params):
    """A new jax.Array with ``scheme``'s values: those ``gpuinit.init_`` writes into an array of its shape and dtype.

    Args:
        like: a shape (an int or a sequence of ints), a jax.Array or a jax.ShapeDtypeStruct (whose shape, dtype and
            sharding serve where ``dtype`` / ``device`` are not given).
        scheme: a gpuinit scheme name (``gpuinit.SCHEMES``) with its ``**params``.
        seed, stream: as for ``gpuinit.init_`` (no seed: ``gpuinit.manual_seed``'s stream, else fresh entropy).
        dtype: float16, bfloat16, float32, float64 (as JAX holds it: float32 unless x64 is on) or complex; default
            ``like``'s, else JAX's default float type.
        device: a jax Device or a jax.sharding.Sharding; default ``like``'s sharding, else JAX's default device.
        in_axis, out_axis, batch_axis: the fan axes, JAX's (..., in, out) layout by default (``init_``'s default is
            torch's (out, in, ...)).
        backend: the gpuinit backend that computes host blocks ("numpy"); GPU blocks are CuPy's.

    >>> import gpuinit.jax
    >>> w = gpuinit.jax.init((256, 128), "glorot_uniform", seed=0)
    """
    shape, dtype, sharding = _target(like, dtype, device)
    if seed is not None:
        seeding.check_seed(seed, None)
    placed, host = [], {}  # (device, offsets, block, CuPy or None, bits); host blocks by region, computed once
    bits = "bfloat16" if dtype == jnp.bfloat16 else None  # a CuPy block holds bfloat16 as its bits
    for dev, index in sharding.addressable_devices_indices_map(shape).items():
        span = [s.indices(n)[:2] for s, n in zip(index, shape, strict=True)]
        offsets, block_shape = tuple(a for a, _ in span), tuple(b - a for a, b in span)
        cupy = _cupy_for(dev)
        if cupy is None:
            block = host.get((offsets, block_shape))
            if block is None:
                block = host[offsets, block_shape] = np.empty(block_shape, dtype)
        else:
            with cupy.cuda.Device(dev.local_hardware_id):
                block = cupy.empty(block_shape, np.uint16 if bits else dtype)
        placed.append((dev, offsets, block, cupy, bits if cupy is not None else None))
    fills = _jobs(placed, shape, scheme, params, seed, stream, (in_axis, out_axis, batch_axis), backend)
    for dev, _, block, cupy, _ in placed:
        if cupy is not None:
            with cupy.cuda.Device(dev.local_hardware_id):
                jobs.run([fills[id(block)]])
    jobs.run([fills[id(block)] for block in host.values()])
    parts = [_on_device(block, bits) if cupy is not None else jax.device_put(block, dev)
             for dev, _, block, cupy, bits in placed]
    return jax.make_array_from_single_device_arrays(shape, sharding, parts)


def _jobs(placed, shape, scheme, params, seed, stream, axes, backend):
    """{id(block): its checked job}, every block checked before the seed is taken."""
    if type(scheme) is not str:
        raise InitError(f"scheme must be a gpuinit scheme name, got {short_repr(scheme)}")
    in_axis, out_axis, batch_axis = axes
    checked = {}
    for _, offsets, block, cupy, bits in placed:
        if id(block) not in checked:
            checked[id(block)] = (block, bits, jobs.checked(
                block, scheme, params, stream=stream, in_axis=in_axis, out_axis=out_axis, batch_axis=batch_axis,
                full_shape=shape, offsets=offsets, backend=backend if cupy is None else None, bits=bits))
    block, _, first = next(iter(checked.values()))
    seed = seeding.resolve_seed(seed, block, draw=first[1].kind not in api.NO_RANDOMNESS)
    return {key: jobs.Job(target, draw, region, at, seed, stream, module, bits, None, direct)
            for key, (_, bits, (target, draw, region, at, stream, module, direct)) in checked.items()}


def host_values(shape, dtype, scheme, seed, stream, axes, params):
    """A new numpy array of ``scheme``'s values (a host callback's, a constant's), filled by ``gpuinit.init_``."""
    return api.init_(np.empty(shape, dtype), scheme, seed=seed, stream=stream, **axes, **params)


def _on_device(block, bits):
    """The jax.Array over a CuPy block, through DLPack on its device; bfloat16 bits reinterpreted there."""
    out = jax.dlpack.from_dlpack(block)
    return jax.lax.bitcast_convert_type(out, jnp.bfloat16) if bits else out


def _cupy_for(device):
    """CuPy when it fills on jax device ``device`` (a GPU, with CuPy's backend available here), else None."""
    if device.platform != "gpu":
        return None
    try:
        backends.load("cupy")
    except BackendUnavailableError:
        return None
    import cupy

    return cupy


def _target(like, dtype, device):
    """(shape, dtype as JAX holds it, sharding) of the new array."""
    sharding = None
    if isinstance(like, jax.core.Tracer):
        raise InitError("gpuinit.jax.init makes a concrete array, not a traced one (inside jit, vmap, grad): call it "
                        "outside, or use gpuinit.jax.initializers, whose initializers run under a trace")
    if isinstance(like, (jax.Array, jax.ShapeDtypeStruct)):
        shape, sharding = tuple(like.shape), like.sharding
        dtype = like.dtype if dtype is None else dtype
    else:
        shape = as_shape(like)
    dtype = value_dtype(dtype)
    if device is not None:
        sharding = device if isinstance(device, jax.sharding.Sharding) else None
        if sharding is None and not isinstance(device, jax.Device):
            raise InitError(f"device must be a jax Device or a jax.sharding.Sharding, got {short_repr(device)}")
    if sharding is None:
        sharding = jax.sharding.SingleDeviceSharding(device if device is not None else default_device())
    return shape, dtype, sharding


def value_dtype(dtype):
    """``dtype`` as a numpy dtype that JAX holds (float64 is float32 unless x64 is on); None: JAX's default float."""
    try:
        return jax.dtypes.canonicalize_dtype(jnp.float64 if dtype is None else dtype)
    except TypeError:
        raise InitError(f"cannot interpret {short_repr(dtype)} as a dtype") from None


def default_device():
    """The device JAX puts a new array on: ``jax.default_device``'s, else the first of this process."""
    chosen = jax.config.jax_default_device
    if isinstance(chosen, str):
        return jax.local_devices(backend=chosen)[0]
    return chosen if chosen is not None else jax.local_devices()[0]


KEY_WORDS = (2, 4)  # uint32 words of a JAX key's data: threefry (the default) 2, rbg and unsafe_rbg 4


def key_seed(key):
    """(seed, stream) of gpuinit's stream for one JAX PRNG key (a typed key or a raw uint32 key): its key data's words
    w as seed = w0 << 32 | w1 and stream = w2 << 32 | w3 (0 for a 2-word threefry key). Distinct keys give distinct
    (seed, stream), hence different values; one key, the same values.

    >>> import jax, gpuinit.jax
    >>> gpuinit.jax.key_seed(jax.random.key(42))
    (42, 0)
    """
    try:
        data = np.asarray(jax.random.key_data(key))
    except (TypeError, ValueError) as e:
        raise InitError(f"key must be a JAX PRNG key (jax.random.key(...)), got {short_repr(key)} ({e})") from None
    if data.dtype != np.uint32 or data.shape not in [(n,) for n in KEY_WORDS]:
        raise InitError(f"key must be one JAX PRNG key, got key data of shape {data.shape} (a batch of keys: map "
                        "the initializer over them, e.g. with jax.vmap)")
    words = [int(w) for w in data] + [0, 0]
    return words[0] << 32 | words[1], words[2] << 32 | words[3]
