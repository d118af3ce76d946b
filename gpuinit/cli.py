"""The ``gpuinit`` command: ``demo`` initializes the built-in model, ``info`` tells what runs here,
``explore`` draws the tutorial's experiments, ``bench`` runs the benchmarks.

A mistake in the command line or the environment (a bad option, a device or library that is not here,
a model that does not fit in memory, a directory that cannot be written, a full disk) is one line on stderr
and exit status 2; a reader that has gone (gpuinit info | head -1) ends the command quietly, status 141."""
import argparse
import contextlib
import errno
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

from . import __version__, backends, cli_save, config
from . import cli_checks as checks
from .cli_checks import UsageError
from .errors import InitError
from .explore.plots import DPI


def _bench_folder():
    """Where the benchmark scripts are: gpuinit/bench in an installed wheel (setup.py copies them there), else the
    source tree's bench/ (a checkout, an editable install); None when neither holds them."""
    package = Path(__file__).resolve().parent
    return next((d for d in (package / "bench", package.parent / "bench") if (d / "gpuinit_bench").is_dir()), None)


BENCH = _bench_folder()
GPU_HINT = "TRITON_INTERPRET=1 gpuinit bench gpu --device cpu --sizes 65536 runs the kernels on the CPU"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")

    def _print_message(self, message, file=None):  # argparse's drops an OSError: --help > /dev/full would exit 0
        if message:
            (file or sys.stderr).write(message)


NOT_FOR_DEMO = {"hf": "recipe 'hf' needs a Hugging Face model; the built-in model is not one",
                "own": "the demo's table lists each layer's recipe; recipe 'own' runs the model's own code instead"}


def _demo_recipes():
    """The recipes of gpuinit.recipes that the demo takes: all but NOT_FOR_DEMO's."""
    from .model_init import OWN_RECIPES, RECIPES

    return [r for r in (*RECIPES, *OWN_RECIPES) if r not in NOT_FOR_DEMO]


def _demo_recipe(text):
    """The demo's --recipe: a recipe that applies to the built-in model."""
    if text in NOT_FOR_DEMO:
        raise argparse.ArgumentTypeError(NOT_FOR_DEMO[text])
    return text


def demo(args):
    torch = checks.require("torch", "torch")
    from rich.console import Console

    from . import init_module
    from .backends import cpu_kernel
    from .models import Llama, LlamaConfig

    device = checks.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"), torch)
    dtype = getattr(torch, args.dtype)
    probe = torch.empty(0, dtype=dtype, device=device)
    backends.select(probe, args.backend).check(probe)  # backend, device and dtype go together, or say why not
    n = args.params or (10**9 if device.type == "cuda" else 10**8)
    cfg = checks.model_config(n, LlamaConfig)
    checks.check_memory(cfg, probe.element_size(), args.dtype, device, torch)
    nearest = f" (the built-in size nearest to {checks.count(n)})" if abs(cfg.n_params / n - 1) > 0.25 else ""
    console = Console(width=None if sys.stdout.isatty() else 132)
    console.on_broken_pipe = _broken_pipe  # rich's exits with status 1: main's handler exits as other commands
    console.print(f"gpuinit {__version__}: {checks.article(cfg.n_layers)} {cfg.n_layers}-layer Llama-style model, "
                  f"{cfg.n_params / 1e6:,.0f}M parameters{nearest}, {args.dtype}, recipe [bold]{args.recipe}[/], "
                  f"seed {args.seed}, on {device}")
    t0 = time.perf_counter()
    cpu_kernel.load()  # load (or compile) the host kernel: reported apart from the fills
    kernel = time.perf_counter() - t0
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    first, steady, model = _runs(
        args.repeat, lambda: Llama(cfg, device="meta", dtype=dtype),  # built outside the timing
        lambda m: init_module(m, args.recipe, seed=args.seed, device=device, progress=False, backend=args.backend),
        sync)
    console.print(_table(model, args.recipe, args.seed, args.backend, sync, torch))
    gb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e9
    del model
    why = cpu_kernel.why_not()
    console.print(f"gpuinit: host C kernel ready in {_secs(kernel)} ({cpu_kernel.where()})"
                  if why is None else f"gpuinit: host C kernel not in use ({why})")
    console.print(f"gpuinit: meta -> ready model in {_steady(steady)}, {gb / min(steady):#.3g} GB/s; first call "
                  f"{_secs(first)} (compiles, first use)")
    base_first, base, _ = _runs(args.repeat, lambda: None, lambda _: Llama(cfg, device=device, dtype=dtype), sync)
    best, base_best = min(steady), min(base)
    ratio = f"{base_best / best:.1f}x faster" if base_best >= best else f"{best / base_best:.1f}x slower"
    console.print(f"torch's default init of the same model on {device}: {_steady(base)}; first call "
                  f"{_secs(base_first)}; gpuinit [bold]{ratio}[/]")
    return 0


def _broken_pipe():
    raise BrokenPipeError(errno.EPIPE, os.strerror(errno.EPIPE))


def _runs(repeat, setup, run, sync):
    """Time ``run(setup())`` once (the first call: compiles, caches, first use), then ``repeat`` more times, each
    on a fresh ``setup()`` made outside the timing: (first seconds, [seconds of each repeat], the last result).
    The previous result is released before each run, so at most one is alive."""
    times, out = [], None
    for _ in range(1 + repeat):
        arg = setup()
        out = None
        sync()
        t0 = time.perf_counter()
        out = run(arg)
        sync()
        times.append(time.perf_counter() - t0)
    return times[0], times[1:], out


def _secs(s):
    return f"{s:#.3g} s"


def _steady(times):
    """'X s (best of N; median Y s)'."""
    return f"{_secs(min(times))} (best of {len(times)}; median {_secs(statistics.median(times))})"


def _table(model, recipe, seed, backend, sync, torch):
    """Per parameter group: scheme, expected and measured std, min, max, and the time of a fill of it in place,
    after an untimed fill of its first tensor (on a GPU: the compile of the kernels a single tensor's fill
    launches, which init_module's grouped launches do not)."""
    from rich.table import Table

    from . import draws, schemes
    from .model_init import plan_module

    table = Table(title="parameters (per layer where repeated)")
    for col in ("parameter", "shape", "scheme", "std expected", "std measured", "min", "max", "fill ms", "GB/s"):
        table.add_column(col, justify="left" if col in ("parameter", "scheme") else "right")
    groups = {}
    for entry in plan_module(model, recipe):
        fqn = entry.fqn
        groups.setdefault(fqn.split(".", 2)[-1] if fqn.startswith("layers.") else fqn, []).append(entry)
    for name, members in groups.items():
        tensors, specs, names = [e.tensor for e in members], [e.spec for e in members], [e.fqn for e in members]
        _refill(tensors[:1], specs[:1], names[:1], seed, backend, sync)
        t_fill = _refill(tensors, specs, names, seed, backend, sync)
        values = torch.cat([e.tensor.detach().flatten().float() for e in members])
        scheme, params = members[0].spec
        draw = schemes.plan(scheme, schemes.Layout.of(tuple(members[0].tensor.shape)), params)
        expected, constant = draws.expected_std(draw), draw.kind == "constant"
        nbytes = sum(e.tensor.numel() * e.tensor.element_size() for e in members)
        table.add_row(name, "x".join(map(str, members[0].tensor.shape)), scheme,
                      "-" if expected is None or constant else f"{expected:.5f}",
                      "-" if constant else f"{values.std().item():.5f}", f"{values.min().item():.4f}",
                      f"{values.max().item():.4f}", f"{t_fill * 1e3:.1f}", f"{nbytes / t_fill / 1e9:.2f}")
        del values
    return table


def _refill(tensors, specs, names, seed, backend, sync):
    """Time a fill of a group of parameters in place (the same values again: same seed and names)."""
    from .api import init_
    from .distributed import stream_of

    sync()
    t0 = time.perf_counter()
    for t, (scheme, params), fqn in zip(tensors, specs, names, strict=True):
        init_(t.data, scheme, seed=seed, stream=stream_of(fqn), backend=backend, **params)
    sync()
    return time.perf_counter() - t0


def info(args):
    import numpy as np

    from .backends import cpu_kernel

    print(f"gpuinit {__version__} on Python {platform.python_version()} ({platform.machine()}, "
          f"{config.usable_cpus()} of {os.cpu_count()} CPUs usable), numpy {np.__version__}")
    for name in backends.names():
        try:
            backends.load(name)
            print(f"  backend {name}: available")
        except backends.BackendUnavailableError as e:
            print(f"  backend {name}: unavailable ({e})")
    for name in backends.available_backends():
        if name not in backends.names():
            print(f"  backend {name}: available (for torch tensors on devices without a gpuinit kernel)")
    try:
        config.check(backends.names())
    except InitError as e:
        print(f"  environment: {e}")
    try:
        why = cpu_kernel.why_not()
    except InitError as e:
        why = str(e)
    print(f"  host C kernel: {'in use, ' + str(cpu_kernel.where()) if why is None else 'not in use: ' + why}")
    for mod in ("torch", "triton", "cupy"):
        try:
            m = __import__(mod)
            extra = ""
            if mod == "torch":
                extra = f", CUDA device: {m.cuda.get_device_name()}" if m.cuda.is_available() else ", no CUDA device"
            print(f"  {mod} {m.__version__}{extra}")
        except Exception as e:  # noqa: BLE001 - report any import failure as such
            print(f"  {mod}: not importable ({type(e).__name__}: {e})")
    return 0


def explore(args):
    checks.installed("torch", "torch")  # explore imports it while matplotlib loads in its drawing process
    checks.installed("matplotlib", "plot")
    checks.writable_dir(args.out, "--out")
    from .explore import run

    t0 = time.perf_counter()
    run(args.out, quick=args.quick, progress=lambda msg: print(msg, file=sys.stderr, flush=True),
        formats=tuple(dict.fromkeys(args.format)), dpi=args.dpi)
    print(f"wrote {Path(args.out) / 'report.md'} and its figures in {time.perf_counter() - t0:.1f} s")
    return 0


BENCH_OPTIONS = {  # the options of each script that are checked before it starts: flag, type, several values
    "cpu": (("--size", checks.positive_int, False), ("--repeat", checks.positive_int, False),
            ("--threads", checks.int_range(1, 1024), False)),
    "gpu": (("--sizes", checks.positive_int, True), ("--repeat", checks.positive_int, False),
            ("--seed", checks.seed, False), ("--model-params", checks.gpu_model_params, False)),
    "model": (("--params", checks.parse_size, True), ("--repeat", checks.positive_int, False)),
    "kernels": (("--jobs", checks.positive_int, False),),
    "host": (("--layers", checks.positive_int, False), ("--width", checks.positive_int, False),
             ("--llama", checks.parse_size, False), ("--repeat", checks.positive_int, False),
             ("--calls", checks.positive_int, False)),
    "explore": (("--repeat", checks.positive_int, False), ("--busy", checks.int_range(0, 64), False)),
}
OUT = ("--out", checks.out_path, False)  # every script's
SCRIPTS = {"kernels": "kernel_cost.py"}  # a command whose script has another name (bench/kernels.py would be `kernels`)


def bench(args):
    where = "they come with gpuinit's source tree (bench/) and a wheel built from it (pip wheel --no-deps . -w dist)"
    if BENCH is None:
        raise UsageError(f"this installation of gpuinit holds no benchmarks: {where}")
    script = BENCH / SCRIPTS.get(args.which, f"{args.which}.py")
    if not script.exists():
        raise UsageError(f"{script} is not here: {where}")
    torch = None if args.which == "kernels" else checks.require("torch", "torch")
    if "-h" in args.rest or "--help" in args.rest:
        return _run_script(script, args.rest)
    values = {}
    for flag, parse, many in (*BENCH_OPTIONS[args.which], OUT):
        texts = checks.option(args.rest, flag, many=True) or []
        try:
            values[flag] = [parse(text) for text in (texts if many else texts[:1])]
        except argparse.ArgumentTypeError as e:
            raise UsageError(f"{flag}: {e}") from None
    out = values["--out"][0] if values["--out"] else None
    if args.which != "kernels":
        gpu = args.which == "gpu"
        device = checks.device(checks.option(args.rest, "--device") or ("cuda" if gpu else "cpu"), torch,
                               GPU_HINT if gpu else "use --device cpu")
    if args.which == "gpu":
        if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise UsageError(f"on the CPU, bench gpu runs the Triton kernels on Triton's interpreter: {GPU_HINT}")
        backends.load("triton")
        checks.gpu_sizes(args.rest, values["--sizes"], device, torch)
        if device.type == "cuda" and values["--model-params"] and values["--model-params"][0]:
            checks.check_models([int(values["--model-params"][0])], "bfloat16", device, torch)
    if args.which == "model":
        checks.check_models(values["--params"] or [10**8], checks.option(args.rest, "--dtype") or "float32", device,
                            torch)
    if out is not None:
        if args.which == "cpu":
            checks.results_file(out, "cpu.json")
        else:
            checks.writable_dir(out, "--out")
    return _run_script(script, args.rest)


def _run_script(script, argv):
    """Run a benchmark script, its stderr passed through as it comes (on a terminal, rich's progress bar: the script
    is told through rich's TTY_COMPATIBLE and COLUMNS); a mistake in its arguments (argparse's usage, then 'prog:
    error: message', exit status 2) is raised as one line. Its stdout is the command's, or, when that is no
    terminal (a pipe, a file: the script's is block-buffered either way), passed through too, so that a reader
    gone or a full disk ends the script and is reported here as for any command."""
    sys.stdout.flush()
    relay = False
    with contextlib.suppress(ValueError):  # a closed stdout: the script's own, as it is
        relay = not sys.stdout.isatty()
    env = dict(os.environ)
    with contextlib.suppress(ValueError):
        if sys.stderr.isatty():
            env.update(TTY_COMPATIBLE="1", COLUMNS=str(shutil.get_terminal_size().columns))
    with subprocess.Popen([sys.executable, str(script), *argv], stdout=subprocess.PIPE if relay else None,
                          stderr=subprocess.PIPE, env=env) as proc:
        failed = []
        if relay:
            # its own descriptor of the pipe: Popen closes its one on the way out, whether or not the copy is done
            thread = threading.Thread(target=_relay, args=(proc, os.dup(proc.stdout.fileno()), failed), daemon=True)
            thread.start()
        try:
            code = _pass_stderr(script, proc)
            if relay:
                thread.join()
            if failed:
                raise failed[0]
            return code
        except (KeyboardInterrupt, OSError):
            proc.kill()
            raise


def _relay(proc, fd, failed):
    """Copy the script's stdout (``fd``, closed here) to the command's as it comes; on a failed write, keep the
    error in ``failed`` and end the script (as SIGPIPE ends a Unix tool)."""
    try:
        while chunk := os.read(fd, 1 << 16):
            _write(sys.stdout, chunk)
    except OSError as e:
        failed.append(e)
        proc.kill()
    finally:
        os.close(fd)


def _write(stream, chunk):
    out = getattr(stream, "buffer", None)
    if out is None:
        stream.write(chunk.decode(errors="replace"))
    else:
        stream.flush()
        out.write(chunk)
    stream.flush()


def _pass_stderr(script, proc):
    """Pass the script's stderr through as it comes (a progress bar redraws its line without a newline); its exit
    status, or its usage error (the first line says 'usage:') as a UsageError."""
    first = proc.stderr.readline()
    if first.startswith(b"usage:"):
        text = (first + proc.stderr.read()).decode(errors="replace")
        code = proc.wait()
        if code == 2:
            message = re.sub(r"^\S+: error: ", "", text.strip().splitlines()[-1])
            raise UsageError(f"{message} (see gpuinit bench {script.stem} --help)")
        sys.stderr.write(text)
        return code
    chunk = first
    while chunk:
        _write(sys.stderr, chunk)
        chunk = proc.stderr.read1(1 << 16)
    return proc.wait()


def main(argv=None):
    parser = _Parser(prog="gpuinit", description=__doc__)
    parser.add_argument("--version", action="version", version=f"gpuinit {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="initialize the built-in Llama-style model and report what was written")
    d.add_argument("--params", type=checks.parse_size, default=None,
                   help="model size, e.g. 20M, 1.5B, 1e9 (default: 100M on CPU, 1B on GPU)")
    d.add_argument("--recipe", type=_demo_recipe, choices=_demo_recipes(), default="torch")
    d.add_argument("--seed", type=checks.seed, default=0, help="0 to 2**64 - 1 (default 0)")
    d.add_argument("--backend", choices=backends.names(), default=None,
                   help="the backend of every fill (default: by the tensors' device)")
    d.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    d.add_argument("--dtype", choices=["float32", "bfloat16", "float16", "float64"], default="float32")
    d.add_argument("--repeat", type=checks.positive_int, default=3,
                   help="timed runs of gpuinit's init and of torch's, each after a first run timed apart (compiles, "
                        "caches, first use); their best and median are reported (default 3)")
    d.set_defaults(run=demo)
    i = sub.add_parser("info", help="backends available here and why not")
    i.set_defaults(run=info)
    cli_save.add_parser(sub)
    e = sub.add_parser("explore", help="run the tutorial's experiments: figures and report.md in --out")
    e.add_argument("--out", type=checks.out_path, required=True)
    e.add_argument("--quick", action="store_true", help="shorter runs (fewer steps, seeds and samples)")
    e.add_argument("--format", nargs="+", choices=["png", "svg", "pdf"], default=["png"],
                   help="the figures' formats, one or more (default png; svg and pdf are vector formats)")
    e.add_argument("--dpi", type=checks.int_range(50, 1200), default=DPI,
                   help=f"the PNG figures' resolution in dots per inch (default {DPI}, a print resolution)")
    e.set_defaults(run=explore)
    listed = {"help": "run the benchmarks: cpu, gpu, model, host, kernels or explore (--out DIR saves results)"}
    b = sub.add_parser("bench", **(listed if BENCH else {}))  # unlisted where the scripts are not: bench says why
    b.add_argument("which", choices=list(BENCH_OPTIONS))
    b.add_argument("rest", nargs=argparse.REMAINDER, help="options for the script")
    b.set_defaults(run=bench)
    sub.metavar = "{" + ",".join(name for name in sub.choices if name != "bench" or BENCH) + "}"
    args = None
    try:
        try:
            args = parser.parse_args(argv)
        except SystemExit as e:  # --help, --version: printed
            sys.stdout.flush()
            return e.code
        code = args.run(args)
        sys.stdout.flush()  # here, where a failure is reported, not at the interpreter's exit
        return code
    except BrokenPipeError:  # the reader has gone (| head): stop without a word, as Unix tools do
        _discard_output(sys.stdout, sys.stderr)
        return 128 + signal.SIGPIPE
    except OSError as e:  # a full disk, a read-only or unwritable place for the output
        if e.errno not in OUTPUT_ERRORS:
            raise
        message = f"{e.strerror or e}: {e.filename}" if e.filename else f"cannot write the output ({e.strerror or e})"
        message = message if args is not None else f"gpuinit: {message}"
        _discard_output(sys.stdout)
    except (UsageError, InitError, backends.BackendUnavailableError, MemoryError) as e:
        message = str(e) or type(e).__name__
    except RuntimeError as e:  # torch.OutOfMemoryError: a model too large for what is free now
        if type(e).__name__ != "OutOfMemoryError":
            raise
        message = f"out of memory, try a smaller --params ({str(e).splitlines()[0][:200]})"
    except KeyboardInterrupt:
        message = "interrupted"
    message = " ".join(line.strip() for line in message.splitlines())
    with contextlib.suppress(OSError):  # stderr that cannot take it either: the exit status says it
        print(message if args is None else f"gpuinit {args.command}: {message}", file=sys.stderr)
    _discard_output(sys.stderr)
    return 130 if message == "interrupted" else 2


OUTPUT_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS, errno.EACCES, errno.EPERM,
                 errno.ENAMETOOLONG, errno.ENOTDIR, errno.EISDIR}


def _discard_output(*streams):
    """Point ``streams`` that cannot take what is left in their buffers at os.devnull, so that the flush at the
    interpreter's exit does not fail (and print a traceback) again."""
    for stream in streams:
        try:
            stream.flush()
        except (OSError, ValueError):
            with contextlib.suppress(OSError, ValueError):
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, stream.fileno())
                os.close(devnull)


if __name__ == "__main__":
    sys.exit(main())
