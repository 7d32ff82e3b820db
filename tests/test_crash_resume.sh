#!/bin/bash
# Crash consistency of `icl train`: kill -9 a run at random moments (during
# steps; every second kill as soon as a checkpoint's temp file appears), then
# every checkpoint it left loads (`icl info`), and resuming from the newest one
# reproduces, step for step,
# the losses of an uninterrupted run. Run from the repository root after the
# build. KILLS (20) and CRASH_SEED (1) vary the campaign.
set -uo pipefail
. tests/shell_check.sh
icl=${ICL:-build/bin/icl}
kills=${KILLS:-20}
RANDOM=${CRASH_SEED:-1}
export OMP_NUM_THREADS=1
work=$(mktemp -d /tmp/icl-crash.XXXXXX)
trap 'rm -rf "$work"' EXIT

steps=16
args=(--task copy --layers 1 --d-model 8 --heads 1 --symbols 4 --length 3 --batch 4 --seed 3
      --steps $steps --log-every 1 --quiet)
# The loss column of train_log.csv for steps > $2: "step,loss" lines.
losses_after() { awk -F, -v from="$2" 'NR > 1 && $1 > from { print $1 "," $2 }' "$1"; }
now_us() { echo $(($(date +%s%N) / 1000)); }
# Start a checkpointing run in $1, wait for its first checkpoint; sets pid and t_first.
start_run() {
    "$icl" train "${args[@]}" --checkpoint-every 2 --out "$1" >/dev/null 2>&1 &
    pid=$!
    while kill -0 "$pid" 2>/dev/null && ! compgen -G "$1/checkpoints/step_*.safetensors" >/dev/null; do
        sleep 0.002
    done
    t_first=$(now_us)
}

check "uninterrupted run" "$icl" train "${args[@]}" --out "$work/ref"
check "uninterrupted run logs every step" test "$(losses_after "$work/ref/train_log.csv" 0 | wc -l)" -eq $steps
# A checkpointing run, not killed: it trains the same, and times the span
# from its first checkpoint to its end, where the kills land.
start_run "$work/calib"
wait "$pid"
span_us=$(($(now_us) - t_first))
check "checkpointing does not change the losses" \
    cmp <(losses_after "$work/ref/train_log.csv" 0) <(losses_after "$work/calib/train_log.csv" 0)

finished=0 loaded=0 unloadable=0 resumed=0 diverged=0 torn=0
for k in $(seq 1 "$kills"); do
    out="$work/kill$k"
    start_run "$out"
    if [ $((k % 2)) -eq 0 ]; then
        # Aim at a checkpoint write: kill as soon as a temp file shows up.
        until compgen -G "$out/checkpoints/*.tmp.*" >/dev/null || ! kill -0 "$pid" 2>/dev/null; do :; done
    else
        delay_us=$((span_us * (RANDOM % 100) / 100))
        sleep "$(printf '%d.%06d' $((delay_us / 1000000)) $((delay_us % 1000000)))"
    fi
    kill -9 "$pid" 2>/dev/null || finished=$((finished + 1))
    wait "$pid" 2>/dev/null
    ls "$out"/checkpoints/*.tmp.* >/dev/null 2>&1 && torn=$((torn + 1))
    newest=""
    for c in "$out"/checkpoints/step_*.safetensors; do
        [ -e "$c" ] || continue
        if "$icl" info "$c" >/dev/null 2>&1; then
            loaded=$((loaded + 1))
        else
            unloadable=$((unloadable + 1))
            echo "kill $k: $c does not load"
        fi
        newest=$c
    done
    [ -n "$newest" ] || continue
    from=$(basename "$newest" .safetensors)
    from=$((10#${from#step_}))
    "$icl" train "${args[@]}" --resume "$newest" --out "$out/resumed" >/dev/null 2>&1
    resumed=$((resumed + 1))
    if ! cmp -s <(losses_after "$work/ref/train_log.csv" "$from") <(losses_after "$out/resumed/train_log.csv" "$from"); then
        diverged=$((diverged + 1))
        echo "kill $k: resuming from step $from gives other losses than the uninterrupted run"
    fi
done
echo "crash test: $kills kills ($finished came after the run ended, $torn inside a checkpoint write)," \
     "$loaded checkpoints loaded, $unloadable did not; $resumed resumes, $diverged diverged"
check "every checkpoint left by a kill loads" test "$unloadable" -eq 0
check "some kills left checkpoints to resume from" test "$resumed" -gt 0
check "resumed runs give the uninterrupted run's losses" test "$diverged" -eq 0
check_summary
