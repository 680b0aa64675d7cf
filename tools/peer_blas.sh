# tools/peer_blas.sh — sourced by tools/bench.sh and bench/data_parallel.sh: which
# OpenBLAS kernels the libtorch peer runs, so that it runs the instruction set
# normlab runs.
#
# Debian's libtorch does its GEMMs in OpenBLAS, which picks its kernels by the
# CPU's family and model number. A CPU newer than the OpenBLAS release falls
# back to its oldest x86-64 kernels ("Prescott", SSE3): Debian 12's OpenBLAS
# 0.3.21 does so on an Intel Xeon of family 6 model 207 (Emerald Rapids),
# where libtorch's 2048^3 sgemm then runs at about 36 GFLOP/s on two cores
# instead of about 200 with its AVX-512 kernels. A peer running SSE3 beside
# normlab's AVX-512 flatters normlab, so the benchmarks give it the kernels of
# the instruction set they compare (OPENBLAS_CORETYPE, read when OpenBLAS
# loads); an OPENBLAS_CORETYPE set by the caller is kept, and the line says so when it
# is not a core of the compared instruction set (the table then warns: its ratios are unfair).
#
#   best_cpu_isa            prints this CPU's best instruction set as kernel_path.hpp's
#                           best_cpu_kernels() sees it: avx512, avx2 (with FMA) or portable
#   peer_blas_setup ISA     ISA: avx512 or avx2 (anything else: OpenBLAS's own choice)
#   peer_blas_threads       the OpenMP build of OpenBLAS for the peer, when installed
#
# exports OPENBLAS_CORETYPE when OpenBLAS's own choice is not a core of ISA
# (avx512: SkylakeX, Cooperlake, SapphireRapids; avx2: Haswell, Zen, Excavator;
# a real AVX2-only machine keeps its own core, and a forced avx2 run on an
# AVX-512 CPU gets Haswell), and prints one line saying which core the peer
# runs and why (also left in PEER_BLAS_LINE, for a table's header).

best_cpu_isa() {
  local flags
  flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
  if [[ "$flags" == *" avx512f "* ]]; then
    echo avx512
  elif [[ "$flags" == *" avx2 "* && "$flags" == *" fma "* ]]; then
    echo avx2
  else
    echo portable
  fi
}

# OpenBLAS's core for this CPU when nothing forces it, as libtorch loads it
# (libopenblas.so.0); "none" when that library cannot be loaded.
peer_blas_detected_core() {
  env -u OPENBLAS_CORETYPE /usr/bin/python3 -c '
import ctypes
try:
    lib = ctypes.CDLL("libopenblas.so.0")
except OSError:
    print("none")
else:
    lib.openblas_get_corename.restype = ctypes.c_char_p
    print(lib.openblas_get_corename().decode())
' 2>/dev/null || echo none
}

peer_blas_setup() {
  local isa="$1" detected wanted cores
  peer_blas_say() { PEER_BLAS_LINE="$1"; echo "$1"; }
  case "$isa" in
    avx512) cores=" skylakex cooperlake sapphirerapids "; wanted=SkylakeX ;;
    avx2) cores=" haswell zen excavator "; wanted=Haswell ;;
    *) cores="" ;;
  esac
  if [[ -n "${OPENBLAS_CORETYPE:-}" ]]; then
    if [[ -n "$cores" && "$cores" != *" ${OPENBLAS_CORETYPE,,} "* ]]; then
      # Kept, but said loudly: a peer on another instruction set's kernels makes
      # every ratio of the table unfair (seen: an environment exporting
      # OPENBLAS_CORETYPE=Haswell on an AVX-512 machine).
      peer_blas_say "peer BLAS: OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE (set by the caller) is not an $isa core: the peer does not run the instruction set normlab runs (unset OPENBLAS_CORETYPE for a fair comparison)"
    else
      peer_blas_say "peer BLAS: OPENBLAS_CORETYPE=$OPENBLAS_CORETYPE (set by the caller)"
    fi
    return 0
  fi
  detected=$(peer_blas_detected_core)
  if [[ -z "$cores" ]]; then
    peer_blas_say "peer BLAS: OpenBLAS core $detected (its own choice)"
    return 0
  fi
  if [[ "$detected" == none ]]; then
    peer_blas_say "peer BLAS: libopenblas.so.0 not loadable; the peer's BLAS is left as it is"
  elif [[ "$cores" == *" ${detected,,} "* ]]; then
    peer_blas_say "peer BLAS: OpenBLAS core $detected (its own choice, an $isa core)"
  else
    export OPENBLAS_CORETYPE="$wanted"
    peer_blas_say "peer BLAS: OpenBLAS core $wanted (OPENBLAS_CORETYPE; its own choice, $detected, is not an $isa core)"
  fi
}

# Debian's default OpenBLAS (libopenblas0-pthread) runs its GEMMs on a pool of
# its own pthreads, beside libtorch's OpenMP pool for everything else; on a few
# cores the two pools' waiting threads take the cores from each other. Measured
# on an AMD EPYC of family 26, two threads, the same OpenBLAS 0.3.21 and core:
# libtorch's GPT training step took 1557-1834 ms with OMP_WAIT_POLICY unset and
# 884-1133 ms with PASSIVE on the pthread build, 765-890 ms on Debian's OpenMP
# build (libopenblas0-openmp), where its GEMMs and its own ops share one pool,
# as in PyTorch's own builds; its S2 layers 183-398 ms against 152-180.
# Comparing against the first flatters normlab.
#
# peer_blas_threads makes the peer load the OpenMP build when it is installed
# (LD_LIBRARY_PATH to its folder, PEER_BLAS_OPENMP_DIR to look elsewhere; the
# system's default BLAS is left alone), and appends what the peer runs on to
# PEER_BLAS_LINE, which it prints.
peer_blas_threads() {
  local multiarch dir line
  multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
  dir="${PEER_BLAS_OPENMP_DIR:-/usr/lib/$multiarch/openblas-openmp}"
  if [[ -e "$dir/libopenblas.so.0" && -e "$dir/libblas.so.3" ]]; then
    export LD_LIBRARY_PATH="$dir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    line="OpenBLAS on OpenMP, one thread pool with libtorch's ($dir)"
  else
    line="OpenBLAS on its own pthreads beside libtorch's OpenMP pool (no $dir: the peer runs slower; apt-get install libopenblas0-openmp)"
  fi
  PEER_BLAS_LINE="${PEER_BLAS_LINE:+$PEER_BLAS_LINE; }peer BLAS threads: $line"
  echo "peer BLAS threads: $line"
}
