#!/usr/bin/env bash
# bench/tests/peer_blas_test.sh — tools/peer_blas.sh gives the libtorch peer
# OpenBLAS kernels of the instruction set asked for, and only when OpenBLAS's
# own choice is not of it (OpenBLAS's detection is replaced by a stub here, so
# the test needs neither OpenBLAS nor a particular CPU), and its OpenMP build
# when that is installed (a folder of empty files stands for it).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
# shellcheck source=tools/peer_blas.sh
source tools/peer_blas.sh

failures=0
# expect ISA DETECTED PRESET -> the OPENBLAS_CORETYPE expected afterwards ("" for unset)
expect() {
  local isa="$1" detected="$2" preset="$3" want="$4" got
  got=$(
    stub_core="$detected"  # (peer_blas_setup has a local of the name `detected`)
    peer_blas_detected_core() { echo "$stub_core"; }
    if [[ -n "$preset" ]]; then export OPENBLAS_CORETYPE="$preset"; else unset OPENBLAS_CORETYPE; fi
    peer_blas_setup "$isa" >/dev/null
    [[ -n "$PEER_BLAS_LINE" ]] || { echo "(no PEER_BLAS_LINE)"; exit 0; }
    echo "${OPENBLAS_CORETYPE:-}"
  )
  if [[ "$got" != "$want" ]]; then
    echo "FAIL: isa $isa, OpenBLAS's own core '$detected', preset '$preset': expected" \
         "OPENBLAS_CORETYPE '$want', got '$got'"
    failures=$((failures + 1))
  fi
}
expect avx512 Prescott "" SkylakeX        # a CPU newer than OpenBLAS: its SSE3 fallback replaced
expect avx512 SkylakeX "" ""              # OpenBLAS knows the CPU: left alone
expect avx512 Cooperlake "" ""
expect avx512 Haswell "" SkylakeX         # an AVX2 core on an AVX-512 comparison
expect avx2 Prescott "" Haswell
expect avx2 Zen "" ""                     # a real AVX2-only CPU keeps its own core
expect avx2 SkylakeX "" Haswell           # avx2 forced on an AVX-512 CPU: the peer runs AVX2 too
expect avx2 Prescott Sandybridge Sandybridge  # the caller's choice is kept
expect avx512 Cooperlake Haswell Haswell  # kept too, though not of the ISA (the line says so)
expect portable Prescott "" ""            # no instruction set to match
expect avx512 none "" ""                  # no OpenBLAS to load

# A caller's core of another instruction set is kept, and the line says the comparison is unfair.
line=$(OPENBLAS_CORETYPE=Haswell peer_blas_setup avx512)
if [[ "$line" != *"is not an avx512 core"* ]]; then
  echo "FAIL: OPENBLAS_CORETYPE=Haswell on an avx512 comparison: the line does not say it is not an" \
       "avx512 core: '$line'"
  failures=$((failures + 1))
fi
line=$(OPENBLAS_CORETYPE=SkylakeX peer_blas_setup avx512)
if [[ "$line" == *"not an"* ]]; then
  echo "FAIL: OPENBLAS_CORETYPE=SkylakeX on an avx512 comparison called unfair: '$line'"
  failures=$((failures + 1))
fi

# The OpenMP build of OpenBLAS goes first on the peer's library path when its folder holds it,
# and the path is left alone (the line says what the peer runs on) when it does not.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/openmp"
touch "$tmp/openmp/libopenblas.so.0" "$tmp/openmp/libblas.so.3"
# expect_threads DIR LINE_BEFORE -> "LD_LIBRARY_PATH|PEER_BLAS_LINE" expected to start so
expect_threads() {
  local dir="$1" line_before="$2" want="$3" got
  # shellcheck disable=SC2034  # PEER_BLAS_OPENMP_DIR: read by peer_blas_threads
  got=$(PEER_BLAS_OPENMP_DIR="$dir" LD_LIBRARY_PATH=/earlier PEER_BLAS_LINE="$line_before"
        peer_blas_threads >/dev/null
        echo "$LD_LIBRARY_PATH|$PEER_BLAS_LINE")
  if [[ "$got" != "$want"* ]]; then
    echo "FAIL: OpenMP build folder $dir: LD_LIBRARY_PATH|PEER_BLAS_LINE = '$got', expected '$want...'"
    failures=$((failures + 1))
  fi
}
expect_threads "$tmp/openmp" kernels "$tmp/openmp:/earlier|kernels; peer BLAS threads: OpenBLAS on OpenMP"
expect_threads "$tmp/absent" "" "/earlier|peer BLAS threads: OpenBLAS on its own pthreads"

cores=$(best_cpu_isa)
case "$cores" in avx512 | avx2 | portable) ;; *) echo "FAIL: best_cpu_isa printed '$cores'"; failures=$((failures + 1)) ;; esac

if ((failures)); then
  echo "peer_blas_test: $failures failure(s)"
  exit 1
fi
echo "peer_blas_test: ok"
