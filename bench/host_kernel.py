"""The host kernel as the wheel ships it (one library per x86-64 level) against the build for this very CPU
(``-march=native``, what gpuinit compiled at first use before), in one run.

For each library the CPU runs: single-thread elements/s of ``gi_cpu_fill_runs`` (float32) and
``gi_cpu_fill_runs_16`` (bfloat16) for uniform, normal and truncated normal on ``--n`` elements, the best of
``--repeat`` runs, the cases interleaved round by round; then the whole fill (``gpuinit.init_`` of a float32
array, every thread) with the package's build and with the native one. Prints a table of M elements/s and
each library's ratio to native; ``--out DIR`` writes DIR/host-kernel.json.

    python bench/host_kernel.py [--n 4194304] [--repeat 7] [--out DIR]
"""
import argparse
import ctypes
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

from gpuinit import config, draws
from gpuinit.backends import cpu_kernel

DRAWS = {"uniform": draws.uniform(-1.0, 1.0), "normal": draws.normal(0.0, 0.02),
         "trunc_normal": draws.trunc_normal(0.0, 0.02, -0.04, 0.04)}


def libraries():
    """{name: ctypes library}: the package's builds this CPU runs, and one compiled here for it."""
    found = {f.name[len("_host_"):].split(".")[0]: f for f in cpu_kernel.PACKAGED.glob("_host_*.so")}
    level = ctypes.CDLL(str(found["v1"])).gi_cpu_level() if "v1" in found else 0
    out = {f"package {k}": cpu_kernel._declare(ctypes.CDLL(str(p)), p) for k, p in sorted(found.items())
           if k == "generic" or int(k[1]) <= level}
    os.environ.setdefault("GPUINIT_CACHE", tempfile.mkdtemp(prefix="gpuinit-bench-"))
    out["native"] = cpu_kernel._library()[1]
    return out


def one_thread(libs, n, repeat):
    out = {(lib, kind, store): float("inf") for lib in libs for kind in DRAWS for store in ("float32", "bfloat16")}
    buf = np.empty(n, np.float32)
    for _ in range(repeat):
        for (name, kind, store) in out:
            t = time.perf_counter()
            cpu_kernel.fill_run(libs[name], DRAWS[kind], n, 1, 2, buf.ctypes.data, store)
            out[(name, kind, store)] = min(out[(name, kind, store)], time.perf_counter() - t)
    return {k: n / v / 1e6 for k, v in out.items()}


def whole(libs, n, repeat):
    import gpuinit

    x = np.empty(n, np.float32)
    out = {}
    for name in ("native", *[k for k in libs if k != "native"][-1:]):  # native and the package's widest
        cpu_kernel._state.update(lib=libs[name], why=None, where=name)
        gpuinit.init_(x, "normal", seed=0)
        best = min(_timed(lambda: gpuinit.init_(x, "normal", seed=0)) for _ in range(repeat))
        out[name] = n / best / 1e6
    cpu_kernel.reset()
    return out


def _timed(f):
    t = time.perf_counter()
    f()
    return time.perf_counter() - t


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1 << 22)
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--out")
    a = p.parse_args(argv)
    libs = libraries()
    single = one_thread(libs, a.n, a.repeat)
    print(f"single thread, M elements/s ({a.n} elements, best of {a.repeat}); ratio to native")
    for kind in DRAWS:
        for store in ("float32", "bfloat16"):
            native = single[("native", kind, store)]
            cells = "  ".join(f"{lib}: {single[(lib, kind, store)]:7.1f} ({single[(lib, kind, store)] / native:.2f}x)"
                              for lib in libs)
            print(f"  {kind:13s} {store:8s}  {cells}")
    full = whole(libs, 4 * a.n, a.repeat)
    print(f"gpuinit.init_ normal float32, {4 * a.n} elements, {config.num_threads()} threads: "
          + ", ".join(f"{k} {v:.1f} M/s" for k, v in full.items()))
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "host-kernel.json"), "w") as f:
            json.dump({"machine": platform.machine(), "processor": _cpu_name(), "n": a.n, "repeat": a.repeat,
                       "threads": config.num_threads(),
                       "single_thread_melem_s": {" | ".join(k): v for k, v in single.items()},
                       "init_normal_float32_melem_s": full}, f, indent=1)
    return 0


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "")
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
