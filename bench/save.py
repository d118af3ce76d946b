"""gpuinit.save_init against the ways checkpoints of initialized models are made today, each case in a fresh
process (its time and peak RSS):

- ``gpuinit``: ``save_init`` of a Hugging Face Llama config built on meta (bf16), recipe ``--recipe``, files
  fsynced; its write rate against ``plain``: the same number of bytes written to a file and fsynced, in blocks;
- ``hf``: ``AutoModelForCausalLM.from_config(config, dtype=bfloat16)`` on the CPU, then ``save_pretrained``;
- ``dcp``: the model built on the CPU (torch's default init, bf16), then ``torch.distributed.checkpoint.save``.

The configs: ``1b`` (Llama 3.2 1B's shape), ``7b`` (Llama 2 7B's), ``13b`` (Llama 2 13B's: 26 GB of bf16, more
than this machine's memory); ``hf`` and ``dcp`` run only where the model fits in memory (``--peers``).

    python bench/save.py [--configs 1b,7b,13b] [--peers 1b] [--dir DIR] [--out DIR]
"""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile

CONFIGS = {
    "1b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=16, num_attention_heads=32,
               num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=True),
    "7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
               num_key_value_heads=32, vocab_size=32000, tie_word_embeddings=False),
    "13b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=40, num_attention_heads=40,
                num_key_value_heads=40, vocab_size=32000, tie_word_embeddings=False),
}

CHILD = r"""
import json, os, sys, time
import torch
case, name, out, recipe, memory = sys.argv[1:6]
cfg = json.loads(sys.argv[6])
from transformers import LlamaConfig, LlamaForCausalLM
config = LlamaConfig(**cfg)
t0 = time.perf_counter()
nbytes = 0
if case == "gpuinit":
    import gpuinit
    with torch.device("meta"):
        m = LlamaForCausalLM(config).to(torch.bfloat16)
    files = gpuinit.save_init(m, out, recipe, seed=0, memory=memory)
    for f in files:
        fd = os.open(f, os.O_RDONLY); os.fsync(fd); os.close(fd)
        nbytes += os.path.getsize(f)
elif case == "plain":
    n = int(cfg["bytes"]) if "bytes" in cfg else 0
    buf = bytearray(64 << 20)
    with open(os.path.join(out, "plain.bin"), "wb") as f:
        left = n
        while left:
            k = min(left, len(buf)); f.write(memoryview(buf)[:k]); left -= k
        f.flush(); os.fsync(f.fileno())
    nbytes = n
elif case == "hf":
    from transformers import AutoModelForCausalLM
    m = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    m.save_pretrained(out)
    for f in os.listdir(out):
        p = os.path.join(out, f); fd = os.open(p, os.O_RDONLY); os.fsync(fd); os.close(fd); nbytes += os.path.getsize(p)
elif case == "dcp":
    import torch.distributed.checkpoint as dcp
    with torch.device("cpu"):
        m = LlamaForCausalLM(config).to(torch.bfloat16)
    dcp.save(m.state_dict(), checkpoint_id=out)
    for f in os.listdir(out):
        p = os.path.join(out, f); fd = os.open(p, os.O_RDONLY); os.fsync(fd); os.close(fd); nbytes += os.path.getsize(p)
print(json.dumps({"seconds": time.perf_counter() - t0, "bytes": nbytes}))
"""


def run(case, name, root, recipe, memory, cfg):
    out = tempfile.mkdtemp(prefix=f"{case}-{name}-", dir=root)
    try:
        with tempfile.TemporaryFile("w+") as so, tempfile.TemporaryFile("w+") as se:
            p = subprocess.Popen([sys.executable, "-c", CHILD, case, name, out, recipe, memory, json.dumps(cfg)],
                                 stdout=so, stderr=se, text=True)
            _, status, usage = os.wait4(p.pid, 0)  # this child's own peak RSS (KiB)
            p.returncode = os.waitstatus_to_exitcode(status)
            so.seek(0)
            se.seek(0)
            stdout, stderr = so.read(), se.read()
        if p.returncode:
            return {"error": (stderr.strip().splitlines() or ["?"])[-1][:300]}
        res = json.loads(stdout.strip().splitlines()[-1])
        res["peak_rss_gib"] = usage.ru_maxrss / 2**20
        return res
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", default="1b,7b,13b")
    p.add_argument("--peers", default="1b")
    p.add_argument("--recipe", default="hf")
    p.add_argument("--memory", default="256MiB")
    p.add_argument("--dir", default=tempfile.gettempdir())
    p.add_argument("--out")
    a = p.parse_args(argv)
    rows = []
    for name in a.configs.split(","):
        cfg = CONFIGS[name]
        g = run("gpuinit", name, a.dir, a.recipe, a.memory, cfg)
        rows.append({"config": name, "case": "gpuinit", **g})
        if "bytes" in g:
            rows.append({"config": name, "case": "plain", **run("plain", name, a.dir, a.recipe, a.memory,
                                                               {**cfg, "bytes": g["bytes"]})})
        if name in a.peers.split(","):
            for case in ("hf", "dcp"):
                rows.append({"config": name, "case": case, **run(case, name, a.dir, a.recipe, a.memory, cfg)})
        for r in rows[-4:]:
            if r["config"] == name:
                rate = r.get("bytes", 0) / r["seconds"] / 1e9 if r.get("seconds") else 0
                print(f"{name:4s} {r['case']:8s} {r.get('seconds', float('nan')):8.1f} s  {rate:6.2f} GB/s  "
                      f"peak RSS {r.get('peak_rss_gib') or float('nan'):6.2f} GiB  {r.get('error', '')}", flush=True)
    if a.out:
        os.makedirs(a.out, exist_ok=True)
        with open(os.path.join(a.out, "save.json"), "w") as f:
            json.dump({"machine": platform.machine(), "cpus": os.cpu_count(), "recipe": a.recipe,
                       "memory": a.memory, "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
