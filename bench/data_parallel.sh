#!/usr/bin/env bash
# bench/data_parallel.sh — where a data-parallel step's time goes, normlab beside
# PyTorch DDP in the same run: the benchmarks' GPT step (L6 C384 H6 T256 B8, Post-LN)
# at 1 process x 2 threads and at 2 ranks x 1 thread.
#
#   bash bench/data_parallel.sh [--repetitions N] [--steps N] [--out DIR]
#
#   1. installs the Debian packages as tools/deps.sh --tests does (OpenMPI, python3-torch);
#   2. builds normlab_data_parallel_bench in build/bench (Release, this CPU's -march);
#   3. runs, N times (default 3) in turn: normlab 1 x 2, normlab `mpirun -np 2` x 1,
#      torch 1 x 2, torch DDP (gloo) 2 x 1, each for --steps steps (default 10, the
#      first 2 not counted), every run printing one JSON line (bench/data_parallel.cpp
#      says what each figure is);
#   4. prints the medians over the repetitions (DIR/table.txt; DIR/runs.jsonl holds
#      every run; DIR defaults to build/bench-results/data-parallel).
# Figures of a machine shared with other work are noisy: say so beside them.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
repetitions=3
steps=10
out=build/bench-results/data-parallel
while (($#)); do
  case "$1" in
    --repetitions) repetitions="$2"; shift 2 ;;
    --steps) steps="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "data_parallel.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
step() { printf '\n==== data_parallel.sh [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

step "1/4 deps"
bash tools/deps.sh --tests

step "2/4 build normlab_data_parallel_bench (build/bench, Release)"
cmake -S . -B build/bench -DCMAKE_BUILD_TYPE=Release -DNORMLAB_BUILD_TESTS=OFF \
      -DNORMLAB_BUILD_EXAMPLES=OFF -DNORMLAB_BUILD_BENCH=ON -DNORMLAB_ENABLE_CUDA=OFF
cmake --build build/bench --target normlab_data_parallel_bench --parallel "${NORMLAB_JOBS:-$(nproc)}"
bench=build/bench/bench/normlab_data_parallel_bench

# The PyTorch peer on OpenBLAS kernels of this CPU's instruction set, and on OpenBLAS's
# OpenMP build when installed (tools/peer_blas.sh).
# shellcheck source=tools/peer_blas.sh
source tools/peer_blas.sh
peer_blas_setup "$(best_cpu_isa)"
peer_blas_threads

mkdir -p "$out"
runs="$out/runs.jsonl"
: >"$runs"
# OpenMPI as root, and without the kernel's cross-memory attach (absent in containers).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
mpiexec=$(command -v mpirun)
for ((r = 1; r <= repetitions; ++r)); do
  step "3/4 repetition $r of $repetitions"
  OMP_NUM_THREADS=2 "$bench" --steps "$steps" | tee -a "$runs"
  timeout 900 "$mpiexec" -np 2 -x OMP_NUM_THREADS=1 "$bench" --steps "$steps" | tee -a "$runs"
  /usr/bin/python3 bench/ddp_peer.py --ranks 1 --threads 2 --steps "$steps" --json | tee -a "$runs"
  /usr/bin/python3 bench/ddp_peer.py --ranks 2 --threads 1 --steps "$steps" --json | tee -a "$runs"
done

cpu="$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs) model $(grep -m1 '^model\s' /proc/cpuinfo | cut -d: -f2 | xargs), $(grep -o -m1 -w 'avx512f\|avx2' /proc/cpuinfo | sort -u | xargs), $(nproc) cores"
step "4/4 table (medians over $repetitions repetitions of each figure; CPU: $cpu; $PEER_BLAS_LINE)"
/usr/bin/python3 - "$runs" <<'PY' | tee "$out/table.txt"
import json, statistics, sys
runs = [json.loads(line) for line in open(sys.argv[1]) if line.startswith("{")]
keys = ["tokens_per_s", "step_ms", "compute_ms", "exchange_ms", "exposed_ms", "overlap"]
groups = {}
for r in runs:
    groups.setdefault((r["library"], r["ranks"], r["threads"]), []).append(r)
print(f"{'library':<18} {'ranks x threads':>15} " + " ".join(f"{k:>12}" for k in keys))
for (lib, ranks, threads), rs in groups.items():
    cells = []
    for k in keys:
        values = [r[k] for r in rs if k in r]
        cells.append(f"{statistics.median(values):12.3f}" if values else f"{'-':>12}")
    print(f"{lib:<18} {f'{ranks} x {threads}':>15} " + " ".join(cells))
print("step: the data-parallel step; compute: the same without the exchange; exchange: the "
      "all-reduce alone;\nexposed = step - compute; overlap = 1 - exposed / exchange "
      "(the share of the exchange hidden behind backward).")
PY
