import importlib
import sys
from pathlib import Path

import numpy as np
import torch

import gpuinit

DTYPES = ["float16", "bfloat16", "float32", "float64"]


def empty(shape, dtype):
    """A numpy array, or a torch CPU tensor for bfloat16 (numpy has none)."""
    if dtype == "bfloat16":
        return torch.empty(shape, dtype=torch.bfloat16)
    return np.empty(shape, dtype)


def as_f64(array):
    if isinstance(array, torch.Tensor):
        return array.detach().to(torch.float64).numpy()
    return np.asarray(array, dtype=np.float64)


def filled(shape, dtype, scheme, **kw):
    return as_f64(gpuinit.init_(empty(shape, dtype), scheme, **kw))


def rounded(x, dtype):
    """x rounded to ``dtype`` (round to nearest even), as float64."""
    if dtype == "bfloat16":
        return torch.tensor(np.float32(x)).to(torch.bfloat16).double().item()
    return float(np.asarray(x, dtype=np.float32).astype(dtype))


def next_up(v, dtype):
    """The next representable value above each of ``v`` in ``dtype``."""
    if dtype == "bfloat16":
        t = torch.tensor(v, dtype=torch.float64).to(torch.bfloat16)
        return torch.nextafter(t, torch.full_like(t, float("inf"))).double().numpy()
    v = np.asarray(v).astype(dtype)
    return np.nextafter(v, np.array(np.inf, dtype)).astype(np.float64)


def ks_rounded(x, cdf, dtype):
    """Kolmogorov-Smirnov distance between a sample rounded to ``dtype`` and a continuous law:
    the empirical CDF at each distinct value v is compared with the law's CDF at the rounding
    boundary above v, where the values that round to v end."""
    v, counts = np.unique(x, return_counts=True)
    ecdf = np.cumsum(counts) / x.size
    upper = cdf((v + next_up(v, dtype)) / 2)
    lower = np.concatenate([[0.0], upper[:-1]])
    prev = np.concatenate([[0.0], ecdf[:-1]])
    return max(np.abs(ecdf - upper).max(), np.abs(prev - lower).max())


def bench_package(name):
    """``gpuinit_bench.<name>`` (bench/gpuinit_bench/), imported as the bench scripts import it: with bench/ first
    on sys.path."""
    bench = str(Path(__file__).resolve().parent.parent / "bench")
    sys.path.insert(0, bench)
    try:
        return importlib.import_module(f"gpuinit_bench.{name}")
    finally:
        sys.path.remove(bench)
