"""The host kernel (kernels/cpu/*.c on kernels/cuda/gpuinit_stream.cuh), compiled when the wheel is built.

One shared library per instruction-set level on x86-64 (baseline, x86-64-v3: AVX2, x86-64-v4: AVX-512), one
elsewhere; gpuinit/backends/cpu_kernel.py loads the widest one the CPU runs, through ctypes (no Python module:
the wheel is tagged py3-none-<platform>). Each library records the SHA-256 of the sources it was built from.
A build that fails (no compiler) leaves it out: gpuinit then compiles the kernel at first use, or computes with
NumPy alone, and says so.

The wheel also holds the benchmarks that ``gpuinit bench`` runs (bench/BENCH_SCRIPTS and bench/gpuinit_bench/) as
gpuinit/bench/: scripts run in a process of their own, never imported as a module of gpuinit.
"""
import hashlib
import platform
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.bdist_wheel import bdist_wheel
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
SOURCES = ["kernels/cuda/gpuinit_stream.cuh", "kernels/cpu/gpuinit_cpu.c", "kernels/cpu/gpuinit_checksum.c"]
# after Python's CFLAGS, which hold -fwrapv (it slows the loops by up to 10%: bench/results/host-kernel)
BENCH_SCRIPTS = ["cpu.py", "gpu.py", "model.py", "host.py", "kernel_cost.py", "explore.py"]  # gpuinit bench's
FLAGS = ["-O3", "-g0", "-fno-wrapv", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-std=c11"]


def digest():
    h = hashlib.sha256()
    for f in SOURCES:
        h.update((HERE / f).read_bytes())
    return h.hexdigest()


def libraries():
    levels = {"v1": "x86-64", "v3": "x86-64-v3", "v4": "x86-64-v4"} if platform.machine() in ("x86_64", "AMD64") \
        else {"generic": None}
    sha = digest()
    return [Extension(f"gpuinit.backends._host_{level}", [f for f in SOURCES if f.endswith(".c")],
                      extra_compile_args=[*FLAGS, *([f"-march={arch}"] if arch else [])],
                      define_macros=[("GI_SOURCE_DIGEST", f'"{sha}"')], optional=True)
            for level, arch in levels.items()]


class Wheel(bdist_wheel):
    def get_tag(self):  # plain shared libraries loaded by ctypes: any Python 3 on this platform
        return ("py3", "none", super().get_tag()[2])


class BuildPy(build_py):
    def run(self):
        super().run()
        bench = HERE / "bench"
        if not (bench / "gpuinit_bench").is_dir():  # an sdist without them: gpuinit bench says it is not installed
            return
        for f in [bench / name for name in BENCH_SCRIPTS] + sorted((bench / "gpuinit_bench").rglob("*.py")):
            dest = Path(self.build_lib, "gpuinit", "bench", f.relative_to(bench))
            self.mkpath(str(dest.parent))
            self.copy_file(str(f), str(dest))


setup(ext_modules=libraries(), cmdclass={"bdist_wheel": Wheel, "build_py": BuildPy})
