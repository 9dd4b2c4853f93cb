#!/usr/bin/env bash
# The checks that need the H200 host (16 cores, one GPU), one mode per call, each inside the
# device tool's 10-minute limit and together inside a session's 15 minutes of device time
# (docs/benchmarks.md, sections "GPU backend" and "MPI scaling"):
#
#   bash benchmarks/device_run.sh gpu       # ~3 min: build, GPU tests on the GPU, bench_gpu.py
#                                           # (timeout_s 330)
#   bash benchmarks/device_run.sh scaling   # ~8.5 min: bench_scaling.py on 1, 2, 4, 8, 16 ranks
#                                           # (timeout_s 590)
#   bash benchmarks/device_run.sh memcheck  # optional, if time is left: compute-sanitizer
#                                           # memcheck of the GPU tests (timeout_s 150)
#
# Runs from the repository root with the host's python3 (numpy, h5py, mpi4py, Cython, CuPy,
# pytest; no segyio is needed). Wheels in .whl/ are installed first if present. Logs and
# JSON go to $OUT (the device tool's folder) or ./device_out.
set -uo pipefail
mode=${1:-gpu}
OUT=${OUT:-$PWD/device_out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 OMP_NUM_THREADS=1
PY=${PYTHON:-python3}
if ls .whl/*.whl >/dev/null 2>&1; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
{
    date -u
    echo "cores: $(getconf _NPROCESSORS_ONLN)"
    "$PY" -V
    nvidia-smi -L 2>&1
    "$PY" -c 'import numpy, h5py, mpi4py, Cython; print("numpy", numpy.__version__, "h5py",
h5py.__version__, "mpi4py", mpi4py.__version__, "Cython", Cython.__version__)'
    "$PY" -c 'import cupy; print("cupy", cupy.__version__)' 2>&1
    command -v mpiexec && mpiexec --version 2>&1 | head -1
} 2>&1 | tee "$OUT/env.txt"

t0=$(date +%s)
if ! "$PY" setup.py -q build_ext --inplace -j 8 >"$OUT/build.log" 2>&1; then
    tail -40 "$OUT/build.log"
    exit 1
fi
echo "build: $(($(date +%s) - t0)) s"

case $mode in
gpu)
    # the GPU tests run each check on the emulator and on the GPU (tests/test_gpu.py)
    timeout 120 "$PY" -m pytest -q -p no:cacheprovider tests/test_gpu.py tests/test_pstm.py \
        tests/test_adjoint.py 2>&1 | tee "$OUT/gpu_tests.log" | tail -25
    timeout 170 "$PY" benchmarks/bench_gpu.py --json "$OUT/bench_gpu.json" 2>&1 |
        tee "$OUT/bench_gpu.log"
    ;;
memcheck)
    # out-of-bounds accesses and races in the kernels, where the runtime allows the tool
    timeout 120 compute-sanitizer --tool memcheck --print-limit 20 "$PY" -m pytest -q \
        -p no:cacheprovider tests/test_gpu.py -k "cuda and (diffractor or dot_product)" 2>&1 |
        tail -30 | tee "$OUT/memcheck.log"
    ;;
scaling)
    # strong: 320 shots, about two minutes on one rank (issue #4); weak: 24 shots per rank
    timeout 560 "$PY" benchmarks/bench_scaling.py --ranks 1,2,4,8,16 --strong-scale 5 \
        --weak-scale 1.5 --json "$OUT/bench_scaling.json" 2>&1 |
        tee "$OUT/bench_scaling.log"
    ;;
*)
    echo "usage: $0 gpu|scaling|memcheck" >&2
    exit 2
    ;;
esac
echo "total: $(($(date +%s) - t0)) s"
