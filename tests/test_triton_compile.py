"""The Triton kernels compile for sm_80 and sm_90 without a GPU, and their PTX keeps the stream's
arithmetic rules: no fused multiply-add, correctly rounded sqrt, no approximate math."""
import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("triton")

CODE = """
import json, re, sys
from gpuinit.backends.triton_compile import compile_all
out = []
for kernel, kind, dtype, arch, c in compile_all(archs=(int(sys.argv[1]),)):
    ptx = c.asm["ptx"]
    ops = sorted(set(re.findall(r"\\b((?:fma|mad|sqrt|div|rcp|ex2|lg2|sin|cos)\\.[a-z0-9.]+)", ptx)))
    out.append({"kernel": kernel, "kind": kind, "dtype": dtype, "cubin": len(c.asm["cubin"]), "ops": ops})
print(json.dumps(out))
"""


@pytest.mark.parametrize("arch", [80, 90])
def test_kernels_compile_without_fma(arch):
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    r = subprocess.run([sys.executable, "-c", CODE, str(arch)], capture_output=True, text=True, env=env, timeout=600,
                       check=False)
    assert r.returncode == 0, r.stderr[-3000:]
    results = json.loads(r.stdout.strip().splitlines()[-1])
    assert len(results) == 16 + 4
    for k in results:
        assert k["cubin"] > 0
        floating = [op for op in k["ops"] if any(t in op for t in (".f16", ".bf16", ".f32", ".f64"))]
        bad = [op for op in floating if op.split(".")[0] in ("fma", "mad", "ex2", "lg2", "sin", "cos", "rcp")
               or (op.startswith(("sqrt", "div")) and (".approx" in op or ".full" in op))]  # integer mad is exact
        assert not bad, (k["kernel"], k["kind"], k["dtype"], bad)
