"""What the ``gpuinit`` command checks before it starts work: sizes, devices, free memory, optional
libraries, output directories. Each check raises UsageError, which the command reports as one line."""
import argparse
import contextlib
import importlib
import math
import os
import re
import tempfile
from pathlib import Path

MIN_PARAMS = 100_000
PEAK_FACTOR = 2.1  # the demo holds gpuinit's model while torch builds its own for the comparison
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
        raise UsageError(f"this needs {module}, which is not installed: pip install 'gpuinit[{extra}]'") from None


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


def check_memory(cfg, element_size, dtype_name, dev, torch):
    """Refuse a model whose parameters, about ``PEAK_FACTOR`` times over, exceed the free memory of ``dev``."""
    free = free_bytes(dev, torch)
    nbytes = cfg.n_params * element_size
    if free is None or nbytes * PEAK_FACTOR <= free:
        return
    fits = int(free / PEAK_FACTOR / element_size)
    hint = (f"try --params {count(fits)}" if fits >= cfg.with_params(0).n_params
            else "even the smallest built-in model does not fit")
    where = "this machine has" if dev.type == "cpu" else f"{dev} has"
    raise UsageError(f"{article(cfg.n_params)} {count(cfg.n_params)}-parameter model takes {gb(nbytes)} in "
                     f"{dtype_name}, about {gb(nbytes * PEAK_FACTOR)} with torch's own build for the comparison, "
                     f"and {where} {gb(free)} free: {hint}")


def free_bytes(dev, torch):
    """Bytes that can still be allocated on ``dev`` (on the CPU the tighter of the system's and the cgroup's
    memory), or None when it cannot be told."""
    if dev.type == "cuda":
        return torch.cuda.mem_get_info(dev)[0]
    free = []
    with contextlib.suppress(OSError, ValueError, AttributeError):
        meminfo = Path("/proc/meminfo").read_text()
        free.append(int(re.search(r"^MemAvailable:\s+(\d+) kB", meminfo, re.MULTILINE).group(1)) * 1024)
    if not free:
        with contextlib.suppress(OSError, ValueError, AttributeError):
            free.append(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
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
    if p.exists() and not p.is_dir():
        raise UsageError(f"{where}: is a file, not a directory")
    try:
        p.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=p):
            pass
    except OSError as e:
        raise UsageError(f"{where}: cannot write there ({e.strerror or e})") from None


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


@contextlib.contextmanager
def env(name, value):
    """Environment variable ``name`` set to ``value`` (when not None) for the block, then restored."""
    old = os.environ.get(name)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = old


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
