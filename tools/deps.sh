#!/usr/bin/env bash
# tools/deps.sh — make sure the Debian packages that normlab's build needs are installed.
#
#   bash tools/deps.sh [EXTRA_PACKAGE ...]      check, and install what is missing
#   bash tools/deps.sh --tests [EXTRA ...]      the same, plus NORMLAB_TEST_DEBIAN_PACKAGES
#   source tools/deps.sh                        only defines normlab_ensure_deps
#
# Each package is checked with `dpkg -s`. When some are missing: as root, this runs
# `apt-get update` and `apt-get install -y <missing>`; otherwise it prints the exact
# `sudo apt-get install -y <missing>` line and fails. Extra packages come from the
# arguments or from NORMLAB_EXTRA_PACKAGES (space-separated); NORMLAB_SKIP_DEPS=1 skips
# the whole check (for machines that are not Debian but have the tools).

# What the build uses, and which package provides it on Debian 12:
NORMLAB_DEBIAN_PACKAGES=(
  cmake            # build system (CMakeLists.txt needs 3.25)
  make             # CMake's default generator
  g++              # C++20 compiler; also brings libgomp, the OpenMP runtime
  libeigen3-dev    # Eigen3 (find_package(Eigen3 3.3 NO_MODULE)): the CPU backend
  libgtest-dev     # GTest (find_package(GTest)): tests/
  libbenchmark-dev # Google Benchmark (find_package(benchmark)): bench/
  libtorch-dev     # libtorch (find_package(Torch)): the peers in bench/normlab_bench
  libopenblas0     # OpenBLAS for libtorch's GEMMs (Debian's recommendation; reference BLAS otherwise)
  libopenblas0-openmp # its OpenMP build, which the benchmarks give the peer (tools/peer_blas.sh)
)

# What only the tests add (tools/test.sh passes them; tools/main.sh does not need them):
NORMLAB_TEST_DEBIAN_PACKAGES=(
  libopenmpi-dev   # MPI headers and libraries (find_package(MPI)): normlab::mpi, tests/dist/mpi
  openmpi-bin      # mpirun, which runs the MPI tests with 2, 3 and 4 ranks
  python3-torch    # tests/interop: tools/import_fairseq.py reads and writes torch checkpoints
  python3-omegaconf # tests/interop: fairseq's `cfg` is an omegaconf DictConfig
)

# Prints the packages among "$@" that dpkg does not report as installed.
normlab_missing_packages() {
  local pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed$' || printf '%s\n' "$pkg"
  done
}

# Checks NORMLAB_DEBIAN_PACKAGES, NORMLAB_EXTRA_PACKAGES and "$@"; installs what is missing.
normlab_ensure_deps() {
  if [[ "${NORMLAB_SKIP_DEPS:-0}" == 1 ]]; then
    echo "deps.sh: NORMLAB_SKIP_DEPS=1, not checking packages"
    return 0
  fi
  local -a wanted=("${NORMLAB_DEBIAN_PACKAGES[@]}")
  local -a extra=()
  read -r -a extra <<<"${NORMLAB_EXTRA_PACKAGES:-}"
  wanted+=("${extra[@]}" "$@")
  if ! command -v dpkg >/dev/null 2>&1; then
    echo "deps.sh: dpkg not found; this check is for Debian. Install the equivalents of:" >&2
    echo "  ${wanted[*]}" >&2
    echo "then rerun with NORMLAB_SKIP_DEPS=1." >&2
    return 1
  fi

  local -a missing=()
  mapfile -t missing < <(normlab_missing_packages "${wanted[@]}")
  if ((${#missing[@]} == 0)); then
    echo "deps.sh: all ${#wanted[@]} required packages are installed"
    return 0
  fi

  echo "deps.sh: missing Debian packages: ${missing[*]}"
  if [[ "$(id -u)" != 0 ]]; then
    echo "deps.sh: not root; install them with:" >&2
    echo "sudo apt-get install -y ${missing[*]}" >&2
    return 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update || return 1
  apt-get install -y "${missing[@]}" || return 1

  mapfile -t missing < <(normlab_missing_packages "${missing[@]}")
  if ((${#missing[@]} != 0)); then
    echo "deps.sh: still missing after apt-get install: ${missing[*]}" >&2
    return 1
  fi
  echo "deps.sh: installed everything that was missing"
}

# Run directly (not sourced): do the check now.
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  if [[ "${1:-}" == --tests ]]; then
    shift
    normlab_ensure_deps "${NORMLAB_TEST_DEBIAN_PACKAGES[@]}" "$@"
  else
    normlab_ensure_deps "$@"
  fi
fi
