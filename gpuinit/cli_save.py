"""``gpuinit save``: an initialized checkpoint written by gpuinit.save_init from a model built on meta: a Hugging Face
``config.json`` (or a directory holding one), the built-in Llama of a size, or an importable factory."""
import importlib
import json
import os
import sys
import time

from .cli_checks import UsageError, parse_size

DTYPES = ("float32", "bfloat16", "float16")


def add_parser(sub):
    s = sub.add_parser("save", help="write an initialized checkpoint (safetensors or DCP) without building the model "
                                    "in memory")
    what = s.add_mutually_exclusive_group(required=True)
    what.add_argument("--config", help="a Hugging Face config.json, or a directory holding one")
    what.add_argument("--params", type=parse_size, help="the built-in Llama-style model of about this many parameters "
                                                         "(20M, 1.5B, 1e9)")
    what.add_argument("--factory", help="module:function returning a torch module (built on meta by gpuinit)")
    s.add_argument("--out", required=True, help="the directory to write")
    s.add_argument("--recipe", default=None, help="torch, gpt2, xavier, he, lecun, own or hf (default: hf for a "
                                                  "Hugging Face config, else torch)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--dtype", choices=DTYPES, default=None, help="the tensors' dtype (default: the config's, else "
                                                                  "float32)")
    s.add_argument("--format", choices=("safetensors", "dcp"), default="safetensors")
    s.add_argument("--max-shard-size", default="5GB")
    s.add_argument("--memory", default="256MiB", help="the most bytes of values held at once")
    s.add_argument("--workers", type=int, default=1, help="processes sharing the blocks")
    s.set_defaults(run=run)
    return s


def build(args):
    """(the meta module, its default recipe)."""
    import torch

    dtype = getattr(torch, args.dtype) if args.dtype else None
    with torch.device("meta"):
        if args.config:
            model, recipe = _hugging_face(args.config, dtype), "hf"
        elif args.params:
            from . import models

            model, recipe = models.Llama(models.LlamaConfig.with_params(args.params)), "torch"
        else:
            model, recipe = _factory(args.factory)(), "torch"
    if dtype is not None:
        model = model.to(dtype)
    return model, recipe


def _hugging_face(path, dtype):
    try:
        from transformers import AutoConfig, AutoModel, AutoModelForCausalLM
    except ImportError:
        raise UsageError("--config builds a Hugging Face model: pip install 'transformers>=4.45'") from None
    file = os.path.join(path, "config.json") if os.path.isdir(path) else path
    if not os.path.isfile(file):
        raise UsageError(f"--config {path}: no config.json there")
    try:
        with open(file) as f:
            values = json.load(f)
        if not isinstance(values, dict) or "model_type" not in values:
            raise ValueError("it names no model_type")
        config = AutoConfig.for_model(values.pop("model_type"), **values)
    except (OSError, ValueError, TypeError) as e:
        raise UsageError(f"--config {path}: {str(e).splitlines()[0][:300]}") from None
    kw = {"dtype": dtype} if dtype is not None else {}
    for auto in (AutoModelForCausalLM, AutoModel):
        try:
            return auto.from_config(config, **kw)
        except ValueError:
            continue
    raise UsageError(f"--config {path}: transformers builds no model of type {config.model_type!r}")


def _factory(text):
    module, _, name = text.partition(":")
    if not module or not name:
        raise UsageError(f"--factory {text!r}: write it as module:function")
    sys.path.insert(0, os.getcwd())
    try:
        fn = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as e:
        raise UsageError(f"--factory {text!r}: {e}") from None
    finally:
        sys.path.remove(os.getcwd())
    if not callable(fn):
        raise UsageError(f"--factory {text!r} is not callable")
    return fn


def run(args):
    import gpuinit

    model, default = build(args)
    n = sum(p.numel() for p in model.parameters())
    t = time.perf_counter()
    files = gpuinit.save_init(model, args.out, args.recipe or default, seed=args.seed, format=args.format,
                              max_shard_size=args.max_shard_size, memory=args.memory, workers=args.workers)
    seconds = time.perf_counter() - t
    size = sum(os.path.getsize(f) for f in files)
    print(f"gpuinit save: {n:,} parameters, recipe {args.recipe or default}, seed {args.seed}: {len(files)} files, "
          f"{size / 1e9:.2f} GB in {seconds:.1f} s ({size / 1e9 / max(seconds, 1e-9):.2f} GB/s) in {args.out}")
    return 0
