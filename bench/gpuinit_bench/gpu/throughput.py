"""The throughput cases of bench/gpu.py: whole buffers, strided views and shards, many small tensors,
orthogonal, a whole model."""
import torch

import gpuinit

from ..small_tensors import reset_all, small_model
from ..whole_model import CHILD, WAYS
from .bench import COLS, KINDS, Skip, apply_ceiling, empty, error_note, init, itemsize
from .checks import spot_check
from .cold import run_child
from .peers import PEERS, launch_philox, launch_store

# ---- throughput of whole buffers --------------------------------------------------------------------

def cupy_missing(b):
    """Why cupy cannot run here, or None."""
    if not b.cuda:
        return "no CUDA"
    try:
        from gpuinit.backends import cupy_backend

        return cupy_backend.available()
    except Exception as e:  # noqa: BLE001 - a broken cupy install
        return error_note(e)


def sweep(b):
    """Each --sizes x --dtypes buffer: the store ceilings, then every kind by gpuinit and its peers."""
    rows = []
    for n in b.sizes:
        for dtype in b.dtypes:
            rows += sweep_buffer(b, n, dtype)
            b.free()
    b.sample_clock("after the sweep")
    return rows


def sweep_buffer(b, n, dtype):
    nbytes = n * itemsize(dtype)
    why = b.no_room(3 * nbytes)
    if why:
        return [b.skipped("sweep", why, dtype=dtype, size=n)]
    buf = empty((n,), dtype, b)
    view = buf.view(-1, min(COLS, n))
    common = {"dtype": dtype, "size": n, "nbytes": nbytes}
    rows = [b.measure("sweep", "torch fill_(1.0)", lambda: buf.fill_(1.0), kind="store", **common),
            b.measure("sweep", "triton store kernel", lambda: launch_store(buf), kind="store", **common)]
    for kind in KINDS:
        for impl, fn, opts in sweep_impls(b, kind, view, buf):
            r = b.measure("sweep", impl, fn, kind=kind, **common, **opts)
            if impl == "gpuinit" and r["ok"]:
                bad, checked = spot_check(view, kind, 1, b.rng)
                r.update(ok=bad == 0, value=bad, note=f"bits vs reference: {bad} of {checked} sampled differ")
            rows.append(r)
    return apply_ceiling(rows)


def sweep_impls(b, kind, view, buf):
    """(impl, fn, measure options) of ``kind`` on ``view`` (``buf`` seen as (rows, COLS))."""
    _, _, torch_init = KINDS[kind]
    yield "gpuinit", lambda: init(view, kind), {}
    yield f"triton {PEERS[kind][0]}", lambda: launch_philox(buf, kind, view.shape[1]), {}
    slow = kind == "trunc_normal"
    yield f"torch.nn.init.{kind}_", lambda: torch_init(view), {"repeat": max(1, b.repeat // 4) if slow else None}
    if kind in ("uniform", "normal"):
        yield f"tensor.{kind}_()", getattr(view, f"{kind}_"), {}
    if view.dtype == torch.float32 and b.cuda:
        why = cupy_missing(b)
        if why is None:
            yield from cupy_impls(kind, view)
        else:
            yield "cupy", skip(f"cupy: {why}"), {}


def skip(why):
    def fn():
        raise Skip(why)

    return fn


def cupy_impls(kind, view):
    import cupy

    scheme, params, _ = KINDS[kind]
    arr = cupy.from_dlpack(view)  # the same memory
    yield "gpuinit cupy backend", lambda: gpuinit.init_(arr, scheme, seed=1, **params), {"pool": "cupy"}
    n = view.numel()
    if kind == "uniform":
        yield "cupy.random.random (allocates)", lambda: cupy.random.random(n, dtype=cupy.float32), {"pool": "cupy"}
    if kind == "normal":
        yield ("cupy.random.standard_normal (allocates)", lambda: cupy.random.standard_normal(n, dtype=cupy.float32),
               {"pool": "cupy"})


# ---- strided views and shards ------------------------------------------------------------------------

def views(b):
    """gpuinit on a transposed view and on a column shard, each against a contiguous twin of its size."""
    rows = []
    for dtype in b.dtypes:
        try:
            rows += transposed_rows(b, dtype)
            rows += shard_rows(b, dtype)
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            rows.append(b.row("views", "-", dtype=dtype, ok=False, note=error_note(e)))
        b.free()
    return rows


def transposed_rows(b, dtype):
    r, c = b.scale.view
    view, twin = empty((r, c), dtype, b).T, empty((c, r), dtype, b)
    common = {"dtype": dtype, "size": r * c, "nbytes": r * c * itemsize(dtype)}
    rows = [b.measure("transposed", "torch fill_(1.0) of the twin", lambda: twin.fill_(1.0), kind="store", **common)]
    for kind, (_, _, torch_init) in KINDS.items():
        rows += [b.measure("transposed", f"gpuinit ({r}, {c}).T", lambda k=kind: init(view, k), kind=kind, **common),
                 b.measure("transposed", f"gpuinit contiguous ({c}, {r})", lambda k=kind: init(twin, k), kind=kind,
                           **common),
                 b.measure("transposed", f"torch.nn.init ({r}, {c}).T", lambda f=torch_init: f(view), kind=kind,
                           **common)]
    return apply_ceiling(rows)


def shard_rows(b, dtype):
    r, full_cols, w = b.scale.shard
    block = empty((r, w), dtype, b)
    region = {"full_shape": (r, full_cols), "offsets": (0, w * (full_cols // w // 2))}
    common = {"dtype": dtype, "size": r * w, "nbytes": r * w * itemsize(dtype)}
    rows = [b.measure("column shard", "torch fill_(1.0)", lambda: block.fill_(1.0), kind="store", **common)]
    for kind in KINDS:
        rows += [b.measure("column shard", f"gpuinit ({r}, {w}) block at {region['offsets']} of {region['full_shape']}",
                           lambda k=kind: init(block, k, **region), kind=kind, **common),
                 b.measure("column shard", f"gpuinit whole ({r}, {w})", lambda k=kind: init(block, k), kind=kind,
                           **common)]
    return apply_ceiling(rows)


# ---- many small tensors ----------------------------------------------------------------------------

class triton_on_cpu:
    """Make init_module use the Triton backend (the interpreter) for CPU tensors, as it does for CUDA ones."""

    def __init__(self, b):
        self.using = gpuinit.backends.using("triton" if not b.cuda else None)

    def __enter__(self):
        self.using.__enter__()

    def __exit__(self, *exc):
        return self.using.__exit__(*exc)


def small_tensors(b):
    """~2000 tensors of a transformer (norms, matrices, biases): gpuinit's grouped fill against a Python loop
    of per-tensor calls, on a materialized model and from the meta device."""
    width, layers = b.scale.small
    rows = []
    for dtype in b.dtypes:
        try:
            rows += small_rows(b, dtype, width, layers)
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            rows.append(b.row("small tensors", "-", dtype=dtype, ok=False, note=error_note(e)))
        b.free()
    return rows


def small_rows(b, dtype, width, layers):
    with torch.device("meta"):
        model = small_model(width, layers).to(dtype)
    model.to_empty(device=b.device)
    params = list(model.parameters())
    n, nbytes = sum(p.numel() for p in params), sum(p.numel() * p.element_size() for p in params)
    plan = gpuinit.model_init.plan_module(model)
    common = {"kind": f"{len(params)} tensors", "dtype": dtype, "size": n, "nbytes": nbytes}
    repeat = min(b.repeat, 5)

    def per_tensor():
        for i, (_, p, (scheme, prm), _) in enumerate(plan):
            gpuinit.init_(p, scheme, seed=0, stream=i, backend="triton", **prm)

    def from_meta_gpuinit():
        with torch.device("meta"):
            m = small_model(width, layers).to(dtype)
        return gpuinit.init_module(m, seed=0, device=b.device)

    def from_meta_torch():
        with torch.device("meta"):
            m = small_model(width, layers).to(dtype)
        return reset_all(m.to_empty(device=b.device))

    def on_device_torch():
        old = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            with torch.device(b.device):
                return small_model(width, layers)
        finally:
            torch.set_default_dtype(old)

    ways = [("gpuinit.init_module (materialized: grouped launches)", lambda: gpuinit.init_module(model, seed=0)),
            ("gpuinit.init_ per tensor", per_tensor),
            ("torch reset_parameters per module", lambda: reset_all(model)),
            ("meta -> gpuinit.init_module(device=...)", from_meta_gpuinit),
            ("meta -> to_empty + reset_parameters", from_meta_torch),
            ("torch default on the device", on_device_torch)]
    rows = []
    with triton_on_cpu(b):
        for impl, fn in ways:
            note = "includes building the modules" if "meta" in impl or "default" in impl else ""
            rows.append(b.measure("small tensors", impl, fn, repeat=repeat, note=note, **common))
    return rows


# ---- orthogonal ----------------------------------------------------------------------------------

def orthogonal(b):
    """gpuinit's orthogonal (normal draw + QR on the device) against torch.nn.init.orthogonal_."""
    size, rows = b.scale.orthogonal, []
    for dtype in b.dtypes:
        w = empty((size, size), dtype, b)
        common = {"kind": "orthogonal", "dtype": dtype, "size": size * size, "nbytes": w.numel() * w.element_size(),
                  "repeat": min(3, b.repeat)}
        rows += [b.measure("orthogonal", "gpuinit", lambda w=w: gpuinit.init_(w, "orthogonal", seed=1,
                                                                               backend="triton"), **common),
                 b.measure("orthogonal", "torch.nn.init.orthogonal_", lambda w=w: torch.nn.init.orthogonal_(w),
                           **common)]
        del w
        b.free()
    return rows


# ---- a whole model ---------------------------------------------------------------------------------

def model(b):
    """A Llama of --model-params parameters in bfloat16, three ways, each in a fresh process (bench/model.py's
    child): gpuinit from the meta device, torch's default construction on the device, meta + to_empty +
    reset_parameters. Peak memory is the process's own and includes the parameters."""
    if not b.cuda:
        return [b.skipped("model", "no CUDA")]
    if not b.model_params:
        return [b.skipped("model", "--model-params 0")]
    rows = []
    for way in WAYS:
        args = [CHILD, way, str(b.model_params), str(b.device), "bfloat16", str(b.scale.model_repeat)]
        try:
            r = run_child(args, timeout=600)
        except Exception as e:  # noqa: BLE001 - recorded, the run goes on
            rows.append(b.row("model", way, dtype=torch.bfloat16, ok=False, note=error_note(e)))
            continue
        kind = f"Llama, {r['n_params'] / 1e6:,.0f}M parameters"
        rows.append(b.row("model", way, kind=kind, dtype=torch.bfloat16, size=r["n_params"], seconds=r["seconds"],
                          nbytes=r["param_bytes"], peak=r["peak_bytes"],
                          note=f"median of {b.scale.model_repeat}; parameters {r['param_bytes'] / 2**30:.2f} GiB"))
        if "ceiling_seconds" in r:
            rows.append(b.row("model", "torch fill_ of one buffer of the parameters' size", kind="store",
                              dtype=torch.bfloat16, size=r["param_bytes"] // 2, seconds=r["ceiling_seconds"],
                              nbytes=r["param_bytes"]))
    return apply_ceiling(rows)
