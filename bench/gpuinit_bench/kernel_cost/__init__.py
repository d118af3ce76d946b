"""The static cost of the GPU kernels (bench/kernel_cost.py): variants.py plans them, triton_variants.py and
cuda_variants.py compile, disassemble and walk them, report.py makes the rows and tables, harness.py runs them
all and checks the targets."""
