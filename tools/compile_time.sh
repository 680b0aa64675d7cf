#!/usr/bin/env bash
# tools/compile_time.sh — how long one translation unit that uses normlab takes to compile.
#
#   bash tools/compile_time.sh [RUNS]
#
# Times the compilation (no linking) of bench/compile_time_gpt.cpp — it includes
# <normlab/normlab.hpp> and trains GPT<NormFormer, Cpu> with AdamW for a few steps —
# with the exact command CMake uses in a Release build (taken from
# compile_commands.json of build/compile-time). Runs it RUNS times (default 3) and
# prints each run and the medians of the wall-clock time and of the CPU time
# (user + sys; less disturbed than wall time on a busy machine), plus the size of the
# preprocessed translation unit.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${1:-3}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "compile_time.sh: RUNS must be a positive number, got '$runs'" >&2; exit 2; }

bash tools/deps.sh python3 >/dev/null
build=build/compile-time
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DNORMLAB_BUILD_TESTS=OFF \
      -DNORMLAB_BUILD_EXAMPLES=OFF -DNORMLAB_BUILD_BENCH=ON -DNORMLAB_BENCH_TORCH=OFF \
      -DNORMLAB_ENABLE_CUDA=OFF -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null

# The compile command and its directory, as CMake wrote them.
mapfile -t entry < <(/usr/bin/python3 - "$build/compile_commands.json" <<'PY'
import json, shlex, sys
for e in json.load(open(sys.argv[1])):
    if e["file"].endswith("bench/compile_time_gpt.cpp"):
        args = shlex.split(e["command"])
        out = args.index("-o")
        preprocess = args[:out] + args[out + 2:]
        preprocess = [a for a in preprocess if a != "-c"] + ["-E"]
        print(e["directory"]); print(e["command"]); print(shlex.join(preprocess)); break
else:
    sys.exit("compile_time.sh: bench/compile_time_gpt.cpp is not in compile_commands.json")
PY
)
dir="${entry[0]}"
cmd="${entry[1]}"
preprocess="${entry[2]}"
echo "compile_time.sh: in $dir:"
echo "  $cmd"
mkdir -p "$dir/bench/CMakeFiles/normlab_compile_time_gpt.dir"

walls=()
cpus=()
TIMEFORMAT='%R %U %S'
for ((i = 1; i <= runs; i++)); do
  t=$( { time (cd "$dir" && eval "$cmd") ; } 2>&1 | tail -n 1)
  read -r wall user sys <<<"$t"
  cpu=$(/usr/bin/python3 -c "print($user + $sys)")
  printf '  run %d: wall %.2f s, cpu %.2f s\n' "$i" "$wall" "$cpu"
  walls+=("$wall")
  cpus+=("$cpu")
done
lines=$(cd "$dir" && eval "$preprocess" | wc -l)
/usr/bin/python3 - "${walls[*]}" "${cpus[*]}" "$lines" "$runs" <<'PY'
import statistics, sys
walls = [float(x) for x in sys.argv[1].split()]
cpus = [float(x) for x in sys.argv[2].split()]
print(f"compile time of bench/compile_time_gpt.cpp (Release, median of {sys.argv[4]}): "
      f"wall {statistics.median(walls):.2f} s, cpu {statistics.median(cpus):.2f} s; "
      f"{int(sys.argv[3])} preprocessed lines")
PY
