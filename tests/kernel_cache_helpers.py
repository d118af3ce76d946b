"""Helpers of tests/test_kernel_cache.py: the C compiler, planted libraries, fills and subprocesses."""
import hashlib
import os
import subprocess
import sys
import textwrap

import numpy as np

import gpuinit
from gpuinit.backends import cpu_kernel

CC = cpu_kernel._compiler()


def compile_lib(tmp_path, body):
    src, out = tmp_path / "planted.c", tmp_path / "planted.so"
    src.write_text(body)
    subprocess.run([*CC, "-shared", "-fPIC", str(src), "-o", str(out)], check=True)
    return out.read_bytes()


def evil(tmp_path):
    """A library whose constructor leaves a marker file: the marker exists iff it was ever loaded."""
    marker = tmp_path / "marker"
    body = textwrap.dedent(f"""\
        #include <stdio.h>
        __attribute__((constructor)) static void mark(void) {{ FILE* f = fopen("{marker}", "w"); if (f) fclose(f); }}
        """)
    return compile_lib(tmp_path, body), marker


def plant(so, data, forge_sidecar):
    so.unlink()
    so.write_bytes(data)
    os.chmod(so, 0o600)
    if forge_sidecar:
        so.with_name(so.name + ".sha256").write_text(hashlib.sha256(data).hexdigest() + "\n")


def fill():
    return gpuinit.init_(np.empty((64, 32), np.float32), "normal", seed=0).tobytes()


def reference():
    os.environ["GPUINIT_CPU_KERNEL"] = "0"
    cpu_kernel.reset()
    try:
        return fill()
    finally:
        del os.environ["GPUINIT_CPU_KERNEL"]
        cpu_kernel.reset()


def python(code, env, cwd):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def only_cache_files(d):
    names = sorted(p.name for p in d.iterdir())
    assert len(names) == 2 and names[1] == names[0] + ".sha256", names
