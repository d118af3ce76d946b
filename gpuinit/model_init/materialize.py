"""Materialization: a meta module given memory on a device (or a built one moved), checked first, ties kept."""
from .. import jobs
from ..errors import BackendUnavailableError, InitError
from .names import Walk, tensors


def materialize(module, device, params, buffers, *, meta, walk=None, check=True):
    """``to_empty`` (``meta``: a meta module) or ``to`` on ``device`` (default: CUDA when available, else CPU), after
    checking that a backend fills every floating-point dtype there; each tied tensor registered again under all
    its names (tied()'s maps ``params``, ``buffers``; ``walk``: names.Walk(module), when the caller has one).
    ``check=False``: no check (back to the meta device after a failure)."""
    import torch

    device = torch.device(device if device is not None else "cuda" if torch.cuda.is_available() else "cpu")
    if check:
        probe(device, {t.dtype for t in tensors(module) if t.is_floating_point()})
    if meta:
        _to_empty(module, device)
    else:
        module.to(device)
    walk = walk or Walk(module)
    walk.changed()
    _retie(walk, params, "_parameters")
    _retie(walk, buffers, "_buffers")


def _to_empty(module, device):
    """``module.to_empty(device=device)``: the same uninitialized tensors (same sizes, strides, dtypes; parameters
    stay parameters), a contiguous one made by ``torch.empty`` where ``to_empty``'s ``empty_like`` of a meta tensor
    runs torch's Python reference (75-220 us a tensor against 2-4 us); ``empty_like`` itself for anything else (a
    subclass, another layout, a non-contiguous layout such as channels-last, which it keeps its own way)."""
    import torch

    plain = (torch.Tensor, torch.nn.Parameter)

    def empty(t):
        if type(t) in plain and t.layout == torch.strided and not t.is_quantized and t.is_contiguous():
            return torch.empty(t.size(), dtype=t.dtype, device=device)  # the strides empty_like gives it
        return torch.empty_like(t, device=device)

    module._apply(empty)


def probe(device, dtypes):
    """Raise, before materializing, when no backend fills tensors of these dtypes on ``device``."""
    import torch

    for dtype in dtypes:
        try:
            t = torch.empty(0, dtype=dtype, device=device)
        except (RuntimeError, AssertionError) as e:  # torch without CUDA asserts
            raise BackendUnavailableError(f"cannot materialize on {device}: {e}") from e
        try:
            jobs.prepare(t, "zeros", {}, seed=0)
        except (InitError, BackendUnavailableError) as e:
            raise type(e)(f"cannot fill {dtype} tensors on {device}: {e}") from e


def _retie(walk, names, slot):
    """Register each tied tensor again under all its names (``to_empty`` and ``to`` make a copy per name)."""
    for fqn, owner in names.items():
        if fqn != owner:
            mod, _, name = fqn.rpartition(".")
            getattr(walk.module_at(mod), slot)[name] = walk.tensor_at(owner)
