"""The ways bench/model.py builds a ready model, and the child process that measures one way (time, peak memory,
on a GPU the write ceiling); bench/gpu.py's model case runs the same child."""
import json
import subprocess
import sys

WAYS = ("gpuinit", "torch default", "meta + to_empty + reset_parameters")

CHILD = r"""
import json, statistics, sys, time
import torch
import gpuinit
from gpuinit.models import Llama, LlamaConfig

way, n, device = sys.argv[1], float(sys.argv[2]), sys.argv[3]
dtype, repeat = getattr(torch, sys.argv[4]), int(sys.argv[5])
cfg = LlamaConfig.with_params(n)
cuda = device.startswith("cuda")


def rss():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) * 1024
    return 0


def sync():
    if cuda:
        torch.cuda.synchronize()


def build():
    if way == "gpuinit":
        with torch.device("meta"):
            m = Llama(cfg).to(dtype)
        return gpuinit.init_module(m, seed=0, device=device)
    if way == "torch default":
        return Llama(cfg, device=device, dtype=dtype)
    with torch.device("meta"):
        m = Llama(cfg).to(dtype)
    m.to_empty(device=device)
    with torch.no_grad():
        for mod in m.modules():
            if hasattr(mod, "reset_parameters"):
                mod.reset_parameters()
            elif hasattr(mod, "reset_buffers"):
                mod.reset_buffers()
    return m


with torch.device("meta"):  # torch's meta-device kernels load once (~150 MB of code): not the model's memory
    Llama(LlamaConfig(dim=64, n_layers=1, n_heads=1, vocab_size=16))
gpuinit.init_module(Llama(LlamaConfig(dim=64, n_layers=1, n_heads=1, vocab_size=16)), seed=0)  # gpuinit's kernels
base = torch.cuda.memory_allocated() if cuda else rss()
times, peak = [], None
for i in range(repeat):
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    sync()
    t0 = time.perf_counter()
    m = build()
    sync()
    times.append(time.perf_counter() - t0)
    if peak is None:
        peak = (torch.cuda.max_memory_allocated() if cuda else rss()) - base
    nbytes = sum(p.numel() * p.element_size() for p in m.parameters())
    del m
    if cuda:
        torch.cuda.empty_cache()
out = {"seconds": statistics.median(times), "peak_bytes": peak, "param_bytes": nbytes, "n_params": cfg.n_params}
if cuda and way == "gpuinit":
    buf = torch.empty(nbytes // 2, dtype=torch.bfloat16, device=device)
    fills = []
    for _ in range(5):
        sync(); t0 = time.perf_counter(); buf.fill_(1.0); sync(); fills.append(time.perf_counter() - t0)
    out["ceiling_seconds"] = statistics.median(fills)
print(json.dumps(out))
"""


def run_way(way, n, device, dtype, repeat):
    r = subprocess.run([sys.executable, "-c", CHILD, way, str(n), device, dtype, str(repeat)], capture_output=True,
                       text=True, check=False)
    if r.returncode:
        raise SystemExit(f"{way} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])
