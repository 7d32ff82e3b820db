#!/bin/bash
# Han et al.'s "decodability predicts performance" on one basis-mixture run with checkpoints:
#   [PROMPTS=100] [EVAL_PROMPTS=200] bash scripts/han_td.sh ICL MODEL RUN SEED
# `icl probe decodability --checkpoints` (TD per checkpoint, level and basis) and `icl eval` of
# every checkpoint (query squared error per basis at the family's full number of examples, on
# other prompts), joined in RUN/td_error/td_error.csv with one row per (checkpoint, basis):
#   step,task,td,mse
# Fixed before looking: TD at the last level (the output of the last block, plain vote, k = 10)
# and the model's error at the largest k that icl eval reports (12 for basis_mixture_small).
set -euo pipefail
ICL=$1 MODEL=$2 RUN=$3 SEED=$4
PROMPTS=${PROMPTS:-100}
EVAL_PROMPTS=${EVAL_PROMPTS:-200}
ckpts=$(dirname "$MODEL")/checkpoints
out=$RUN/td_error
mkdir -p "$out"
"$ICL" probe decodability --model "$MODEL" --prompts "$PROMPTS" --seed "$SEED" --checkpoints "$ckpts" \
    --out "$out/decodability" > "$out/decodability.log" 2>&1
csv=$out/td_error.csv.tmp
echo "step,task,td,mse" > "$csv"
for c in "$ckpts"/step_*.safetensors; do
    step=$(basename "$c" .safetensors)
    step=$((10#${step#step_}))
    "$ICL" eval --model "$c" --prompts "$EVAL_PROMPTS" --quiet --out "$out/eval_$step.csv" > "$out/eval_$step.log" 2>&1
    awk -F, -v step="$step" '
        FNR == 1 { file++; next }
        file == 1 && $1 == step && $5 == "td" && $3 != "mean" { if ($2 + 0 > top) top = $2 + 0; td[$3 "," $2] = $6 }
        file == 2 && $3 == "model" && $4 == "mse" { if ($2 + 0 >= kmax) { kmax = $2 + 0 }; mse[$1 "," $2] = $5; seen[$1] = 1 }
        END { for (t in seen) print step "," t "," td[t "," top] "," mse[t "," kmax] }' \
        "$out/decodability/td_steps.csv" "$out/eval_$step.csv" | sort >> "$csv"
done
mv "$csv" "$out/td_error.csv"
