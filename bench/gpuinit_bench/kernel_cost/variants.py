"""The variants bench/kernel_cost.py counts: backends, draws, dtypes, paths and architectures; their names, and
the draw and the region each is compiled for."""
import math

ARCHS = {"sm_90": 90, "sm_80": 80}
DTYPES = {"float32": 4, "bfloat16": 2, "float16": 2, "float64": 8}
DRAWS = {  # (kind, erfinv branches): the draw a variant is compiled for (gpuinit.draws arguments)
    ("uniform", None): (-0.05, 0.05),
    ("normal", None): (0.0, 0.02),
    ("trunc_normal", 1): (0.0, 1.0, -2.0, 2.0),
    ("trunc_normal", 2): (0.0, 1.0, -3.0, 3.0),
    ("trunc_normal", 3): (0.0, 1.0, -6.0, 6.0),
}
PATHS = ("contiguous", "strided", "column", "grouped")
BACKENDS = ("triton", "cuda", "reference")
REFERENCES = ("store", "tl", "curand")  # the store-only ceiling, tl.rand4x / tl.randn4x, torch-like curand
NUMEL = 2**26  # the tensor size that counts "as launched" assume
RUN_LEN = 128  # the run length of the column-shard rows
SEED, STREAM_OF = 0, "layers.0.mlp.up_proj.weight"  # representative launch arguments (seed=0, a module's stream)
GROUP_SIZE = 9  # tensors in a grouped launch


# --- variants -----------------------------------------------------------------------------------------------------

def variant_name(v):
    b = f"-b{v['branches']}" if v["branches"] else ""
    return f"{v['backend']}-{v['kernel']}-{v['kind']}{b}-{v['dtype']}-{v['path']}-{v['arch']}"


def plan(archs, kinds, dtypes, paths, backends, branches=(1, 2, 3), references=REFERENCES):
    """The variants to count: dicts of backend, kernel, kind, dtype, path, branches, arch."""
    out, draws = [], [d for d in DRAWS if d[0] in kinds and d[1] in (None, *branches)]
    for arch in archs:
        for (kind, br), dtype, path in ((d, t, p) for d in draws for t in dtypes for p in paths):
            base = {"kind": kind, "dtype": dtype, "path": path, "branches": br, "arch": arch}
            if "triton" in backends:
                kernel = "group_kernel" if path == "grouped" else "fill_kernel"
                out.append({"backend": "triton", "kernel": kernel, **base})
            if "cuda" in backends and path != "grouped":  # the CuPy backend fills tensors one launch each
                out.append({"backend": "cuda", "kernel": "gi_fill", **base})
        if "reference" in backends:
            ref = {"backend": "reference", "path": "contiguous", "branches": None, "arch": arch}
            out += [{**ref, "kernel": "store", "kind": "store", "dtype": t} for t in dtypes if "store" in references]
            for kind in (k for k in ("uniform", "normal") if k in kinds):
                for dtype in (t for t in ("float32", "bfloat16") if t in dtypes):
                    name = "randn4x" if kind == "normal" else "rand4x"
                    names = (f"tl_{name}", f"curand_{name.replace('rand', '')}")
                    out += [{**ref, "kernel": k, "kind": kind, "dtype": dtype}
                            for k in names if k.split("_")[0] in references]
    return out


def is_cuda(v):
    return v["kernel"] == "gi_fill" or v["kernel"].startswith("curand")


def draw_of(v):
    """The gpuinit draw variant ``v`` is compiled for."""
    from gpuinit import draws

    d = getattr(draws, v["kind"])(*DRAWS[(v["kind"], v["branches"])])
    if v["branches"] is not None and d.branches != v["branches"]:
        raise AssertionError(f"{d} reaches {d.branches} erfinv branches, not {v['branches']}")
    return d


def region(path, dtype):
    """(tensor, full_shape, offsets) of a NUMEL-element fill on ``path``, as meta tensors (no memory)."""
    import torch

    side = math.isqrt(NUMEL)
    if path == "strided":  # a transposed view: one run of logical indices, not contiguous in memory
        return torch.empty((side, side), dtype=dtype, device="meta").t(), (side, side), (0, 0)
    if path == "column":  # a column shard: one run of RUN_LEN per row
        return torch.empty((NUMEL // RUN_LEN, RUN_LEN), dtype=dtype, device="meta"), (NUMEL // RUN_LEN, side), (0, 0)
    return torch.empty((side, side), dtype=dtype, device="meta"), (side, side), (0, 0)
