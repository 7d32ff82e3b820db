#!/bin/bash
# The main job (make demo): train the default retrieval model (ret_1..ret_4,
# Xiong et al.'s from-scratch task) on single-task prompts, evaluate it, run
# the superposition, task-vector and decodability probes, plot everything,
# and write out/demo/report.md. About 4.5 minutes on 2 cores.
# The recipe (3 layers; the first SHORT_STEPS steps on 2-example prompts) and
# why it needs each part: docs/tasks.md, Results, Retrieval.
#   ICL=path/to/icl  OUT=dir  STEPS=n  SHORT_STEPS=n  LAYERS=n  SEED=s  TASK=spec  bash scripts/demo.sh
set -euo pipefail
# Sleep rather than spin at OpenMP barriers: a loaded machine slows spinning threads badly.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
ICL=${ICL:-build/bin/icl}
OUT=${OUT:-out/demo}
STEPS=${STEPS:-4000}
SHORT_STEPS=${SHORT_STEPS:-3000}
LAYERS=${LAYERS:-3}
SEED=${SEED:-1}
TASK=${TASK:-retrieval}
rm -rf "$OUT"
mkdir -p "$OUT"
start=$(date +%s)

step() { printf '\n== %s\n' "$*" >&2; }

# Run a probe; its printed summary goes to OUT/<name>/summary.txt (and the terminal).
probe() {
    name=$1
    shift
    step "icl probe $name"
    "$ICL" probe "$name" --model "$OUT/model/model.safetensors" --out "$OUT/$name" "$@" | tee "$OUT/$name.txt"
    mv "$OUT/$name.txt" "$OUT/$name/summary.txt"
}

# plot SCRIPT DIR CSV [PNG [extra gnuplot assignments]]: the probe plot scripts read in= and out=.
plot() {
    gnuplot -e "in='$2/$3'; out='$2/${4:-${3%.csv}.png}'; ${5:-}" "scripts/plot_$1.gp"
}

step "train $TASK for $STEPS steps, the first $SHORT_STEPS on 2-example prompts (checkpoints every 500 steps, per-task evaluation every 250)"
mkdir -p "$OUT/model"
"$ICL" train --task "$TASK" --layers "$LAYERS" --short-prompts 2 --short-steps "$SHORT_STEPS" --steps "$STEPS" \
    --batch 32 --lr 1e-3 --seed "$SEED" --log-every 250 --eval-every 250 --checkpoint-every 500 \
    --out "$OUT/model" 2>&1 | tee "$OUT/train.log"
trained=$(date +%s)
gnuplot -e "dir='$OUT/model'" scripts/plot_training.gp

step "evaluate against the number of in-context examples"
"$ICL" eval --model "$OUT/model/model.safetensors" --prompts 100 --out "$OUT/model/eval.csv" | tee "$OUT/eval.txt"
gnuplot -e "dir='$OUT/model'" scripts/plot_training.gp

probe superposition --prompts 100
plot superposition "$OUT/superposition" superposition.csv
probe task-vectors --prompts 50
gnuplot -e "dir='$OUT/task-vectors'" scripts/plot_task_vectors.gp
probe decodability --prompts 100 --checkpoints "$OUT/model/checkpoints"
plot decodability "$OUT/decodability" td.csv
plot decodability "$OUT/decodability" pairwise.csv pairwise.png "plot='pairwise'"
plot decodability "$OUT/decodability" td_steps.csv td_steps.png "plot='steps'"
done_at=$(date +%s)

sh scripts/report.sh "$OUT" "$TASK" "$STEPS" "$SHORT_STEPS" "$SEED" $((trained - start)) $((done_at - start)) > "$OUT/report.md.tmp"
mv "$OUT/report.md.tmp" "$OUT/report.md"
step "wrote $OUT/report.md ($((done_at - start)) s)"
