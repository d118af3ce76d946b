"""Helpers of tests/test_kernel_cache.py: the C compiler, planted libraries, fills, subprocesses and builds
left behind."""
import contextlib
import hashlib
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

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
    before = os.environ.get("GPUINIT_CPU_KERNEL")
    os.environ["GPUINIT_CPU_KERNEL"] = "0"
    cpu_kernel.reset()
    try:
        return fill()
    finally:
        if before is None:
            del os.environ["GPUINIT_CPU_KERNEL"]
        else:
            os.environ["GPUINIT_CPU_KERNEL"] = before
        cpu_kernel.reset()


def python(code, env, cwd):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=120, check=False)


def only_cache_files(d):
    names = sorted(p.name for p in d.iterdir())
    assert len(names) == 2 and names[1] == names[0] + ".sha256", names


def slow_compiler(started):
    """$CC for a compiler that answers the cache key's questions at once, then makes file ``started`` and never
    finishes the build."""
    script = started.with_name("slow-cc")
    script.write_text(f'#!/bin/sh\nfor a in "$@"; do [ "$a" = -o ] && {{ : > {shlex.quote(str(started))}; '
                      f'exec sleep 60; }}; done\nexec {shlex.join(CC)} "$@"\n')
    script.chmod(0o700)
    return str(script)


@contextlib.contextmanager
def building(cache, tmp_path):
    """The build directory of a process stopped in a build in ``cache`` (its compiler running); the process (in
    its own session, with its compiler) is killed on the way out, mid-build."""
    code = "from gpuinit.backends import cpu_kernel; cpu_kernel.load()"
    before, started = set(cache.glob(".build-*")), Path(tempfile.mkdtemp(dir=tmp_path)) / "started"
    proc = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, "CC": slow_compiler(started)},
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(1200):
            if started.exists():
                (new,) = set(cache.glob(".build-*")) - before
                yield new
                break
            time.sleep(0.05)
        else:
            raise AssertionError("no build started")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def age(path):
    """Make ``path`` older than the cache's STALE_AFTER."""
    t = time.time() - cpu_kernel.STALE_AFTER - 60
    os.utime(path, (t, t), follow_symlinks=False)
