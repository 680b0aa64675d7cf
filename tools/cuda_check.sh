#!/usr/bin/env bash
# On a machine with a GPU: build the CUDA targets, run the CUDA tests, run
# them again under compute-sanitizer (memcheck; the tests provoke API errors on
# purpose, so only memory errors count), time one layer with normlab
# and with PyTorch eager. Logs go to $OUT (or ./cuda-check-out).
#
#   bash tools/cuda_check.sh [--quick]     (--quick: no sanitizer, 5 reps)
set -uo pipefail
out=${OUT:-cuda-check-out}
mkdir -p "$out"
reps=20 sanitize=1
[[ ${1:-} == --quick ]] && reps=5 sanitize=0
jobs=$(nproc)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1 | tee "$out/gpu.txt"

cmake -S . -B build/cuda -DCMAKE_BUILD_TYPE=Release -DNORMLAB_ENABLE_CUDA=ON \
  -DCMAKE_CUDA_COMPILER="${CUDACXX:-/usr/local/cuda/bin/nvcc}" -DNORMLAB_BUILD_BENCH=OFF \
  -DNORMLAB_PACKAGE_TESTS=OFF >"$out/configure.log" 2>&1 || { tail -30 "$out/configure.log"; exit 1; }
cmake --build build/cuda --parallel "$jobs" --target normlab_test_cuda_runtime normlab_test_cuda_ops \
  normlab_test_cuda_model normlab_cuda_layer_bench >"$out/build.log" 2>&1 \
  || { grep -B2 -A10 -i error "$out/build.log" | head -60; exit 1; }

status=0
OMP_NUM_THREADS=1 ctest --test-dir build/cuda -R '^cuda/' --output-on-failure >"$out/ctest.log" 2>&1 || status=1
grep -E "tests passed|tests failed|Skipped|\*\*\*Failed" "$out/ctest.log" | tail -40

if ((sanitize)); then
  for t in runtime ops model; do
    compute-sanitizer --tool memcheck --report-api-errors no --error-exitcode 9 \
      build/cuda/tests/cuda/normlab_test_cuda_$t --gtest_brief=1 >"$out/memcheck_$t.log" 2>&1 || status=1
    echo "memcheck $t: $(grep -E 'ERROR SUMMARY' "$out/memcheck_$t.log" | tail -1)"
  done
fi

build/cuda/examples/normlab_cuda_layer_bench --reps "$reps" 2>&1 | tee "$out/normlab_layer.txt"
python3 tools/torch_layer_cuda.py --reps "$reps" 2>&1 | tee "$out/torch_layer.txt"
exit $status
