"""kernels/triton_fill.py: one compiled Triton kernel serves every seed, stream and parameter value: the
specialization key Triton computes at launch (types, divisibility and equality-to-1 of scalar arguments) must
not depend on them."""
import numpy as np
import pytest
import torch
from conftest import fresh_seed
from gpuinit.kernels import triton_fill as kt
from triton.backends.compiler import BaseBackend
from triton.runtime.jit import JITFunction, create_function_from_signature

from gpuinit import draws
from gpuinit.draws import folded_params


def jitted(kernel):
    """The JITFunction a GPU run launches (under TRITON_INTERPRET=1, built from the same decorator arguments)."""
    if isinstance(kernel, JITFunction):
        return kernel
    keep = ("do_not_specialize", "do_not_specialize_on_alignment")
    return JITFunction(kernel.fn, **{k: v for k, v in kernel.kwargs.items() if k in keep})


def specialization(kernel, *args, **constexprs):
    """The key Triton's launcher derives from these arguments (what selects, or compiles, a kernel binary)."""
    kernel = jitted(kernel)
    binder = create_function_from_signature(kernel.signature, kernel.params, BaseBackend)
    return str(binder(*args, **constexprs)[1])


def random_draw(rng, kind):
    std = float(rng.choice([1.0, 16.0, 0.02, rng.uniform(1e-3, 10)]))
    if kind == "uniform":
        return draws.uniform(-std, std)
    if kind == "normal":
        return draws.normal(float(rng.choice([0.0, 1.0, rng.normal()])), std)
    return draws.trunc_normal(0.0, std, -2 * std, float(rng.choice([2 * std, 1.0, 16.0])))


@pytest.mark.parametrize("kind", ["uniform", "normal", "trunc_normal"])
def test_fill_kernel_key_is_independent_of_values(kind, rng):
    out, meta = torch.empty(4096), torch.zeros(26, dtype=torch.int64)
    keys = set()
    for seed in [0, 1, 16, 2**31, 2**32 - 1, 2**32, 2**63, 2**64 - 1] + [fresh_seed(rng) for _ in range(40)]:
        stream = int(rng.choice([0, 1, 16, 2**32 + 1, fresh_seed(rng)]))
        draw = random_draw(rng, kind)
        keys.add(specialization(kt.fill_kernel, out, meta, seed & 0xFFFFFFFF, seed >> 32, stream & 0xFFFFFFFF,
                                stream >> 32, *folded_params(draw), KIND=kt.KINDS[kind],
                                SINGLE_RUN=True, CONTIGUOUS=True, BLOCK=256, BRANCHES=1))
    assert len(keys) == 1, keys


def test_group_kernel_key_is_independent_of_the_group():
    keys = set()
    for n in (1, 2, 16, 17, 64):
        table, owner = torch.zeros((n, 9), dtype=torch.int64), torch.zeros(3 * n, dtype=torch.int64)
        keys.add(specialization(kt.group_kernel, table, owner, OUT_DTYPE=kt.DTYPES["torch.float32"], KIND=1,
                                BLOCK=256, BRANCHES=1))
    assert len(keys) == 1, keys


def test_every_scalar_argument_is_typed_and_unspecialized():
    for kernel in (jitted(kt.fill_kernel), jitted(kt.group_kernel)):
        for p in kernel.params:
            if not p.is_constexpr and not p.name.endswith("_ptr"):
                assert p.annotation_type and p.do_not_specialize, (kernel.fn.__name__, p.name)
    assert np.all([p.name in kt.VALUE_ARGS for p in jitted(kt.fill_kernel).params if p.annotation_type])
