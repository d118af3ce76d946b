"""The host build of kernels/cuda/gpuinit_stream.cuh, called through ctypes (which releases the GIL, so chunks
run on all cores).

A wheel ships it compiled (setup.py): one library per x86-64 level, of which the widest this CPU runs is
loaded from the installed package, no compiler needed and nothing written anywhere. Where the installation
has none (a checkout used in place, a build without a compiler) or its sources changed since it was built, it
is compiled once with the system C compiler (``-march=native``) and cached, with a warning saying so; without
a compiler the fills compute with NumPy alone, also with a warning.

It returns the same bits as kernels/numpy_stream.py, only faster; with GPUINIT_CPU_KERNEL=0 the NumPy
backend computes the stream with NumPy alone, with GPUINIT_CPU_KERNEL=native it is compiled for this CPU.
The same library holds gpuinit.fingerprint's checksum (kernels/cpu/gpuinit_checksum.c); without it,
fingerprint computes its torch reference (gpuinit/distributed.py).

The cache directory is ``$GPUINIT_CACHE``, else ``$XDG_CACHE_HOME/gpuinit``, else ``~/.cache/gpuinit``.
A cached library is code that runs in this process, so it is used only when:

- the directory is this user's and not writable by group or others (it is created with mode 0o700;
  any other directory is refused, and the kernel is not used); its parents are trusted, as for any
  path the user configures;
- the library and its ``.sha256`` sidecar are regular files (opened without following symlinks),
  owned by this user and not writable by group or others;
- the SHA-256 of the bytes read from the opened library equals the sidecar's digest. Those verified
  bytes are then written to a fresh private file (``mkstemp``) in the same directory, loaded from
  there and unlinked, so the code loaded is exactly the code checked, whatever happens to the cached
  name in between.

The file name is a hash of the sources, the compiler and its version, the flags, the platform and
the CPU features that ``-march=native`` resolves to (the compiler's predefined macros), so a cache
shared between hosts does not serve code built for a CPU with other instruction-set extensions. A
new build is compiled in a private temporary directory and stored under temporary names that are
renamed into place (library first, then sidecar), so concurrent processes never see a partial file:
each uses the cached library when it verifies, or else the one it built itself. A library that is
rejected or fails to load (bad digest, missing symbols, not loadable) is rebuilt once; if that fails
too the kernel is not used, with the reason in ``why_not()`` and a warning on the ``gpuinit`` logger.
The outcome is recorded only once an attempt completes, so an interrupted build is retried by
the next call. A build holds a lock (``flock``) on a file in its directory while it runs, which the
system releases when its process dies, however it dies; each build first removes the ``.build-*``
directories whose lock is free (a build killed, or one of a gpuinit without the lock) and the temporary
files left by killed processes, once they are ``STALE_AFTER`` seconds old (a new build takes its lock
just after making its directory).
"""
import ctypes
import hashlib
import logging
import os
import platform
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from .. import config
from ..draws import kernel_params
from ..kernels import numpy_stream

KERNELS = Path(numpy_stream.__file__).resolve().parent
SOURCES = (KERNELS / "cuda" / "gpuinit_stream.cuh", KERNELS / "cpu" / "gpuinit_cpu.c",
           KERNELS / "cpu" / "gpuinit_checksum.c")  # every .c file is compiled into the one library
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fPIC", "-shared",
         "-std=c11")
STALE_AFTER = 600  # seconds before a free build directory or a temporary file in the cache is removed
BUILD_LOCK = "lock"  # the file in a build directory that its build holds locked
log = logging.getLogger("gpuinit")
_lock = threading.Lock()
_state: dict = {}


class Params(ctypes.Structure):
    _fields_ = [("kind", ctypes.c_int), ("flip", ctypes.c_int), ("scale", ctypes.c_float), ("shift", ctypes.c_float),
                ("lo", ctypes.c_float), ("hi", ctypes.c_float), ("p_lo", ctypes.c_float), ("p_span", ctypes.c_float),
                ("z_lo", ctypes.c_float), ("z_hi", ctypes.c_float)]


PACKAGED = Path(__file__).resolve().parent  # the wheel's libraries: _host_<level>.<suffix>.so (setup.py)
LEVELS = ("v4", "v3", "v1")  # x86-64 levels, widest first (gi_cpu_level: 4, 3, 1 and 2)
_u64, _ptr = ctypes.c_uint64, ctypes.c_void_p
SYMBOLS = {  # every function the library must export, with its argument types
    "gi_cpu_fill_runs": [ctypes.POINTER(Params), _ptr, _u64, _u64, _u64, _u64, _ptr],
    "gi_cpu_fill_runs_16": [ctypes.POINTER(Params), _ptr, _u64, _u64, _u64, _u64, ctypes.c_int, _ptr],
    "gi_cpu_half_bits": [_ptr, _u64, _ptr],
    "gi_cpu_words": [_u64, _u64, _u64, _u64, _ptr],
    "gi_cpu_fill_items": [_ptr, _u64],
    "gi_cpu_checksums": [_ptr, _u64, _ptr],
    "gi_cpu_checksum_runs": [_ptr, _u64, _ptr, _u64, _u64],
}
RESTYPES = {"gi_cpu_checksum_runs": _u64}  # the functions that return a value (the others return nothing)


class _NoCompilerError(RuntimeError):
    pass


def _compiler():
    """The C compiler as an argument list: $CC split as a shell would (``ccache gcc``), else cc, gcc or clang."""
    if os.environ.get("CC", "").strip():
        return shlex.split(os.environ["CC"])
    found = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    return [found] if found else None


def _run(args):
    return subprocess.run(args, capture_output=True, text=True, check=False)


def _cache_root():
    configured = config.cache_dir()
    if configured:
        return configured
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return Path(xdg, "gpuinit")
    home = os.path.expanduser("~")
    if not os.path.isabs(home):
        raise RuntimeError("no cache directory: no home directory; set GPUINIT_CACHE or XDG_CACHE_HOME")
    return Path(home, ".cache", "gpuinit")


def _cache_dir():
    """The cache directory, created private if missing; RuntimeError if it is not this user's alone."""
    d = _cache_root()
    try:
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        st = d.stat()
    except OSError as e:
        raise RuntimeError(f"cache directory {d}: {e.strerror or e}") from e
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
        raise RuntimeError(f"cache directory {d} refused: owner uid {st.st_uid}, mode {stat.filemode(st.st_mode)};"
                           f" it must belong to uid {os.geteuid()} and not be writable by group or others")
    return d


def _cpu_features(cc):
    """What the -m flags (-march=native) enable on this CPU: the compiler's predefined macros for them
    (gcc and clang alike), else the flags line of /proc/cpuinfo."""
    r = _run([*cc, *(f for f in FLAGS if f.startswith("-m")), "-E", "-dM", "-x", "c", os.devnull])
    if r.returncode == 0 and r.stdout.strip():
        return "\n".join(sorted(r.stdout.splitlines()))
    try:
        with open("/proc/cpuinfo") as f:
            return next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        return ""


def _key(cc):
    """The cached library's file name: a digest of everything the compiled code depends on."""
    digest = hashlib.sha256()
    for f in SOURCES:
        digest.update(f.read_bytes())
    version = _run([*cc, "--version"]).stdout
    for part in (" ".join(cc), version, sys.platform, platform.machine(), *FLAGS, _cpu_features(cc)):
        digest.update(part.encode() + b"\0")
    return f"gpuinit_cpu_{digest.hexdigest()[:24]}.so"


def _read_private(path):
    """The bytes of ``path``, read from a descriptor checked to be this user's regular file that
    group and others cannot write; RuntimeError otherwise (FileNotFoundError if absent)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))  # a FIFO: no wait
    with os.fdopen(fd, "rb") as f:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o022:
            raise RuntimeError(f"{path} is not a private file of uid {os.geteuid()} (owner uid {st.st_uid}, "
                               f"mode {stat.filemode(st.st_mode)})")
        return f.read()


def _write_atomic(d, name, data):
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, d / name)
    except BaseException:
        os.unlink(tmp)
        raise


def _verified(so):
    """The cached library's bytes, if its sidecar vouches for them; RuntimeError if not."""
    data = _read_private(so)
    want = _read_private(so.with_name(so.name + ".sha256")).decode("ascii", "replace").strip()
    if hashlib.sha256(data).hexdigest() != want:
        raise RuntimeError(f"{so} does not match its recorded SHA-256 ({len(data)} bytes)")
    return data


def _compile(cc, so):
    """Compile the library, store it with its digest sidecar, and return its bytes."""
    _remove_stale(so.parent)
    lock = None
    try:
        with tempfile.TemporaryDirectory(prefix=".build-", dir=so.parent) as tmp:
            lock = _hold_lock(Path(tmp) / BUILD_LOCK)
            out = Path(tmp) / so.name
            c_files = [f for f in SOURCES if f.suffix == ".c"]
            r = _run([*cc, *FLAGS, *map(str, c_files), "-o", str(out)])
            if r.returncode:
                raise RuntimeError(f"compiling {', '.join(f.name for f in c_files)} failed: "
                                   f"{r.stderr.strip()[-2000:]}")
            out.chmod(0o600)  # the compiler's file follows the umask; it is ours, in our private directory
            data = _read_private(out)
    finally:
        if lock is not None:  # released once the directory is gone: no other build takes it for a dead one
            os.close(lock)
    _write_atomic(so.parent, so.name, data)
    _write_atomic(so.parent, so.name + ".sha256", (hashlib.sha256(data).hexdigest() + "\n").encode())
    return data


def _hold_lock(path):
    """A descriptor of ``path`` (created) holding an exclusive flock where the file system has locks;
    close-on-exec, so that a compiler left running by a killed build does not hold it."""
    import fcntl

    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:  # no locks here (some network file systems): the age alone guards this build
        pass
    return fd


def _remove_stale(d):
    """Remove what killed processes left in cache directory ``d``, once STALE_AFTER seconds old: build directories
    whose lock is free or absent, and the temporary files of _write_atomic and _open. Best effort: what cannot
    be checked or removed stays."""
    import fcntl

    now = time.time()
    try:
        entries = list(os.scandir(d))
    except OSError:
        return
    for entry in entries:
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime < STALE_AFTER:
                continue
            if entry.name.startswith(".build-") and entry.is_dir(follow_symlinks=False):
                try:
                    fd = os.open(Path(entry.path, BUILD_LOCK), os.O_RDWR | os.O_NOFOLLOW | os.O_CLOEXEC)
                except FileNotFoundError:  # killed before it took its lock, or a gpuinit that takes none
                    shutil.rmtree(entry.path, ignore_errors=True)
                    continue
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError while its build runs
                    shutil.rmtree(entry.path, ignore_errors=True)
                finally:
                    os.close(fd)
            elif entry.name.startswith((".load-", ".gpuinit_cpu_")) and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
        except OSError:
            continue


def _open(so, data):
    """Load ``data`` (the verified bytes of ``so``) from a private copy and declare its functions."""
    fd, tmp = tempfile.mkstemp(prefix=".load-", suffix=".so", dir=so.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        lib = ctypes.CDLL(tmp)
    finally:
        os.unlink(tmp)
    return _declare(lib, so)


def _declare(lib, so):
    for name, argtypes in SYMBOLS.items():
        try:
            fn = getattr(lib, name)
        except AttributeError:
            raise RuntimeError(f"{so.name} lacks the function {name}") from None
        fn.argtypes, fn.restype = argtypes, RESTYPES.get(name)
    return lib


def build():
    """Path of the cached library, compiled if it is missing or does not verify, and loaded to check
    it; RuntimeError or OSError says why not."""
    return _library()[0]


def _library():
    """(path, ctypes library), building at most once; RuntimeError or OSError when that fails."""
    cc = _compiler()
    if cc is None:
        raise _NoCompilerError("no C compiler found (set CC)")
    if not hasattr(os, "geteuid"):
        raise RuntimeError("the host kernel cache needs a POSIX system")
    so = _cache_dir() / _key(cc)
    try:
        return so, _open(so, _verified(so))
    except FileNotFoundError:
        pass
    except (RuntimeError, OSError) as e:
        log.warning("gpuinit: cached host kernel rejected (%s); rebuilding it", e)
    return so, _open(so, _compile(cc, so))


def source_digest():
    """The SHA-256 of the kernel's sources, as setup.py records it in the libraries it builds."""
    digest = hashlib.sha256()
    for f in SOURCES:
        digest.update(f.read_bytes())
    return digest.hexdigest()


def _packaged():
    """(description, library) of the installed package's library for this CPU; (reason, None) where there is none
    to use (none built, or built from other sources than these). RuntimeError or OSError if one fails to load."""
    found = {f.name[len("_host_"):].split(".")[0]: f for f in PACKAGED.glob("_host_*.so")}
    if not found:
        return "this installation has no compiled host kernel (a wheel has one)", None
    if "generic" in found:
        order = ["generic"]
    else:
        cpu = ctypes.CDLL(str(found["v1"])).gi_cpu_level() if "v1" in found else 0
        order = [level for level in LEVELS if level in found and int(level[1]) <= cpu]
    if not order:
        return f"no compiled host kernel runs on this CPU (built: {', '.join(sorted(found))})", None
    path = found[order[0]]
    lib = ctypes.CDLL(str(path))
    built = (ctypes.c_char * 65).in_dll(lib, "gi_cpu_source_digest").value.decode("ascii", "replace")
    if built != source_digest():
        return f"the compiled host kernel {path.name} was built from other sources than {KERNELS}", None
    _declare(lib, path)
    arch = {"v1": "x86-64", "v3": "x86-64-v3", "v4": "x86-64-v4"}.get(order[0], platform.machine())
    return f"compiled with the package for {arch} ({path})", lib


def load():
    """The ctypes library, or None (with the reason in ``why_not()``) when there is none to use."""
    lib = _state.get("lib", _state)  # decided already: read without the lock (_state itself marks "not yet")
    if lib is not _state:
        return lib
    with _lock:
        if "lib" not in _state:
            lib, why, where = None, None, None
            mode = config.cpu_kernel()
            if mode == "off":
                why = f"disabled by {config.CPU_KERNEL}={os.environ[config.CPU_KERNEL]}"
            elif mode == "native":
                lib, why, where = _built_here(None)
            else:
                try:
                    where, lib = _packaged()
                except (RuntimeError, OSError) as e:
                    where = f"the compiled host kernel failed to load ({e})"
                if lib is None:
                    lib, why, where = _built_here(where)
            _state.update(lib=lib, why=why, where=where)
        return _state["lib"]


def _built_here(reason):
    """(library, why not, where from) of the build at run time; when it stands in for the package's (``reason``:
    why that one is not used), or fails, a warning says which fallback runs."""
    try:
        so, lib = _library()
    except (RuntimeError, OSError) as e:
        if reason is None:  # asked for: $GPUINIT_CPU_KERNEL=native
            log.warning(f"gpuinit: the host kernel for this CPU did not build: fills compute with NumPy alone ({e})")
            return None, str(e), None
        if isinstance(e, _NoCompilerError):
            log.warning(f"gpuinit: {reason}, and {e}: fills compute with NumPy alone (several times slower); "
                        "install a gpuinit wheel, or a C compiler")
            return None, f"{reason}; {e}", None
        log.warning(f"gpuinit: {reason}, and building it failed: fills compute with NumPy alone ({e})")
        return None, f"{reason}; building it failed: {e}", None
    if reason is not None:
        log.warning(f"gpuinit: {reason}: compiled it with the system C compiler into {so.parent}")
    return lib, None, f"compiled here for this CPU ({so})"


def why_not():
    """None when the host kernel is in use, else the reason it is not."""
    load()
    return _state.get("why")


def where():
    """Where the host kernel in use comes from (the package's build, or one made here), or None."""
    load()
    return _state.get("where") if _state.get("lib") is not None else None


def reset():
    """Forget the loaded library (tests switch GPUINIT_CPU_KERNEL)."""
    with _lock:
        _state.clear()


CONSTANT = -1  # gi_cpu_fill_items' kind for a constant: its value is Params.shift


def params(draw):
    if draw.kind == "constant":
        return Params(CONSTANT, 0, 0.0, float(np.float32(draw.value)))
    *values, flip = kernel_params(draw)
    return Params(numpy_stream.KINDS[draw.kind], flip, *(float(np.float32(v)) for v in values))


def exact_constant(draw):
    """Whether the kernel writes ``draw`` (a Constant) as NumPy does: its value is a float32 (a value that is
    not would be rounded twice on the way to a 16-bit store)."""
    return draw.value in (0.0, 1.0) or float(np.float32(draw.value)) == draw.value


_PARAMS: dict = {}  # id(draw): (draw, its Params, held by reference); draws are immutable and recur
_ZERO = np.zeros(1, np.uint64)  # the one run of a whole tensor starts at logical index 0
_ZERO_AT = _ZERO.ctypes.data


def fill_run(lib, draw, length, seed, stream, pointer, store="float32"):
    """Write elements 0..length-1 of the stream (``draw``'s values) at address ``pointer`` as ``store``
    ("float32", "bfloat16" or "float16"), on the calling thread."""
    ref = params_ref(draw)
    if store == "float32":
        lib.gi_cpu_fill_runs(ref, _ZERO_AT, 1, length, seed, stream, pointer)
    else:
        lib.gi_cpu_fill_runs_16(ref, _ZERO_AT, 1, length, seed, stream, int(store == "float16"), pointer)


def params_ref(draw):
    """``draw``'s kernel parameters, by reference (``ctypes.byref``: its ``_obj`` is the Params), made once per
    draw and kept with it; hold the reference while an address of it is in use."""
    entry = _PARAMS.get(id(draw))
    if entry is None or entry[0] is not draw:
        if len(_PARAMS) >= 4096:
            _PARAMS.clear()
        entry = _PARAMS[id(draw)] = (draw, ctypes.byref(params(draw)))
    return entry[1]


STORES = {"float32": 0, "bfloat16": 1, "float16": 2}  # gi_fill_item.store


def fill_items(lib, items, keep=None):
    """Run ``gi_cpu_fill_items`` on ``items``, a C-contiguous uint64 array of rows (params address, out address,
    start, n, seed, stream, store), on the calling thread (the GIL is released). ``keep``: what holds the
    parameters the addresses point to, alive until the call returns."""
    lib.gi_cpu_fill_items(items.ctypes.data, len(items))
    return keep


def draw_values(lib, draw, starts, length, seed, stream, out=None, store="float32"):
    """[len(starts), length] values, as kernels.numpy_stream.draw_values computes them, written into
    ``out`` (C-contiguous) when given. ``store``: "float32", or "bfloat16" / "float16" to write 16-bit
    bit patterns (``out`` is any 2-byte dtype), rounded once to nearest even."""
    starts = np.ascontiguousarray(starts, dtype=np.uint64).reshape(-1)
    if out is None:
        out = np.empty((len(starts), length), np.float32 if store == "float32" else np.uint16)
    args = (ctypes.byref(params(draw)), starts.ctypes.data, len(starts), length, seed, stream)
    if store == "float32":
        lib.gi_cpu_fill_runs(*args, out.ctypes.data)
    else:
        lib.gi_cpu_fill_runs_16(*args, int(store == "float16"), out.ctypes.data)
    return out
