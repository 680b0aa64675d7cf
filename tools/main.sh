#!/usr/bin/env bash
# tools/main.sh — set up and run normlab's main job: the README's main command.
#
#   bash tools/main.sh [ARGS...]
#
# Installs the Debian packages the build needs (tools/deps.sh), configures the Release
# build in build/release, builds only the fit_function example and runs it with ARGS
# (see `bash tools/main.sh --help`): a two-layer network with a LayerNorm fitting
# y = sin(3x) + 0.5 x^2, printing its loss as it falls.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="${NORMLAB_JOBS:-$(nproc)}"

echo "==== main.sh: checking the Debian packages"
bash tools/deps.sh

echo "==== main.sh: configuring and building build/release (target fit_function)"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release
cmake --build build/release --parallel "$jobs" --target fit_function

echo "==== main.sh: running build/release/examples/fit_function $*"
exec build/release/examples/fit_function "$@"
