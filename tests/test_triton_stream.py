"""kernels/triton_stream.py under the fill kernels: they compile for sm_80 and sm_90 without a GPU, and their
PTX keeps the stream's arithmetic rules: no contracted multiply-add (only the deliberate fusions of exact
products), correctly rounded sqrt, no approximate math."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")

CODE = """
import json, re, sys
sys.path.insert(0, sys.argv[2])  # tests/, for triton_compile
from triton_compile import compile_all
out = []
for kernel, kind, dtype, arch, c in compile_all(archs=(int(sys.argv[1]),)):
    ptx = c.asm["ptx"]
    ops = sorted(set(re.findall(r"\\b((?:fma|mad|sqrt|div|rcp|ex2|lg2|sin|cos|cvt)\\.[a-z0-9.]+)", ptx)))
    fmas = re.findall(r"\\bfma\\.rn\\.f32\\s+[^,]+,\\s*([^,]+),\\s*([^,]+),", ptx)
    selects = dict(re.findall(r"\\bselp\\.f32\\s+([^,]+),\\s*([^,]+,\\s*[^,]+),", ptx))
    out.append({"kernel": kernel, "kind": kind, "dtype": dtype, "cubin": len(c.asm["cubin"]), "ops": ops,
                "fma_factors": [[selects.get(x.strip(), x.strip()) for x in f] for f in fmas]})
print(json.dumps(out))
"""

# The factors of the deliberate fusions (kernels/triton_stream.py): a product by -0.5, 2.0, a select of 2.0 or
# 1.0, or LOG_Q2 (times a small integer exponent) is exact, so the fused sum rounds once, as the unfused one.
EXACT_FACTORS = {"0fBF000000", "0f40000000", "0f3F318000", "0f40000000, 0f3F800000", "0f3F800000, 0f40000000"}


@pytest.mark.parametrize("arch", [80, 90])
def test_kernels_compile_without_contracted_fma(arch):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", CODE, str(arch), os.path.dirname(__file__)], capture_output=True,
                       text=True, env=env, timeout=600, check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(results) == 16 + 4 + 2
    for k in results:
        assert k["cubin"] > 0
        floating = [op for op in k["ops"] if any(t in op for t in (".f16", ".bf16", ".f32", ".f64"))]
        bad = [op for op in floating if op.split(".")[0] in ("mad", "ex2", "lg2", "sin", "cos", "rcp")
               or (op.split(".")[0] == "fma" and op != "fma.rn.f32")
               or (op.startswith(("sqrt", "div")) and (".approx" in op or ".full" in op))]  # integer mad is exact
        assert not bad, (k["kernel"], k["kind"], k["dtype"], bad)
        inexact = [f for f in k["fma_factors"] if not any(x in EXACT_FACTORS for x in f)]
        assert not inexact, (k["kernel"], k["kind"], k["dtype"], inexact)
        if k["dtype"] in ("bfloat16", "float16"):  # the hardware conversion, rounding to nearest even
            narrowing = [op for op in k["ops"] if op.startswith("cvt.") and (".bf16" in op or ".f16" in op)
                         and op.endswith(".f32")]
            assert narrowing and all(op.startswith("cvt.rn.") for op in narrowing), (k["dtype"], narrowing)


def test_integer_bfloat16_rounding_is_round_to_nearest_even():
    """The interpreter's integer rounding (numpy_stream.bfloat16_bits) gives the bits of IEEE round-to-nearest-even
    (torch's conversion, and cvt.rn.bf16.f32 on the GPU) for every finite float32 class."""
    import numpy as np
    import torch
    from gpuinit.kernels import numpy_stream as ks

    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2**32, 4_000_000, dtype=np.uint64).astype(np.uint32)
    low = np.array([0x0000, 0x0001, 0x7FFF, 0x8000, 0x8001, 0xFFFF], np.uint32)
    high = rng.integers(0, 2**16, 4096, dtype=np.uint64).astype(np.uint32) << 16  # every exponent, both parities
    edges = (high[:, None] | low[None, :]).reshape(-1)
    special = np.array([0x7F7FFFFF, 0x7F7F8000, 0x7F7F7FFF, 0xFF7FFFFF, 0x00000001, 0x807FFFFF, 0x80000000,
                        0x00008000, 0x00018000], np.uint32)
    x = np.concatenate([bits, edges, special]).view(np.float32)
    x = x[np.isfinite(x)]
    hardware = torch.from_numpy(x).to(torch.bfloat16).view(torch.int16).numpy()
    assert np.array_equal(ks.bfloat16_bits(x), hardware)
