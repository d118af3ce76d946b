"""Host-path benchmark: what gpuinit costs on the host per call and per tensor, against torch, in one run.

- per call, on a 1-element tensor (and array): ``gpuinit.init_``, ``gpuinit.nn.init.normal_`` and an
  ``Initializer``'s call against ``Tensor.normal_`` and ``torch.nn.init.normal_``;
- per tensor, on a model of many small tensors (``--layers`` blocks of two LayerNorms and four Linears with
  biases, 12 tensors each): ``init_module`` in place by every recipe, ``own_init``, ``fingerprint``, and from
  the meta device, against torch's ``reset_parameters`` of every module (and meta + ``to_empty`` + it);
- per tensor on the same model, the host side of the Triton backend's launches up to the kernel call, the launch
  itself replaced by a counting stub in this process (gpuinit_bench/triton_host.py: no GPU needed):
  ``triton_backend.fill_group`` of the jobs ``init_module`` makes, ``fill`` of each job alone, and
  ``init_module(backend="triton")`` in place, against the same ``reset_parameters``; and a gpuinit Llama of
  ``--llama`` bfloat16 parameters built on meta, made ready on ``--device`` by ``init_module(backend="triton")``
  with the launches stubbed, against ``to_empty`` alone (the host side of a 1B model's meta -> ready);
- per tensor on small Hugging Face configs (GPT-2, Llama), when transformers is installed: recipe ``hf`` in
  place against the model's own ``init_weights``.

Times are the best of ``--repeat`` runs after a warm-up (per call: of 3 x ``--repeat`` batches of ``--calls`` calls),
on ``--device`` (cpu or cuda; CUDA work is synchronized); the cases of a family run in interleaved rounds, so
that each ratio compares runs made at about the same time.
Prints a table with gpuinit / torch ratios; ``--out DIR`` also writes DIR/host-<device>.json.

    python bench/host.py [--device cpu] [--layers 167] [--width 64] [--llama 1e9] [--repeat 5] [--out DIR]
"""
import argparse
import json
import os
import platform
import sys
import time

import numpy as np
import torch
from gpuinit_bench import triton_host
from gpuinit_bench.console import print_table, progress
from gpuinit_bench.small_tensors import reset_all, small_model

import gpuinit
from gpuinit import cli_checks as checks
from gpuinit import initializers


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--layers", type=int, default=167, help="blocks of the small-tensor model (12 tensors each)")
    p.add_argument("--width", type=int, default=64, help="the small-tensor model's width (default 64)")
    p.add_argument("--llama", type=checks.parse_size, default=10**9,
                   help="parameters of the Llama case, at least 1e5 (default 1B)")
    p.add_argument("--repeat", type=int, default=5, help="timed runs per measurement, best taken (default 5)")
    p.add_argument("--calls", type=int, default=500, help="calls per per-call timing (default 500)")
    p.add_argument("--out", default=None, help="directory for host-<device>.json")
    args = p.parse_args(argv)
    for name in ("layers", "width", "repeat", "calls"):
        if getattr(args, name) < 1:
            p.error(f"--{name}: must be an integer >= 1")
    return args


class Timer:
    def __init__(self, device, repeat):
        self.cuda = device.type == "cuda"
        self.repeat = repeat

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def best(self, fn, repeat=None):
        return self.interleaved({"": fn}, repeat)[""]

    def interleaved(self, cases, repeat=None):
        """{name: best seconds} of the callables in ``cases``, each warmed up once, then timed in rounds that run
        every case once in turn: a ratio of two cases compares runs made at about the same time (a shared
        machine's speed drifts by up to 2x in a minute)."""
        for fn in cases.values():
            fn()  # warm-up: compiles, caches, imports
        best = dict.fromkeys(cases, float("inf"))
        for _ in range(repeat or self.repeat):
            for name, fn in cases.items():
                self.sync()
                t = time.perf_counter()
                fn()
                self.sync()
                best[name] = min(best[name], time.perf_counter() - t)
        return best


def per_call(timer, device, calls):
    """Seconds per call on a 1-element tensor or array."""
    t = torch.empty(1, device=device)
    a = np.empty(1, np.float32)
    init = initializers.RandomNormal(seed=0)
    cases = {
        "gpuinit.init_(tensor, 'normal')": lambda: gpuinit.init_(t, "normal", seed=0),
        "gpuinit.init_(tensor, 'normal'), seed from torch's generator": lambda: gpuinit.init_(t, "normal"),
        "gpuinit.init_(ndarray, 'normal')": lambda: gpuinit.init_(a, "normal", seed=0),
        "gpuinit.nn.init.normal_(tensor)": lambda: gpuinit.nn.init.normal_(t),
        "gpuinit.initializers.RandomNormal()((1,))": lambda: init((1,)),
        "torch.nn.init.normal_(tensor)": lambda: torch.nn.init.normal_(t),
        "tensor.normal_()": lambda: t.normal_(),
    }
    batches = {name: (lambda fn=fn: [fn() for _ in range(calls)]) for name, fn in cases.items()}
    return {name: s / calls for name, s in timer.interleaved(batches, 3 * timer.repeat).items()}


def per_model(timer, device, width, layers):
    """Seconds for the whole small-tensor model, and its tensor count."""
    with torch.device(device):
        model = small_model(width, layers)
    n = sum(1 for _ in model.parameters())

    def from_meta(fill):
        def run():
            with torch.device("meta"):
                m = small_model(width, layers)
            fill(m)
        return run

    cases = {f"gpuinit.init_module(recipe={r!r}) in place": (lambda r=r: gpuinit.init_module(model, r, seed=0))
             for r in ("torch", "gpt2", "xavier", "he", "lecun", "own")}
    cases.update({
        "gpuinit.own_init in place": lambda: gpuinit.own_init(model, seed=0),
        "gpuinit.fingerprint": lambda: gpuinit.fingerprint(model),
        "meta -> gpuinit.init_module(device=...)": from_meta(lambda m: gpuinit.init_module(m, seed=0, device=device)),
        "torch reset_parameters in place": lambda: reset_all(model),
        "meta -> to_empty + reset_parameters": from_meta(lambda m: reset_all(m.to_empty(device=device))),
    })
    return n, timer.interleaved(cases)


def per_hf(timer, device):
    """{config: (tensors, {way: seconds})} for small Hugging Face models, or {} without transformers."""
    try:
        import transformers as tf
    except ImportError:
        print("  skipped: transformers is not installed", file=sys.stderr)
        return {}
    configs = {
        "gpt2 (12 layers, 256 wide)": lambda: tf.GPT2LMHeadModel(tf.GPT2Config(
            n_layer=12, n_embd=256, n_head=4, vocab_size=1000, n_positions=256, bos_token_id=0, eos_token_id=0)),
        "llama (12 layers, 256 wide)": lambda: tf.LlamaForCausalLM(tf.LlamaConfig(
            num_hidden_layers=12, hidden_size=256, intermediate_size=688, num_attention_heads=4,
            num_key_value_heads=2, vocab_size=1000)),
    }
    out = {}
    for name, build in configs.items():
        with torch.device(device):
            model = build()
        n = sum(1 for _ in model.parameters())

        def own(model=model):
            for x in [*model.modules(), *model.parameters(), *model.buffers()]:  # or it skips what it did before
                x.__dict__.pop("_is_hf_initialized", None)
            with torch.no_grad():
                model.init_weights()

        out[name] = (n, timer.interleaved({
            "gpuinit.init_module(recipe='hf') in place": lambda model=model: gpuinit.init_module(model, "hf", seed=0),
            "the model's init_weights": own}))
    return out


def table(calls, n, model, triton, llama, hf):
    base = calls["torch.nn.init.normal_(tensor)"]
    rows = [("per call", name, f"{s * 1e6:.1f} us",
             f"{s / base:.1f}x torch.nn.init" if name.startswith("gpuinit") else "") for name, s in calls.items()]
    refs = ("torch reset_parameters in place", "meta -> to_empty + reset_parameters")
    for name, s in model.items():
        meta = name.startswith("meta")
        against = model[refs[1] if meta else refs[0]]
        ratio = "" if name in refs else f"{s / against:.1f}x {'meta + ' if meta else ''}reset_parameters"
        rows.append((f"{n} small tensors", name, f"{s * 1e3:.1f} ms ({s / n * 1e6:.1f} us/tensor)", ratio))
    for name, s in triton["seconds"].items():
        k = triton["launches"][name]
        rows.append((f"{n} small tensors, {k} Triton launch{'es' * (k != 1)}", name,
                     f"{s * 1e3:.1f} ms ({triton['us_per_tensor'][name]:.1f} us/tensor)",
                     f"{triton['x_reset_parameters'][name]:.2f}x reset_parameters"))
    floor = llama["seconds"][triton_host.MODEL_CASES["floor"]]
    for name, s in llama["seconds"].items():
        k = llama["launches"]
        rows.append((f"Llama {llama['params'] / 1e6:.0f}M bf16, {llama['tensors']} tensors, "
                     f"{k} Triton launch{'es' * (k != 1)}", name, f"{s * 1e3:.1f} ms",
                     "" if s == floor else f"{(s - floor) * 1e3:.1f} ms more than to_empty"))
    for cfg, (k, ways) in hf.items():
        own = ways["the model's init_weights"]
        for name, s in ways.items():
            rows.append((f"{cfg}, {k} tensors", name, f"{s * 1e3:.1f} ms ({s / k * 1e6:.1f} us/tensor)",
                         "" if name.startswith("the model") else f"{s / own:.1f}x its own"))
    return rows


def main(argv=None):
    args = parse_args(argv)
    device = torch.device(args.device)
    timer = Timer(device, args.repeat)
    with progress(5, f"host bench on {device}") as step:
        step("per call")
        calls = per_call(timer, device, args.calls)
        step(f"a model of {12 * args.layers} small tensors")
        n, model = per_model(timer, device, args.width, args.layers)
        step("the Triton backend's host side, its launches stubbed")
        triton = triton_host.measure(timer, device, args.width, args.layers)
        step(f"a Llama of {args.llama:.3g} bfloat16 parameters from meta, its launches stubbed")
        llama = triton_host.measure_model(timer, device, args.llama)
        step("Hugging Face configs")
        hf = per_hf(timer, device)
    reset = model["torch reset_parameters in place"] / n  # per tensor, as the Triton case's
    triton["us_per_tensor"] = {k: s / triton["tensors"] * 1e6 for k, s in triton["seconds"].items()}
    triton["x_reset_parameters"] = {k: us / (reset * 1e6) for k, us in triton["us_per_tensor"].items()}
    rows = table(calls, n, model, triton, llama, hf)
    print_table(("case", "what", "time", "ratio"), rows, title=f"gpuinit host path on {device} (best of {args.repeat})",
                right=("time",))
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        path = os.path.join(args.out, f"host-{device.type}.json")
        meta = {"date": time.strftime("%Y-%m-%d"), "python": platform.python_version(), "torch": torch.__version__,
                "gpuinit": gpuinit.__version__, "cpus": os.cpu_count(), "device": str(device),
                "layers": args.layers, "width": args.width, "llama": args.llama, "repeat": args.repeat,
                "calls": args.calls}
        with open(path, "w") as f:
            json.dump({"meta": meta, "per_call_s": calls, "small_model": {"tensors": n, "seconds": model},
                       "triton_launch_stubbed": triton, "llama_launch_stubbed": llama,
                       "hf": {k: {"tensors": t, "seconds": w} for k, (t, w) in hf.items()},
                       "rows": rows}, f, indent=1)
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
