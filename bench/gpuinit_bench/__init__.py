"""The benchmarks' code, by family, imported by the scripts in bench/ (their folder is first on sys.path when
one runs, so the scripts import this package as ``gpuinit_bench``):

- sass: the static cost of SASS (parse a disassembly, walk the path one thread takes, count, model throughput)
- kernel_cost: the kernel variants bench/kernel_cost.py compiles and counts, the harness, the report
- gpu: the cases of bench/gpu.py, what they share, the report
- whole_model: the ways bench/model.py and bench/gpu.py's model case build a model, in a fresh process each
- small_tensors: the many-small-tensors model of bench/gpu.py and bench/host.py, and torch's init of it
- triton_host: bench/host.py's Triton case, the backend's host side with its kernel launches stubbed
- console: what every script shows, progress on stderr and tables on stdout (through rich)

bench/cpu.py and bench/explore.py hold the rest of their own code. A wheel holds the scripts that ``gpuinit bench``
runs and this package as gpuinit/bench/ (setup.py), where ROOT is no source tree (kernel_cost then records no
commit).
"""
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent  # the source tree (git runs here)
