#!/usr/bin/env bash
# examples/cli_kill_test.sh — `normlab train` survives kill -9 at any moment.
#
#   bash cli_kill_test.sh NORMLAB CORPUS OUT [KILLS]
#
#   1. An uninterrupted run with a checkpoint every step: the reference.
#   2. The same run, killed with SIGKILL at a random moment KILLS times (12 by
#      default), 0-0.25 s after each run's first new checkpoint; after each
#      kill, the newest checkpoint must load (generate) and the run goes on
#      with --resume from it. Most of a step's time is
#      its checkpoint write and fsync, so most kills land inside a write;
#      the test requires at least one that left a temporary file behind.
#   3. The last resume runs to the end: its final loss line and every loss
#      in metrics.csv and metrics.jsonl must equal the uninterrupted run's,
#      bit for bit.
#
# Prints each kill's moment and whether it hit a write; exits non-zero with
# a message on the first failure.
set -euo pipefail
normlab=$1 corpus=$2 out=$3 kills=${4:-12}
steps=1200
model=(--corpus "$corpus" --d-model 48 --layers 3 --heads 4 --d-ff 96 --seq-len 16
       --batch-size 2 --steps "$steps" --warmup 5 --eval-every 400 --eval-windows 2
       --policy normformer --dropout 0.1 --seed 5)
every=(--checkpoint-every 1 --keep-checkpoints 2)  # not part of the run: given on each resume
fail() { echo "cli_kill_test: $*" >&2; exit 1; }
newest_checkpoint() {  # the checkpoint of the highest step in $1, or nothing
  { find "$1" -maxdepth 1 -name 'checkpoint-*.safetensors' 2>/dev/null || true; } | sort -V | tail -n 1
}
# metrics.csv without its tokens_per_s column (a timing)
losses() { cut -d, -f1-4,6- "$1"; }
json_losses() { sed -E 's/"tokens_per_s":[^,}]*,?//' "$1"; }

rm -rf "$out"
mkdir -p "$out"
"$normlab" train "${model[@]}" "${every[@]}" --out "$out/whole" >"$out/whole.log" 2>&1 ||
  fail "the uninterrupted run failed: $(tail -n 3 "$out/whole.log")"
whole_final=$(grep -o 'final step .*' "$out/whole.log") || fail "no final line in $out/whole.log"

run=$out/killed
hit_write=0
for ((i = 1; i <= kills; i++)); do
  newest=$(newest_checkpoint "$run")
  if [[ -z "$newest" ]]; then
    args=(train "${model[@]}" "${every[@]}" --out "$run")
  else
    args=(train --resume "$newest" "${every[@]}")
  fi
  "$normlab" "${args[@]}" >"$out/kill-$i.log" 2>&1 &
  pid=$!
  # The kill comes after the run's first new checkpoint: a start (reading the
  # corpus, building or loading the model) on a loaded machine (ctest's other
  # tests beside it) can take longer than any fixed moment, and runs killed
  # before they write anything make no progress (seen: 12 resumes in a row
  # killed in their start, none in a write).
  for ((wait_ms = 0; wait_ms < 60000; wait_ms += 10)); do
    [[ "$(newest_checkpoint "$run")" == "$newest" ]] || break
    kill -0 "$pid" 2>/dev/null ||
      fail "kill $i: the run ended before its first checkpoint: $(tail -n 3 "$out/kill-$i.log")"
    sleep 0.01
  done
  [[ "$(newest_checkpoint "$run")" != "$newest" ]] || fail "kill $i: no new checkpoint within 60 s"
  moment=$(printf '0.%03d' $((RANDOM % 250)))  # 0-0.249 s after that checkpoint
  sleep "$moment"
  kill -9 "$pid" 2>/dev/null || fail "kill $i: the run ended before ${moment}s (make it longer)"
  wait "$pid" 2>/dev/null || true
  temporaries=$({ find "$run" -maxdepth 1 -name '.*.tmp-*' 2>/dev/null || true; } | wc -l)
  if ((temporaries > 0)); then hit_write=$((hit_write + 1)); fi
  newest=$(newest_checkpoint "$run")
  [[ -n "$newest" ]] || fail "kill $i at ${moment}s: no checkpoint in $run"
  "$normlab" generate --checkpoint "$newest" --tokens 4 >/dev/null 2>"$out/load-$i.log" ||
    fail "kill $i at ${moment}s: $newest does not load: $(cat "$out/load-$i.log")"
  printf 'kill %2d %ss after a new checkpoint: newest %s, %s\n' "$i" "$moment" "$(basename "$newest")" \
    "$( ((temporaries > 0)) && echo "during a write" || echo "between writes")"
done
((hit_write > 0)) || fail "none of the $kills kills landed in a checkpoint write"

newest=$(newest_checkpoint "$run")
"$normlab" train --resume "$newest" "${every[@]}" >"$out/last.log" 2>&1 ||
  fail "the last resume from $newest failed: $(tail -n 3 "$out/last.log")"
killed_final=$(grep -o 'final step .*' "$out/last.log") || fail "no final line in $out/last.log"
[[ "$killed_final" == "$whole_final" ]] ||
  fail "killed and resumed: '$killed_final', uninterrupted: '$whole_final'"
diff <(losses "$out/whole/metrics.csv") <(losses "$run/metrics.csv") >/dev/null ||
  fail "metrics.csv of the killed run differs from the uninterrupted run's"
diff <(json_losses "$out/whole/metrics.jsonl") <(json_losses "$run/metrics.jsonl") >/dev/null ||
  fail "metrics.jsonl of the killed run differs from the uninterrupted run's"
[[ -z "$(find "$run" -maxdepth 1 -name '.*.tmp-*')" ]] ||
  fail "temporary files are left in $run after the last run"
echo "cli_kill_test: $kills kills ($hit_write during a checkpoint write), every newest checkpoint" \
  "loaded, and the resumed run ended at the uninterrupted run's losses: $whole_final"
