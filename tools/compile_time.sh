#!/usr/bin/env bash
# tools/compile_time.sh — how long one translation unit that uses normlab takes to
# compile, beside the same program written with libtorch.
#
#   bash tools/compile_time.sh [RUNS]
#
# Compiles (no linking), each RUNS times (default 3), with the exact commands CMake
# uses in a Release build (-O3; taken from compile_commands.json of build/compile-time):
#
#   libtorch              bench/compile_time_torch.cpp: <torch/torch.h>, one
#                         TransformerEncoderLayer trained with AdamW (C++17)
#   normlab header-only   bench/compile_time_gpt.cpp: <normlab/normlab.hpp>,
#                         GPT<NormFormer, float, Cpu> trained with AdamW (C++20)
#   normlab precompiled   the same file linking normlab::precompiled, which holds
#                         GPT<NormFormer> and the ops, modules and optimizers
#   normlab own policy    the same file with compose<PreLN, AttnOutNorm>, a policy
#                         no library holds, linking normlab::precompiled
#
# and prints, per translation unit, the medians of the wall-clock time, of the CPU
# time (user + sys of the compiler; less disturbed than wall time on a busy
# machine) and of the compiler's peak memory (maximum resident set), the size of
# the preprocessed translation unit, and each CPU time as a ratio of libtorch's.
# Without libtorch (libtorch-dev) the libtorch row is left out.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
runs="${1:-3}"
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "compile_time.sh: RUNS must be a positive number, got '$runs'" >&2; exit 2; }

bash tools/deps.sh python3 >/dev/null
build=build/compile-time
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release -DNORMLAB_BUILD_TESTS=OFF \
      -DNORMLAB_BUILD_EXAMPLES=OFF -DNORMLAB_BUILD_APPS=OFF -DNORMLAB_BUILD_BENCH=ON \
      -DNORMLAB_BENCH_TORCH=ON -DNORMLAB_ENABLE_CUDA=OFF -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null

exec /usr/bin/python3 - "$build" "$runs" <<'PY'
import json, os, shlex, statistics, subprocess, sys, time

build, runs = sys.argv[1], int(sys.argv[2])
units = [  # (label, CMake target, source)
    ("libtorch", "normlab_compile_time_torch", "bench/compile_time_torch.cpp"),
    ("normlab header-only", "normlab_compile_time_gpt", "bench/compile_time_gpt.cpp"),
    ("normlab precompiled", "normlab_compile_time_gpt_precompiled", "bench/compile_time_gpt.cpp"),
    ("normlab own policy", "normlab_compile_time_own_policy", "bench/compile_time_gpt.cpp"),
]
entries = json.load(open(os.path.join(build, "compile_commands.json")))

def entry_of(target, source):
    for e in entries:
        if e["file"].endswith(source) and f"/{target}.dir/" in e.get("output", e["command"]):
            return e
    return None

def run(cmd, cwd):
    """Runs cmd; returns (wall s, cpu s of the compiler and its children, peak KiB)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, shell=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.monotonic() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"compile_time.sh: the compile command failed in {cwd}:\n  {cmd}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss

rows = []
for label, target, source in units:
    e = entry_of(target, source)
    if e is None:
        if target == "normlab_compile_time_torch":
            print("compile_time.sh: libtorch not found (libtorch-dev): no libtorch row")
            continue
        sys.exit(f"compile_time.sh: {target} ({source}) is not in compile_commands.json")
    args = shlex.split(e["command"])
    out = args.index("-o")
    os.makedirs(os.path.join(e["directory"], os.path.dirname(args[out + 1])), exist_ok=True)
    preprocess = [a for a in args[:out] + args[out + 2:] if a != "-c"] + ["-E"]
    print(f"{label}: in {e['directory']}:\n  {e['command']}", flush=True)
    samples = []
    for i in range(runs):
        wall, cpu, peak = run(e["command"], e["directory"])
        print(f"  run {i + 1}: wall {wall:.2f} s, cpu {cpu:.2f} s, peak {peak / 1024:.0f} MiB",
              flush=True)
        samples.append((wall, cpu, peak))
    pre = subprocess.run(shlex.join(preprocess), cwd=e["directory"], shell=True, check=True,
                         capture_output=True).stdout
    rows.append((label, *(statistics.median(s[k] for s in samples) for k in range(3)),
                 pre.count(b"\n")))

torch_cpu = next((r[2] for r in rows if r[0] == "libtorch"), None)
print(f"\ncompile time, Release (-O3), median of {runs}:")
print(f"{'translation unit':<22}{'wall s':>8}{'cpu s':>8}{'peak MiB':>10}"
      f"{'pp lines':>10}{'cpu / libtorch':>16}")
for label, wall, cpu, peak, lines in rows:
    ratio = f"{cpu / torch_cpu:.2f}" if torch_cpu else "-"
    print(f"{label:<22}{wall:>8.2f}{cpu:>8.2f}{peak / 1024:>10.0f}{lines:>10}{ratio:>16}")
PY
