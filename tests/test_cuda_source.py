"""The CUDA C source without a GPU: NVRTC (as CuPy compiles it) and nvcc build the kernels for sm_80 and sm_90,
with no fused multiply-add and no approximate math; g++ takes the header as host C++. (tests/test_cuda_host.py: nvcc
builds the kernels' thread code for the host, where the CuPy backend's launch plans fill numpy buffers with the
reference bits.)"""
import re
import shutil
import subprocess

import pytest

from gpuinit import launch_layout
from gpuinit.backends import cupy_backend as cb

SOURCE = cb.SOURCE
FORBIDDEN = re.compile(r"\b(fma\.rn\.f32|mad\.f32|sqrt\.approx|div\.approx|div\.full|ex2\.approx|lg2\.approx|"
                       r"sin\.approx|cos\.approx|rcp\.approx)")
# (kind, branches, path, dims, wide) x storage: every path, kind, erfinv branch count and index width
VARIANTS = [(0, 0, cb.ALIGNED, 0, 0), (1, 0, cb.RUN, 0, 0), (2, 1, cb.RUNS_ALIGNED, 1, 0), (2, 2, cb.RUNS, 2, 0),
            (2, 3, cb.STRIDED, 2, 1), (0, 0, cb.STRIDED_RUNS, 3, 0), (1, 0, cb.RUNS, 1, 1), (3, 0, cb.ALIGNED, 0, 1)]
NAMES = [f"gi_fill<{t}, {k}, {b}, {p}, {d}, {w}>" for t in ("float", "double", "gi_f16", "gi_bf16")
         for k, b, p, d, w in VARIANTS] + [f"gi_fill_group<{t}, {k}, {b}>" for t in ("float", "double", "gi_f16")
                                           for k, b in ((0, 0), (1, 0), (2, 1), (2, 3))]


def test_launcher_constants_match_the_kernel():
    text = SOURCE.read_text()
    assert f"GI_THREADS = {cb.THREADS} " in text
    assert cb.source().startswith(launch_layout.cuda_defines())  # the offsets of meta and of the group rows


@pytest.mark.parametrize("arch", [75, 80, 90])  # 75: the oldest CUDA 13 compiles for; no 16-bit pack below 80
def test_nvrtc_compiles_the_kernels(arch):
    nvrtc = pytest.importorskip("cupy_backends.cuda.libs.nvrtc")
    try:
        nvrtc.getVersion()
    except Exception as e:  # noqa: BLE001 - the library is not loadable here
        pytest.skip(f"NVRTC is not loadable: {e}")
    prog = nvrtc.createProgram(cb.source(), SOURCE.name, (), ())
    for name in NAMES:
        nvrtc.addNameExpression(prog, name)
    try:
        nvrtc.compileProgram(prog, [*cb.OPTIONS, f"-arch=compute_{arch}"])
    except nvrtc.NVRTCError:
        pytest.fail(nvrtc.getProgramLog(prog))
    ptx = nvrtc.getPTX(prog)
    ptx = ptx.decode() if isinstance(ptx, bytes) else ptx
    for name in NAMES:
        assert f".entry {nvrtc.getLoweredName(prog, name)}(" in ptx
    assert not FORBIDDEN.findall(ptx)
    assert "sqrt.rn.f32" in ptx
    assert "mul.wide.u32" in ptx  # Philox: one 32 x 32 -> 64-bit multiply
    assert ("cvt.rn.bf16x2.f32" in ptx) == (arch >= 80)  # 16-bit stores: the hardware rounding from sm_80


def _instantiations(names):
    """Explicit instantiations of the kernels named by expressions ``names`` (nvcc has no name expressions)."""
    params = {"gi_fill": "T*, const long long*, float, float, float, float, float, float, float, float, int, "
                         "unsigned long long, unsigned long long",
              "gi_fill_group": "const long long*, const float*, const int*"}
    out = []
    for name in names:
        kernel, args = name[:-1].split("<")
        out.append(f"template __global__ void {name}({params[kernel].replace('T*', args.split(',')[0] + '*')});")
    return "\n".join(out)


@pytest.mark.parametrize("arch", [80, 90])
def test_nvcc_compiles_the_kernels(arch, tmp_path):
    nvcc = shutil.which("nvcc")
    if nvcc is None:
        pytest.skip("nvcc is not installed")
    tu = tmp_path / "fill.cu"
    tu.write_text(cb.source() + "\n" + _instantiations(NAMES) + "\n")
    for target, flag in (("cubin", "-cubin"), ("ptx", "-ptx")):
        out = tmp_path / f"fill.{target}"
        r = subprocess.run([nvcc, f"-arch=sm_{arch}", "--std=c++17", flag, str(tu), "-o", str(out)],
                           capture_output=True, text=True, check=False)
        assert r.returncode == 0, r.stderr
        assert out.stat().st_size > 0
    assert not FORBIDDEN.findall((tmp_path / "fill.ptx").read_text())  # even with nvcc's default --fmad=true


def test_header_is_host_cpp(tmp_path):
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is None:
        pytest.skip("no C++ compiler")
    tu = tmp_path / "tu.cpp"
    tu.write_text('#include "gpuinit_stream.cuh"\nint main() { float v[4]; gi_params p = {}; p.kind = GI_TRUNC_NORMAL; '
                  'p.p_span = 0.5f; p.z_lo = -9; p.z_hi = 9; p.lo = -9; p.hi = 9; p.scale = 1; '
                  'for (int b = 1; b <= 3; ++b) gi_block_values_n(1, 2, 3, &p, b, v); '
                  'gi_block_values(1, 2, 3, &p, v); return (int)gi_half_bits(v[0]) & 0; }\n')
    r = subprocess.run([cxx, "-std=c++17", "-Wall", "-Werror", f"-I{SOURCE.parent}", str(tu), "-o",
                        str(tmp_path / "a.out")], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    assert subprocess.run([str(tmp_path / "a.out")], check=False).returncode == 0
