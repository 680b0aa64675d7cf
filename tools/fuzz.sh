#!/usr/bin/env bash
# tools/fuzz.sh — build and run normlab's libFuzzer harnesses (fuzz/).
#
#   bash tools/fuzz.sh smoke                       build, write the seeds, run each harness
#                                                  20 s on a fresh corpus; fails on a finding
#   bash tools/fuzz.sh run [SECONDS] [HARNESS...]  long runs, one harness after another
#                                                  (default 600 s each, all harnesses)
#   bash tools/fuzz.sh build                       build and write the seeds only
#
# Harnesses: fuzz_json, fuzz_config, fuzz_safetensors, fuzz_checkpoint (each file's
# comment says what it checks). Everything goes under build/fuzz: the binaries, the seeds
# written by make_seeds (build/fuzz/seeds), the corpus that `run` grows and keeps between
# runs (build/fuzz/corpus/<harness>), the inputs that found something
# (build/fuzz/findings/<harness>: crash-*, leak-*, oom-*, timeout-*) and the logs
# (build/fuzz/logs). The seeds, tests/fixtures and fuzz/regressions/<harness> (inputs of
# bugs found before, which must keep passing) are read, never written. At the end a
# table gives each harness's executions, exec/s, corpus size and findings; the exit
# status is non-zero when any harness found something.
#
# Runs use one OpenMP thread, -rss_limit_mb=2048 and a per-input -timeout. The build
# needs clang++-14 with libFuzzer (Debian: clang-14, libclang-rt-14-dev; libomp-14-dev
# for OpenMP, else the serial loops are built), cmake and Eigen. When they are missing:
# as root this installs them with apt-get, otherwise it prints the apt-get line and
# fails. NORMLAB_JOBS sets the number of parallel compile jobs (default: all cores).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="${NORMLAB_JOBS:-$(nproc)}"
cxx=clang++-14
out=build/fuzz
all_harnesses=(fuzz_json fuzz_config fuzz_safetensors fuzz_checkpoint)

usage() {
  sed -n '2,8p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
  exit 2
}

phase() { printf '\n==== fuzz.sh [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

# Per harness: extra seed directories, the largest input, the per-input timeout (s).
seeds_of() {
  case "$1" in
    fuzz_json) echo "$out/seeds/json $out/seeds/config" ;;
    fuzz_config) echo "$out/seeds/config $out/seeds/json" ;;
    fuzz_safetensors) echo "$out/seeds/safetensors $out/seeds/checkpoint tests/fixtures" ;;
    fuzz_checkpoint) echo "$out/seeds/checkpoint $out/seeds/safetensors tests/fixtures/checkpoint_v0" ;;
  esac
}
max_len_of() {
  case "$1" in
    fuzz_json | fuzz_config) echo 16384 ;;
    *) echo 65536 ;;
  esac
}
timeout_of() {
  case "$1" in
    fuzz_checkpoint) echo 60 ;;
    *) echo 20 ;;
  esac
}

# The toolchain: clang++-14 that links -fsanitize=fuzzer, cmake, Eigen.
ensure_toolchain() {
  local probe ok=1
  probe=$(mktemp -d)
  printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long) { return 0; }\n' \
    >"$probe/probe.cpp"
  if ! command -v "$cxx" >/dev/null 2>&1 ||
     ! "$cxx" -fsanitize=fuzzer,address,undefined "$probe/probe.cpp" -o "$probe/probe" 2>/dev/null; then
    ok=0
  fi
  rm -rf "$probe"
  command -v cmake >/dev/null 2>&1 || ok=0
  if command -v dpkg >/dev/null 2>&1; then  # Eigen: otherwise CMake says when it is missing
    dpkg -s libeigen3-dev 2>/dev/null | grep -q '^Status: install ok installed$' || ok=0
  fi
  ((ok)) && return 0

  local -a packages=(clang-14 libclang-rt-14-dev libomp-14-dev cmake make libeigen3-dev)
  local -a missing=()
  if command -v dpkg >/dev/null 2>&1; then
    local pkg
    for pkg in "${packages[@]}"; do
      dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed$' || missing+=("$pkg")
    done
  else
    missing=("${packages[@]}")
  fi
  if ((${#missing[@]} == 0)); then
    echo "fuzz.sh: $cxx cannot build a libFuzzer program although ${packages[*]} are installed" >&2
    return 1
  fi
  echo "fuzz.sh: clang++-14 with libFuzzer, cmake or Eigen is missing (packages: ${missing[*]})"
  if [[ "$(id -u)" != 0 ]]; then
    echo "fuzz.sh: not root; install them with:" >&2
    echo "sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update && apt-get -y install "${missing[@]}"
}

build() {
  phase "build: $out (${cxx}, -fsanitize=fuzzer,address,undefined)"
  local start
  start=$(date +%s)
  ensure_toolchain
  cmake -S fuzz -B "$out" -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$out" --parallel "$jobs"
  "$out/make_seeds" "$out/seeds"
  echo "fuzz.sh: build and seeds took $(($(date +%s) - start)) s"
}

summary=()
found=0
# fuzz HARNESS SECONDS CORPUS_DIR: one libFuzzer run; appends a line to the summary.
fuzz() {
  local name=$1 seconds=$2 corpus=$3
  local findings="$out/findings/$name" log="$out/logs/$name.log"
  local -a seeds
  read -r -a seeds <<<"$(seeds_of "$name")"
  [[ -d "fuzz/regressions/$name" ]] && seeds+=("fuzz/regressions/$name")
  mkdir -p "$corpus" "$findings" "$out/logs"
  local before status=0
  before=$(find "$findings" -type f | wc -l)
  phase "$name: ${seconds} s (log: $log)"
  OMP_NUM_THREADS=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$out/$name" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout="$(timeout_of "$name")" \
    -max_len="$(max_len_of "$name")" -print_final_stats=1 -artifact_prefix="$findings/" \
    "$corpus" "${seeds[@]}" >"$log" 2>&1 || status=$?
  # Executions and exec/s: the final stats, or the last status line when it stopped early.
  local execs rate corp new
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
  if [[ -z "$execs" ]]; then
    execs=$(sed -n 's/^#\([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
    rate=$(sed -n 's/.*exec\/s: \([0-9][0-9]*\).*/\1/p' "$log" | tail -n 1)
  fi
  corp=$(sed -n 's/.* corp: \([0-9][0-9]*\/[0-9][0-9]*[a-zA-Z]*\).*/\1/p' "$log" | tail -n 1)
  new=$(($(find "$findings" -type f | wc -l) - before))
  if ((status != 0)); then
    ((new > 0)) || new=1
    found=1
    echo "fuzz.sh: $name FOUND something (exit $status); the end of its log:"
    tail -n 40 "$log"
    echo "fuzz.sh: inputs in $findings; reproduce with: $out/$name <file>"
  else
    tail -n 3 "$log"
  fi
  summary+=("$(printf '%-17s %6s %11s %8s %16s %8s' "$name" "$seconds" "${execs:-?}" "${rate:-?}" \
    "${corp:-?}" "$new")")
}

print_summary() {
  phase "summary"
  printf '%-17s %6s %11s %8s %16s %8s\n' harness seconds executions exec/s corpus findings
  printf '%s\n' "${summary[@]}"
  if ((found)); then
    echo "fuzz.sh: FINDINGS (see $out/findings)"
  else
    echo "fuzz.sh: no findings"
  fi
}

check_harnesses() {
  local h known
  for h in "$@"; do
    known=0
    for k in "${all_harnesses[@]}"; do [[ "$h" == "$k" ]] && known=1; done
    ((known)) || { echo "fuzz.sh: unknown harness '$h' (known: ${all_harnesses[*]})" >&2; exit 2; }
  done
}

mode="${1:-}"
[[ -n "$mode" ]] && shift
case "$mode" in
  build)
    build
    ;;
  smoke)
    start=$(date +%s)
    build
    for h in "${all_harnesses[@]}"; do
      rm -rf "$out/smoke-corpus/$h"
      fuzz "$h" 20 "$out/smoke-corpus/$h"
    done
    print_summary
    echo "fuzz.sh: smoke took $(($(date +%s) - start)) s"
    exit "$found"
    ;;
  run)
    seconds=600
    if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then
      seconds=$1
      shift
    fi
    harnesses=("$@")
    ((${#harnesses[@]})) || harnesses=("${all_harnesses[@]}")
    check_harnesses "${harnesses[@]}"
    build
    for h in "${harnesses[@]}"; do fuzz "$h" "$seconds" "$out/corpus/$h"; done
    print_summary
    exit "$found"
    ;;
  *)
    usage
    ;;
esac
