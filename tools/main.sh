#!/usr/bin/env bash
# tools/main.sh — set up and run normlab's main job: the README's main command.
#
#   bash tools/main.sh [ARGS...]
#
# Installs the Debian packages the build needs plus `fortunes` (the default corpus)
# through tools/deps.sh, configures the Release build in build/release, builds only the
# `normlab` command and runs `normlab compare ARGS` (see `bash tools/main.sh --help`):
# Post-LN, Pre-LN and NormFormer trained alike on the text of Debian's fortunes, with a
# table in the terminal and CSV/JSON curves and report.html in normlab-results/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
jobs="${NORMLAB_JOBS:-$(nproc)}"

echo "==== main.sh: checking the Debian packages"
bash tools/deps.sh fortunes

echo "==== main.sh: configuring and building build/release (target normlab_cli)"
cmake -S . -B build/release -DCMAKE_BUILD_TYPE=Release
cmake --build build/release --parallel "$jobs" --target normlab_cli

echo "==== main.sh: running build/release/apps/normlab/normlab compare $*"
exec build/release/apps/normlab/normlab compare "$@"
