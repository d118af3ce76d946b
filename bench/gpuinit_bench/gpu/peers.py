"""Triton's own generator and a store-only kernel, the peers the cases of bench/gpu.py measure gpuinit against."""
import math

import triton
import triton.language as tl
from triton.language.extra import libdevice

from gpuinit.backends import triton_backend

from .bench import Skip

# ---- Triton's own generator and a store-only kernel, as peers -----------------------------------------

def peer_block():
    """Counters per program of the peer kernels: larger on the interpreter, whose cost is per program."""
    return 4096 if triton_backend.interpreting() else 1024


@triton.jit
def store_kernel(out_ptr, n, BLOCK: tl.constexpr):
    """Write 1.0 everywhere: the store ceiling of a Triton kernel."""
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    tl.store(out_ptr + offs, tl.full((BLOCK,), 1.0, tl.float32).to(out_ptr.dtype.element_ty), mask=offs < n)


@triton.jit
def _store_run(out_ptr, offs, values, n):
    tl.store(out_ptr + offs, values.to(out_ptr.dtype.element_ty), mask=offs < n)


@triton.jit
def _trunc(u, p_lo, p_span, lo, hi):
    z = 1.4142135623730951 * libdevice.erfinv(2.0 * (p_lo + u * p_span) - 1.0)
    return tl.minimum(tl.maximum(z, lo), hi)


@triton.jit
def philox_kernel(out_ptr, n, seed, scale, shift, p_lo, p_span, lo, hi, KIND: tl.constexpr, BLOCK: tl.constexpr):
    """Triton's generator: KIND 0 ``tl.rand4x`` (uniform), 1 ``tl.randn4x`` (normal), 2 ``tl.rand4x`` through
    libdevice's erfinv (truncated normal by the inverse CDF, as torch.nn.init.trunc_normal_); values times
    ``scale`` plus ``shift``. A program draws four values for each of BLOCK counters: four runs of BLOCK."""
    pid = tl.program_id(0).to(tl.int64)
    counters = pid * BLOCK + tl.arange(0, BLOCK)
    if KIND == 1:
        r0, r1, r2, r3 = tl.randn4x(seed, counters)
    else:
        r0, r1, r2, r3 = tl.rand4x(seed, counters)
        if KIND == 2:
            r0 = _trunc(r0, p_lo, p_span, lo, hi)
            r1 = _trunc(r1, p_lo, p_span, lo, hi)
            r2 = _trunc(r2, p_lo, p_span, lo, hi)
            r3 = _trunc(r3, p_lo, p_span, lo, hi)
    base = pid * (4 * BLOCK) + tl.arange(0, BLOCK)
    _store_run(out_ptr, base, r0 * scale + shift, n)
    _store_run(out_ptr, base + BLOCK, r1 * scale + shift, n)
    _store_run(out_ptr, base + 2 * BLOCK, r2 * scale + shift, n)
    _store_run(out_ptr, base + 3 * BLOCK, r3 * scale + shift, n)


PHI_2 = 0.5 * (1.0 + math.erf(2.0 / math.sqrt(2.0)))  # Phi(2)
PEERS = {  # kind: (name, KIND, scale(fan_in), shift)
    "uniform": ("tl.rand4x", 0, lambda fan_in: 1.0, 0.0),
    "normal": ("tl.randn4x", 1, lambda fan_in: 1.0, 0.0),
    "trunc_normal": ("tl.rand4x + libdevice.erfinv", 2, lambda fan_in: 1.0, 0.0),
    "kaiming_uniform": ("tl.rand4x", 0, lambda fan_in: 2.0 / math.sqrt(fan_in), None),  # U(-1/sqrt(fan_in), +)
}


def launch_store(buf):
    block = 4 * peer_block()
    store_kernel[(triton.cdiv(buf.numel(), block),)](buf, buf.numel(), BLOCK=block)


def launch_philox(buf, kind, fan_in, seed=12345):
    _, code, scale_of, shift = PEERS[kind]
    if code == 2 and triton_backend.interpreting():
        raise Skip("libdevice.erfinv is not in Triton's interpreter")
    scale = scale_of(fan_in)
    shift = -scale / 2 if shift is None else shift
    n, block = buf.numel(), peer_block()
    philox_kernel[(triton.cdiv(n, 4 * block),)](buf, n, seed, scale, shift, 1.0 - PHI_2, 2.0 * PHI_2 - 1.0, -2.0, 2.0,
                                                KIND=code, BLOCK=block)
