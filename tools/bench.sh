#!/usr/bin/env bash
# tools/bench.sh — build normlab_bench in Release and print the comparison with libtorch.
#
#   bash tools/bench.sh [--quick] [--isa avx512|avx2] [--repetitions N] [--threads N]
#                       [--filter REGEX] [--out DIR]
#
#   1. installs the Debian packages as tools/deps.sh does (libtorch-dev and OpenBLAS
#      included; python3 for the table);
#   2. builds normlab_bench (Release, benchmarks only) in build/bench with -march=native,
#      or, for an --isa below this CPU's best, in build/bench-ISA for that instruction set
#      (avx2: -march=x86-64-v3, AVX2 + FMA without AVX-512, as on an AVX2-only CPU);
#      the run sets NORMLAB_CPU_KERNELS=ISA, and the libtorch peer runs the same
#      instruction set: OpenBLAS kernels of ISA (tools/peer_blas.sh: Debian's OpenBLAS
#      falls back to SSE3 kernels on CPUs newer than it), and for avx2 on an AVX-512 CPU
#      ATEN_CPU_CAPABILITY=avx2 and ONEDNN_MAX_CPU_ISA=AVX2; and OpenBLAS's OpenMP build
#      (libopenblas0-openmp, one thread pool with libtorch's; peer_blas_threads);
#   3. runs every benchmark with OMP_NUM_THREADS=N (default 2) and --repetitions
#      (default 5), the repetitions of all benchmarks in random order, twice: with
#      OMP_WAIT_POLICY unset and =PASSIVE (libtorch's idle OpenMP threads otherwise spin
#      against OpenBLAS's on few cores); the table keeps each benchmark's better setting,
#      for each side;
#   4. measures the peak resident memory of the GPT step, one process per library and
#      policy (normlab_bench --gpt_memory: a warm-up step and 2 more);
#   5. prints the table (tools/bench_table.py) and the performance targets.
#
# --isa: the instruction set both sides run (default: NORMLAB_CPU_KERNELS when set, else this
#   CPU's best). An AVX-512 CPU thus measures the AVX2 comparison too; say in any figure that
#   it is this CPU running AVX2 code, not an AVX2-only CPU.
# --quick: 3 repetitions of the FMA peak, the reference sgemm, the S2 layers and the GPT
#   steps only.
# --filter: a Google Benchmark regex instead (e.g. 'layer_fwd_bwd/.*/S2/'; names end in
#   /real_time).
# DIR (default build/bench-results) receives the JSON of each run, memory.jsonl and table.txt.
# The timings of a machine shared with other work are noisy: compare medians, and say so.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
threads=2
repetitions=5
filter='.'
out=build/bench-results
isa="${NORMLAB_CPU_KERNELS:-}"
while (($#)); do
  case "$1" in
    --quick) repetitions=3; filter='fma_peak|sgemm|layer_fwd_bwd/.*/S2/|gpt_step'; shift ;;
    --repetitions) repetitions="$2"; shift 2 ;;
    --threads) threads="$2"; shift 2 ;;
    --isa) isa="$2"; shift 2 ;;
    --filter) filter="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
jobs="${NORMLAB_JOBS:-$(nproc)}"
step() { printf '\n==== bench.sh [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

step "1/5 deps"
bash tools/deps.sh python3

# shellcheck source=tools/peer_blas.sh
source tools/peer_blas.sh
best=$(best_cpu_isa)
isa="${isa:-$best}"
rank() { case "$1" in avx512) echo 2 ;; avx2) echo 1 ;; portable) echo 0 ;; *) echo -1 ;; esac; }
if (($(rank "$isa") < 0)); then
  echo "bench.sh: --isa must be avx512, avx2 or portable, got '$isa'" >&2; exit 2
fi
if (($(rank "$isa") > $(rank "$best"))); then
  echo "bench.sh: --isa $isa is above this CPU's best instruction set, $best" >&2; exit 2
fi
build=build/bench march=native
if [[ "$isa" != "$best" ]]; then
  build="build/bench-$isa"
  march=$([[ "$isa" == avx2 ]] && echo x86-64-v3 || echo default)
fi

step "2/5 build normlab_bench ($build, Release, -march=$march)"
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DNORMLAB_BUILD_TESTS=OFF \
      -DNORMLAB_BUILD_EXAMPLES=OFF -DNORMLAB_BUILD_BENCH=ON -DNORMLAB_ENABLE_CUDA=OFF \
      -DNORMLAB_BENCH_MARCH="$march"
cmake --build "$build" --target normlab_bench --parallel "$jobs"
bench="$build/bench/normlab_bench"

mkdir -p "$out"
export OMP_NUM_THREADS="$threads" NORMLAB_CPU_KERNELS="$isa"
peer_blas_setup "$isa"
peer_blas_threads
if [[ "$isa" == avx2 && "$best" == avx512 ]]; then
  export ATEN_CPU_CAPABILITY="${ATEN_CPU_CAPABILITY:-avx2}" ONEDNN_MAX_CPU_ISA="${ONEDNN_MAX_CPU_ISA:-AVX2}"
fi
# Repetitions in random order (Google Benchmark runs each repetition of each benchmark as
# its own run): a machine whose speed drifts during the run drifts under both sides alike,
# where in name order all of one benchmark's repetitions ran within a minute or two.
order=(--benchmark_enable_random_interleaving=true)
runs=()
for wait in unset PASSIVE; do
  step "3/5 benchmarks, OMP_NUM_THREADS=$threads, OMP_WAIT_POLICY=$wait, $repetitions repetitions"
  json="$out/run-wait-$wait.json"
  if [[ "$wait" == unset ]]; then
    env -u OMP_WAIT_POLICY "$bench" --benchmark_filter="$filter" "${order[@]}" \
      --benchmark_repetitions="$repetitions" --benchmark_out="$json" --benchmark_out_format=json
  else
    OMP_WAIT_POLICY="$wait" "$bench" --benchmark_filter="$filter" "${order[@]}" \
      --benchmark_repetitions="$repetitions" --benchmark_out="$json" --benchmark_out_format=json
  fi
  runs+=("$json")
done

step "4/5 peak resident memory of the GPT step (one process each)"
: >"$out/memory.jsonl"
impls=(normlab)
"$bench" --benchmark_list_tests | grep -q '^torch/' && impls+=(torch)
for policy in post_ln pre_ln normformer; do
  for impl in "${impls[@]}"; do
    OMP_WAIT_POLICY=PASSIVE "$bench" --gpt_memory="$impl/$policy" --gpt_memory_steps=2 |
      tee -a "$out/memory.jsonl"
  done
done

step "5/5 table"
/usr/bin/python3 tools/bench_table.py "${runs[@]}" --memory "$out/memory.jsonl" | tee "$out/table.txt"
echo "bench.sh: JSON, memory.jsonl and table.txt in $out"
