#!/usr/bin/env bash
# The one-command check for a lent GPU (see DEVELOPERS.md / bench/README.md):
#   bash bench/device_check.sh
# runs the GPU tests and the GPU benchmarks and writes their results under $OUT (the
# device tool's output folder; /tmp/device_check elsewhere). Meant to finish in under
# 8 minutes on an H100. The device image has NumPy, SciPy, Numba, numba-cuda, CuPy,
# JAX, NumPyro and pytest; a missing package can travel as wheels in .whl (install them
# first, see the device tool's README). Nothing here is needed by CI.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/device_check}
mkdir -p "$OUT"
export PYTHONPATH=".${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PY=${PYTHON:-python3}
if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{
    date -u
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
    $PY -c "import sys, numpy, scipy, numba, cupy; print(sys.version.split()[0], 'numpy', numpy.__version__, 'scipy', scipy.__version__, 'numba', numba.__version__, 'cupy', cupy.__version__)"
} 2>&1 | tee "$OUT/environment.txt"

status=0
echo "== GPU tests"
timeout 270 $PY -m pytest -q -x -p no:cacheprovider \
    tests/test_devices.py tests/autodiff/test_compile_gpu.py 2>&1 | tee "$OUT/tests.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

echo "== GPU benchmarks"
timeout 180 $PY bench/bench_gpu.py --out "$OUT/gpu_results.md" 2>&1 | tee "$OUT/bench.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
exit $status
