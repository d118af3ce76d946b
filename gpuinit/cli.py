"""The ``gpuinit`` command: ``demo`` initializes the built-in model, ``info`` tells what runs here,
``explore`` draws the tutorial's experiments, ``bench`` runs the benchmarks.

A mistake in the command line or the environment (a bad option, a device or library that is not here,
a model that does not fit in memory, a directory that cannot be written) is one line on stderr and
exit status 2."""
import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from . import __version__, backends, config
from . import cli_checks as checks
from .cli_checks import UsageError
from .errors import InitError

BENCH = Path(__file__).resolve().parent.parent / "bench"
GPU_HINT = "TRITON_INTERPRET=1 gpuinit bench gpu --device cpu --sizes 65536 runs the kernels on the CPU"


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UsageError(f"{self.prog}: {message} (see {self.prog} --help)")


def demo(args):
    torch = checks.require("torch", "torch")
    from rich.console import Console

    from . import modules
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
    with torch.device("meta"):
        model = Llama(cfg).to(dtype)
    console.print(f"gpuinit {__version__}: {checks.article(cfg.n_layers)} {cfg.n_layers}-layer Llama-style model, "
                  f"{cfg.n_params / 1e6:,.0f}M parameters{nearest}, {args.dtype}, recipe [bold]{args.recipe}[/], "
                  f"seed {args.seed}, on {device}")
    cpu_kernel.load()  # compile or load the host kernel before timing
    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    with checks.env(backends.ENV_VAR, args.backend):
        t0 = time.perf_counter()
        modules.init_module(model, args.recipe, seed=args.seed, device=device, progress=False)
        sync()
        total = time.perf_counter() - t0
        table = _table(model, args.recipe, args.seed, sync, torch)
    console.print(table)
    gb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e9
    console.print(f"gpuinit: meta -> ready model in {total:.3f} s ({gb / total:.2f} GB/s)")
    del model
    base = _torch_default_init(Llama, cfg, dtype, device, sync, torch)
    ratio = f"{base / total:.1f}x faster" if base >= total else f"{total / base:.1f}x slower"
    console.print(f"torch's default init of the same model on {device}: {base:.3f} s, gpuinit [bold]{ratio}[/]")
    return 0


def _table(model, recipe, seed, sync, torch):
    """Per parameter group: scheme, expected and measured std, min, max, and the time of a second fill."""
    from rich.table import Table

    from . import draws, modules, schemes

    table = Table(title="parameters (per layer where repeated)")
    for col in ("parameter", "shape", "scheme", "std expected", "std measured", "min", "max", "fill ms", "GB/s"):
        table.add_column(col, justify="left" if col in ("parameter", "scheme") else "right")
    groups = {}
    for fqn, t, spec, _ in modules.plan_module(model, recipe):
        groups.setdefault(fqn.split(".", 2)[-1] if fqn.startswith("layers.") else fqn, []).append((fqn, t, spec))
    for name, members in groups.items():
        t_fill = _refill([m for _, m, _ in members], [s for *_, s in members], [f for f, *_ in members], seed, sync)
        values = torch.cat([m.detach().flatten().float() for _, m, _ in members])
        scheme, params = members[0][2]
        draw = schemes.plan(scheme, schemes.Layout.of(tuple(members[0][1].shape)), params)
        expected, constant = draws.expected_std(draw), draw.kind == "constant"
        nbytes = sum(m.numel() * m.element_size() for _, m, _ in members)
        table.add_row(name, "x".join(map(str, members[0][1].shape)), scheme,
                      "-" if expected is None or constant else f"{expected:.5f}",
                      "-" if constant else f"{values.std().item():.5f}", f"{values.min().item():.4f}",
                      f"{values.max().item():.4f}", f"{t_fill * 1e3:.1f}", f"{nbytes / t_fill / 1e9:.2f}")
        del values
    return table


def _torch_default_init(llama, cfg, dtype, device, sync, torch):
    """Seconds torch takes to build the model on ``device`` with each layer's own initialization."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        t0 = time.perf_counter()
        with torch.device(device):
            llama(cfg)
        sync()
        return time.perf_counter() - t0
    finally:
        torch.set_default_dtype(previous)


def _refill(tensors, specs, names, seed, sync):
    """Time a second fill of a group of parameters in place (the same values: same seed and names)."""
    from .api import init_
    from .distributed import stream_of

    sync()
    t0 = time.perf_counter()
    for t, (scheme, params), fqn in zip(tensors, specs, names):
        init_(t.data, scheme, seed=seed, stream=stream_of(fqn), **params)
    sync()
    return time.perf_counter() - t0


def info(args):
    import numpy as np

    from .backends import cpu_kernel

    print(f"gpuinit {__version__} on Python {platform.python_version()} ({platform.machine()}, "
          f"{os.cpu_count()} CPUs), numpy {np.__version__}")
    for name in backends._MODULES:
        try:
            backends.load(name)
            print(f"  backend {name}: available")
        except backends.BackendUnavailableError as e:
            print(f"  backend {name}: unavailable ({e})")
    try:
        config.check(backends._MODULES)
    except InitError as e:
        print(f"  environment: {e}")
    try:
        why = cpu_kernel.why_not()
    except InitError as e:
        why = str(e)
    print(f"  host C kernel: {'compiled, in use' if why is None else 'not in use: ' + why}")
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
    checks.require("torch", "torch")
    checks.require("matplotlib", "plot")
    checks.writable_dir(args.out, "--out")
    from .explore import run

    t0 = time.perf_counter()
    run(args.out, quick=args.quick)
    print(f"wrote {Path(args.out) / 'report.md'} and its figures in {time.perf_counter() - t0:.1f} s")
    return 0


def bench(args):
    script = BENCH / f"{args.which}.py"
    if not script.exists():
        raise UsageError(f"{script} is not here (the benchmarks ship with the source tree)")
    torch = checks.require("torch", "torch")
    gpu = args.which == "gpu"
    device = checks.device(checks.option(args.rest, "--device") or ("cuda" if gpu else "cpu"), torch,
                           GPU_HINT if gpu else "use --device cpu")
    if gpu:
        if device.type != "cuda" and os.environ.get("TRITON_INTERPRET") != "1":
            raise UsageError(f"on the CPU, bench gpu runs the Triton kernels on Triton's interpreter: {GPU_HINT}")
        backends.load("triton")
    if args.which == "model":
        _check_model_sizes(args.rest, device, torch)
    out = checks.option(args.rest, "--out")
    if out is not None:
        if args.which == "cpu" and not Path(out).is_dir() and not out.endswith(("/", os.sep)):  # a file
            checks.writable_dir(Path(out).parent, "--out", given=out)
        else:
            checks.writable_dir(out, "--out")
    return subprocess.call([sys.executable, str(script), *args.rest])


def _check_model_sizes(argv, device, torch):
    """bench/model.py's --params and --dtype: sizes it can build, models that fit in memory."""
    from .models import LlamaConfig

    dtype = checks.option(argv, "--dtype") or "float32"
    if not isinstance(getattr(torch, dtype, None), torch.dtype) or not getattr(torch, dtype).is_floating_point:
        raise UsageError(f"--dtype {dtype}: use float32, bfloat16, float16 or float64")
    for text in checks.option(argv, "--params", many=True) or ["1e8"]:
        try:
            n = checks.parse_size(text)
        except argparse.ArgumentTypeError as e:
            raise UsageError(f"--params: {e}") from None
        checks.check_memory(checks.model_config(n, LlamaConfig), getattr(torch, dtype).itemsize, dtype, device, torch)


def main(argv=None):
    from .modules import RECIPES

    parser = _Parser(prog="gpuinit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="initialize the built-in Llama-style model and report what was written")
    d.add_argument("--params", type=checks.parse_size, default=None,
                   help="model size, e.g. 20M, 1.5B, 1e9 (default: 100M on CPU, 1B on GPU)")
    d.add_argument("--recipe", choices=list(RECIPES), default="torch")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--backend", choices=list(backends._MODULES), default=None)
    d.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when available)")
    d.add_argument("--dtype", choices=["float32", "bfloat16", "float16", "float64"], default="float32")
    d.set_defaults(run=demo)
    i = sub.add_parser("info", help="backends available here and why not")
    i.set_defaults(run=info)
    e = sub.add_parser("explore", help="run the tutorial's experiments: figures and report.md in --out")
    e.add_argument("--out", required=True)
    e.add_argument("--quick", action="store_true", help="shorter runs")
    e.set_defaults(run=explore)
    b = sub.add_parser("bench", help="run bench/cpu.py, bench/gpu.py or bench/model.py (--out DIR saves results)")
    b.add_argument("which", choices=["cpu", "gpu", "model"])
    b.add_argument("rest", nargs=argparse.REMAINDER, help="options for the script")
    b.set_defaults(run=bench)
    args = None
    try:
        args = parser.parse_args(argv)
        return args.run(args)
    except (UsageError, InitError, backends.BackendUnavailableError, MemoryError) as e:
        message = str(e) or type(e).__name__
    except RuntimeError as e:  # torch.OutOfMemoryError: a model too large for what is free now
        if type(e).__name__ != "OutOfMemoryError":
            raise
        message = f"out of memory, try a smaller --params ({str(e).splitlines()[0][:200]})"
    except KeyboardInterrupt:
        message = "interrupted"
    message = " ".join(line.strip() for line in message.splitlines())
    print(message if args is None else f"gpuinit {args.command}: {message}", file=sys.stderr)
    return 130 if message == "interrupted" else 2


if __name__ == "__main__":
    sys.exit(main())
