#!/usr/bin/env bash
# normlab train under an MPI launcher, end to end:
#   1. `mpirun -np 2 normlab train` (one micro-batch per rank) writes the same metrics,
#      losses bit for bit, and the same final checkpoint, byte for byte, as one process
#      with --micro-batches 2: the same slices, dropout streams and sums (rank order
#      there, slice order here);
#   2. a run of 2 ranks stopped halfway and resumed by one process with 2 micro-batches
#      ends at the same losses: the world size may change at a resume;
#   3. a batch that does not split over the ranks is a usage error on every rank;
#   4. a rank killed mid-training ends the job, with a message naming the rank, long
#      before any timeout (OpenMPI's launcher ends the other ranks);
#   5. `mpirun -np 2 normlab compare` spreads its runs over the ranks and writes the
#      results of one process: the same CSV files byte for byte, and the same
#      results.json but for the elapsed time, the command line and the machine.
#
#   cli_data_parallel.sh NORMLAB MPIEXEC CORPUS OUT
set -euo pipefail
normlab=$1 mpiexec=$2 corpus=$3 out=$4
rm -rf "$out"
mkdir -p "$out"
common=(--corpus "$corpus" --d-model 16 --layers 2 --heads 2 --d-ff 32 --seq-len 16
        --steps 6 --warmup 2 --eval-every 3 --eval-windows 4 --dropout 0.1
        --policy normformer --seed 3 --checkpoint-every 3)
model=("${common[@]}" --batch-size 4)
# OpenMPI's mpirun may not return after its ranks ended (open-mpi/ompi#3380): bounded.
ranks() { timeout 120 "$mpiexec" -n 2 "$normlab" "$@"; }
# metrics.csv without tokens_per_s (column 5, a timing)
losses() { cut -d, -f1-4,6- "$1"; }
fail() { echo "cli_data_parallel: $*" >&2; exit 1; }

"$normlab" train "${model[@]}" --micro-batches 2 --out "$out/serial" >"$out/serial.log" 2>&1 ||
  fail "one process failed: $(cat "$out/serial.log")"
ranks train "${model[@]}" --out "$out/ranks" >"$out/ranks.log" 2>&1 ||
  fail "2 ranks failed: $(cat "$out/ranks.log")"
grep -q "2 ranks x 1 micro-batch of 2 windows" "$out/ranks.log" ||
  fail "rank 0 did not say how the batch is split: $(cat "$out/ranks.log")"
diff <(losses "$out/serial/metrics.csv") <(losses "$out/ranks/metrics.csv") ||
  fail "2 ranks and 2 micro-batches wrote different losses"
cmp "$out/serial/checkpoint-6.safetensors" "$out/ranks/checkpoint-6.safetensors" ||
  fail "2 ranks and 2 micro-batches wrote different final checkpoints"
[[ $(ls "$out/ranks") == $(ls "$out/serial") ]] || fail "rank 0 alone should write the files"

ranks train "${model[@]}" --stop-at 3 --out "$out/split" >"$out/split.log" 2>&1 ||
  fail "2 ranks, stopped at 3, failed: $(cat "$out/split.log")"
"$normlab" train --resume "$out/split/checkpoint-3.safetensors" --micro-batches 2 \
  >"$out/resumed.log" 2>&1 || fail "the resumed run failed: $(cat "$out/resumed.log")"
diff <(losses "$out/serial/metrics.csv") <(losses "$out/split/metrics.csv") ||
  fail "2 ranks resumed by one process wrote other losses than one process throughout"
grep "^final step" "$out/serial.log" >"$out/serial.final"
grep "^final step" "$out/resumed.log" >"$out/resumed.final"
cmp "$out/serial.final" "$out/resumed.final" || fail "the final lines differ"

status=0
ranks train "${common[@]}" --batch-size 3 --out "$out/bad" >"$out/bad.log" 2>&1 || status=$?
[[ $status != 0 ]] || fail "a batch of 3 over 2 ranks was accepted"
grep -q "must divide the batch size 3" "$out/bad.log" || fail "no usage error: $(cat "$out/bad.log")"

# 4. kill -9 rank 1 once rank 0 has logged a step of a long run.
ranks train --corpus "$corpus" --d-model 16 --layers 2 --heads 2 --d-ff 32 --seq-len 16 \
  --batch-size 4 --steps 100000 --out "$out/killed" >"$out/killed.log" 2>&1 &
launcher=$!
rank1=""
for _ in $(seq 600); do  # up to 60 s for the ranks to start and step
  for pid in $(pgrep -f "normlab.* train .*$out/killed" || true); do
    if { tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1"; then
      rank1=$pid
    fi
  done
  [[ -n $rank1 && -s $out/killed/metrics.csv && $(wc -l <"$out/killed/metrics.csv") -ge 3 ]] &&
    break
  kill -0 "$launcher" 2>/dev/null || fail "the long run ended by itself: $(cat "$out/killed.log")"
  sleep 0.1
done
[[ -n $rank1 ]] || { kill "$launcher" 2>/dev/null; fail "rank 1 of the long run never appeared"; }
kill -9 "$rank1"
killed_at=$SECONDS
status=0
wait "$launcher" || status=$?
[[ $status != 0 ]] || fail "the job went on to exit 0 after rank 1 was killed"
[[ $status != 124 ]] || fail "the job did not end within the bound after rank 1 was killed"
killed_s=$((SECONDS - killed_at))
((killed_s < 60)) || fail "the job took $killed_s s to end"
grep -qi "rank 1" "$out/killed.log" || fail "no message names rank 1: $(cat "$out/killed.log")"

# 5. compare over 2 ranks = compare in one process.
compare=(compare --corpus "$corpus" --steps 6 --warmups 0,2 --lrs 0.001,0.003 --depths 1,2
         --seeds 1,2 --grad-batches 1 --d-model 16 --layers 2 --heads 2 --d-ff 32
         --seq-len 16 --batch-size 2 --eval-every 3 --stress-steps 5)
"$normlab" "${compare[@]}" --out "$out/compare-serial" >"$out/compare-serial.log" 2>&1 ||
  fail "compare in one process failed: $(cat "$out/compare-serial.log")"
ranks "${compare[@]}" --out "$out/compare-ranks" >"$out/compare-ranks.log" 2>&1 ||
  fail "compare over 2 ranks failed: $(cat "$out/compare-ranks.log")"
grep -q "over 2 ranks" "$out/compare-ranks.log" || fail "rank 0 did not say it spreads the runs"
[[ $(ls "$out/compare-ranks") == $(ls "$out/compare-serial") ]] ||
  fail "compare over ranks wrote other files: $(ls "$out/compare-ranks")"
for f in "$out"/compare-serial/*.csv; do
  cmp "$f" "$out/compare-ranks/${f##*/}" || fail "compare over 2 ranks wrote another ${f##*/}"
done
/usr/bin/python3 - "$out/compare-serial/results.json" "$out/compare-ranks/results.json" <<'PY' ||
import json, sys
serial, ranks = (json.load(open(f)) for f in sys.argv[1:])
assert (serial["machine"]["ranks"], ranks["machine"]["ranks"]) == (1, 2), (serial["machine"], ranks["machine"])
for r in (serial, ranks):
    for key in ("elapsed_s", "command", "machine"):
        r.pop(key)
differ = [k for k in serial if serial[k] != ranks.get(k)]
assert not differ and serial.keys() == ranks.keys(), f"results.json differs in {differ}"
PY
  fail "compare over 2 ranks measured something else"
echo "cli_data_parallel: 2 ranks = 2 micro-batches bit for bit; resume at another world size ok;"
echo "  a killed rank ended the job in ${killed_s} s; compare over 2 ranks = 1 process"
cat "$out/serial.final"
