#!/bin/bash
# The main job (make demo): train the default model on single-task prompts
# of the sum-translation family (a + b written in one of 4 alphabets: Xiong
# et al.'s add-translate setting), evaluate it, run the superposition,
# task-vector and decodability probes, plot everything, and write
# out/demo/report.md. About 5 minutes on 2 cores.
#   ICL=path/to/icl  OUT=dir  STEPS=n  SEED=s  TASK=spec  bash scripts/demo.sh
set -euo pipefail
ICL=${ICL:-build/bin/icl}
OUT=${OUT:-out/demo}
STEPS=${STEPS:-1500}
SEED=${SEED:-1}
TASK=${TASK:-translation:K=4,sum=1}
rm -rf "$OUT"
mkdir -p "$OUT"
start=$(date +%s)

step() { printf '\n== %s\n' "$*" >&2; }

# Run a probe: its summary goes to DIR/summary.txt (and the terminal), then its plot script.
probe() {
    name=$1
    plot=$2
    shift 2
    dir="$OUT/$name"
    step "icl probe $name"
    "$ICL" probe "$name" --model "$OUT/model/model.safetensors" --out "$dir" "$@" | tee "$dir.summary.txt"
    mv "$dir.summary.txt" "$dir/summary.txt"
    gnuplot -e "dir='$dir'" "scripts/plot_$plot.gp"
}

step "train $TASK for $STEPS steps (checkpoints every 500 steps, per-task evaluation every 250)"
mkdir -p "$OUT/model"
"$ICL" train --task "$TASK" --steps "$STEPS" --batch 32 --lr 2e-3 --seed "$SEED" --log-every 250 \
    --eval-every 250 --checkpoint-every 500 --out "$OUT/model" 2>&1 | tee "$OUT/train.log"
trained=$(date +%s)
gnuplot -e "dir='$OUT/model'" scripts/plot_training.gp

step "evaluate against the number of in-context examples"
"$ICL" eval --model "$OUT/model/model.safetensors" --prompts 100 --out "$OUT/model/eval.csv" | tee "$OUT/eval.txt"
gnuplot -e "dir='$OUT/model'" scripts/plot_training.gp

probe superposition superposition --prompts 100
probe task-vectors task_vectors --prompts 50
probe decodability decodability --prompts 100 --checkpoints "$OUT/model/checkpoints"
done_at=$(date +%s)

sh scripts/report.sh "$OUT" "$TASK" "$STEPS" "$SEED" $((trained - start)) $((done_at - start)) > "$OUT/report.md.tmp"
mv "$OUT/report.md.tmp" "$OUT/report.md"
step "wrote $OUT/report.md ($((done_at - start)) s)"
