#!/usr/bin/env bash
# normlab train under an MPI launcher, end to end:
#   1. `mpirun -np 2 normlab train` (one micro-batch per rank) writes the same metrics,
#      losses bit for bit, and the same final checkpoint, byte for byte, as one process
#      with --micro-batches 2: the same slices, dropout streams and sums (rank order
#      there, slice order here);
#   2. a run of 2 ranks stopped halfway and resumed by one process with 2 micro-batches
#      ends at the same losses: the world size may change at a resume;
#   3. a batch that does not split over the ranks is a usage error on every rank.
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
echo "cli_data_parallel: 2 ranks = 2 micro-batches bit for bit; resume at another world size ok"
cat "$out/serial.final"
