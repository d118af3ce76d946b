#!/usr/bin/env bash
# The whole GPU check in one command on a GPU machine: bench/device.sh OUTDIR [PARTS]
#
# Build the wheel first on any machine (pip wheel --no-deps --no-build-isolation . -w .whl) and bring .whl/ along.
# The wheel is installed alone (pip --target, no dependencies: the machine's torch, Triton and CuPy are used) and
# every step runs outside the checkout, so the installed gpuinit is the one imported, by the benchmarks' child
# processes too. PARTS: a comma list of tests, host, gpu (default all of them); each step has a time limit that
# keeps the whole under about 6 minutes. Everything goes to OUTDIR: versions.txt, tests.log, host-cuda.json,
# gpu-<device>.json and .md.
set -uo pipefail
out=${1:?usage: bench/device.sh OUTDIR [tests,host,gpu]}
parts=${2:-tests,host,gpu}
root=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$out"
out=$(cd "$out" && pwd)
site=$(mktemp -d)
pip install -q --no-deps --target "$site" "$root"/.whl/gpuinit-*.whl 2>&1 | grep -v "as the 'root' user" || true
export PYTHONPATH=$site PYTHONUNBUFFERED=1
cd "$site" || exit 1
{
    date -u +%Y-%m-%dT%H:%M:%SZ
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
    python -c "import sys, gpuinit, torch, triton; print(sys.version.split()[0], gpuinit.__file__, torch.__version__,
triton.__version__, gpuinit.available_backends())"
} | tee "$out/versions.txt"
t=$root/tests
if [[ ,$parts, == *,tests,* ]]; then
    timeout 150 python -m pytest -q -p no:cacheprovider -o addopts="" "$t/test_gpu.py" "$t/test_triton_backend.py" \
        "$t/test_cupy_backend.py" "$t/test_triton_fill.py" "$t/test_launch_layout.py" >"$out/tests.log" 2>&1
    tail -3 "$out/tests.log"
fi
if [[ ,$parts, == *,host,* ]]; then
    timeout 100 python "$root/bench/host.py" --device cuda --width 256 --repeat 3 --out "$out" 2>&1 | tail -30
fi
if [[ ,$parts, == *,gpu,* ]]; then
    timeout 150 python "$root/bench/gpu.py" --cases correctness model --repeat 3 --out "$out" 2>&1 | tail -12
fi
ls -la "$out"
