"""What the ``gpuinit`` command checks before it starts work: sizes, devices, free memory, optional
libraries, output directories. Each check raises UsageError, which the command reports as one line."""
import argparse
import contextlib
import importlib
import importlib.util
import math
import os
import re
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

from . import extras

MIN_PARAMS = 100_000
PEAK_FACTOR = 2.1  # the demo holds gpuinit's model while torch builds its own for the comparison
GPU_BUFFERS = 3  # sweep buffers bench/gpu.py holds at once, each of --sizes elements
FLOAT_DTYPES = ("float32", "bfloat16", "float16", "float64")
_CUDA_FREE = "import sys, torch; print(torch.cuda.mem_get_info(torch.device(sys.argv[1]))[0])"
_SUFFIXES = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}


class UsageError(Exception):
    """A mistake in the command line or the environment: reported as one line, exit status 2."""


def require(module, extra):
    """Import ``module``, or say which extra of gpuinit installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if e.name != module:
            raise
        raise _not_installed(module, extra) from None


def installed(module, extra):
    """Check that ``module`` is installed without importing it (the command imports it when it needs it), or
    say which extra of gpuinit installs it."""
    if importlib.util.find_spec(module) is None:
        raise _not_installed(module, extra)


def _not_installed(module, extra):
    return UsageError(f"this needs {module}, which is not installed: {extras.pip(extra)}")


def device(text, torch, hint="use --device cpu"):
    """A torch.device that is the CPU or a CUDA device that exists (``hint``: what to do without one)."""
    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError, TypeError):
        raise UsageError(f"--device {text!r} is not a device: use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {text}: this runs on cpu or cuda")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}"
            raise UsageError(f"--device {text}: no CUDA device here (torch {torch.__version__}, {build}); {hint}")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise UsageError(f"--device {text}: there {'is' if count == 1 else 'are'} {count} CUDA device"
                             f"{'' if count == 1 else 's'} (cuda:0 .. cuda:{count - 1})")
    return dev


def model_config(n, llama_config):
    """The built-in model's config nearest to ``n`` parameters; an error beyond the largest one."""
    largest = llama_config.with_params(10**18)
    if n > 1.5 * largest.n_params:
        raise UsageError(f"--params {count(n)}: the largest built-in model has {count(largest.n_params)} parameters")
    return llama_config.with_params(int(n))


def float_dtype(name, torch, flag="--dtype"):
    """The torch dtype of one of FLOAT_DTYPES."""
    if name not in FLOAT_DTYPES:
        raise UsageError(f"{flag} {name}: use {', '.join(FLOAT_DTYPES[:-1])} or {FLOAT_DTYPES[-1]}")
    return getattr(torch, name)


def check_models(sizes, dtype_name, dev, torch):
    """Refuse a parameter count of ``sizes`` beyond the largest built-in model, or whose model does not fit in
    the free memory of ``dev`` in ``dtype_name``."""
    from .models import LlamaConfig

    element_size = float_dtype(dtype_name, torch).itemsize
    for n in sizes:
        check_memory(model_config(n, LlamaConfig), element_size, dtype_name, dev, torch)


def check_free(nbytes, what, dev, torch, hint=None):
    """Refuse work that needs ``nbytes`` on ``dev`` when less is free (``what``: the work, as the message
    starts; ``hint(free bytes)``: what to try instead, or None)."""
    free = free_bytes(dev, torch)
    if free is None or nbytes <= free:
        return
    where = "this machine has" if dev.type == "cpu" else f"{dev} has"
    hint = hint and hint(free)
    raise UsageError(f"{what} need {gb(nbytes)}, and {where} {gb(free)} free" + (f": {hint}" if hint else ""))


def check_memory(cfg, element_size, dtype_name, dev, torch):
    """Refuse a model whose parameters, about ``PEAK_FACTOR`` times over, exceed the free memory of ``dev``."""
    free = free_bytes(dev, torch)
    nbytes = cfg.n_params * element_size
    if free is None or nbytes * PEAK_FACTOR <= free:
        return
    fitting = _fitting_size(int(free / PEAK_FACTOR / element_size), cfg)
    hint = f"try --params {fitting}" if fitting else "even the smallest built-in model does not fit"
    where = "this machine has" if dev.type == "cpu" else f"{dev} has"
    raise UsageError(f"{article(cfg.n_params)} {count(cfg.n_params)}-parameter model takes {gb(nbytes)} in "
                     f"{dtype_name}, about {gb(nbytes * PEAK_FACTOR)} with torch's own build for the comparison, "
                     f"and {where} {gb(free)} free: {hint}")


def _fitting_size(limit, cfg):
    """The largest --params text whose built-in model (the one nearest to it) has at most ``limit`` parameters,
    or None when even the smallest one has more."""
    n = limit
    while n >= MIN_PARAMS:
        text = count(n)
        model = cfg.with_params(parse_size(text)).n_params
        if model <= limit:
            return text
        n = min(n, model) * 0.99  # a smaller text, past the model that was too large
    return None


def gpu_sizes(argv, sizes, dev, torch):
    """bench/gpu.py's --dtypes and --sizes: floating-point dtypes, buffers that fit in free memory."""
    dtypes = [float_dtype(name, torch, "--dtypes") for name in option(argv, "--dtypes", many=True) or []]
    element_size = max([4, *(d.itemsize for d in dtypes)])
    n = max(sizes or ([2**24] if "--quick" in argv else [2**28, 2**30]))  # bench/gpu.py's defaults

    def hint(free):
        fits = free // (GPU_BUFFERS * element_size)
        return f"try --sizes {1 << (fits.bit_length() - 1)} or less" if fits else None

    check_free(GPU_BUFFERS * element_size * n, f"--sizes {n}: {GPU_BUFFERS} buffers of {n:,} elements of "
               f"{element_size} bytes", dev, torch, hint)


def free_bytes(dev, torch):
    """Bytes that can still be allocated on ``dev`` (on the CPU the tighter of the system's and the cgroup's
    memory and of the address space ``ulimit -v`` leaves), or None when it cannot be told. A process that has
    not started CUDA asks a short-lived one, so that it does not hold a CUDA context (and its memory) while
    the work it checked runs elsewhere."""
    if dev.type == "cuda":
        if not torch.cuda.is_initialized():
            with contextlib.suppress(OSError, ValueError, IndexError, subprocess.SubprocessError):
                r = subprocess.run([sys.executable, "-c", _CUDA_FREE, str(dev)], capture_output=True, text=True,
                                   timeout=300, check=True)
                return int(r.stdout.split()[-1])
        return torch.cuda.mem_get_info(dev)[0]
    free = []
    with contextlib.suppress(OSError, ValueError, AttributeError):
        meminfo = Path("/proc/meminfo").read_text()
        free.append(int(re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.MULTILINE).group(1)) * 1024)
    if not free:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            free.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
    with contextlib.suppress(ImportError, OSError, ValueError, AttributeError):  # ulimit -v: address space left
        import resource

        limit = resource.getrlimit(resource.RLIMIT_AS)[0]
        if limit != resource.RLIM_INFINITY:
            status = Path("/proc/self/status").read_text()
            free.append(limit - int(re.search(r"^VmSize:\s+(\d+) kB", status, re.MULTILINE).group(1)) * 1024)
    root = Path("/sys/fs/cgroup")
    for limit, usage in (("memory.max", "memory.current"),
                         ("memory/memory.limit_in_bytes", "memory/memory.usage_in_bytes")):
        with contextlib.suppress(OSError, ValueError):  # "max": no limit
            free.append(int((root / limit).read_text()) - int((root / usage).read_text()))
    return min(free) if free else None


def writable_dir(path, flag, given=None):
    """Create directory ``path`` if needed and prove that a file can be written there (``given``: the value
    of ``flag`` on the command line, when ``path`` is the directory of the file it names)."""
    p = Path(path)
    where = f"{flag} {path}" if given is None else f"{flag} {given}: in {path}"
    if _kind(p, where) not in (None, "directory"):
        raise UsageError(f"{where}: is a file, not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p):
            pass
    except OSError as e:
        raise UsageError(f"{where}: cannot write there ({e.strerror or e})") from None


def results_file(text, name, flag="--out"):
    """Where a benchmark writes its JSON results: ``text`` itself when it ends in .json and is not a directory,
    else ``text/name`` in directory ``text`` (created if needed). An existing file is refused unless it ends
    in .json."""
    p = Path(text)
    kind = _kind(p, f"{flag} {text}")
    if text.endswith(".json") and kind != "directory":
        if kind not in (None, "file"):
            raise UsageError(f"{flag} {text}: is not a regular file")
        writable_dir(p.parent, flag, given=text)
        return p
    if kind not in (None, "directory"):
        raise UsageError(f"{flag} {text}: is a file, not a directory (a results file must end in .json)")
    writable_dir(p, flag)
    return p / name


def _kind(p, where):
    """"directory", "file", "other" or None (nothing there) at path ``p``. A path that cannot be looked up (a
    name too long, a file where a directory should be, a directory without search permission) is a UsageError
    (Path.exists raises some of these)."""
    try:
        mode = p.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as e:
        raise UsageError(f"{where}: cannot write there ({e.strerror or e})") from None
    return "directory" if stat.S_ISDIR(mode) else "file" if stat.S_ISREG(mode) else "other"


def option(argv, name, many=False):
    """The value of ``name`` in a script's arguments (``--out DIR`` or ``--out=DIR``), or None; ``many``: the
    list of values up to the next option."""
    for i, arg in enumerate(argv):
        if arg.startswith(name + "="):
            return [arg[len(name) + 1:]] if many else arg[len(name) + 1:]
        if arg == name:
            values = []
            for value in argv[i + 1:]:
                if value.startswith("--"):
                    break
                values.append(value)
            return values if many else (values[0] if values else None)
    return None


def parse_size(text):
    """A parameter count: 20M, 1.5B, 1e9, 100m, 2.5k, 1_000_000 (suffixes k, M, B or G, T; any case)."""
    m = re.fullmatch(r"\s*([0-9._eE+-]+?)\s*([kKmMbBgGtT]?)\s*", text)
    try:
        value = float(m.group(1)) * _SUFFIXES[m.group(2).lower()] if m else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a parameter count: write e.g. 20M, 1.5B, 1e9 or 2_000_000")
    if value < MIN_PARAMS:
        raise argparse.ArgumentTypeError(f"the model must have at least 1e5 parameters, got {text}")
    return int(value)


def gpu_model_params(text):
    """bench/gpu.py's --model-params: 0 (no model case) or a parameter count of at least 1e5, as a number."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if value != 0 and not (math.isfinite(value) and value >= MIN_PARAMS):
        raise argparse.ArgumentTypeError(f"0 (no model case) or a parameter count of at least 1e5 written as a "
                                         f"number such as 1e9, got {text!r}")
    return value


def int_range(lo, hi=None, hi_text=None):
    """An argparse type: an integer from ``lo`` to ``hi`` (no bound when None; ``hi_text``: how to write it)."""
    bounds = f">= {lo}" if hi is None else f"from {lo} to {hi_text or hi}"

    def parse(text):
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < lo or (hi is not None and value > hi):
            raise argparse.ArgumentTypeError(f"must be an integer {bounds}, got {text!r}")
        return value

    parse.__name__ = "integer"
    return parse


positive_int = int_range(1)
seed = int_range(0, 2**64 - 1, "2**64 - 1")


def out_path(text):
    """An argparse type for --out: any path but an empty one (which would mean the current directory)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a directory, got an empty string")
    return text


def count(n):
    """825B, 1.5M, 100K."""
    if n >= 1e15:
        return f"{n:.3g}"
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"


def gb(nbytes):
    return f"{nbytes / 1e9:,.1f} GB"


def article(n):
    """'an' before a number read with a vowel first (8, 11, 18, 80, 800, 11000, ...), else 'a'."""
    digits = str(n)
    lead = int(digits[: len(digits) % 3 or 3])
    return "an" if str(lead).startswith("8") or lead in (11, 18) else "a"
