"""The host build of kernels/cuda/gpuinit_stream.cuh: compiled once with the system C compiler,
cached, and called through ctypes (which releases the GIL, so chunks run on all cores).

It returns the same bits as kernels/numpy_stream.py, only faster; without a compiler, or with
GPUINIT_CPU_KERNEL=0, the NumPy backend computes the stream with NumPy alone.
"""
import ctypes
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import numpy as np

from .. import kernels
from ..draws import kernel_params
from ..kernels import numpy_stream

KERNELS = Path(kernels.__file__).resolve().parent
SOURCES = (KERNELS / "cuda" / "gpuinit_stream.cuh", KERNELS / "cpu" / "gpuinit_cpu.c")
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared", "-std=c11")
_lock = threading.Lock()
_state = {}


class Params(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("flip", ctypes.c_int), ("scale", ctypes.c_float), ("shift", ctypes.c_float),
                ("lo", ctypes.c_float), ("hi", ctypes.c_float), ("p_lo", ctypes.c_float), ("p_span", ctypes.c_float),
                ("z_lo", ctypes.c_float), ("z_hi", ctypes.c_float)]


def _compiler():
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")


def _cache_dir():
    root = os.environ.get("GPUINIT_CACHE") or os.path.join(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"),
                                                          "gpuinit")
    return Path(root)


def build():
    """Path of the compiled library (compiling it if needed), or raise RuntimeError saying why not."""
    cc = _compiler()
    if cc is None:
        raise RuntimeError("no C compiler found (set CC)")
    digest = hashlib.sha256()
    for f in SOURCES:
        digest.update(f.read_bytes())
    version = subprocess.run([cc, "--version"], capture_output=True, text=True, check=False).stdout
    digest.update(" ".join((cc, version, sys.platform) + FLAGS).encode())
    target = _cache_dir() / f"gpuinit_cpu_{digest.hexdigest()[:16]}.so"
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
            out = Path(tmp) / target.name
            r = subprocess.run([cc, *FLAGS, str(SOURCES[1]), "-o", str(out)], capture_output=True, text=True,
                               check=False)
            if r.returncode:
                raise RuntimeError(f"compiling {SOURCES[1].name} failed: {r.stderr.strip()[-2000:]}")
            os.replace(out, target)
    return target


def load():
    """The ctypes library, or None (with the reason in ``why_not()``) when it cannot be built."""
    with _lock:
        if "lib" not in _state:
            _state["lib"], _state["why"] = None, None
            if os.environ.get("GPUINIT_CPU_KERNEL", "1") == "0":
                _state["why"] = "disabled by GPUINIT_CPU_KERNEL=0"
            else:
                try:
                    lib = ctypes.CDLL(str(build()))
                except (RuntimeError, OSError) as e:
                    _state["why"] = str(e)
                else:
                    u64, ptr = ctypes.c_uint64, ctypes.c_void_p
                    lib.gi_cpu_fill_runs.argtypes = [ctypes.POINTER(Params), ptr, u64, u64, u64, u64, ptr]
                    lib.gi_cpu_fill_runs_16.argtypes = [ctypes.POINTER(Params), ptr, u64, u64, u64, u64,
                                                        ctypes.c_int, ptr]
                    lib.gi_cpu_half_bits.argtypes = [ptr, u64, ptr]
                    lib.gi_cpu_words.argtypes = [u64, u64, u64, u64, ptr]
                    _state["lib"] = lib
        return _state["lib"]


def why_not():
    load()
    return _state["why"]


def reset():
    """Forget the loaded library (tests switch GPUINIT_CPU_KERNEL)."""
    with _lock:
        _state.clear()


def params(kind, p):
    *values, flip = kernel_params(kind, p)
    return Params(numpy_stream.KINDS[kind], flip, *(float(np.float32(v)) for v in values))


def draw_values(lib, kind, p, starts, length, seed, stream, out=None, store="float32"):
    """[len(starts), length] values, as kernels.numpy_stream.draw_values computes them, written into
    ``out`` (C-contiguous) when given. ``store``: "float32", or "bfloat16" / "float16" to write 16-bit
    bit patterns (``out`` is any 2-byte dtype), rounded once to nearest even."""
    starts = np.ascontiguousarray(starts, dtype=np.uint64).reshape(-1)
    if out is None:
        out = np.empty((len(starts), length), np.float32 if store == "float32" else np.uint16)
    args = (ctypes.byref(params(kind, p)), starts.ctypes.data, len(starts), length, seed, stream)
    if store == "float32":
        lib.gi_cpu_fill_runs(*args, out.ctypes.data)
    else:
        lib.gi_cpu_fill_runs_16(*args, int(store == "float16"), out.ctypes.data)
    return out


def half_bits(lib, values):
    values = np.ascontiguousarray(values, dtype=np.float32)
    out = np.empty(values.shape, np.uint16)
    lib.gi_cpu_half_bits(values.ctypes.data, values.size, out.ctypes.data)
    return out


def element_words(lib, start, n, seed, stream):
    out = np.empty(n, np.uint32)
    lib.gi_cpu_words(start, n, seed, stream, out.ctypes.data)
    return out
