"""The GPU benchmark (bench/gpu.py): cases.py names the cases (cold.py, checks.py, throughput.py); bench.py holds
the ``Bench`` they run on and the rows, peers.py Triton's kernels they are measured against, device.py what the
run records of the device, report.py the markdown report."""
