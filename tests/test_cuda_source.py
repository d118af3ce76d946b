"""The CUDA C source without a GPU: NVRTC (as CuPy compiles it) and nvcc build it for sm_80 and sm_90,
with no fused multiply-add and no approximate math, and g++ takes the header as host C++."""
import re
import shutil
import subprocess

import pytest

from gpuinit.backends import cupy_backend

SOURCE = cupy_backend.SOURCE
NAMES = [f"gi_fill<{t}>" for t in ("float", "double", "gi_f16", "gi_bf16")]
FORBIDDEN = re.compile(r"\b(fma\.rn\.f32|mad\.f32|sqrt\.approx|div\.approx|div\.full|ex2\.approx|lg2\.approx|"
                       r"sin\.approx|cos\.approx|rcp\.approx)")


def nvrtc_ptx(arch):
    nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc")
    try:
        nvrtc.getVersion()
    except Exception as e:  # noqa: BLE001 - the library is not loadable here
        pytest.skip(f"NVRTC is not loadable: {e}")
    prog = nvrtc.createProgram(SOURCE.read_text(), SOURCE.name, (), ())
    for name in NAMES:
        nvrtc.addNameExpression(prog, name)
    try:
        nvrtc.compileProgram(prog, [*cupy_backend.OPTIONS, f"-I{SOURCE.parent}", f"-arch=compute_{arch}"])
    except nvrtc.NVRTCError:
        pytest.fail(nvrtc.getProgramLog(prog))
    lowered = [nvrtc.getLoweredName(prog, n) for n in NAMES]
    ptx = nvrtc.getPTX(prog)
    return ptx.decode() if isinstance(ptx, bytes) else ptx, lowered


@pytest.mark.parametrize("arch", [80, 90])
def test_nvrtc_compiles_the_kernels(arch):
    ptx, lowered = nvrtc_ptx(arch)
    for name in lowered:
        assert f".entry {name}(" in ptx
    assert not FORBIDDEN.findall(ptx)
    assert "sqrt.rn.f32" in ptx


@pytest.mark.parametrize("arch", [80, 90])
def test_nvcc_compiles_the_kernels(arch, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    for target, flag in (("cubin", "-cubin"), ("ptx", "-ptx")):
        out = tmp_path / f"fill.{target}"
        r = subprocess.run([nvcc, f"-arch=sm_{arch}", "--std=c++17", flag, str(SOURCE), "-o", str(out)],
                           capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        assert out.stat().st_size > 0
    assert not FORBIDDEN.findall((tmp_path / "fill.ptx").read_text())  # even with nvcc's default --fmad=true


def test_header_is_host_cpp(tmp_path):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    tu = tmp_path / "tu.cpp"
    tu.write_text('#include "gpuinit_stream.cuh"\nint main() { float v[4]; gi_params p = {}; '
                  'gi_block_values(1, 2, 3, &p, v); return (int)gi_half_bits(v[0]) & 0; }\n')
    r = subprocess.run([cxx, "-std=c++17", "-Wall", "-Werror", f"-I{SOURCE.parent}", str(tu), "-o",
                        str(tmp_path / "a.out")], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert subprocess.run([str(tmp_path / "a.out")], check=False).returncode == 0
