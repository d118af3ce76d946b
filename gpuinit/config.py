"""Settings from the environment: every $GPUINIT_* variable gpuinit reads is parsed here, and a value it
cannot take is an error that names the variable and the values it takes.

- GPUINIT_BACKEND: "numpy", "triton" or "cupy"; overrides the backend chosen by array type.
- GPUINIT_NUM_THREADS: threads of the NumPy backend; 0 or unset: one per CPU the process may use.
- GPUINIT_CPU_KERNEL: 1 (default) uses the host kernel compiled with the package (else one compiled here),
  "native" compiles one for this CPU (-march=native, cached), 0 computes with NumPy alone.
- GPUINIT_CACHE: the directory of the compiled host kernel (default: $XDG_CACHE_HOME/gpuinit).
An empty variable counts as unset.
"""
import contextlib
import contextvars
import functools
import os
from pathlib import Path

from .errors import ConfigError, UnknownBackendError

BACKEND = "GPUINIT_BACKEND"
NUM_THREADS = "GPUINIT_NUM_THREADS"
CPU_KERNEL = "GPUINIT_CPU_KERNEL"
CACHE = "GPUINIT_CACHE"
VARIABLES = (BACKEND, NUM_THREADS, CPU_KERNEL, CACHE)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def raw(name):
    """The variable's value, stripped; None when it is unset or blank."""
    value = os.environ.get(name, "").strip()
    return value or None


def flag(name, default):
    """A switch: 1/true/yes/on is True, 0/false/no/off is False (any case), unset or blank is ``default``."""
    value = raw(name)
    if value is None:
        return default
    if value.lower() in _TRUE:
        return True
    if value.lower() in _FALSE:
        return False
    raise ConfigError(f"${name}={os.environ[name]!r} is not a switch: set it to 1 or 0 (or true/false, yes/no, "
                      f"on/off), or unset it for the default ({int(default)})")


def num_threads():
    """Threads of the NumPy backend: $GPUINIT_NUM_THREADS, a positive integer; 0 or unset: one per CPU that the
    process may use (usable_cpus)."""
    value = raw(NUM_THREADS)
    cpus = _cpus()
    if value is None:
        return cpus
    try:
        n = int(value)
    except ValueError:
        n = -1
    if n < 0:
        raise ConfigError(f"${NUM_THREADS}={os.environ[NUM_THREADS]!r} is not a thread count: set it to a "
                          f"positive integer, or 0 or unset for one thread per CPU ({cpus} here)")
    return n or cpus


@functools.cache
def _cpus():
    return usable_cpus()


def usable_cpus(proc="/proc/self/cgroup", root="/sys/fs/cgroup"):
    """The CPUs this process may use: its affinity mask (taskset, Slurm, a Kubernetes cpuset), capped by the CPU
    quota of its cgroup and the cgroups above it (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``,
    rounded up); at least 1. ``os.cpu_count()`` counts the machine's CPUs, which oversubscribes under limits."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # no affinity on this platform
        n = os.cpu_count() or 1
    quota = _quota(proc, root)
    return max(1, min(n, quota) if quota else n)


def _quota(proc, root):
    """The smallest CPU quota (CPUs, rounded up) on the process's cgroup path, or None where none is set."""
    try:
        lines = Path(proc).read_text().splitlines()
    except OSError:
        return None
    found = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2: one hierarchy
            files = ("cpu.max",)
            base = Path(root)
        elif "cpu" in controllers.split(","):  # v1: the cpu controller's hierarchy
            files = ("cpu.cfs_quota_us", "cpu.cfs_period_us")
            base = next((Path(root, d) for d in (controllers, "cpu", "cpu,cpuacct") if Path(root, d).is_dir()),
                        None)
        else:
            continue
        parts = [p for p in path.split("/") if p and p != ".."]
        for depth in range(len(parts), -1, -1):  # the cgroup, then each one above it (a container sees "/")
            q = _read_quota(base, parts[:depth], files) if base is not None else None
            if q is not None:
                found.append(q)
    return min(found) if found else None


def _read_quota(base, parts, files):
    try:
        values = [Path(base, *parts, f).read_text().split() for f in files]
    except OSError:
        return None
    if len(files) == 1:  # "max 100000" or "200000 100000"
        quota, period = values[0][0], values[0][1] if len(values[0]) > 1 else "100000"
    else:
        quota, period = values[0][0], values[1][0]
    try:
        q, p = int(quota), int(period)
    except ValueError:  # "max": no quota
        return None
    return -(-q // p) if q > 0 and p > 0 else None


def cpu_kernel():
    """$GPUINIT_CPU_KERNEL: "package" (a switch on, or unset), "native" or "off" (a switch off)."""
    value = raw(CPU_KERNEL)
    if value is not None and value.lower() == "native":
        return "native"
    try:
        return "package" if flag(CPU_KERNEL, default=True) else "off"
    except ConfigError:
        raise ConfigError(f"${CPU_KERNEL}={os.environ[CPU_KERNEL]!r} is not a setting of the host kernel: set it to 1 "
                          "or 0 (or true/false, yes/no, on/off: the package's build, or NumPy alone) or to native "
                          "(compiled for this CPU), or unset it for the default (1)") from None


def backend(choices):
    """The backend $GPUINIT_BACKEND names (one of ``choices``, any case), or None when it is unset."""
    pinned = _PINNED.get()
    if pinned is not None:
        return pinned[0]
    value = raw(BACKEND)
    if value is None:
        return None
    if value.lower() not in choices:
        raise UnknownBackendError(f"unknown backend {os.environ[BACKEND]!r} in ${BACKEND}: set it to one of "
                                  f"{sorted(choices)}, or unset it to choose by array type")
    return value.lower()


def cache_dir():
    """$GPUINIT_CACHE as an absolute path (``~`` expanded), or None when unset; it must not name a file."""
    value = raw(CACHE)
    if value is None:
        return None
    path = Path(os.path.expanduser(value))
    if not path.is_absolute():
        raise ConfigError(f"${CACHE}={os.environ[CACHE]!r} is not an absolute path: set it to the directory that "
                          "caches gpuinit's compiled host kernel, or unset it")
    if path.exists() and not path.is_dir():
        raise ConfigError(f"${CACHE}={os.environ[CACHE]!r} is not a directory: set it to the directory that caches "
                          "gpuinit's compiled host kernel, or unset it")
    return path


_checked: list = [None]  # the variables' values (and the backend names) that check() last passed


def snapshot():
    """What the settings depend on, cheaply (a few dictionary reads, no parsing): the raw values of the
    variables and the pinned settings. Equal snapshots mean equal settings, so a result computed under one
    holds under the other."""
    pinned = _PINNED.get()
    if pinned is not None:  # the variables are not read within pinned()
        return pinned
    data = getattr(os.environ, "_data", None)
    if data is None or _KEYS is None:
        return (*map(os.environ.get, VARIABLES), _PINNED.get())
    return (*map(data.get, _KEYS), _PINNED.get())


_KEYS: tuple | None
try:  # os.environ's own table and key encoding (CPython), read without the per-key encode of os.environ.get
    _KEYS = tuple(map(os.environ.encodekey, VARIABLES))
except AttributeError:
    _KEYS = None


def check(backends):
    """Parse every variable (``backends``: the names $GPUINIT_BACKEND may take); raise on the first bad one. Values
    that passed are not parsed again while they stay the same (a call per tensor costs four dictionary reads)."""
    if _PINNED.get() is not None:
        return
    key = (*snapshot(), *backends)
    if key == _checked[0]:
        return
    backend(backends)
    num_threads()
    cpu_kernel()
    cache_dir()
    _checked[0] = key


_PINNED: contextvars.ContextVar = contextvars.ContextVar("gpuinit_settings_pinned", default=None)


@contextlib.contextmanager
def pinned(backends):
    """Within the block the variables are parsed once, on entry, and not read again (a whole-model call reads
    them once, not once per tensor); ``backends``: the names $GPUINIT_BACKEND may take."""
    if _PINNED.get() is not None:
        yield
        return
    check(backends)
    token = _PINNED.set((backend(backends),))
    try:
        yield
    finally:
        _PINNED.reset(token)
