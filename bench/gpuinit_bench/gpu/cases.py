"""The cases of bench/gpu.py. Each case is a function of a ``Bench`` that returns rows (``make_row``); a
failure inside a case is a row with ``ok=False``, never an exception out of it.

On a GPU, times are medians of CUDA-event timings after a warm-up call. On the CPU (Triton's interpreter,
perf_counter, no warm-up, tiny shapes) only the code paths and the bits are exercised.

The cases: cold.py (cold_start), checks.py (correctness), throughput.py (the rest); bench.py holds the
``Bench`` and the rows, peers.py the Triton peers.
"""
from .bench import SCALES, Bench, apply_ceiling, dtype_name, error_note
from .checks import correctness
from .cold import cold_start
from .peers import philox_kernel, store_kernel
from .throughput import model, orthogonal, small_tensors, sweep, views

CASES = {"cold_start": cold_start, "correctness": correctness, "sweep": sweep, "views": views,
         "small_tensors": small_tensors, "orthogonal": orthogonal, "model": model}

__all__ = ["CASES", "SCALES", "Bench", "apply_ceiling", "dtype_name", "error_note", "philox_kernel", "store_kernel"]
