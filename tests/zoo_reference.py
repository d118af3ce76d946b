"""The models tests/test_zoo.py compares: the reference as its library initializes it, with the bounds its
init code asked for, and ours, built on the meta device and initialized by own-init."""
import functools
import inspect
import math
import sys

import torch
import zoo_worker
from torch.overrides import TorchFunctionMode
from zoo_worker import SEED, ZOO

import gpuinit

# ---- the reference, as its library initializes it, with the bounds its init code asked for -------------

def _key(t):
    return t.data_ptr(), tuple(t.shape), tuple(t.stride())


def _uniform_bound(func, a):
    """The bound of torch.nn.init's uniform fills, by torch's own formulas."""
    init = torch.nn.init
    if func is init.kaiming_uniform_:
        fan = init._calculate_correct_fan(a["tensor"], a["mode"])
        return init.calculate_gain(a["nonlinearity"], a["a"]) * math.sqrt(3.0 / fan)
    fan_in, fan_out = init._calculate_fan_in_and_fan_out(a["tensor"])
    return a["gain"] * math.sqrt(6.0 / (fan_in + fan_out))


class Bounds(TorchFunctionMode):
    """Records, while a reference is built, the last in-place fill of each tensor: torch.nn.init's uniform_,
    kaiming_uniform_, xavier_uniform_, trunc_normal_ (wrapped: torch's runs no function a mode sees) and
    Tensor.uniform_ bound it; any other in-place op lifts the bound; a clone keeps its source's. Tensors are kept
    alive, so that no address is reused."""

    def __init__(self):
        super().__init__()
        self.last, self.alive, self.saved = {}, [], []

    def record(self, t, bound):
        self.alive.append(t)
        self.last[_key(t)] = bound

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        name = getattr(func, "__name__", "")
        if func is torch.Tensor.clone and _key(args[0]) in self.last:  # deepcopy: nn.TransformerEncoder's layers
            self.record(out, self.last[_key(args[0])])
        if not name.endswith("_") or name.endswith("__"):
            return out
        init = torch.nn.init
        if getattr(init, name, None) is func:  # torch.nn.init.*: the function, not the methods it calls, is seen
            a = inspect.signature(func).bind(*args, **kwargs)
            a.apply_defaults()
            a, bound = a.arguments, None
            if func is init.uniform_:
                bound = ("uniform", float(a["a"]), float(a["b"]))
            elif func in (init.kaiming_uniform_, init.xavier_uniform_):
                b = _uniform_bound(func, a)
                bound = ("uniform", -b, b)
            self.record(a["tensor"], bound)
        elif args and isinstance(args[0], torch.Tensor):
            b = dict(zip(("from", "to"), args[1:], strict=False)) | kwargs
            self.record(args[0], ("uniform", float(b.get("from", 0.0)), float(b.get("to", 1.0)))
                        if func is torch.Tensor.uniform_ else None)
        return out

    def __enter__(self):
        original = torch.nn.init.trunc_normal_
        signature = inspect.signature(original)

        def trunc_normal_(*args, **kwargs):
            out = original(*args, **kwargs)
            a = signature.bind(*args, **kwargs)
            a.apply_defaults()
            self.record(a.arguments["tensor"], ("trunc_normal", float(a.arguments["a"]), float(a.arguments["b"])))
            return out

        hf = sys.modules.get("transformers.initialization")
        for table in (torch.nn.init.__dict__, getattr(hf, "TORCH_INIT_FUNCTIONS", {})):
            if table.get("trunc_normal_") is original:
                self.saved.append((table, original))
                table["trunc_normal_"] = trunc_normal_
        return super().__enter__()

    def __exit__(self, *exc):
        for table, original in self.saved:
            table["trunc_normal_"] = original
        return super().__exit__(*exc)


@functools.cache
def reference(name, seed=0):
    """(model as its library initializes it under torch.manual_seed(seed), {parameter name: bound or None})."""
    if ZOO[name][1] == "hf":
        import transformers.initialization  # noqa: F401 - its table of torch.nn.init's functions, wrapped by Bounds
    torch.manual_seed(seed)
    with Bounds() as rec:
        model = zoo_worker.reference(name)
    return model.eval(), {n: rec.last.get(_key(p)) for n, p in model.named_parameters()}


@functools.cache
def ours(name, run=0):
    """(model built on the meta device and initialized by own-init, report); run 1 goes through gpuinit.own_init."""
    if run == 0:
        return zoo_worker.own_initialized(name).eval(), None
    model = zoo_worker.build_meta(name)
    report = gpuinit.own_init(model, seed=SEED, device="cpu")
    return model.eval(), report
