"""The ``gpuinit`` command: ``demo`` initializes the built-in model, ``info`` tells what runs here,
``explore`` draws the tutorial's experiments, ``bench`` runs the benchmarks."""
import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

from . import __version__, backends

BENCH = Path(__file__).resolve().parent.parent / "bench"


def demo(args):
    import torch
    from rich.console import Console
    from rich.table import Table

    from . import draws, modules, schemes
    from .backends import cpu_kernel
    from .models import Llama, LlamaConfig

    if args.backend:
        os.environ[backends.ENV_VAR] = args.backend
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    n = args.params or (1e9 if device.startswith("cuda") else 1e8)
    dtype = getattr(torch, args.dtype)
    cfg = LlamaConfig.with_params(n)
    console = Console(width=None if sys.stdout.isatty() else 132)
    with torch.device("meta"):
        model = Llama(cfg).to(dtype)
    console.print(f"gpuinit {__version__}: a {cfg.n_layers}-layer Llama-style model, {cfg.n_params / 1e6:,.0f}M "
                  f"parameters, {args.dtype}, recipe [bold]{args.recipe}[/], seed {args.seed}, on {device}")
    cpu_kernel.load()  # compile or load the host kernel before timing
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    t0 = time.perf_counter()
    modules.init_module(model, args.recipe, seed=args.seed, device=device, progress=False)
    sync()
    total = time.perf_counter() - t0
    table = Table(title="parameters (per layer where repeated)")
    for col in ("parameter", "shape", "scheme", "std expected", "std measured", "min", "max", "fill ms", "GB/s"):
        table.add_column(col, justify="left" if col in ("parameter", "scheme") else "right")
    groups = {}
    for fqn, t, spec, _ in modules.plan_module(model, args.recipe):
        groups.setdefault(fqn.split(".", 2)[-1] if fqn.startswith("layers.") else fqn, []).append((fqn, t, spec))
    for name, members in groups.items():
        t_fill = _refill([m for _, m, _ in members], [s for *_, s in members], [f for f, *_ in members], args.seed,
                         sync)
        values = torch.cat([m.detach().flatten().float() for _, m, _ in members])
        scheme, params = members[0][2]
        expected = draws.expected_std(schemes.plan(scheme, schemes.Layout.of(tuple(members[0][1].shape)), params))
        nbytes = sum(m.numel() * m.element_size() for _, m, _ in members)
        table.add_row(name, "x".join(map(str, members[0][1].shape)), scheme,
                      "-" if expected is None else f"{expected:.5f}", f"{values.std().item():.5f}",
                      f"{values.min().item():.4f}", f"{values.max().item():.4f}", f"{t_fill * 1e3:.1f}",
                      f"{nbytes / t_fill / 1e9:.2f}")
    console.print(table)
    gb = sum(p.numel() * p.element_size() for p in model.parameters()) / 1e9
    console.print(f"gpuinit: meta -> ready model in {total:.3f} s ({gb / total:.2f} GB/s)")
    del model
    torch.set_default_dtype(dtype)
    t0 = time.perf_counter()
    with torch.device(device):
        Llama(cfg)
    sync()
    base = time.perf_counter() - t0
    torch.set_default_dtype(torch.float32)
    console.print(f"torch default init of the same model on {device}: {base:.3f} s "
                  f"([bold]{base / total:.1f}x[/] gpuinit's time)")
    return 0


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
    why = cpu_kernel.why_not()
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
    from .explore import run

    t0 = time.perf_counter()
    run(args.out, quick=args.quick)
    print(f"wrote {Path(args.out) / 'report.md'} and its figures in {time.perf_counter() - t0:.1f} s")
    return 0


def bench(args):
    script = BENCH / f"{args.which}.py"
    if not script.exists():
        print(f"gpuinit bench: {script} is not here (the benchmarks ship with the source tree)", file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, str(script), *args.rest])


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gpuinit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="initialize the built-in Llama-style model and report what was written")
    d.add_argument("--params", type=_size, default=None, help="model size, e.g. 1e8 (default: 100M on CPU, 1B on GPU)")
    d.add_argument("--recipe", choices=["torch", "gpt2", "xavier", "he", "lecun"], default="torch")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--backend", choices=["numpy", "triton", "cupy"], default=None)
    d.add_argument("--device", default=None, help="cpu, cuda (default: cuda when available)")
    d.add_argument("--dtype", choices=["float32", "bfloat16", "float16", "float64"], default="float32")
    d.set_defaults(run=demo)
    i = sub.add_parser("info", help="backends available here and why not")
    i.set_defaults(run=info)
    e = sub.add_parser("explore", help="run the tutorial's experiments: figures and report.md in --out")
    e.add_argument("--out", required=True)
    e.add_argument("--quick", action="store_true", help="shorter runs")
    e.set_defaults(run=explore)
    b = sub.add_parser("bench", help="run bench/cpu.py, bench/gpu.py or bench/model.py")
    b.add_argument("which", choices=["cpu", "gpu", "model"])
    b.add_argument("rest", nargs=argparse.REMAINDER, help="options for the script")
    b.set_defaults(run=bench)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (backends.BackendUnavailableError, ValueError, RuntimeError) as e:
        print(f"gpuinit {args.command}: {e}", file=sys.stderr)
        return 2


def _size(text):
    value = int(float(text))
    if value < 100_000:
        raise argparse.ArgumentTypeError(f"--params must be at least 1e5, got {text}")
    return value



if __name__ == "__main__":
    sys.exit(main())
