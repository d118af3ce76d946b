"""The ``gpuinit`` command: ``demo`` initializes a built-in model's weights, ``info`` tells what runs here."""
import argparse
import math
import os
import platform
import sys
import time

import numpy as np

from . import __version__, backends, draws, schemes
from .api import init_
from .backends import cpu_kernel

# Recipes: (scheme, params) for a layer's weight by role. Biases and norms are deterministic.
RECIPES = {
    "torch": {"linear": ("kaiming_uniform", {"a": math.sqrt(5)}), "embedding": ("normal", {}),
              "residual": ("kaiming_uniform", {"a": math.sqrt(5)})},
    "gpt2": {"linear": ("normal", {"std": 0.02}), "embedding": ("normal", {"std": 0.02}),
             "residual": ("normal", {"std": 0.02})},  # residual std divided by sqrt(2 * layers) below
    "xavier": {"linear": ("glorot_uniform", {}), "embedding": ("glorot_uniform", {}),
               "residual": ("glorot_uniform", {})},
    "he": {"linear": ("he_normal", {}), "embedding": ("he_normal", {}), "residual": ("he_normal", {})},
    "lecun": {"linear": ("lecun_normal", {}), "embedding": ("lecun_normal", {}), "residual": ("lecun_normal", {})},
}


def model_shapes(params):
    """(name, shape, role) of a Llama-style model with about ``params`` parameters."""
    vocab = 32000

    def size(d):  # d / 64 layers of width d (GPT-2 small: 12 x 768), SwiGLU width 8d/3
        ffn = int(8 * d / 3 // 64 * 64)
        return d, ffn, max(1, d // 64), 2 * vocab * d + max(1, d // 64) * (4 * d * d + 3 * ffn * d + 2 * d) + d

    d, ffn, layers, _ = min((size(64 * k) for k in range(1, 256)), key=lambda t: abs(t[3] - params))
    out = [("tok_embeddings.weight", (vocab, d), "embedding")]
    for i in range(layers):
        p = f"layers.{i}."
        out += [(p + f"attention.w{x}.weight", (d, d), "linear") for x in "qkv"]
        out += [(p + "attention.wo.weight", (d, d), "residual"), (p + "feed_forward.w1.weight", (ffn, d), "linear"),
                (p + "feed_forward.w3.weight", (ffn, d), "linear"),
                (p + "feed_forward.w2.weight", (d, ffn), "residual"),
                (p + "attention_norm.weight", (d,), "norm"), (p + "ffn_norm.weight", (d,), "norm")]
    out += [("norm.weight", (d,), "norm"), ("output.weight", (vocab, d), "linear")]
    return out, layers


def _group(name):
    return name.split(".", 2)[-1] if name.startswith("layers.") else name


def demo(args):
    shapes, layers = model_shapes(args.params)
    recipe = RECIPES[args.recipe]
    total = sum(math.prod(s) for _, s, _ in shapes)
    empty, dtype_name = _allocator(args.dtype)
    print(f"gpuinit {__version__}: a {layers}-layer Llama-style model, {total / 1e6:.1f}M parameters, {dtype_name}, "
          f"recipe {args.recipe!r}, seed {args.seed}, backend {args.backend or 'auto'}")
    groups = {}
    cpu_kernel.load()  # compile or load the host kernel before timing
    t_all = time.perf_counter()
    for stream, (name, shape, role) in enumerate(shapes):
        if role == "norm":
            scheme, params = "ones", {}
        else:
            scheme, params = recipe[role]
            if args.recipe == "gpt2" and role == "residual":
                params = {"std": 0.02 / math.sqrt(2 * layers)}
        array = empty(shape)
        t0 = time.perf_counter()
        init_(array, scheme, seed=args.seed, stream=stream, backend=args.backend, **params)
        dt = time.perf_counter() - t0
        expected = draws.expected_std(schemes.plan(scheme, schemes.Layout.of(shape), params))
        values = np.asarray(array.float() if hasattr(array, "float") else array, dtype=np.float64)
        g = groups.setdefault(_group(name), {"shape": shape, "scheme": scheme, "n": 0, "time": 0.0, "bytes": 0,
                                             "expected": expected, "sq": 0.0, "sum": 0.0, "min": np.inf,
                                             "max": -np.inf})
        g["n"] += values.size
        g["time"] += dt
        g["bytes"] += values.size * array_itemsize(array)
        g["sum"] += values.sum()
        g["sq"] += (values * values).sum()
        g["min"], g["max"] = min(g["min"], values.min()), max(g["max"], values.max())
    t_all = time.perf_counter() - t_all
    _print_table(groups)
    fill_time = sum(g["time"] for g in groups.values())
    print(f"\nfilled {total / 1e6:.1f}M parameters in {fill_time:.3f} s ({total / fill_time / 1e6:.0f} Melem/s); "
          f"demo total {t_all:.2f} s")
    base = _torch_default_time(shapes, args.dtype)
    if base is not None:
        print(f"torch.nn.init with the layers' defaults on the same shapes: {base:.3f} s "
              f"({base / fill_time:.1f}x gpuinit's time)")
    return 0


def array_itemsize(array):
    return array.element_size() if hasattr(array, "element_size") else array.itemsize


def _allocator(dtype):
    if dtype == "bfloat16":
        try:
            import torch
        except ImportError:
            raise SystemExit("gpuinit demo: --dtype bfloat16 needs torch (pip install 'gpuinit[torch]')") from None
        return (lambda shape: torch.empty(shape, dtype=torch.bfloat16)), "bfloat16"
    return (lambda shape: np.empty(shape, dtype)), dtype


def _torch_default_time(shapes, dtype):
    try:
        import torch
    except ImportError:
        return None
    tdtype = getattr(torch, dtype)
    t0 = time.perf_counter()
    for _, shape, role in shapes:
        t = torch.empty(shape, dtype=tdtype)
        if role == "norm":
            torch.nn.init.ones_(t)
        elif role == "embedding":
            torch.nn.init.normal_(t)
        else:
            torch.nn.init.kaiming_uniform_(t, a=math.sqrt(5))
    return time.perf_counter() - t0


def _print_table(groups):
    head = f"{'parameter (per layer)':<28} {'shape':>14} {'scheme':>16} {'std expected':>13} {'std measured':>13} " \
           f"{'min':>9} {'max':>9} {'time s':>8} {'GB/s':>7}"
    print(head)
    print("-" * len(head))
    for name, g in groups.items():
        mean = g["sum"] / g["n"]
        std = math.sqrt(max(0.0, g["sq"] / g["n"] - mean * mean))
        exp = "-" if g["expected"] is None else f"{g['expected']:.5f}"
        gbs = g["bytes"] / g["time"] / 1e9 if g["time"] > 0 else float("inf")
        print(f"{name:<28} {g['shape']!s:>14} {g['scheme']:>16} {exp:>13} {std:>13.5f} {g['min']:>9.4f} "
              f"{g['max']:>9.4f} {g['time']:>8.4f} {gbs:>7.2f}")


def info(args):
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
            extra = f", CUDA {'available' if m.cuda.is_available() else 'not available'}" if mod == "torch" else ""
            print(f"  {mod} {m.__version__}{extra}")
        except Exception as e:  # noqa: BLE001 - report any import failure as such
            print(f"  {mod}: not importable ({type(e).__name__}: {e})")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="gpuinit", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="initialize a built-in Llama-style model and report what was written")
    d.add_argument("--params", type=_positive_int, default=100_000_000, help="model size (default 100M)")
    d.add_argument("--recipe", choices=sorted(RECIPES), default="torch")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--backend", choices=["numpy", "triton", "cupy"], default=None)
    d.add_argument("--dtype", choices=["float32", "bfloat16", "float16", "float64"], default="float32")
    d.set_defaults(run=demo)
    i = sub.add_parser("info", help="backends available here and why not")
    i.set_defaults(run=info)
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except backends.BackendUnavailableError as e:
        print(f"gpuinit {args.command}: {e}", file=sys.stderr)
        return 2


def _positive_int(text):
    value = int(float(text))
    if value < 1000:
        raise argparse.ArgumentTypeError(f"--params must be at least 1000, got {text}")
    return value


if __name__ == "__main__":
    sys.exit(main())
