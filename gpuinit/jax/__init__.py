"""gpuinit for JAX: jax.Arrays are immutable, so gpuinit makes new ones.

- ``gpuinit.jax.init(shape_or_like, scheme, seed=..., ...)``: a new jax.Array holding the values ``gpuinit.init_``
  writes, on the requested device or sharding, each device's block computed as a block of the whole tensor.
- ``gpuinit.jax.initializers``: ``jax.nn.initializers``' factories (``glorot_uniform()``, ``he_normal()``, ...)
  whose initializers ``init(key, shape, dtype)`` draw from gpuinit's stream, for Flax and Equinox code.
- ``gpuinit.jax.key_seed(key)``: the (seed, stream) a JAX PRNG key stands for.

Importing it imports JAX; ``import gpuinit`` does not.
"""
from . import initializers
from .arrays import init, key_seed

__all__ = ["init", "initializers", "key_seed"]
