#!/usr/bin/env python3
"""tools/bench_table.py — the comparison table of normlab_bench runs.

    /usr/bin/python3 tools/bench_table.py RUN.json [RUN.json ...] [--memory MEMORY.jsonl]

Each RUN.json is Google Benchmark's JSON output of normlab_bench
(--benchmark_out=RUN.json --benchmark_out_format=json), usually with
--benchmark_repetitions. Several runs (e.g. one per OMP_WAIT_POLICY) are
combined by keeping, for every benchmark, the run whose median time is lowest:
each side at its best. MEMORY.jsonl holds the lines that
`normlab_bench --gpt_memory=IMPL/POLICY` prints.

Benchmarks pair by name: normlab/<what>/<variant>/<shape> with
torch/<what>/<variant>/<shape>. Printed: the median time of each side, the
ratio ours / libtorch (below 1: normlab is faster), each side's GEMM rate as a
fraction of the better of normlab/sgemm/peak/* and normlab/sgemm/peak_end/* (one
large sgemm by normlab's cpu::gemm in the same binary, run first and last: the
packed kernel of the path NORMLAB_CPU_KERNELS or the CPU chose, printed above the table),
the machine's FMA peak of that instruction set (machine/fma_peak/*) with both
sides' reference sgemm as a fraction of it,
normlab's heap allocations per iteration, then the performance targets with the
measured numbers and whether each holds. Where a layer or GPT target is not
met, the verdict says whether any GEMM could meet it on this machine: normlab's
GEMM work per iteration (the GFLOP/iter counter, the masked attention blocks
it skips left out) at the FMA peak is the least time its step could take, and
the ratio that time would give against the peer's measured time is the best
reachable here.
"""

import argparse
import json
import re
import statistics
import sys

PEAK_PREFIX = "normlab/sgemm/peak"  # peak/ (first benchmark) and peak_end/ (last)
POLICIES = ("post_ln", "pre_ln", "normformer")
# The peer's version, its BLAS kernels and instruction-set knobs (bench/main.cpp's context).
PEER_CONTEXT = ("peer", "peer_blas", "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA")
# bench/main.cpp's FMA ceiling of the kernels' instruction set.
FMA_PEAK_PREFIX = "machine/fma_peak/"
# OpenBLAS's cores of each instruction set (as tools/peer_blas.sh).
PEER_CORES = {"avx512": ("skylakex", "cooperlake", "sapphirerapids"),
              "avx2": ("haswell", "zen", "excavator")}


def is_counter(key, value):
    """normlab_bench's counters: GFLOP/s, tokens/s, allocs/iter, GFLOP/iter, peak_frac."""
    return key.endswith(("/s", "/iter", "_frac")) and isinstance(value, (int, float))


def load_run(path):
    """{name: {"ms": median real time in ms, "counters": {...}, "setting": str}} of one file."""
    with open(path) as f:
        doc = json.load(f)
    context = doc.get("context", {})
    setting = "OMP_WAIT_POLICY=" + context.get("OMP_WAIT_POLICY", "?")
    unit_ms = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}
    per_name = {}
    for b in doc.get("benchmarks", []):
        name = b.get("run_name", b["name"]).removesuffix("/real_time")
        entry = per_name.setdefault(name, {"reps": [], "median": None})
        if b.get("run_type") == "aggregate":
            if b.get("aggregate_name") == "median":
                entry["median"] = b
        else:
            entry["reps"].append(b)
    out = {}
    for name, entry in per_name.items():
        reps = entry["reps"]
        if not reps and entry["median"] is None:
            continue
        counter_keys = {k for r in reps for k, v in r.items() if is_counter(k, v)}
        if entry["median"] is not None:  # Google Benchmark's own median of the repetitions
            m = entry["median"]
            ms = m["real_time"] * unit_ms[m.get("time_unit", "ns")]
            counters = {k: v for k, v in m.items() if is_counter(k, v)}
        else:
            ms = statistics.median(r["real_time"] * unit_ms[r.get("time_unit", "ns")] for r in reps)
            counters = {k: statistics.median(r[k] for r in reps if k in r) for k in counter_keys}
        out[name] = {"ms": ms, "counters": counters, "setting": setting, "reps": max(len(reps), 1),
                     "march": context.get("march", "?"), "cpu": context.get("cpu_model", "?"),
                     "kernels": context.get("cpu_kernels", "?"),
                     "peer": "; ".join(context[k] if k in ("peer", "peer_blas") else f"{k}={context[k]}"
                                       for k in PEER_CONTEXT if k in context)}
    # The reference sgemm of this run: every entry's %peak is against its own run's peak, since
    # the load of a shared machine changes between runs.
    peak = max((e["counters"].get("GFLOP/s", 0) for n, e in out.items() if n.startswith(PEAK_PREFIX)),
               default=0) or None
    for e in out.values():
        e["peak"] = peak
    return out


def combine(runs):
    """For every benchmark, the entry of the run with the lowest median time."""
    best = {}
    for run in runs:
        for name, entry in run.items():
            if name not in best or entry["ms"] < best[name]["ms"]:
                best[name] = entry
    return best


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def print_table(rows, headers):
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(str(c).rjust(w) if i else str(c).ljust(w)
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    print(line(headers))
    print(line(["-" * w for w in widths]))
    for r in rows:
        print(line(r))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+", help="Google Benchmark JSON files of normlab_bench")
    ap.add_argument("--memory", help="JSON lines of normlab_bench --gpt_memory")
    args = ap.parse_args(argv)

    runs = []
    for path in args.runs:
        try:
            runs.append(load_run(path))
        except (OSError, ValueError, KeyError) as e:
            sys.exit(f"bench_table.py: cannot read {path}: {e}")
    best = combine(runs)
    if not best:
        sys.exit("bench_table.py: no benchmarks in " + ", ".join(args.runs))

    peak_names = sorted({n for run in runs for n in run if n.startswith(PEAK_PREFIX)})
    peaks = [f"{fmt(e['peak'], '.1f')} with {e['setting']}"
             for e in (next(iter(run.values())) for run in runs if run)]
    frac = lambda e: (e["counters"]["GFLOP/s"] / e["peak"]
                      if e and e["peak"] and "GFLOP/s" in e["counters"] else None)

    rows = []
    settings = sorted({e["setting"] for run in runs for e in run.values()})
    for name in best:
        if not name.startswith("normlab/"):
            continue
        key = name[len("normlab/"):]
        ours, peer = best[name], best.get("torch/" + key)
        ratio = ours["ms"] / peer["ms"] if peer else None
        pct = lambda e: fmt(None if frac(e) is None else 100 * frac(e), ".0f")
        allocs = ours["counters"].get("allocs/iter")
        row = [key, fmt(ours["ms"], ".2f"), fmt(peer["ms"] if peer else None, ".2f"),
               fmt(ratio, ".2f"), pct(ours), pct(peer), fmt(allocs, ".0f")]
        if len(settings) > 1:
            tag = lambda e: "-" if not e else e["setting"].split("=", 1)[1]
            row.append(tag(ours) + " / " + tag(peer))
        rows.append(row)
    headers = ["benchmark", "ours ms", "libtorch ms", "ratio", "ours %peak", "torch %peak",
               "allocs/iter"]
    if len(settings) > 1:
        headers.append("OMP_WAIT_POLICY ours / torch")
    reps = sorted({e["reps"] for e in best.values()})
    marches = sorted({e["march"] for e in best.values()})
    cpus = sorted({e["cpu"] for e in best.values()})
    kernels = sorted({e["kernels"] for e in best.values()})
    peers = sorted({e["peer"] for e in best.values() if e["peer"]})
    print(f"CPU: {' / '.join(cpus)}; CPU kernels: {'/'.join(kernels)} (NORMLAB_CPU_KERNELS)")
    for peer in peers:
        print(f"peer: {peer}")
        core = re.search(r"\bcore (\w+)", peer)
        for isa in kernels:
            if core and isa in PEER_CORES and core.group(1).lower() not in PEER_CORES[isa]:
                print(f"WARNING: the peer's OpenBLAS runs core {core.group(1)}, not an {isa} core: "
                      f"it does not run the instruction set normlab runs, and every ratio below "
                      f"is unfair (tools/peer_blas.sh; unset OPENBLAS_CORETYPE)")
    # The machine's ceiling (bench/main.cpp's machine/fma_peak/<isa>) and both sides' reference
    # sgemm against it.
    for name in sorted(n for n in best if n.startswith(FMA_PEAK_PREFIX)):
        fma = best[name]["counters"].get("GFLOP/s")
        if not fma:
            continue
        shares = []
        for side in ("normlab", "torch"):
            rates = [best[n]["counters"].get("GFLOP/s", 0) for n in best
                     if n.startswith(side + "/sgemm/peak")]
            if rates and max(rates) > 0:
                shares.append(f"{'ours' if side == 'normlab' else 'libtorch'} {max(rates) / fma:.0%}")
        print(f"FMA peak ({name}, independent FMAs on every thread): {fma:.1f} GFLOP/s; "
              f"reference sgemm 2048 at {', '.join(shares) or '-'} of it")
    print(f"medians of {'/'.join(map(str, reps))} repetitions; best of {len(runs)} run(s) "
          f"({', '.join(settings)}) per benchmark; ratio = ours / libtorch (below 1: normlab faster); "
          f"%peak = GEMM GFLOP/s over the reference sgemm of the same run "
          f"({', '.join(peak_names) or 'not run'}: {', '.join(peaks)} GFLOP/s); normlab_bench "
          f"compiled with -march={'/'.join(marches)}")
    print()
    print_table(rows, headers)

    # ---- the performance targets, with the numbers ------------------------------------------
    print()
    print("targets:")

    def verdict(ok):
        return "-" if ok is None else ("holds" if ok else "NOT MET")

    # The machine's FMA ceiling for normlab's kernels (the best of the paths measured).
    fma_peaks = [best[n]["counters"].get("GFLOP/s", 0) for n in best if n.startswith(FMA_PEAK_PREFIX)]
    fma_peak = max(fma_peaks, default=0)

    def reach(ours_name, ratio_at, target_ok):
        """For a target not met: normlab's GEMM work at the FMA peak, the least time it could
        take, and the ratio that time gives (ratio_at(ms)); empty when the target holds or
        the run lacks the numbers."""
        e = best.get(ours_name)
        work = e["counters"].get("GFLOP/iter") if e else None
        if not work or not fma_peak:
            return ""
        floor_ms = 1e3 * work / fma_peak
        r = ratio_at(floor_ms)
        if target_ok(r):
            return (f" (reachable: normlab's {work:.1f} GFLOP of GEMMs at the FMA peak of "
                    f"{fma_peak:.0f} GFLOP/s take {floor_ms:.1f} ms, a ratio of {r:.2f} with "
                    f"nothing else)")
        return (f" (out of reach on this machine: normlab's {work:.1f} GFLOP of GEMMs take "
                f"{floor_ms:.1f} ms even at the FMA peak of {fma_peak:.0f} GFLOP/s, a ratio of "
                f"{r:.2f})")

    def time_of(prefix, what, policy, shape):
        e = best.get(f"{prefix}/{what}/{policy}/{shape}")
        return e["ms"] if e else None

    for name in sorted(n for n in best if n.startswith(PEAK_PREFIX)):
        ours, peer = best[name], best.get("torch/" + name[len("normlab/"):])
        o = ours["counters"].get("GFLOP/s")
        t = peer["counters"].get("GFLOP/s") if peer else None
        if o is None or t is None:
            continue
        print(f"  {name[len('normlab/'):]}: ours {o:.0f} GFLOP/s / libtorch {t:.0f} GFLOP/s = "
              f"{o / t:.2f} (target >= 0.9): {verdict(o / t >= 0.9)}")
    # The targets hold on AVX2 and AVX-512 CPUs alike, against a peer on its BLAS's kernels of
    # the same instruction set (tools/peer_blas.sh).
    for shape, bound, text in (("S2", 0.65, "<= 0.65"), ("S1", 1.0, "< 1"), ("S3", 1.0, "< 1")):
        for p in POLICIES:
            o, t = time_of("normlab", "layer_fwd_bwd", p, shape), time_of("torch", "layer_fwd_bwd", p, shape)
            if o is None or t is None:
                continue
            r = o / t
            meets = (lambda x, b=bound: x <= b) if shape == "S2" else (lambda x, b=bound: x < b)
            ok = meets(r)
            why = "" if ok else reach(f"normlab/layer_fwd_bwd/{p}/{shape}", lambda ms, t=t: ms / t, meets)
            print(f"  layer fwd+bwd {p:10s} {shape}: ours {o:.1f} ms / libtorch {t:.1f} ms = {r:.2f}"
                  f" (target {text}): {verdict(ok)}{why}")
    for shape in ("S2", "S3"):
        for p in POLICIES:
            e = best.get(f"normlab/layer_fwd_bwd/{p}/{shape}")
            f = frac(e)
            if f is None:
                continue
            print(f"  layer fwd+bwd {p:10s} {shape}: {e['counters']['GFLOP/s']:.1f} GFLOP/s = "
                  f"{100 * f:.0f}% of the sgemm peak (target >= 60%): {verdict(f >= 0.6)}")
    for prefix in ("normlab", "torch"):
        nf, pre = time_of(prefix, "layer_fwd_bwd", "normformer", "S2"), time_of(prefix, "layer_fwd_bwd", "pre_ln", "S2")
        if nf is None or pre is None:
            continue
        r = nf / pre
        target = f" (target <= 1.05): {verdict(r <= 1.05)}" if prefix == "normlab" else " (for reference)"
        print(f"  NormFormer / Pre-LN at S2, {prefix}: {nf:.1f} / {pre:.1f} ms = {r:.3f}{target}")
    gpt_names = sorted(n for n in best if n.startswith("normlab/gpt_step/"))
    for name in gpt_names:
        ours, peer = best[name], best.get("torch/" + name[len("normlab/"):])
        o = ours["counters"].get("tokens/s")
        t = peer["counters"].get("tokens/s") if peer else None
        if o is None or t is None:
            continue
        policy = name.split("/")[2]
        ok = o / t >= 1.6
        peer_ms = peer["ms"]
        why = "" if ok else reach(name, lambda ms: peer_ms / ms, lambda x: x >= 1.6)
        print(f"  GPT step {policy:10s}: ours {o:.0f} tokens/s / libtorch {t:.0f} tokens/s = "
              f"{o / t:.2f} (target >= 1.6): {verdict(ok)}{why}")
    if args.memory:
        mem = {}
        try:
            with open(args.memory) as f:
                for line in f:
                    if line.strip():
                        m = json.loads(line)
                        mem[m["name"]] = m
        except (OSError, ValueError, KeyError) as e:
            sys.exit(f"bench_table.py: cannot read {args.memory}: {e}")
        for name in sorted(n for n in mem if n.startswith("normlab/")):
            ours, peer = mem[name], mem.get("torch/" + name[len("normlab/"):])
            policy = name.split("/")[2]
            if peer is None:
                print(f"  GPT step {policy:10s} peak RSS: ours {ours['peak_rss_mib']:.0f} MiB, "
                      f"no libtorch figure")
                continue
            o, t = ours["peak_rss_mib"], peer["peak_rss_mib"]
            print(f"  GPT step {policy:10s} peak RSS: ours {o:.0f} MiB / libtorch {t:.0f} MiB "
                  f"(before the model: {ours['rss_before_model_mib']:.0f} / "
                  f"{peer['rss_before_model_mib']:.0f} MiB) (target ours <= libtorch): {verdict(o <= t)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
