"""The cases of bench/gpu.py. Each case is a function of a ``Bench`` that returns rows (``make_row``); a
failure inside a case is a row with ``ok=False``, never an exception out of it.

On a GPU, times are medians of CUDA-event timings after a warm-up call. On the CPU (Triton's interpreter,
perf_counter, no warm-up, tiny shapes) only the code paths and the bits are exercised.

The cases: bench/gpu_cold.py (cold_start), bench/gpu_checks.py (correctness), bench/gpu_throughput.py (the rest);
bench/gpu_bench.py holds the ``Bench`` and the rows, bench/gpu_peers.py the Triton peers.
"""
from gpu_bench import SCALES, Bench, apply_ceiling, dtype_name, error_note
from gpu_checks import correctness
from gpu_cold import cold_start
from gpu_peers import philox_kernel, store_kernel
from gpu_throughput import model, orthogonal, small_tensors, sweep, views

CASES = {"cold_start": cold_start, "correctness": correctness, "sweep": sweep, "views": views,
         "small_tensors": small_tensors, "orthogonal": orthogonal, "model": model}

__all__ = ["CASES", "SCALES", "Bench", "apply_ceiling", "dtype_name", "error_note", "philox_kernel", "store_kernel"]
