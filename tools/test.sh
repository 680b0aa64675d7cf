#!/usr/bin/env bash
# tools/test.sh — set up and run all of normlab's tests: the README's test command.
#
#   bash tools/test.sh
#
#   1. deps:    install the Debian packages the build and the tests need (tools/deps.sh --tests:
#               also OpenMPI for the MPI tests, python3-torch and python3-omegaconf for
#               tests/interop, tools/import_fairseq.py)
#   2. release: Release build in build/release (tests, examples, benchmarks, CUDA when
#               nvcc is found), then ctest, including the package tests (tests/package)
#   3. asan:    AddressSanitizer + UBSan build of the tests in build/asan (Debug, -O1, line
#               tables only: -g1 keeps file:line in reports with far less debug info than -g),
#               then ctest
#   4. fuzz:    libFuzzer smoke run (tools/fuzz.sh smoke): clang-14 builds the harnesses in
#               build/fuzz, replays fuzz/regressions, then runs each harness for 20 s
#
# A failing release phase does not stop the asan phase; the summary at the end lists every
# phase, and the exit status is non-zero when any failed. Set NORMLAB_JOBS to change the
# number of parallel build and test jobs (default: all cores).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="${NORMLAB_JOBS:-$(nproc)}"

phase() { printf '\n==== test.sh [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }
results=()
failed=0
passed_tests=0
failed_tests=0
# run_ctest DIR: ctest with its output shown, adding its counts to the totals.
run_ctest() {
  local log status=0 total bad
  log=$(mktemp)
  # One OpenMP thread per test: ctest already runs one test per core, and
  # OpenMP threads competing for busy cores wait at every barrier (a 10x
  # slowdown seen here). Tests of the threaded paths set their own count.
  OMP_NUM_THREADS=1 ctest --test-dir "$1" --output-on-failure --parallel "$jobs" 2>&1 | tee "$log" ||
    status=$?
  # "100% tests passed, 0 tests failed out of 113"
  read -r bad total < <(sed -n 's/.* \([0-9][0-9]*\) tests failed out of \([0-9][0-9]*\).*/\1 \2/p' "$log" | tail -n 1)
  rm -f "$log"
  if [[ -n "${total:-}" ]]; then
    passed_tests=$((passed_tests + total - bad))
    failed_tests=$((failed_tests + bad))
  fi
  return "$status"
}
# record NAME STATUS START: keeps one line of the summary.
record() {
  local took=$(($(date +%s) - $3))
  results+=("$(printf '%-8s %-6s %4ds' "$1" "$2" "$took")")
  [[ "$2" == ok ]] || failed=1
}

phase "1/4 deps: checking the Debian packages"
start=$(date +%s)
bash tools/deps.sh --tests
record deps ok "$start"

phase "2/4 release: configure, build and test build/release"
start=$(date +%s)
if cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release -DNORMLAB_BUILD_TESTS=ON &&
   cmake --build build/release --parallel "$jobs"; then
  if run_ctest build/release; then
    record release ok "$start"
  else
    record release FAILED "$start"
  fi
else
  record release FAILED "$start"
fi

phase "3/4 asan: configure, build and test build/asan (AddressSanitizer + UBSan)"
start=$(date +%s)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_stack_use_after_return=1:strict_init_order=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1}"
if cmake -S . -B build/asan -DCMAKE_BUILD_TYPE=Debug "-DCMAKE_CXX_FLAGS_DEBUG=-g1 -O1" \
         -DNORMLAB_SANITIZE=ON -DNORMLAB_BUILD_TESTS=ON -DNORMLAB_BUILD_EXAMPLES=OFF -DNORMLAB_BUILD_APPS=OFF \
         -DNORMLAB_BUILD_BENCH=OFF -DNORMLAB_PACKAGE_TESTS=OFF -DNORMLAB_ENABLE_CUDA=OFF &&
   cmake --build build/asan --parallel "$jobs"; then
  if run_ctest build/asan; then
    record asan ok "$start"
  else
    record asan FAILED "$start"
  fi
else
  record asan FAILED "$start"
fi

phase "4/4 fuzz: libFuzzer smoke run (tools/fuzz.sh smoke)"
start=$(date +%s)
if bash tools/fuzz.sh smoke; then
  record fuzz ok "$start"
else
  record fuzz FAILED "$start"
fi

phase "summary"
printf '  %s\n' "${results[@]}"
if ((failed)); then
  echo "test.sh: FAILED"
else
  echo "test.sh: all phases passed"
fi
# The closing line: the tests of both builds together.
echo "tests: $passed_tests passed, $failed_tests failed"
exit "$failed"
