#!/bin/bash
# Run every subcommand of the icl tool on two small fixed models and write all
# of their output files (and printed summaries) under OUT, so that two builds
# can be compared file by file:
#   ICL=old/icl OUT=/tmp/a bash tests/golden/probe_outputs.sh
#   ICL=new/icl OUT=/tmp/b bash tests/golden/probe_outputs.sh
#   diff -r /tmp/a /tmp/b
# The models are trained by the same ICL, so the training path is compared too.
set -uo pipefail
ICL=${ICL:-build/bin/icl}
OUT=${OUT:-/tmp/icl-golden}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
rm -rf "$OUT"
mkdir -p "$OUT"
run() { # name, args...: stdout and stderr to OUT/name.txt, exit status recorded
    local name=$1
    shift
    "$ICL" "$@" > "$OUT/$name.txt" 2>&1
    echo "exit $?" >> "$OUT/$name.txt"
}
run train_tok train --task retrieval --layers 2 --steps 400 --batch 16 --seed 3 --eval-every 200 \
    --checkpoint-every 200 --log-every 100 --out "$OUT/model"
run train_vec train --task basis_mixture_small --layers 2 --steps 300 --batch 16 --seed 3 \
    --checkpoint-every 150 --out "$OUT/rmodel"
M=$OUT/model/model.safetensors
R=$OUT/rmodel/model.safetensors
run info info "$M"
run eval eval --model "$M" --prompts 20 --out "$OUT/eval.csv"
run eval_vec eval --model "$R" --prompts 20 --out "$OUT/eval_vec.csv"
for model in M R; do
    m=${!model}
    run "points_$model" probe points --model "$m"
    run "superposition_$model" probe superposition --model "$m" --prompts 20 --out "$OUT/superposition_$model"
    run "logit-lens_$model" probe logit-lens --model "$m" --prompts 20 --out "$OUT/logit-lens_$model"
    run "head-ablation_$model" probe head-ablation --model "$m" --prompts 20 --out "$OUT/head-ablation_$model"
    run "task-vectors_$model" probe task-vectors --model "$m" --prompts 10 --out "$OUT/task-vectors_$model"
    run "function-vectors_$model" probe function-vectors --model "$m" --prompts 10 --eval-prompts 10 \
        --out "$OUT/function-vectors_$model"
    run "decodability_$model" probe decodability --model "$m" --prompts 20 \
        --checkpoints "$(dirname "$m")/checkpoints" --out "$OUT/decodability_$model"
    run "rsa_$model" probe rsa --model "$m" --prompts 10 --perm 50 --out "$OUT/rsa_$model"
    run "linear_$model" probe linear --model "$m" --prompts 20 --folds 3 --out "$OUT/linear_$model"
    run "attention_$model" probe attention --model "$m" --prompts 10 --out "$OUT/attention_$model"
    run "finetune_$model" probe finetune --model "$m" --steps 20 --batch 8 --prompts 20 --eval-prompts 20 \
        --out "$OUT/finetune_$model"
done
# What legitimately differs between two runs is normalised: the OUT directory in
# printed paths, wall-clock times, throughput and creation stamps.
find "$OUT" -type f \( -name '*.txt' -o -name '*.json' -o -name '*.md' \) -print0 |
    xargs -0 sed -i -E -e "s|$OUT|OUT|g" -e 's/"created":[[:space:]]*"[^"]*"/"created": "T"/' \
        -e 's/ *[0-9]+ tok\/s \| ETA [0-9:]+/ N tok\/s/' -e 's/[0-9]+(\.[0-9]+)? s\b/T s/g'
find "$OUT" -name train_log.csv -exec sed -i -E 's/,[^,]*$//' {} +
